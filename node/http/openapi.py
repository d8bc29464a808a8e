"""Endpoints declared as data: the same list registers the routes and writes the OpenAPI
document, so the published API cannot drift from what is served.

An endpoint declares what it reads (path parameters by name, `node.http.path_parameters`; a body;
a query; request headers) and the errors only its service knows about (`errors`: 403 for a
network's rule, 409, 410, 502 from a peer). The rest of its error answers follow from what it
reads: 401 and 503 for every endpoint behind a token, 403 with a scope, 404 with a path
parameter, 400/413/422 with a body, 422 with a query or header, 429 with `Retry-After` when it
is rate limited. Each is published with the one error shape (`ErrorBody`); a 422 names its
fields. Path parameters are validated here, before the handler runs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from node.http.fields import form
from node.http.io import read_path
from node.http.path_parameters import path_model, path_parameter_schema

__all__ = ["RATE_LIMIT_HEADERS", "Endpoint", "ErrorBody", "Handler", "Header", "InvalidRequestBody", "add_endpoints",
           "error_statuses", "openapi_document", "operation_id"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PATH_PARAM = re.compile(r"{(\w+)}")


class ErrorDetail(BaseModel):
    code: str
    message: str
    reason: str | None = None  # which network rule refused it (403 forbidden)
    retry_after_s: int | None = None  # 429, also in the Retry-After header


class ErrorBody(BaseModel):
    error: ErrorDetail


class FieldError(BaseModel):
    field: str
    location: str  # body, query, path or header
    message: str


class InvalidRequestDetail(ErrorDetail):
    fields: list[FieldError]


class InvalidRequestBody(BaseModel):
    error: InvalidRequestDetail


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    description: str
    pattern: str
    required: bool = False


RETRY_AFTER = Header("Retry-After", "seconds to wait before trying again", r"^[0-9]+$", required=True)
# The caller's post budget, on every answer to a token (node.basics.rate_limit.PostRateLimiter).
RATE_LIMIT_HEADERS = (
    Header("RateLimit-Limit", "posts the token may make at once (its burst)", r"^[0-9]+$"),
    Header("RateLimit-Remaining", "posts it may make now", r"^[0-9]+$"),
    Header("RateLimit-Reset", "seconds until its budget is full again", r"^[0-9]+$"),
    Header("RateLimit-Policy", "the burst and the window it refills in, e.g. 30;w=3",
           form(r"^[0-9]+;w=[0-9]+$", "a burst and a window in seconds, e.g. 30;w=3")),
)

_ERRORS = {
    400: "Malformed JSON (`malformed_json`), or an Act-As header that does not fit the token (`act_as_required`, "
         "`act_as_not_allowed`)",
    401: "No bearer token, or one that is unknown, revoked or expired, or whose owner is disabled (`unauthorized`)",
    403: "Not allowed: the token lacks the scope (`insufficient_scope`), or the network's rules refuse it",
    404: "Nothing by that name here, or nothing the caller may see (`not_found`)",
    409: "Conflicts with what is there (`conflict`)",
    410: "Gone: expired, or no longer kept (`gone`)",
    413: "The body is too large (`payload_too_large`, `message_too_large`)",
    422: "Invalid request: `fields` names each offending field and where it is (body, query, path, header)",
    429: "Too many requests: retry after `Retry-After` seconds (`too_many_requests`)",
    502: "The other company's node was unreachable or refused (`peer_unreachable`, `peer_refused`)",
    503: "The node is not able to answer now (its database is unavailable); retry later",
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    public: bool = False  # True: served without a bearer token
    scope: str | None = None  # the token scope the client API requires (node.http.auth.SCOPES)
    errors: tuple[int, ...] = ()  # error statuses only the service knows it may answer (409, 410, 502...)
    headers: tuple[Header, ...] = ()  # request headers it reads
    response_headers: tuple[Header, ...] = ()  # headers of its success answer
    rate_limited: bool = False  # 429 with Retry-After
    media_type: str = "application/json"  # of the success answer
    body_required: bool = True
    raw_body: str | None = None  # media type of a body that is not JSON (a file upload)
    operation_id: str | None = None  # default: the method and the path, e.g. get_networks_network

    @property
    def path_parameters(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))


def error_statuses(e: Endpoint) -> list[int]:
    """Every error status the endpoint may answer, from what it reads and what it declares."""
    statuses = set(e.errors)
    if not e.public:
        statuses |= {401, 503}
    if e.scope is not None:
        statuses.add(403)
    if e.path_parameters:
        statuses |= {404, 422}
    if e.body is not None or e.raw_body is not None:
        statuses |= {400, 413, 422}
    if e.query is not None or e.headers:
        statuses.add(422)
    if e.rate_limited:
        statuses.add(429)
    return sorted(statuses)


def add_endpoints(app: web.Application, endpoints: Sequence[Endpoint],
                  guard: Callable[[Endpoint, Handler], Handler] = lambda _endpoint, handler: handler) -> None:
    """`guard` wraps each handler outside its path check: a refusal it makes (the client
    listener's scope check) comes before any judgement of the request's input."""
    for endpoint in endpoints:
        app.router.add_route(endpoint.method, endpoint.path, guard(endpoint, _checking_path(endpoint)))


def _checking_path(endpoint: Endpoint) -> Handler:
    if not endpoint.path_parameters:
        return endpoint.handler
    model, handler = path_model(endpoint.path_parameters), endpoint.handler

    async def checked(request: web.Request) -> web.StreamResponse:
        read_path(request, model)  # 422 naming the parameter: no service sees a malformed name
        return await handler(request)

    return checked


def operation_id(e: Endpoint) -> str:
    """The endpoint's `operationId`: its own, else the method and the path's words."""
    if e.operation_id is not None:
        return e.operation_id
    words = [w.strip("{}").replace("-", "_") for w in e.path.split("/") if w and w != "v1"]
    return "_".join([e.method.lower(), *words])


def _tag(path: str) -> str:
    """The part of the API an endpoint belongs to: the path's first word after /v1."""
    words = [w for w in path.split("/") if w and w != "v1"]
    return words[0] if words and not words[0].startswith("{") else "node"


def openapi_document(title: str, version: str, endpoints: Sequence[Endpoint], *,
                     every_answer_headers: Sequence[Header] = ()) -> dict:
    """`every_answer_headers`: headers each answer to an authenticated request carries (the
    client listener's rate-limit headers)."""
    models = {ErrorBody, InvalidRequestBody}
    for e in endpoints:
        models.update(m for m in (e.body, e.response) if m is not None)
    refs, defs = models_json_schema(
        [(m, "validation" if _is_input(m, endpoints) else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    ref_of = {model: schema for (model, _mode), schema in refs.items()}

    paths: dict[str, dict] = {}
    for e in endpoints:
        operation: dict = {"operationId": operation_id(e), "tags": [_tag(e.path)], "summary": e.summary,
                           "parameters": _parameters(e)}
        if e.scope is not None:
            operation["description"] = f"Requires a token with the `{e.scope}` scope."
            operation["x-required-scope"] = e.scope
        if e.body is not None:
            operation["requestBody"] = {
                "required": e.body_required,
                "content": {"application/json": {"schema": ref_of[e.body]}},
            }
        elif e.raw_body is not None:
            operation["requestBody"] = {"required": True, "content": {
                e.raw_body: {"schema": {"type": "string", "format": "binary", "minLength": 1}}},
                "description": "the raw bytes; their Content-Type is kept as the file's type"}
        ok: dict = {"description": "OK"}
        if e.response is not None:
            ok["content"] = {e.media_type: {"schema": ref_of[e.response]}}
        elif e.media_type != "application/json":
            ok["content"] = {e.media_type: {"schema": {"type": "string"}}}
        always = () if e.public else tuple(every_answer_headers)
        if e.response_headers or always:
            ok["headers"] = _headers((*e.response_headers, *always))
        operation["responses"] = {str(e.status): ok}
        for status in error_statuses(e):
            body = InvalidRequestBody if status == 422 else ErrorBody
            answer = {"description": _ERRORS[status], "content": {"application/json": {"schema": ref_of[body]}}}
            headers = (*((RETRY_AFTER,) if status == 429 else ()), *always)
            if headers:
                answer["headers"] = _headers(headers)
            operation["responses"][str(status)] = answer
        if not e.public:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    ids = [operation_id(e) for e in endpoints]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"operationId used twice: {repeated}")
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "servers": [{"url": "/", "description": "this listener, wherever the document was fetched from"}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _is_input(model: type[BaseModel], endpoints: Sequence[Endpoint]) -> bool:
    return any(e.body is model for e in endpoints)


def _headers(headers: Sequence[Header]) -> dict:
    return {h.name: {"description": h.description, "required": h.required,
                     "schema": {"type": "string", "pattern": h.pattern}} for h in headers}


def _parameters(endpoint: Endpoint) -> list[dict]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": path_parameter_schema(name)}
        for name in endpoint.path_parameters
    ]
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    params.extend({"name": h.name, "in": "header", "required": h.required, "description": h.description,
                   "schema": {"type": "string", "pattern": h.pattern}} for h in endpoint.headers)
    return params
