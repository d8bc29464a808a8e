"""The soak's fault proxy, driven with plain sockets: what each mode does to new and open
connections, and what it counts."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from bench.fault_proxy import FaultProxy, Mode


class Echo:
    """An upstream that echoes, counting the connections it got."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Echo:
        self._server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while chunk := await reader.read(1024):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def send(sock: socket.socket, data: bytes) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, data)


async def recv(sock: socket.socket, timeout: float = 5.0) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 1024), timeout)


async def nothing_arrives(sock: socket.socket, within: float = 0.3) -> bool:
    try:
        await recv(sock, within)
    except TimeoutError:
        return True
    return False


@pytest.fixture
async def echo():
    async with Echo() as server:
        yield server


@pytest.fixture
async def proxy(echo):
    p = FaultProxy("a->b", echo.port)
    await p.start()
    yield p
    await p.close()


async def test_pass_forwards_both_ways_and_counts_the_connection_and_bytes(proxy, echo):
    with await connect(proxy.port) as sock:
        await send(sock, b"hello")
        assert await recv(sock) == b"hello"
    stats = proxy.stats()
    assert stats.connections["pass"] == 1 and echo.connections == 1
    assert stats.bytes["pass"] == 10  # five bytes each way


async def test_drop_resets_open_connections_and_every_new_one(proxy, echo):
    with await connect(proxy.port) as open_before:
        await send(open_before, b"a")
        assert await recv(open_before) == b"a"
        proxy.set_mode(Mode.DROP)
        with pytest.raises(ConnectionResetError):
            await recv(open_before)
    for _ in range(3):
        with await connect(proxy.port) as sock, pytest.raises(ConnectionResetError):
            await recv(sock)
    stats = proxy.stats()
    assert stats.connections["drop"] == 3 and stats.connections["pass"] == 1
    assert echo.connections == 1  # nothing dropped reached the upstream


async def test_blackhole_holds_new_connections_and_delivers_what_it_held_when_healed(proxy, echo):
    proxy.set_mode(Mode.BLACKHOLE)
    with await connect(proxy.port) as sock:  # accepted: the connect itself succeeds
        await send(sock, b"held")
        assert await nothing_arrives(sock)
        assert echo.connections == 0  # not even opened towards the upstream
        proxy.set_mode(Mode.PASS)
        assert await recv(sock) == b"held"
    assert proxy.stats().connections["blackhole"] == 1 and echo.connections == 1


async def test_blackhole_holds_open_connections_both_ways(proxy):
    with await connect(proxy.port) as sock:
        await send(sock, b"1")
        assert await recv(sock) == b"1"
        proxy.set_mode(Mode.BLACKHOLE)
        await send(sock, b"2")
        assert await nothing_arrives(sock)
        proxy.set_mode(Mode.PASS)
        assert await recv(sock) == b"2"


async def test_delay_adds_the_latency_each_way_and_keeps_the_order(proxy):
    proxy.set_mode(Mode.DELAY, delay_s=0.2)
    with await connect(proxy.port) as sock:
        started = time.monotonic()
        await send(sock, b"x")
        await send(sock, b"y")
        got = b""
        while len(got) < 2:
            got += await recv(sock)
        elapsed = time.monotonic() - started
    assert got == b"xy"
    assert elapsed >= 0.4  # 0.2 s out (plus the connect), 0.2 s back: a lower bound only


async def test_an_unreachable_upstream_resets_the_client_and_is_counted():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        proxy = FaultProxy("a->down", port)
        await proxy.start()
        try:
            with await connect(proxy.port) as sock, pytest.raises(ConnectionResetError):
                await recv(sock)
            assert proxy.stats().upstream_failures == 1
        finally:
            await proxy.close()


async def test_time_in_each_mode_and_attempts_in_a_window_follow_the_clock(echo):
    now = [100.0]
    proxy = FaultProxy("a->b", echo.port, clock=lambda: now[0])
    await proxy.start()
    try:
        now[0] = 103.0
        proxy.set_mode(Mode.DROP)
        for _ in range(4):
            with await connect(proxy.port) as sock, pytest.raises(ConnectionResetError):
                await recv(sock)
        now[0] = 110.0
        proxy.set_mode(Mode.PASS)
        now[0] = 111.5
        stats = proxy.stats()
        assert stats.seconds == {"pass": 4.5, "drop": 7.0, "blackhole": 0.0, "delay": 0.0}
        assert proxy.attempts_between(103.0, 110.0) == 4
        assert proxy.attempts_between(100.0, 103.0) == 0
        assert proxy.attempts_between(110.0, 200.0) == 0
    finally:
        await proxy.close()
