"""The agents' side of a benchmark: posting through the client API and receiving from the
event stream, kept lean so the harness's own CPU stays small next to the nodes'.

Every message body is `bench <tag> <n> <monotonic_ns>`: the send time rides in the message,
and the receiver (in this same process, so on the same clock) subtracts it from the time
the frame arrived. The tag keeps one measurement's messages apart from the next one's.
The stream is parsed with the node's own pure `SseParser`, without building pydantic models.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from node.client.agent_client import SseParser

__all__ = ["Poster", "Receiver", "body_for"]


def body_for(tag: str, n: int) -> str:
    return f"bench {tag} {n} {time.monotonic_ns()}"


class Poster:
    def __init__(self, http: aiohttp.ClientSession, client_url: str, token: str, messages_path: str) -> None:
        self._http = http
        self._url = client_url + messages_path
        self._headers = {"Authorization": f"Bearer {token}"}

    async def post(self, tag: str, n: int) -> None:
        async with self._http.post(self._url, json={"body": body_for(tag, n)}, headers=self._headers) as resp:
            if resp.status != 201:
                raise RuntimeError(f"post {n} -> {resp.status} {await resp.text()}")
            await resp.read()


class Receiver:
    """Follows one agent's event stream and records when each bench message arrived.

    `start()` returns once the stream is open at the current cursor, so nothing posted after
    it is missed. `latencies[tag][n]` is arrival minus send, in nanoseconds."""

    def __init__(self, http: aiohttp.ClientSession, client_url: str, token: str) -> None:
        self._http = http
        self._base = client_url
        self._headers = {"Authorization": f"Bearer {token}"}
        self.latencies: dict[str, dict[int, int]] = {}
        self.arrivals: dict[str, dict[int, int]] = {}
        self._waiters: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._counts: dict[str, tuple[int, asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self._http.get(self._base + "/v1/events", headers=self._headers) as resp:
            cursor = (await resp.json())["next_cursor"]
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._follow(cursor, opened))
        await opened

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def expect(self, tag: str, n: int) -> asyncio.Future[None]:
        """A future that is done when message `n` of `tag` has arrived."""
        future = asyncio.get_running_loop().create_future()
        if n in self.latencies.get(tag, {}):
            future.set_result(None)
        else:
            self._waiters[(tag, n)] = future
        return future

    def expect_count(self, tag: str, count: int) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        if len(self.latencies.get(tag, {})) >= count:
            future.set_result(None)
        else:
            self._counts[tag] = (count, future)
        return future

    async def _follow(self, cursor: str, opened: asyncio.Future[None]) -> None:
        headers = dict(self._headers, Accept="text/event-stream")
        headers["Last-Event-ID"] = cursor
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        try:
            async with self._http.get(self._base + "/v1/events/stream", headers=headers, timeout=timeout) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"event stream -> {resp.status} {await resp.text()}")
                parser = SseParser()
                async for chunk in resp.content.iter_any():
                    now = time.monotonic_ns()
                    for frame in parser.feed(chunk):
                        if frame.event == "ready":
                            if not opened.done():
                                opened.set_result(None)
                        elif frame.event == "message.posted":
                            self._arrived(json.loads(frame.data).get("body", ""), now)
        except BaseException as e:
            if not opened.done():
                opened.set_exception(e if isinstance(e, Exception) else RuntimeError("stream cancelled"))
            for future in [*self._waiters.values(), *(f for _, f in self._counts.values())]:
                if not future.done() and isinstance(e, Exception):
                    future.set_exception(e)
            raise

    def _arrived(self, body: str, now: int) -> None:
        parts = body.split(" ")
        if len(parts) != 4 or parts[0] != "bench":
            return
        tag, n, sent = parts[1], int(parts[2]), int(parts[3])
        seen = self.latencies.setdefault(tag, {})
        if n in seen:
            return
        seen[n] = now - sent
        self.arrivals.setdefault(tag, {})[n] = now
        waiter = self._waiters.pop((tag, n), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        counted = self._counts.get(tag)
        if counted is not None and len(seen) >= counted[0] and not counted[1].done():
            counted[1].set_result(None)
            del self._counts[tag]
