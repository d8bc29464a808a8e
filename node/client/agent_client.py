"""An async client for the client listener, for agents and people.

It parses every answer into the client's own models (`models.py`: the node's response bodies,
checked against its OpenAPI document, that accept fields a newer node adds), and turns every
failure into one error type, `AgentNetError`, so a program handles one thing. Like every module
of this package it imports only the standard library, aiohttp, pydantic and its neighbours (by
relative imports): the same files are `node.client` in the server and `agentnet_client` when
installed alone (`pyproject.toml` here). `sync_client.py` holds the blocking interface.

Retries are safe only where the node makes them so. A post carries an `Idempotency-Key`
(generated when the caller gives none) and every retry of that post reuses it: a post whose
answer was lost is stored once, and the retry gets the stored answer back. Reads are safe by
nature. So connection errors, 5xx and 429-with-Retry-After are retried a bounded number of
times; everything else (401, 403, 404, 410, 413, 422) is raised at once, because asking again
would get the same answer.

The event stream resumes on its own: each Server-Sent Events frame's `id:` is a feed cursor,
and after a dropped connection (or a node restart) the client reconnects with `Last-Event-ID`
set to the last event it handed out, so nothing is missed and nothing repeats. The cursor is
exposed (`EventStream.cursor`) so a program can persist it and resume after its own restart.
What no reconnect can fix is raised: 401/403/410 before the stream starts, and the node's
`token_revoked` error frame.

The SSE parser (`SseParser`) does no I/O: lines in, frames out.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, overload
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ValidationError

from .http import AgentNetError, NodeHttp, RetryPolicy, refusal
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

__all__ = ["AgentClient", "AgentNetError", "EventStream", "RetryPolicy", "SseFrame", "SseParser"]

M = TypeVar("M", bound=BaseModel)

# A stream that failed with one of these reconnects: the node or a proxy was briefly away.
STREAM_RETRY_STATUSES = frozenset({500, 502, 503, 504})

@dataclass(frozen=True, slots=True)
class SseFrame:
    event: str
    data: str
    id: str | None


class SseParser:
    """The Server-Sent Events field rules, without I/O: bytes in (in any chunks), frames out."""

    # A frame holds one event; the largest (a 16,384-character message, its body twice, in
    # UTF-8) is under 200 KB. Far more than that is not an event stream.
    MAX_BUFFER = 1 << 20

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SseFrame]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > self.MAX_BUFFER:
            raise AgentNetError(0, "bad_response", "an event stream line is too long")
        frames = []
        for line in lines:
            frame = self._line(line.rstrip(b"\r").decode("utf-8", "replace"))
            if frame is not None:
                frames.append(frame)
        return frames

    def _line(self, line: str) -> SseFrame | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keepalive
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None  # "retry" and unknown fields: the client keeps its own backoff

    def _dispatch(self) -> SseFrame | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SseFrame(event=event or "message", data="\n".join(data), id=self._id)


class AgentClient:
    """`async with AgentClient("http://127.0.0.1:8702", token) as client: ...`

    Pass `session` to share an aiohttp session (the client then does not close it). With an
    application's token, `act_as="ops"` makes every call as that agent (docs/agents.md)."""

    def __init__(self, base_url: str, token: str, *, session: aiohttp.ClientSession | None = None,
                 timeout: float = 30.0, retry: RetryPolicy = RetryPolicy(),
                 stream_idle_timeout: float = 45.0, act_as: str | None = None) -> None:
        self.http = NodeHttp(base_url, token, session=session, timeout=timeout, retry=retry)
        if act_as is not None:
            self.http.headers["Act-As"] = act_as
        # The node sends a keepalive every 15 s by default; three missed ones mean a dead link.
        self._idle_timeout = stream_idle_timeout

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.close()

    @property
    def retry(self) -> RetryPolicy:
        return self.http.retry

    # --- who and where ---------------------------------------------------------------------

    async def whoami(self) -> PrincipalOut:
        return await self._call("GET", "/v1/whoami", PrincipalOut)

    async def threads(self) -> ThreadList:
        """Private threads the caller belongs to."""
        return await self._call("GET", "/v1/threads", ThreadList)

    async def shared_threads(self) -> SharedThreadList:
        return await self._call("GET", "/v1/shared-threads", SharedThreadList)

    # --- messages ------------------------------------------------------------------------

    @overload
    async def read(self, thread: str, *, network: None = None, after: str | None = None,
                   limit: int = 50) -> MessagePage: ...

    @overload
    async def read(self, thread: str, *, network: str, after: str | None = None,
                   limit: int = 50) -> SharedMessagePage: ...

    async def read(self, thread: str, *, network: str | None = None, after: str | None = None,
                   limit: int = 50) -> MessagePage | SharedMessagePage:
        """One page, oldest first; pass the page's `next_cursor` as `after` for the next."""
        params: dict[str, str] = {"limit": str(limit)}
        if after is not None:
            params["after"] = after
        if network is None:
            return await self._call("GET", _private(thread), MessagePage, params=params)
        return await self._call("GET", _shared(network, thread), SharedMessagePage, params=params)

    async def read_latest(self, network: str, thread: str, *, before: str | None = None,
                          limit: int = 50) -> SharedMessagePage:
        """The newest `limit` messages of a shared thread, oldest first (the caller's pending posts
        last); pass the page's `prev_cursor` as `before` for the page before it."""
        params = {"limit": str(limit), "before": before or "latest"}
        return await self._call("GET", _shared(network, thread), SharedMessagePage, params=params)

    @overload
    async def post(self, thread: str, body: str, *, network: None = None,
                   idempotency_key: str | None = None) -> MessageOut: ...

    @overload
    async def post(self, thread: str, body: str, *, network: str, idempotency_key: str | None = None,
                   mentions: list[str] | None = None, attachments: list[str] | None = None,
                   data: dict[str, Any] | None = None) -> SharedMessageOut: ...

    async def post(self, thread: str, body: str, *, network: str | None = None,
                   idempotency_key: str | None = None, mentions: list[str] | None = None,
                   attachments: list[str] | None = None,
                   data: dict[str, Any] | None = None) -> MessageOut | SharedMessageOut:
        """Post once, even when retried. A key derived from what is being answered (say the
        triggering event's id) also makes a restarted program's repeat a no-op. Shared threads
        only: `mentions` (participant ids the message addresses), `attachments` (ids `upload`
        returned), `data` (a JSON object for another agent to read as is)."""
        key = idempotency_key or str(uuid.uuid4())
        headers = {"Idempotency-Key": key}
        if network is None:
            return await self._call("POST", _private(thread), MessageOut, json_body={"body": body}, headers=headers)
        extra = {"mentions": mentions, "attachments": attachments, "data": data}
        payload: dict[str, Any] = {"body": body, **{k: v for k, v in extra.items() if v}}
        return await self._call("POST", _shared(network, thread), SharedMessageOut, json_body=payload,
                                headers=headers)

    async def reply(self, network: str, thread: str, to: str, body: str, *,
                    idempotency_key: str | None = None) -> SharedMessageOut:
        """Answer message `to` (its id) in a shared thread."""
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return await self._call("POST", _shared(network, thread), SharedMessageOut,
                                json_body={"body": body, "reply_to": to}, headers=headers)

    async def edit(self, network: str, thread: str, message_id: str, body: str) -> SharedMessageOut:
        """Replace the body of one of the caller's own messages (every member sees it)."""
        return await self._call("PATCH", f"{_shared(network, thread)}/{quote(message_id, safe='$')}", SharedMessageOut,
                                json_body={"body": body})

    async def delete(self, network: str, thread: str, message_id: str) -> SharedMessageOut:
        """Delete one of the caller's own messages; a tombstone stays."""
        return await self._call("DELETE", f"{_shared(network, thread)}/{quote(message_id, safe='$')}",
                                SharedMessageOut)

    async def react(self, network: str, thread: str, message_id: str, reaction: str, *,
                    removed: bool = False) -> ReactionOut:
        """Acknowledge a message ("seen", "working"); `removed` takes it back."""
        return await self._call("POST", f"{_shared(network, thread)}/{quote(message_id, safe='$')}/reactions",
                                ReactionOut, json_body={"reaction": reaction, "removed": removed})

    async def upload(self, name: str, data: bytes, content_type: str = "application/octet-stream") -> FileOut:
        """Keep a file on the caller's node to attach to a post (`post(..., attachments=[id])`)."""
        status, body, headers = await self.http.raw("POST", "/v1/files", params={"name": name}, data=data,
                                                    headers={"Content-Type": content_type})
        return FileOut.model_validate(_json_or_refusal(status, body, headers))

    async def download(self, network: str, thread: str, message_id: str, position: int = 0) -> bytes:
        """A message's file, checked by the caller's node against what its author's node signed."""
        path = f"{_shared(network, thread)}/{quote(message_id, safe='$')}/files/{position}"
        status, body, headers = await self.http.raw("GET", path)
        if status >= 400:
            _json_or_refusal(status, body, headers)
        return body

    async def search_messages(self, query: str, *, network: str | None = None,
                              limit: int = 20) -> SharedSearchResults:
        """Messages of the caller's shared threads holding every word of `query`, newest first."""
        params = {"q": query, "limit": str(limit), **({"network": network} if network else {})}
        return await self._call("GET", "/v1/shared-threads/search", SharedSearchResults, params=params)

    async def search_knowledge(self, query: str, *, limit: int = 10) -> KnowledgeResults:
        """Knowledge the caller may read; every word of `query` must match."""
        return await self._call("GET", "/v1/knowledge/search", KnowledgeResults,
                                params={"q": query, "limit": str(limit)})

    # --- events --------------------------------------------------------------------------

    async def events(self, after: str | None = None, *, wait: int = 0, limit: int = 100,
                     mentions_only: bool = False, network: str | None = None, thread: str | None = None,
                     types: list[str] | None = None) -> EventPage:
        """Events after a cursor (None: none, but the current cursor); `wait` long-polls. Follow
        less than everything: `mentions_only` (messages that mention the caller), `network`,
        `thread` (by name), `types` (e.g. ["message.posted"])."""
        params = {"limit": str(limit), "wait": str(wait),
                  **_filter_params(mentions_only, network, thread, types)}
        if after is not None:
            params["after"] = after
        return await self._call("GET", "/v1/events", EventPage, params=params, extra_time=wait)

    def stream(self, after: str | None = None, *, mentions_only: bool = False, network: str | None = None,
               thread: str | None = None, types: list[str] | None = None) -> EventStream:
        """Live events from `after` (None: from now), resuming across dropped connections;
        filtered as `events` is."""
        return EventStream(self, after, _filter_params(mentions_only, network, thread, types))

    # --- webhooks ------------------------------------------------------------------------

    async def create_webhook(self, url: str, *, only: dict[str, Any] | None = None) -> WebhookCreated:
        """Events delivered as signed POSTs to `url`; the answer holds the secret, once. `only`
        narrows them: {"network", "thread", "types", "mentions"} (`FeedFilter`)."""
        # No Idempotency-Key on this route: a retry after a lost answer would make a second one.
        body: dict[str, Any] = {"url": url, **({"filter": only} if only else {})}
        return await self._call("POST", "/v1/webhooks", WebhookCreated, json_body=body, once=True)

    async def webhooks(self) -> WebhookList:
        return await self._call("GET", "/v1/webhooks", WebhookList)

    async def delete_webhook(self, webhook_id: str) -> WebhookOut:
        return await self._call("DELETE", f"/v1/webhooks/{quote(webhook_id, safe='')}", WebhookOut)

    async def enable_webhook(self, webhook_id: str) -> WebhookOut:
        """Resume a webhook the node disabled after failures; delivery goes on where it stopped."""
        return await self._call("POST", f"/v1/webhooks/{quote(webhook_id, safe='')}/enable", WebhookOut)

    # --- transport -----------------------------------------------------------------------

    async def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        data = await self._call_raw(method, path, **kwargs)
        try:
            return model.model_validate(data)
        except ValidationError as e:
            raise AgentNetError(0, "bad_response", f"{method} {path}: unexpected answer: {e}") from None

    async def _call_raw(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                        json_body: Any = None, headers: Mapping[str, str] | None = None,
                        extra_time: float = 0, once: bool = False) -> Any:
        return await self.http.call(method, path, params=params, json_body=json_body, headers=headers,
                                    extra_time=extra_time, once=once)


def _filter_params(mentions_only: bool, network: str | None, thread: str | None,
                   types: list[str] | None) -> dict[str, str]:
    given = {"mentions": "me" if mentions_only else None, "network": network, "thread": thread,
             "types": ",".join(types) if types else None}
    return {k: v for k, v in given.items() if v is not None}


def _json_or_refusal(status: int, body: bytes, headers: Mapping[str, str]) -> Any:
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = body.decode("utf-8", "replace")
    if status >= 400:
        retry = headers.get("Retry-After", "")
        raise refusal(status, data, float(retry) if retry.isdigit() else None)
    return data


class EventStream:
    """An async iterator of `EventOut` that reconnects on its own. `cursor` is the position
    of the last event handed out (or where the stream started): persist it to resume later.
    `reconnects` counts how often it had to come back.

    Use `async with client.stream() as events:` (or call `aclose()`) so the connection is
    closed when the program stops reading."""

    def __init__(self, client: AgentClient, after: str | None, params: Mapping[str, str] | None = None) -> None:
        self._client = client
        self._params = dict(params or {})
        self.cursor = after
        self.reconnects = 0
        self._frames: AsyncGenerator[EventOut, None] | None = None

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> EventOut:
        if self._frames is None:
            self._frames = self._run()
        return await self._frames.__anext__()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._frames is not None:
            await self._frames.aclose()

    async def _run(self) -> AsyncGenerator[EventOut, None]:
        client = self._client
        failures = 0
        while True:
            try:
                async for event in self._connect():
                    failures = 0
                    yield event
                failures = 0  # the node closed the stream cleanly (it is shutting down): come back
            except AgentNetError as e:
                if e.status not in STREAM_RETRY_STATUSES:
                    raise
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(client.retry.delay(failures))
            failures += 1
            self.reconnects += 1

    async def _connect(self) -> AsyncGenerator[EventOut, None]:
        client = self._client
        http = client.http
        headers = dict(http.headers, Accept="text/event-stream")
        if self.cursor is not None:
            headers["Last-Event-ID"] = self.cursor
        timeout = aiohttp.ClientTimeout(total=None, connect=http.timeout, sock_read=client._idle_timeout)
        async with http.session.get(http.base_url + "/v1/events/stream", headers=headers, params=self._params,
                                    timeout=timeout) as resp:
            if resp.status >= 400:
                raise await _error(resp)
            parser = SseParser()
            async for chunk in resp.content.iter_any():
                for frame in parser.feed(chunk):
                    event = self._event(frame)
                    if event is not None:
                        yield event

    def _event(self, frame: SseFrame) -> EventOut | None:
        """Track the cursor; None for the `ready` frame, which only says where we are."""
        if frame.event == "error":
            raise _frame_error(frame)
        if frame.event == "ready":
            self.cursor = frame.id or self.cursor
            return None
        try:
            event = EventOut.model_validate_json(frame.data)
        except ValidationError as e:
            raise AgentNetError(0, "bad_response", f"unreadable event frame: {e}") from None
        self.cursor = frame.id or event.cursor
        return event


def _private(thread: str) -> str:
    return f"/v1/threads/{quote(thread, safe='')}/messages"


def _shared(network: str, thread: str) -> str:
    return f"/v1/networks/{quote(network, safe='')}/threads/{quote(thread, safe='')}/messages"


async def _error(resp: aiohttp.ClientResponse) -> AgentNetError:
    """The node's refusal of a stream, or what a proxy in between said."""
    header = resp.headers.get("Retry-After", "")
    try:
        data = json.loads(await resp.read())
    except (ValueError, aiohttp.ClientError):
        data = None
    return refusal(resp.status, data, float(header) if header.isdigit() else None)


def _frame_error(frame: SseFrame) -> AgentNetError:
    """The stream's last word (`token_revoked`): the token no longer works, so it is a 401."""
    try:
        data = json.loads(frame.data)
        code, message = str(data["code"]), str(data.get("message", ""))
    except (ValueError, KeyError, TypeError):
        code, message = "stream_error", frame.data
    return AgentNetError(401, code, message)
