"""Bad input gets a clear error in one shape, never a 500, and never changes state."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.node.conftest import bearer


async def _error(resp, status, code):
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


async def _snapshot(node):
    async with node.storage.transaction() as tx:
        return (
            [p.handle for p in await tx.principals.all()],
            [t.name for t in await tx.private_threads.all()],
            len(await tx.knowledge.page(limit=1000)),
            len(await tx.audit.page(limit=1000)),
        )


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b"", b"[" * 100_000 + b"]" * 100_000, b"[" * 1000 + b"]" * 1000,
     b'{"handle": NaN}', b'{"handle": 1.5}', b'{"handle": "a", "handle": "b", "display_name": "x"}',
     b"\xff\xfe"],
)
async def test_malformed_json_is_400(node, raw):
    before = await _snapshot(node)
    resp = await node.admin.post("/v1/people", data=raw, headers={**node.as_admin(), "Content-Type": "application/json"})
    status, code = (413, "payload_too_large") if len(raw) > 64 * 1024 else (400, "malformed_json")
    await _error(resp, status, code)
    assert await _snapshot(node) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"handle": 5, "display_name": "x"}, "handle"),
        ({"handle": "Bad Handle", "display_name": "x"}, "handle"),
        ({"handle": "ok"}, "display_name"),
        ({"handle": "ok", "display_name": "x", "admin": True}, "admin"),
        ({"handle": "ok", "display_name": ""}, "display_name"),
        ({"handle": "ok", "display_name": "x" * 201}, "display_name"),
        ([], "body"),
    ],
)
async def test_validation_errors_name_the_field(node, body, field):
    before = await _snapshot(node)
    error = await _error(await node.admin.post("/v1/people", json=body, headers=node.as_admin()), 422, "invalid_request")
    assert field in error["message"]
    assert any(f["field"] == field for f in error["fields"])
    assert await _snapshot(node) == before


async def test_oversized_body_is_413(node):
    token = await node.create("person", "alex")
    await node.admin.post("/v1/threads", json={"name": "t", "title": "t", "members": ["person:alex"]},
                          headers=node.as_admin())
    before = await _snapshot(node)
    resp = await node.client.post("/v1/threads/t/messages", json={"body": "x" * 100_000}, headers=bearer(token))
    await _error(resp, 413, "payload_too_large")
    too_long = await node.client.post("/v1/threads/t/messages", json={"body": "x" * 16_385}, headers=bearer(token))
    await _error(too_long, 413, "message_too_large")
    blank = await node.client.post("/v1/threads/t/messages", json={"body": "   "}, headers=bearer(token))
    await _error(blank, 422, "invalid_request")
    assert await _snapshot(node) == before


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=abc", "after=-1", "after=x", "bogus=1",
                                   "after=99999999999999999999"])
async def test_bad_query_parameters_are_422(node, query):
    await _error(await node.admin.get(f"/v1/knowledge?{query}", headers=node.as_admin()), 422, "invalid_request")


async def test_unknown_routes_and_methods(node):
    await _error(await node.admin.get("/v1/nothing", headers=node.as_admin()), 404, "not_found")
    await _error(await node.admin.delete("/v1/agents", headers=node.as_admin()), 405, "method_not_allowed")
    await _error(await node.admin.post("/v1/agents/ghost/disable", headers=node.as_admin()), 404, "not_found")
    await _error(await node.admin.post("/v1/people/ghost/token", headers=node.as_admin()), 404, "not_found")


async def test_openapi_documents_every_route(node):
    for listener in (node.admin, node.client):
        doc = await (await listener.get("/openapi.json")).json()
        assert doc["openapi"].startswith("3.")
        served = {
            (r.method, r.resource.canonical)
            for r in listener.server.app.router.routes()
            if r.method != "HEAD" and r.resource.canonical != "/openapi.json"
        }
        documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
        assert documented == served
    admin_doc = await (await node.admin.get("/openapi.json")).json()
    assert "CreatePrincipal" in admin_doc["components"]["schemas"]


# A property-based fuzz: arbitrary JSON values at every body-taking endpoint never yield a
# 5xx, and a rejected request never changes state.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_field_values = st.fixed_dictionaries(
    {},
    optional={
        "handle": st.text(max_size=70) | _json, "display_name": st.text(max_size=210) | _json,
        "name": st.text(max_size=70) | _json, "title": st.text(max_size=20) | _json,
        "members": st.lists(st.sampled_from(["person:alex", "agent:x", "person:alex@other", "bad"]), max_size=3) | _json,
        "body": st.text(max_size=30) | _json, "readers": st.none() | st.lists(st.text(max_size=12), max_size=2),
    },
)
_targets = [("admin", "POST", "/v1/people"), ("admin", "POST", "/v1/agents"), ("admin", "POST", "/v1/threads"),
            ("admin", "PUT", "/v1/threads/t/members"), ("admin", "POST", "/v1/knowledge"),
            ("client", "POST", "/v1/threads/t/messages")]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(_targets), body=_field_values | _json)
async def test_fuzz_bodies_never_500_and_rejections_change_nothing(fuzz_node, target, body):
    node, token = fuzz_node
    listener, method, path = target
    before = await _snapshot(node)
    client = node.admin if listener == "admin" else node.client
    headers = node.as_admin() if listener == "admin" else bearer(token)
    resp = await client.request(method, path, data=json.dumps(body), headers=headers)
    assert resp.status < 500, await resp.text()
    if resp.status >= 400:
        assert (await resp.json())["error"]["code"]
        assert await _snapshot(node) == before


@pytest.fixture
async def fuzz_node(node):
    token = await node.create("person", "alex")
    await node.admin.post("/v1/threads", json={"name": "t", "title": "t", "members": ["person:alex"]},
                          headers=node.as_admin())
    return node, token
