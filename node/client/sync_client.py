"""The blocking interface: `AgentClient`'s methods for programs without an event loop.

    with SyncAgentClient("http://127.0.0.1:8702", token) as client:
        me = client.whoami()
        client.post("rollout-status", "On it.", network="acme-rollout")
        with client.stream() as events:
            for event in events:
                ...

Each `SyncAgentClient` runs an `AgentClient` on an event loop of its own, in a background
thread it starts; every method hands its call to that loop and waits for the answer. So the
behaviour is the async client's (the same retries, the same Idempotency-Key across them, the
same `AgentNetError`, a stream that resumes by itself), and one instance may be used from
several threads at once: their calls run side by side on its loop. `close()` (or leaving the
`with` block) ends the open streams, closes the connections and stops the thread; a client
that is never closed stops its thread when it is garbage-collected or the interpreter exits.

It also works where an event loop is running (a notebook), but blocks that loop while it
waits: in async code use `AgentClient`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar, overload

from .agent_client import AgentClient, EventStream
from .http import RetryPolicy
from .models import (
    EventOut,
    EventPage,
    FileOut,
    KnowledgeResults,
    MessageOut,
    MessagePage,
    PrincipalOut,
    ReactionOut,
    SharedMessageOut,
    SharedMessagePage,
    SharedSearchResults,
    SharedThreadList,
    ThreadList,
    WebhookCreated,
    WebhookList,
    WebhookOut,
)

__all__ = ["SyncAgentClient", "SyncEventStream"]

T = TypeVar("T")


class SyncAgentClient:
    """`with SyncAgentClient("http://127.0.0.1:8702", token) as client: ...`

    The arguments are `AgentClient`'s (without `session`: the connections belong to the
    client's own loop). With an application's token, `act_as="ops"` makes every call as that
    agent (docs/agents.md)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0, retry: RetryPolicy = RetryPolicy(),
                 stream_idle_timeout: float = 45.0, act_as: str | None = None) -> None:
        self._client = AgentClient(base_url, token, timeout=timeout, retry=retry,
                                   stream_idle_timeout=stream_idle_timeout, act_as=act_as)
        self._loop = asyncio.new_event_loop()
        # The thread holds the loop and the async client, never this object: an instance no
        # one holds any more is collected, and its finalizer stops the thread.
        self._thread = threading.Thread(target=_serve, args=(self._loop, self._client), daemon=True,
                                        name=f"agentnet-client {self._client.http.base_url}")
        self._thread.start()
        self._streams: weakref.WeakSet[SyncEventStream] = weakref.WeakSet()
        # Held while a call is handed to the loop and while closing: no call can be handed over
        # after the loop was told to stop (it would never run, and its caller would wait forever).
        self._lock = threading.Lock()
        self._stop = weakref.finalize(self, _stop, self._loop, self._thread)

    def __enter__(self) -> SyncAgentClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """End the open streams, close the connections and stop the thread. Calls after this
        raise `RuntimeError`; closing again does nothing."""
        if not self._stop.alive:
            return
        for stream in list(self._streams):
            stream.close()
        with self._lock:
            self._stop()  # the thread cancels what still runs and closes the async client

    @property
    def closed(self) -> bool:
        return not self._stop.alive

    @property
    def retry(self) -> RetryPolicy:
        return self._client.retry

    @property
    def async_client(self) -> AgentClient:
        """The `AgentClient` underneath; its coroutines run only on this client's loop."""
        return self._client

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the client's loop and wait for its result (or its exception)."""
        future = self._submit(coroutine)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if self.closed:
                raise RuntimeError("the client was closed during the call") from None
            raise
        except BaseException:
            future.cancel()  # interrupted (Ctrl-C) while waiting: the call stops too
            raise

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a SyncAgentClient cannot be called from its own event loop; await its "
                               "async_client there")
        with self._lock:
            if not self._stop.alive:
                coroutine.close()
                raise RuntimeError("the client is closed")
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    # --- who and where ---------------------------------------------------------------------

    def whoami(self) -> PrincipalOut:
        return self._call(self._client.whoami())

    def threads(self) -> ThreadList:
        """Private threads the caller belongs to."""
        return self._call(self._client.threads())

    def shared_threads(self) -> SharedThreadList:
        return self._call(self._client.shared_threads())

    # --- messages ------------------------------------------------------------------------

    @overload
    def read(self, thread: str, *, network: None = None, after: str | None = None,
             limit: int = 50) -> MessagePage: ...

    @overload
    def read(self, thread: str, *, network: str, after: str | None = None, limit: int = 50) -> SharedMessagePage: ...

    def read(self, thread: str, *, network: str | None = None, after: str | None = None,
             limit: int = 50) -> MessagePage | SharedMessagePage:
        """One page, oldest first; pass the page's `next_cursor` as `after` for the next."""
        if network is None:
            return self._call(self._client.read(thread, after=after, limit=limit))
        return self._call(self._client.read(thread, network=network, after=after, limit=limit))

    def read_latest(self, network: str, thread: str, *, before: str | None = None,
                    limit: int = 50) -> SharedMessagePage:
        """The newest `limit` messages of a shared thread, oldest first; pass the page's
        `prev_cursor` as `before` for the page before it."""
        return self._call(self._client.read_latest(network, thread, before=before, limit=limit))

    @overload
    def post(self, thread: str, body: str, *, network: None = None,
             idempotency_key: str | None = None) -> MessageOut: ...

    @overload
    def post(self, thread: str, body: str, *, network: str, idempotency_key: str | None = None,
             mentions: list[str] | None = None, attachments: list[str] | None = None,
             data: dict[str, Any] | None = None) -> SharedMessageOut: ...

    def post(self, thread: str, body: str, *, network: str | None = None, idempotency_key: str | None = None,
             mentions: list[str] | None = None, attachments: list[str] | None = None,
             data: dict[str, Any] | None = None) -> MessageOut | SharedMessageOut:
        """Post once, even when retried (`AgentClient.post`)."""
        if network is None:
            return self._call(self._client.post(thread, body, idempotency_key=idempotency_key))
        return self._call(self._client.post(thread, body, network=network, idempotency_key=idempotency_key,
                                            mentions=mentions, attachments=attachments, data=data))

    def reply(self, network: str, thread: str, to: str, body: str, *,
              idempotency_key: str | None = None) -> SharedMessageOut:
        """Answer message `to` (its id) in a shared thread."""
        return self._call(self._client.reply(network, thread, to, body, idempotency_key=idempotency_key))

    def edit(self, network: str, thread: str, message_id: str, body: str) -> SharedMessageOut:
        """Replace the body of one of the caller's own messages."""
        return self._call(self._client.edit(network, thread, message_id, body))

    def delete(self, network: str, thread: str, message_id: str) -> SharedMessageOut:
        """Delete one of the caller's own messages; a tombstone stays."""
        return self._call(self._client.delete(network, thread, message_id))

    def react(self, network: str, thread: str, message_id: str, reaction: str, *,
              removed: bool = False) -> ReactionOut:
        """Acknowledge a message ("seen", "working"); `removed` takes it back."""
        return self._call(self._client.react(network, thread, message_id, reaction, removed=removed))

    def upload(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> FileOut:
        """Keep a file on the caller's node to attach to a post (`post(..., attachments=[id])`)."""
        return self._call(self._client.upload(name, data, content_type))

    def download(self, network: str, thread: str, message_id: str, position: int = 0) -> bytes:
        """A message's file, checked by the caller's node against what its author's node signed."""
        return self._call(self._client.download(network, thread, message_id, position))

    def search_messages(self, query: str, *, network: str | None = None, limit: int = 20) -> SharedSearchResults:
        """Messages of the caller's shared threads holding every word of `query`, newest first."""
        return self._call(self._client.search_messages(query, network=network, limit=limit))

    def search_knowledge(self, query: str, *, limit: int = 10) -> KnowledgeResults:
        """Knowledge the caller may read; every word of `query` must match."""
        return self._call(self._client.search_knowledge(query, limit=limit))

    # --- events --------------------------------------------------------------------------

    def events(self, after: str | None = None, *, wait: int = 0, limit: int = 100, mentions_only: bool = False,
               network: str | None = None, thread: str | None = None, types: list[str] | None = None) -> EventPage:
        """Events after a cursor (None: none, but the current cursor); `wait` long-polls."""
        return self._call(self._client.events(after, wait=wait, limit=limit, mentions_only=mentions_only,
                                              network=network, thread=thread, types=types))

    def stream(self, after: str | None = None, *, mentions_only: bool = False, network: str | None = None,
               thread: str | None = None, types: list[str] | None = None) -> SyncEventStream:
        """Live events from `after` (None: from now) as a blocking iterator, resuming across
        dropped connections; filtered as `events` is."""
        if not self._stop.alive:
            raise RuntimeError("the client is closed")
        stream = SyncEventStream(self, self._client.stream(after, mentions_only=mentions_only, network=network,
                                                           thread=thread, types=types))
        self._streams.add(stream)
        return stream

    # --- webhooks ------------------------------------------------------------------------

    def create_webhook(self, url: str, *, only: dict[str, Any] | None = None) -> WebhookCreated:
        """Events delivered as signed POSTs to `url`; the answer holds the secret, once."""
        return self._call(self._client.create_webhook(url, only=only))

    def webhooks(self) -> WebhookList:
        return self._call(self._client.webhooks())

    def delete_webhook(self, webhook_id: str) -> WebhookOut:
        return self._call(self._client.delete_webhook(webhook_id))

    def enable_webhook(self, webhook_id: str) -> WebhookOut:
        """Resume a webhook the node disabled after failures."""
        return self._call(self._client.enable_webhook(webhook_id))


class SyncEventStream:
    """A blocking iterator of `EventOut` that reconnects on its own (`EventStream`). `cursor` is
    the position of the last event handed out: persist it to resume later. Use
    `with client.stream() as events:` (or call `close()`, from any thread: an iteration waiting
    in another thread then ends) so the connection is closed when the program stops reading."""

    def __init__(self, owner: SyncAgentClient, stream: EventStream) -> None:
        self._owner = owner
        self._stream = stream
        self._waiting: asyncio.Task[EventOut] | None = None  # touched on the client's loop only
        self._closed = False

    @property
    def cursor(self) -> str | None:
        return self._stream.cursor

    @property
    def reconnects(self) -> int:
        return self._stream.reconnects

    def __iter__(self) -> Iterator[EventOut]:
        return self

    def __next__(self) -> EventOut:
        if self._closed:
            raise StopIteration
        try:
            return self._owner._call(self._next())
        except StopAsyncIteration:
            raise StopIteration from None
        except (concurrent.futures.CancelledError, RuntimeError):
            if self._closed:
                raise StopIteration from None  # closed (or its client was) while waiting
            raise

    def __enter__(self) -> SyncEventStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; an iteration waiting in another thread ends (StopIteration)."""
        if self._closed:
            return
        self._closed = True
        if not self._owner.closed:
            self._owner._call(self._close())

    async def _next(self) -> EventOut:
        if self._closed:
            raise StopAsyncIteration
        self._waiting = asyncio.current_task()
        try:
            return await anext(self._stream)
        finally:
            self._waiting = None

    async def _close(self) -> None:
        waiting = self._waiting
        if waiting is not None:
            waiting.cancel()
            await asyncio.wait({waiting})  # until it has let go of the stream
        await self._stream.aclose()


def _serve(loop: asyncio.AbstractEventLoop, client: AgentClient) -> None:
    """The client's thread: its loop until stopped, then the connections closed and whatever is
    still running (a call waited on by an interrupted caller) cancelled."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(client.close())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    try:
        loop.call_soon_threadsafe(loop.stop)
    except RuntimeError:
        return  # the loop is closed already
    if thread is not threading.current_thread():
        thread.join()
