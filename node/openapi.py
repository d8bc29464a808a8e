"""Endpoints declared as data: the same list registers the routes and writes the OpenAPI
document, so the published API cannot drift from what is served.

Path parameters are declared by name (`node.path_parameters`), validated here before the
handler runs and published with the same types' patterns.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from node.http_io import read_path
from node.path_parameters import path_model, path_parameter_schema

__all__ = ["Endpoint", "ErrorBody", "Handler", "add_endpoints", "openapi_document"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PATH_PARAM = re.compile(r"{(\w+)}")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


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
    scope: str | None = None  # the token scope the client API requires (node.auth.SCOPES)

    @property
    def path_parameters(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))


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


def openapi_document(title: str, version: str, endpoints: Sequence[Endpoint]) -> dict:
    models = {ErrorBody}
    for e in endpoints:
        models.update(m for m in (e.body, e.response) if m is not None)
    refs, defs = models_json_schema(
        [(m, "validation" if _is_input(m, endpoints) else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    ref_of = {model: schema for (model, _mode), schema in refs.items()}

    paths: dict[str, dict] = {}
    for e in endpoints:
        operation: dict = {"summary": e.summary, "parameters": _parameters(e)}
        if e.scope is not None:
            operation["description"] = f"Requires a token with the `{e.scope}` scope."
            operation["x-required-scope"] = e.scope
        if e.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref_of[e.body]}},
            }
        ok = {"description": "OK"}
        if e.response is not None:
            ok["content"] = {"application/json": {"schema": ref_of[e.response]}}
        error = {"description": "Error", "content": {"application/json": {"schema": ref_of[ErrorBody]}}}
        operation["responses"] = {str(e.status): ok, "default": error}
        if not e.public:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _is_input(model: type[BaseModel], endpoints: Sequence[Endpoint]) -> bool:
    return any(e.body is model for e in endpoints)


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
    return params
