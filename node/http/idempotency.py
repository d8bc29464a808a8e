"""Idempotency-Key on posts: the first answer is stored with the post, in its transaction, and
a retry with the same key gets that answer back instead of a second post.

A key is the caller's own (scoped to its principal) and bound to the request: the same key
with a different body or target is refused (422) rather than answered with an unrelated post.
Two concurrent requests with one key race on the key's primary key; the loser's transaction
(its post included) rolls back and it returns the winner's answer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel

from node.basics.clock import Clock
from node.basics.errors import InvalidRequest
from node.http.fields import form
from storage.errors import AlreadyExists
from storage.group_commit import GroupCommit
from storage.storage import Storage, Transaction

__all__ = ["KEY_PATTERN", "IdempotencyKey", "Posted", "bind_key", "idempotency_key", "run_once"]

M = TypeVar("M", bound=BaseModel)
HEADER = "Idempotency-Key"
# Printable ASCII, as the IETF draft for this header expects; 255 fits any UUID or ULID scheme.
KEY_PATTERN = form(r"^[\x21-\x7e]{1,255}$", "1-255 printable ASCII characters without spaces")
_KEY = re.compile(KEY_PATTERN)
# How long a key is remembered: a client retries within minutes; a day covers a long outage.
KEY_MEMORY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class Posted(Generic[M]):
    value: M
    replayed: bool


def idempotency_key(request: web.Request, body: BaseModel) -> IdempotencyKey | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not _KEY.match(raw):
        raise InvalidRequest(f"{HEADER} must be 1-255 printable ASCII characters",
                             [{"field": HEADER, "location": "header", "message": "1-255 printable ASCII"}])
    return bind_key(raw, f"{request.method} {request.path}", body.model_dump_json())


def bind_key(key: str, target: str, body: str) -> IdempotencyKey:
    """The key with a digest of what it was used for, so a reuse for another request shows."""
    return IdempotencyKey(key, hashlib.sha256(f"{target}\n{body}".encode()).hexdigest())


async def run_once(storage: Storage, clock: Clock, principal_id: int, key: IdempotencyKey | None,
                   out: type[M], work: Callable[[Transaction], Awaitable[M]], *,
                   group: GroupCommit | None = None) -> Posted[M]:
    """Run `work` in a transaction, at most once per key. With `group`, the transaction may be
    shared with concurrent posts (`storage.group_commit`: `work` must be safe to run again)."""

    async def once(tx: Transaction) -> Posted[M]:
        if key is None:
            return Posted(await work(tx), replayed=False)
        stored = await tx.idempotency.find(principal_id, key.key)
        if stored is not None:
            if stored.request_hash != key.request_hash:
                raise InvalidRequest(
                    f"this {HEADER} was used for a different request",
                    [{"field": HEADER, "location": "header", "message": "reused for another request"}])
            return Posted(out.model_validate_json(stored.response), replayed=True)
        value = await work(tx)
        await tx.idempotency.remember(principal_id, key.key, request_hash=key.request_hash, status=201,
                                      response=value.model_dump_json(), now=clock.now_ms())
        return Posted(value, replayed=False)

    async def alone(body: Callable[[Transaction], Awaitable[Posted[M]]]) -> Posted[M]:
        async with storage.transaction() as tx:
            return await body(tx)

    run = group.run if group is not None else alone
    for _attempt in range(2):
        try:
            return await run(once)
        except AlreadyExists:
            continue  # a concurrent request with this key committed first: answer with its result
    raise AssertionError("unreachable: the second attempt finds the stored answer")
