"""One HTTP client for a node's own admin and client listeners: the agent client, the operator
CLI, the demo, the tests and the bench all talk to a node through it.

`NodeHttp` holds one listener's address and one bearer token. `call` sends a request and
returns the parsed JSON answer, or raises `AgentNetError` with the node's status, code,
message and refused fields; `answer` returns the status and body of any answer, refusals
included, for callers that judge them (tests). Requests are retried only under a
`RetryPolicy` that allows it, and only when a retry can help: a broken connection, a 5xx, a
429 with a `Retry-After` short enough to wait out. Everything else is answered at once,
because asking again would get the same answer.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["NO_RETRIES", "AgentNetError", "NodeHttp", "RetryPolicy", "refusal"]

# Statuses a retry can change: the node or a proxy in front of it was briefly unavailable.
_RETRY_STATUSES = frozenset({500, 502, 503, 504})


class AgentNetError(Exception):
    """Any failure talking to a node: an error answer, a broken connection (status 0) or an
    answer that cannot be read. `retry_after` is the node's Retry-After, in seconds; `fields`
    names what a 422 refused."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None,
                 fields: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.fields = fields or []


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. `attempts` bounds each request; a stream reconnects without bound,
    waiting `base_delay_s` doubling up to `max_delay_s`. A Retry-After longer than
    `max_retry_after_s` is raised instead of waited out."""

    attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 15.0
    max_retry_after_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, so many clients do not come back in step."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def allows(self, error: AgentNetError) -> bool:
        if error.retry_after is not None and error.retry_after > self.max_retry_after_s:
            return False  # the caller had better know now than wait that long unawares
        if error.status == 429:
            return error.retry_after is not None
        return error.status == 0 or error.status in _RETRY_STATUSES


# An operator's command or a test: one try, and the answer as it is.
NO_RETRIES = RetryPolicy(attempts=1)


class NodeHttp:
    """One listener of one node, with one bearer token. Pass `session` to share an aiohttp
    session (it is then not closed here)."""

    def __init__(self, base_url: str, token: str, *, session: aiohttp.ClientSession | None = None,
                 timeout: float = 30.0, retry: RetryPolicy = RetryPolicy()) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._session = session
        self._owns_session = session is None
        self.timeout = timeout
        self.retry = retry

    async def __aenter__(self) -> NodeHttp:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                   json_body: Any = None, headers: Mapping[str, str] | None = None, extra_time: float = 0,
                   once: bool = False) -> Any:
        """The parsed answer of a request that succeeded, retried (with the same headers, so the
        same Idempotency-Key) when a retry can help; `once` for a request a retry could repeat."""
        last: AgentNetError | None = None
        for attempt in range(1 if once else self.retry.attempts):
            if last is not None:
                await asyncio.sleep(last.retry_after if last.retry_after is not None else self.retry.delay(attempt))
            try:
                status, data, retry_after = await self._send(method, path, params, json_body, headers, extra_time)
            except AgentNetError as e:
                last = e
                continue
            if status < 400:
                return data
            last = refusal(status, data, retry_after)
            if not self.retry.allows(last):
                raise last
        assert last is not None
        raise last

    async def answer(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                     json_body: Any = None, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """One try; the status and the parsed body (or its text) of whatever the node answered."""
        status, data, _ = await self._send(method, path, params, json_body, headers, 0)
        return status, data

    async def raw(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, data: bytes | None = None,
                  headers: Mapping[str, str] | None = None) -> tuple[int, bytes, Mapping[str, str]]:
        """One try with a body that is not JSON (or an answer that is not): status, bytes, headers."""
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self.session.request(
                method, self.base_url + path, params=query, data=data, headers={**self.headers, **(headers or {})},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                return resp.status, await resp.read(), dict(resp.headers)
        except aiohttp.InvalidURL:
            raise AgentNetError(0, "invalid_url", f"{self.base_url} is not a valid URL") from None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise AgentNetError(0, "connection_failed", f"{method} {path}: {type(e).__name__}: {e}") from None

    async def _send(self, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any,
                    headers: Mapping[str, str] | None,
                    extra_time: float) -> tuple[int, Any, float | None]:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self.session.request(
                method, self.base_url + path, params=query, json=json_body,
                headers={**self.headers, **(headers or {})},
                timeout=aiohttp.ClientTimeout(total=self.timeout + extra_time),
            ) as resp:
                body = await resp.read()
                header = resp.headers.get("Retry-After", "")
                retry_after = float(header) if header.isdigit() else None
                try:
                    data = json.loads(body) if body else None
                except ValueError:
                    if resp.status < 400:
                        raise AgentNetError(resp.status, "bad_response", "the answer is not JSON") from None
                    data = body.decode("utf-8", "replace")
                return resp.status, data, retry_after
        except aiohttp.InvalidURL:
            raise AgentNetError(0, "invalid_url", f"{self.base_url} is not a valid URL") from None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise AgentNetError(0, "connection_failed", f"{method} {path}: {type(e).__name__}: {e}") from None


def refusal(status: int, data: Any, retry_after: float | None) -> AgentNetError:
    """The node's `{"error": {"code", "message", "fields"}}`, or what a proxy in between said."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return AgentNetError(status, f"http_{status}", f"the listener answered HTTP {status}", retry_after)
    fields = error.get("fields")
    return AgentNetError(status, str(error.get("code", f"http_{status}")), str(error.get("message", "refused")),
                         retry_after, fields if isinstance(fields, list) else None)
