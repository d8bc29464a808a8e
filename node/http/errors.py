"""The one place where exceptions become HTTP responses.

Our errors carry their status and code; storage's NotFound/AlreadyExists and pydantic's
ValidationError are translated here; aiohttp's own HTTP exceptions (unknown route, wrong
method, body over the size limit) are re-rendered in the same shape. Anything else is a bug:
it is logged with its traceback and the caller gets a generic 500 that reveals nothing.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from federation.errors import InvalidSignature, ProtocolError, RuleViolation
from node.basics.errors import InvalidRequest, NodeError, OutboundBlocked, TooManyRequests
from node.http.fields import form_of
from storage.errors import AlreadyExists, DatabaseUnavailable, NotFound

__all__ = ["describe", "error_middleware", "error_response", "validation_fields"]

log = logging.getLogger(__name__)

_AIOHTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                   **extra) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status,
                             headers=headers)


def validation_fields(error: ValidationError, location: str) -> list[dict[str, str]]:
    fields = []
    for item in error.errors(include_url=False, include_input=False):
        path = ".".join(str(p) for p in item["loc"]) or location
        fields.append({"field": path, "location": location, "message": _in_words(item)})
    return fields


def _in_words(item: ErrorDetails) -> str:
    """Pydantic's message, except where it would show a regular expression or a class name."""
    kind, context = item["type"], item.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        meaning = form_of(context.get("pattern"))
        return f"must be {meaning}" if meaning else "does not have the expected form (see /openapi.json)"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a JSON object"
    return item["msg"]


def describe(exc: BaseException) -> tuple[int, str, str, dict] | None:
    """Status, code, message and extra fields of an error a caller may see; None for a bug.
    The HTTP renderer and the MCP endpoint both answer from this."""
    if isinstance(exc, InvalidRequest):
        return exc.status, exc.code, exc.message, {"fields": exc.fields}
    if isinstance(exc, TooManyRequests):
        return exc.status, exc.code, exc.message, {"retry_after_s": exc.retry_after_s}
    if isinstance(exc, OutboundBlocked):
        return exc.status, exc.code, exc.message, {"rules": exc.rules}
    if isinstance(exc, NodeError):
        return exc.status, exc.code, exc.message, {}
    if isinstance(exc, RuleViolation):  # which rule refused it, as a stable code
        return exc.status, exc.code, exc.message, {"reason": exc.reason}
    if isinstance(exc, ProtocolError):  # peers get the opaque message; the log gets the detail
        return exc.status, exc.code, exc.message, {}
    if isinstance(exc, NotFound):
        return 404, "not_found", f"{exc.what} not found", {}
    if isinstance(exc, AlreadyExists):
        return 409, "conflict", f"{exc.what} {exc.key!s} already exists", {}
    if isinstance(exc, DatabaseUnavailable):
        return 503, "unavailable", "the node's database is unavailable; retry later", {}
    return None


def _render(exc: BaseException) -> web.Response:
    if isinstance(exc, web.HTTPException):
        return error_response(exc.status, _AIOHTTP_CODES.get(exc.status, "http_error"), _aiohttp_message(exc))
    described = describe(exc)
    if described is None:
        raise exc
    status, code, message, extra = described
    headers = exc.headers if isinstance(exc, NodeError) else None
    return error_response(status, code, message, headers=headers, **extra)


def _aiohttp_message(exc: web.HTTPException) -> str:
    """aiohttp's reason, with the limit and what to do where it has them."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = re.search(r"size (\d+)", exc.text or "")
        over = f"its limit of {int(limit.group(1)):,} bytes" if limit else "its limit"
        return f"the request body is larger than this listener accepts ({over}); send a smaller one"
    if isinstance(exc, web.HTTPNotFound):
        return "no such path on this listener; /openapi.json lists them"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return f"{exc.method} is not allowed here; allowed: {', '.join(sorted(exc.allowed_methods))}"
    return exc.reason


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (NodeError, NotFound, AlreadyExists) as exc:
        return _render(exc)
    except ProtocolError as exc:
        detail = exc.detail if isinstance(exc, InvalidSignature) else exc.message
        log.info("refused %s %s: %s (%s)", request.method, request.path, exc.code, detail)
        return _render(exc)
    except DatabaseUnavailable as exc:
        log.error("%s %s: %s", request.method, request.path, exc.__cause__ or exc)
        return _render(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _render(exc)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error")
