"""The client's models (`node/client/models.py`) against the node's own OpenAPI document, so the
two cannot drift apart silently: each client model is the body of the same name the client
listener documents, every property the node declares for it (nested bodies too) is a field of
the client model, of a type that accepts every value the node may send, and the client demands
no field the node may leave out. Each route the client calls answers the body it parses.

The client models accept what they do not know (extra fields; plain strings where the node
lists values), so the check is one-sided on purpose: the client may accept more, never less."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import aiohttp
import pytest
from pydantic import BaseModel, ConfigDict

from node.client import models
from tests.cluster import start_node
from tests.tls_fixtures import TestCertificateAuthority

CLIENT_MODELS: list[type[BaseModel]] = [getattr(models, name) for name in models.__all__]

# What each of the client's calls asks for, and the model it parses the answer with.
CALLS: dict[str, tuple[str, str, type[BaseModel]]] = {
    "whoami": ("get", "/v1/whoami", models.PrincipalOut),
    "threads": ("get", "/v1/threads", models.ThreadList),
    "shared_threads": ("get", "/v1/shared-threads", models.SharedThreadList),
    "read": ("get", "/v1/threads/{name}/messages", models.MessagePage),
    "read (shared), read_latest": ("get", "/v1/networks/{network}/threads/{thread}/messages",
                                   models.SharedMessagePage),
    "post": ("post", "/v1/threads/{name}/messages", models.MessageOut),
    "post (shared), reply": ("post", "/v1/networks/{network}/threads/{thread}/messages", models.SharedMessageOut),
    "edit": ("patch", "/v1/networks/{network}/threads/{thread}/messages/{event}", models.SharedMessageOut),
    "delete": ("delete", "/v1/networks/{network}/threads/{thread}/messages/{event}", models.SharedMessageOut),
    "react": ("post", "/v1/networks/{network}/threads/{thread}/messages/{event}/reactions", models.ReactionOut),
    "upload": ("post", "/v1/files", models.FileOut),
    "search_messages": ("get", "/v1/shared-threads/search", models.SharedSearchResults),
    "search_knowledge": ("get", "/v1/knowledge/search", models.KnowledgeResults),
    "events": ("get", "/v1/events", models.EventPage),
    "create_webhook": ("post", "/v1/webhooks", models.WebhookCreated),
    "webhooks": ("get", "/v1/webhooks", models.WebhookList),
    "delete_webhook": ("delete", "/v1/webhooks/{webhook}", models.WebhookOut),
    "enable_webhook": ("post", "/v1/webhooks/{webhook}/enable", models.WebhookOut),
}


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict:
    """The client listener's OpenAPI document, as a complete node serves it (built once)."""
    tmp = tmp_path_factory.mktemp("openapi")
    with ThreadPoolExecutor(max_workers=1) as pool:  # a loop of its own, whatever the tests run in
        return pool.submit(asyncio.run, _served_document(tmp)).result()


async def _served_document(tmp) -> dict:
    node = await start_node(tmp, "acme.example", TestCertificateAuthority())
    try:
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{node.ports['client']}/openapi.json") as resp:
            assert resp.status == 200
            return await resp.json()
    finally:
        await node.stop()


# --- one-sided schema comparison ----------------------------------------------------------


class Schemas:
    """One side's JSON schemas: the definitions `$ref`s point into and, for the client, the
    model classes by name (a renamed field's old name is a property there, not a field)."""

    def __init__(self, definitions: dict[str, dict], classes: dict[str, type[BaseModel]] | None = None) -> None:
        self.definitions = definitions
        self.classes = classes or {}

    def resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            schema = self.definitions[schema["$ref"].rsplit("/", 1)[-1]]
        return schema


def client_schemas(model: type[BaseModel]) -> tuple[dict, Schemas]:
    schema = model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    return schema, Schemas(schema.get("$defs", {}), {m.__name__: m for m in _nested_models(model)})


def refusals(client: dict, ours: Schemas, server: dict, theirs: Schemas, where: str,
             seen: frozenset[tuple[int, int]] = frozenset()) -> list[str]:
    """What the node may send at `where` (its schema `server`) that the client's schema
    `client` would not accept, as readable lines; empty when the client accepts it all."""
    client, server = ours.resolve(client), theirs.resolve(server)
    if (id(client), id(server)) in seen:
        return []  # a recursive body, compared already
    seen = seen | {(id(client), id(server))}
    if "anyOf" in server:
        return [line for branch in server["anyOf"] for line in refusals(client, ours, branch, theirs, where, seen)]
    if "anyOf" in client:
        tried = [refusals(branch, ours, server, theirs, where, seen) for branch in client["anyOf"]]
        return [] if any(not lines for lines in tried) else min(tried, key=len)
    if "type" not in client and "enum" not in client and "const" not in client:
        return []  # the client takes any value here
    kind = server.get("type")
    values = server.get("enum", [server["const"]] if "const" in server else None)
    if "enum" in client or "const" in client:
        allowed = client.get("enum", [client.get("const")])
        if values is None or not set(values) <= set(allowed):
            return [f"{where}: the client accepts only {allowed}, the node may send {values or kind}"]
        return []
    if kind != client["type"] and not (kind == "integer" and client["type"] == "number"):
        return [f"{where}: the client expects {client['type']}, the node sends {kind}"]
    if kind == "array":
        return refusals(client.get("items", {}), ours, server.get("items", {}), theirs, f"{where}[]", seen)
    if kind == "object":
        return _object_refusals(client, ours, server, theirs, where, seen)
    return []


def _object_refusals(client: dict, ours: Schemas, server: dict, theirs: Schemas, where: str,
                     seen: frozenset[tuple[int, int]]) -> list[str]:
    lines = []
    server_fields, client_fields = server.get("properties", {}), client.get("properties", {})
    model = ours.classes.get(client.get("title", ""))
    for name, schema in server_fields.items():
        if name not in client_fields and schema.get("deprecated") and model is not None and \
                name in getattr(model, "renamed", {}).values() and isinstance(getattr(model, name, None), property):
            continue  # a renamed field's old name: read into the new field, kept as a property
        if name not in client_fields:
            lines.append(f"{where}.{name}: the node documents it, the client model has no such field")
        else:
            lines += refusals(client_fields[name], ours, schema, theirs, f"{where}.{name}", seen)
    lines += [f"{where}.{name}: a field of the client model the node does not document"
              for name in client_fields if name not in server_fields]
    lines += [f"{where}.{name}: required by the client, not always sent by the node"
              for name in client.get("required", []) if name not in server.get("required", [])]
    values = server.get("additionalProperties")
    if isinstance(values, dict) and not server_fields:  # a mapping: dict[str, X]
        lines += refusals(client.get("additionalProperties", {}), ours, values, theirs, f"{where}{{}}", seen)
    return lines


def _nested_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        annotation: Any = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            for inner in (candidate, *getattr(candidate, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in found:
                    found |= _nested_models(inner)
    return found


# --- the checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", CLIENT_MODELS, ids=lambda m: m.__name__)
def test_each_client_model_accepts_all_the_node_documents_for_its_body(model, document):
    components = document["components"]["schemas"]
    assert model.__name__ in components, f"the node documents no body named {model.__name__}"
    client, ours = client_schemas(model)
    theirs = Schemas(components)
    assert refusals(client, ours, components[model.__name__], theirs, model.__name__) == []


@pytest.mark.parametrize("model", CLIENT_MODELS, ids=lambda m: m.__name__)
def test_each_client_model_takes_fields_a_newer_node_adds(model):
    for each in _nested_models(model):
        assert each.model_config.get("extra") in ("allow", "ignore"), each.__name__


def test_a_newer_nodes_body_is_read_with_what_it_added():
    me = models.PrincipalOut.model_validate({
        "id": "robot:r2@acme.example", "kind": "robot", "handle": "r2", "display_name": "R2", "disabled": False,
        "created_at": 1, "team": {"name": "ops"}})
    assert (me.kind, me.model_extra) == ("robot", {"team": {"name": "ops"}})


@pytest.mark.parametrize("call", sorted(CALLS))
def test_each_call_parses_the_body_its_route_answers(call, document):
    method, path, model = CALLS[call]
    operation = document["paths"][path][method]
    success = [answer for status, answer in operation["responses"].items() if status.startswith("2")]
    assert len(success) == 1, (call, list(operation["responses"]))
    schema = success[0]["content"]["application/json"]["schema"]
    assert schema == {"$ref": f"#/components/schemas/{model.__name__}"}, call


def test_every_model_is_parsed_by_some_call_or_nested_in_one():
    reached = set().union(*(_nested_models(model) for _method, _path, model in CALLS.values()))
    assert {m.__name__ for m in CLIENT_MODELS} <= {m.__name__ for m in reached}


def test_the_comparison_can_fail(document):
    """A check that cannot fail checks nothing: drifted models are caught, each for its reason."""
    components = document["components"]["schemas"]
    theirs = Schemas(components)

    class FileOut(BaseModel):  # a field missing, one of the wrong type, one the node never sends
        model_config = ConfigDict(extra="allow")
        id: str
        name: str
        content_type: str
        size: str
        checksum: str

    class Strict(BaseModel):
        disabled_reason: str

    client, ours = client_schemas(FileOut)
    assert refusals(client, ours, components["FileOut"], theirs, "FileOut") == [
        "FileOut.size: the client expects string, the node sends integer",
        "FileOut.sha256: the node documents it, the client model has no such field",
        "FileOut.checksum: a field of the client model the node does not document",
        "FileOut.checksum: required by the client, not always sent by the node",
    ]
    narrow = {"type": "string", "enum": ["active"]}
    assert refusals(narrow, ours, components["WebhookOut"]["properties"]["status"], theirs, "status") == [
        "status: the client accepts only ['active'], the node may send ['active', 'disabled']"]
    client, ours = client_schemas(Strict)
    nullable = components["WebhookOut"]["properties"]["disabled_reason"]
    assert refusals(client["properties"]["disabled_reason"], ours, nullable, theirs, "disabled_reason") == [
        "disabled_reason: the client expects string, the node sends null"]
    renamed = {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"type": "integer"}},
        "messages": {"type": "array", "items": {"type": "integer"}, "deprecated": True, "readOnly": True}}}

    class Page(models.Body):  # the old name read, and kept as a property
        renamed: ClassVar[dict[str, str]] = {"items": "messages"}
        items: list[int]

        @property
        def messages(self) -> list[int]:
            return self.items

    class Forgetful(models.Body):  # the old name dropped
        items: list[int]

    assert refusals(*client_schemas(Page), renamed, Schemas({}), "Page") == []
    assert refusals(*client_schemas(Forgetful), renamed, Schemas({}), "Page") == [
        "Page.messages: the node documents it, the client model has no such field"]
    assert Page.model_validate({"messages": [1]}).messages == [1]
    nested = {"type": "object", "properties": {"filter": {"type": "object", "properties": {}}}}
    assert "x.filter.network: the node documents it, the client model has no such field" in refusals(
        nested, ours, {"type": "object", "properties": {"filter": components["WebhookOut"]["properties"]["filter"]}},
        theirs, "x")
