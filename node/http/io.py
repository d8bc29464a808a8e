"""Reading requests into strict models and writing models as responses.

Handlers call these instead of touching `request.json()`, so malformed JSON, hostile nesting,
duplicate keys, wrong types and unknown fields all end as a 400/422 before any state is read.
Path parameters are read by `node.http.openapi` before the handler runs (`node.http.path_parameters`).
"""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from federation.canonical_json import DEFAULT_MAX_BYTES, DEFAULT_MAX_VALUES, parse_json
from federation.errors import CanonicalJsonError
from node.basics.errors import InvalidRequest, MalformedJson, PayloadTooLarge
from node.http.errors import validation_fields

__all__ = ["parse_body", "parse_json_body", "read_body", "read_path", "read_query", "read_raw", "respond", "validate_body"]

M = TypeVar("M", bound=BaseModel)


def _invalid(error: ValidationError, location: str) -> InvalidRequest:
    fields = validation_fields(error, location)
    first = fields[0]
    return InvalidRequest(f"{location} field {first['field']!r}: {first['message']}", fields)


async def read_body(request: web.Request, model: type[M]) -> M:
    return parse_body(await request.read(), model)  # aiohttp enforces client_max_size (413)


async def read_raw(request: web.Request, cap: int, error: type[PayloadTooLarge]) -> bytes:
    """A raw (not JSON) body of at most `cap` bytes, refused with `error` before more is read.
    It bypasses the listener's `client_max_size`, so only routes that declare a cap use it."""
    if request.content_length is not None and request.content_length > cap:
        raise error(f"request body over {cap} bytes ({request.content_length})")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            raise error(f"request body over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes, model: type[M], *, max_bytes: int = DEFAULT_MAX_BYTES,
               max_values: int = DEFAULT_MAX_VALUES) -> M:
    return validate_body(parse_json_body(raw, max_bytes=max_bytes, max_values=max_values), model)


def parse_json_body(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_values: int = DEFAULT_MAX_VALUES) -> object:
    try:
        # The protocol's strict parser: no floats, NaN, duplicate keys, hostile nesting or
        # more values than the caller expects.
        return parse_json(raw, max_bytes=max_bytes, max_values=max_values)
    except CanonicalJsonError as e:
        detail = e.message.removeprefix("malformed JSON: ")
        raise MalformedJson(f"the request body is not valid JSON: {detail}; send a JSON object") from None


def validate_body(data: object, model: type[M]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise _invalid(e, "body") from None


def read_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as e:
        raise _invalid(e, "query") from None


def read_path(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.match_info))
    except ValidationError as e:
        raise _invalid(e, "path") from None


def respond(body: BaseModel, *, status: int = 200) -> web.Response:
    return web.json_response(text=body.model_dump_json(), status=status)
