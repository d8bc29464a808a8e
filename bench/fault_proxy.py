"""A TCP proxy for one directed link between two nodes (A's connections to B), whose
behaviour the soak switches while it runs.

The nodes speak TLS end to end through it and check each other's certificate against the
server name, so the proxy only moves bytes; it never needs a key. Modes:

- `pass`: bytes go through as they come.
- `drop`: every connection is reset, the open ones at the moment of the switch included, and
  each new one right after it is accepted (so the attempt is still counted). To the node this
  is a peer whose address refuses it.
- `blackhole`: connections are accepted and held; nothing is forwarded either way, and a new
  connection is not even opened towards B. When the link heals, what was held goes through
  (as TCP would retransmit it), unless the node gave up on the connection meanwhile. So a
  request can reach B after A stopped waiting for its answer: an answer lost on the way back.
- `delay`: every chunk is forwarded `delay_s` after it arrived, in order, both ways.

The proxy counts connection attempts per mode (the mode at the moment of the accept) with
their times, bytes forwarded per mode, and the time spent in each mode: what the soak needs
for "retries per peer per minute during partitions". The clock is injected for the tests.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import enum
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FaultProxy", "Mode", "ProxyStats"]

# One read from a socket; a bounded queue of these per direction is all a held connection buffers.
_CHUNK = 64 * 1024
_QUEUED_CHUNKS = 16
_EOF = b""


class Mode(enum.StrEnum):
    PASS = "pass"
    DROP = "drop"
    BLACKHOLE = "blackhole"
    DELAY = "delay"


@dataclass(frozen=True, slots=True)
class ProxyStats:
    connections: dict[str, int]  # accepted connections, by the mode at accept time
    bytes: dict[str, int]  # bytes forwarded (both directions), by the mode at forward time
    seconds: dict[str, float]  # time spent in each mode so far
    upstream_failures: int  # connections that could not be opened towards B (B down)
    open_connections: int


class FaultProxy:
    def __init__(self, name: str, target_port: int, *, target_host: str = "127.0.0.1",
                 listen_host: str = "127.0.0.1", listen_port: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._target = (target_host, target_port)
        self._listen = (listen_host, listen_port)
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._mode = Mode.PASS
        self._delay_s = 0.0
        self._mode_since = clock()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._connections: dict[str, int] = dict.fromkeys(Mode, 0)
        self._bytes: dict[str, int] = dict.fromkeys(Mode, 0)
        self._seconds: dict[str, float] = dict.fromkeys(Mode, 0.0)
        self._accepted_at: list[float] = []
        self._upstream_failures = 0
        self._open: dict[asyncio.Task, list[asyncio.StreamWriter]] = {}

    # Lifecycle

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, *self._listen)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"proxy {self.name} is not started")
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._reset_all()

    # Control

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode | str, *, delay_s: float = 0.0) -> None:
        mode = Mode(mode)
        now = self._clock()
        self._seconds[self._mode] += now - self._mode_since
        self._mode, self._mode_since = mode, now
        self._delay_s = delay_s if mode is Mode.DELAY else 0.0
        if mode is Mode.BLACKHOLE:
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode is Mode.DROP:
            for task, writers in list(self._open.items()):
                for writer in writers:
                    _reset(writer)
                task.cancel()

    # Counting

    def stats(self) -> ProxyStats:
        seconds = dict(self._seconds)
        seconds[self._mode] += self._clock() - self._mode_since
        return ProxyStats(connections=_by_name(self._connections), bytes=_by_name(self._bytes),
                          seconds=_by_name(seconds),
                          upstream_failures=self._upstream_failures, open_connections=len(self._open))

    def attempts_between(self, start: float, end: float) -> int:
        """Connection attempts accepted in [start, end) on the proxy's clock."""
        return bisect.bisect_left(self._accepted_at, end) - bisect.bisect_left(self._accepted_at, start)

    # Connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self._mode
        self._connections[mode] += 1
        self._accepted_at.append(self._clock())
        if mode is Mode.DROP:
            _reset(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        writers = self._open[task] = [writer]
        try:
            await self._flowing.wait()  # a blackhole does not even open the connection to B
            if self._delay_s:
                await asyncio.sleep(self._delay_s)
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError:
                self._upstream_failures += 1
                _reset(writer)
                return
            writers.append(up_writer)
            async with asyncio.TaskGroup() as pumps:
                pumps.create_task(self._pump(reader, up_writer))
                pumps.create_task(self._pump(up_reader, writer))
        except (OSError, asyncio.CancelledError, ExceptionGroup):
            pass  # a reset (ours or theirs) ends the connection; nothing else to do
        finally:
            self._open.pop(task, None)
            for w in writers:
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One direction: a reader stamps chunks, a writer forwards each once the link lets it."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUED_CHUNKS)

        async def read() -> None:
            while True:
                chunk = await reader.read(_CHUNK)
                await queue.put((self._clock(), chunk))
                if chunk == _EOF:
                    return

        async with asyncio.TaskGroup() as group:
            group.create_task(read())
            while True:
                arrived, chunk = await queue.get()
                await self._flowing.wait()
                if self._delay_s:
                    await asyncio.sleep(max(0.0, arrived + self._delay_s - self._clock()))
                    await self._flowing.wait()
                if chunk == _EOF:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(chunk)
                self._bytes[self._mode] += len(chunk)
                await writer.drain()

    async def _reset_all(self) -> None:
        tasks = list(self._open)
        for task, writers in list(self._open.items()):
            for writer in writers:
                _reset(writer)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _by_name(values: dict) -> dict:
    return {str(mode): value for mode, value in values.items()}


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: the peer sees a reset connection, as from a refusing host."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
