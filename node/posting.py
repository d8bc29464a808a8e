"""The edge of every post through the client API: scope, rate limit, size, Idempotency-Key.

Order matters: a caller without the scope or over its rate is refused before its body is
read, so a flood of oversized or malformed posts costs the node as little as a valid one.
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from node.api_models import MAX_MESSAGE_CHARS
from node.auth import current_caller, require_scope
from node.errors import PayloadTooLarge
from node.http_io import parse_json_body, validate_body
from node.idempotency import IdempotencyKey, Posted, idempotency_key
from node.rate_limit import PostRateLimiter

__all__ = ["MessageTooLarge", "read_post", "respond_posted"]

M = TypeVar("M", bound=BaseModel)


class MessageTooLarge(PayloadTooLarge):
    code = "message_too_large"


async def read_post(request: web.Request, model: type[M], limiter: PostRateLimiter) -> tuple[M, IdempotencyKey | None]:
    caller = current_caller(request)
    require_scope(caller, "post")
    limiter.check(caller)
    data = parse_json_body(await request.read())  # parsed once: the size check, then the model
    body = data.get("body") if isinstance(data, dict) else None
    if isinstance(body, str) and len(body) > MAX_MESSAGE_CHARS:
        raise MessageTooLarge(f"a message is at most {MAX_MESSAGE_CHARS} characters; this one has {len(body)}")
    req = validate_body(data, model)
    return req, idempotency_key(request, req)


def respond_posted(posted: Posted) -> web.Response:
    headers = {"Idempotent-Replayed": "true"} if posted.replayed else None
    return web.json_response(text=posted.value.model_dump_json(), status=201, headers=headers)
