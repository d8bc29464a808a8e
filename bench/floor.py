"""The floor: what this machine does at best, measured in the same run as the scenarios.

* ed25519 sign and verify rates through `federation.keys` (the node's own crypto path) on
  a message the size of a signed event.
* A bare aiohttp request round trip over TLS on loopback: a one-route aiohttp server in its
  own process (`python -m bench.floor --serve ...`), with the same TLS contexts the nodes use
  (`node.federation.tls`), called one request at a time (round-trip latency) and by 8 concurrent
  callers (requests per second). The server's CPU per 1,000 requests and its idle RSS are the
  floor for the nodes' CPU and memory figures.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.nodes import REPO_ROOT, free_port, proc_cpu_seconds, proc_rss_bytes
from bench.stats import summary_ms
from federation.keys import SigningKey
from node.federation.tls import client_ssl_context, server_ssl_context
from node.ops.tls_ca import write_self_signed

__all__ = ["measure_floor"]

# About the size of a message event's canonical signed form.
_EVENT_BYTES = b'{"content":{"body":"bench x 1 123456789012345"},"network":"bench-net",' * 4
_CONCURRENCY = 8


def _rate(fn, seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            fn()
        done += 200
    return done / elapsed


def crypto_rates(seconds: float) -> dict[str, float]:
    key = SigningKey.generate()
    signature = key.sign(_EVENT_BYTES)
    verify_key = key.verify_key
    return {
        "ed25519_sign_per_s": _rate(lambda: key.sign(_EVENT_BYTES), seconds),
        "ed25519_verify_per_s": _rate(lambda: verify_key.verify(_EVENT_BYTES, signature), seconds),
    }


async def _round_trips(root: Path, requests: int) -> dict[str, float | dict]:
    root.mkdir(parents=True, exist_ok=True)
    cert, key = root / "floor.crt", root / "floor.key"
    if not cert.exists():
        write_self_signed(cert, key, "floor.bench", now=datetime.now(UTC))
    port = free_port()
    # Popen only forks and execs; the wait for the server is the async loop below.
    proc = subprocess.Popen([sys.executable, "-m", "bench.floor", "--serve", str(port), str(cert), str(key)],
                            cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    try:
        connector = aiohttp.TCPConnector(ssl=client_ssl_context(cert), limit=_CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as http:
            url = f"https://127.0.0.1:{port}/echo"

            async def call() -> None:
                async with http.post(url, json={"body": "floor"}, server_hostname="floor.bench") as resp:
                    await resp.read()

            deadline = time.monotonic() + 30
            while True:
                try:
                    await call()
                    break
                except aiohttp.ClientConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            idle_rss = proc_rss_bytes(proc.pid)
            for _ in range(50):  # warm the connection pool and the server
                await call()
            samples = []
            for _ in range(requests):
                started = time.monotonic_ns()
                await call()
                samples.append(time.monotonic_ns() - started)
            total = requests * 4
            cpu_before = proc_cpu_seconds(proc.pid)
            started_s = time.monotonic()

            async def worker(count: int) -> None:
                for _ in range(count):
                    await call()

            await asyncio.gather(*(worker(total // _CONCURRENCY) for _ in range(_CONCURRENCY)))
            elapsed = time.monotonic() - started_s
            cpu = proc_cpu_seconds(proc.pid) - cpu_before
        return {
            "tls_round_trip_ms": summary_ms(samples),
            "tls_requests_per_s": total / elapsed,
            "server_cpu_s_per_1000": cpu / total * 1000,
            "server_idle_rss_mb": idle_rss / 2**20,
        }
    finally:
        proc.terminate()
        proc.wait(10)


async def measure_floor(root: Path, *, quick: bool) -> dict:
    rates = await asyncio.to_thread(crypto_rates, 0.3 if quick else 2.0)
    trips = await _round_trips(root, 300 if quick else 2000)
    return {**rates, **trips}


def _serve(port: int, cert: Path, key: Path) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"body": (await request.json())["body"]})

    app = web.Application()
    app.router.add_post("/echo", echo)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=server_ssl_context(cert, key),
                print=None, access_log=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "CERT", "KEY"), required=True)
    args = parser.parse_args()
    _serve(int(args.serve[0]), Path(args.serve[1]), Path(args.serve[2]))
