"""The edge of every post through the client API: scope, rate limit, size, Idempotency-Key.

Order matters: a caller without the scope or over its rate is refused before its body is
read, so a flood of oversized or malformed posts costs the node as little as a valid one.
`post_endpoint` declares a post the same way for every thread kind, so its document names the
Idempotency-Key header and the 429 with Retry-After.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from node.basics.errors import PayloadTooLarge
from node.basics.rate_limit import PostRateLimiter
from node.http.auth import current_caller
from node.http.fields import MAX_BODY_CHARS
from node.http.idempotency import HEADER, KEY_PATTERN, IdempotencyKey, Posted, idempotency_key
from node.http.io import parse_json_body, validate_body
from node.http.openapi import Endpoint, Handler, Header

__all__ = ["IDEMPOTENCY_KEY", "REPLAYED", "MessageTooLarge", "post_endpoint", "read_post", "respond_posted"]

IDEMPOTENCY_KEY = Header(HEADER, "a key of the caller's choice: a retry with the same key and body is stored once "
                                 "and answered with the first answer (remembered for a day)", KEY_PATTERN)
REPLAYED = Header("Idempotent-Replayed", "`true` when this is the stored answer to an earlier post with the same "
                                         "Idempotency-Key", r"^true$")

M = TypeVar("M", bound=BaseModel)


class MessageTooLarge(PayloadTooLarge):
    code = "message_too_large"


async def read_post(request: web.Request, model: type[M], limiter: PostRateLimiter) -> tuple[M, IdempotencyKey | None]:
    # The scope was checked before the handler ran (post_endpoint declares it).
    limiter.check(current_caller(request).token_id)
    data = parse_json_body(await request.read())  # parsed once: the size check, then the model
    body = data.get("body") if isinstance(data, dict) else None
    if isinstance(body, str) and len(body) > MAX_BODY_CHARS:
        raise MessageTooLarge(f"a message is at most {MAX_BODY_CHARS} characters; this one has {len(body)}")
    req = validate_body(data, model)
    return req, idempotency_key(request, req)


def post_endpoint(path: str, handler: Handler, summary: str, *, body: type[BaseModel],
                  response: type[BaseModel], errors: tuple[int, ...] = (), operation_id: str | None = None) -> Endpoint:
    return Endpoint("POST", path, handler, summary, body=body, response=response, status=201, scope="post",
                    headers=(IDEMPOTENCY_KEY,), response_headers=(REPLAYED,), rate_limited=True, errors=errors,
                    operation_id=operation_id)


def respond_posted(posted: Posted) -> web.Response:
    headers = {"Idempotent-Replayed": "true"} if posted.replayed else None
    return web.json_response(text=posted.value.model_dump_json(), status=201, headers=headers)
