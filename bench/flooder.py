"""A body flood for `bench.parse_floods`, in its own process so its CPU is its own:
`python -m bench.flooder --mode invites|values --endpoint URL --server NAME ...`.

* `invites`: unsigned-by-a-peer, self-certified `POST /invites` of 7.9 MiB of integers (the
  issue's request: 1.3 million of them), with its Content-Length, from a server the target does
  not know;
* `values`: `PUT /transactions` signed as a real peer (`--as` with that peer's `--key`), 2 MiB
  of integers: under the body cap, far over the cap on JSON values.

`--concurrency` requests are kept in flight for `--seconds`; it prints one JSON object: how
many were answered, by status, and the CPU it used. It runs at the lowest CPU priority
(`--nice`), like `bench.attacker`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import ssl
import time
from collections import Counter
from pathlib import Path

import aiohttp
from yarl import URL

from federation.keys import SigningKey
from federation.request_signing import sign_request

__all__ = ["main"]

_PREFIX = "/_agentnet/v1"


def _body(mode: str) -> bytes:
    if mode == "invites":
        return b'{"invite_id":[' + b",".join(b"1" for _ in range(1_300_000)) + b"]}"
    return b'{"events":[' + b",".join(b"1" for _ in range(1_000_000)) + b"]}"


async def _flood(args: argparse.Namespace) -> dict:
    body = _body(args.mode)
    key = SigningKey.load(Path(args.key)) if args.key else SigningKey.generate()
    origin = args.as_server or "flooder.example"
    method, path = ("POST", "/invites") if args.mode == "invites" else ("PUT", None)
    tls = ssl.create_default_context(cafile=args.ca)
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + args.seconds

    async def one(http: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            target = _PREFIX + (path or f"/transactions/flood-{secrets.token_hex(6)}")
            headers = {"Content-Type": "application/json", "Authorization": sign_request(
                key, method=method, path=target, origin=origin, destination=args.server, body=body,
                now_ms=time.time_ns() // 1_000_000)}
            try:
                async with http.request(method, URL(args.endpoint + target, encoded=True), data=body,
                                        headers=headers, ssl=tls, server_hostname=args.server.split(":")[0]) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
            except aiohttp.ClientError:
                statuses[0] += 1  # the server closed the connection while the body was still going out
                await asyncio.sleep(0.05)

    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(http) for _ in range(args.concurrency)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"mode": args.mode, "body_bytes": len(body), "answers": dict(statuses), "wall_s": time.monotonic() - started,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flooder")
    parser.add_argument("--mode", choices=["invites", "values"], required=True)
    parser.add_argument("--endpoint", required=True, help="https://127.0.0.1:PORT of the target's federation listener")
    parser.add_argument("--server", required=True, help="the target's server name")
    parser.add_argument("--as", dest="as_server", help="sign as this server (values mode: a peer of the target)")
    parser.add_argument("--key", help="that server's signing key file")
    parser.add_argument("--ca", required=True, help="CA bundle that verifies the target")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--nice", type=int, default=19)
    args = parser.parse_args(argv)
    os.nice(args.nice)
    print(json.dumps(asyncio.run(_flood(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
