"""Principal tokens: scopes enforced per endpoint, expiry, single revocation, rotation."""

import pytest

from node.http.auth import DEFAULT_SCOPES, SCOPES
from tests.node.conftest import SERVER, bearer

# Every client endpoint that needs a scope, with a request that is valid for a member.
SCOPED = [
    ("read", "GET", "/v1/threads", None),
    ("read", "GET", "/v1/threads/ops-room/messages", None),
    ("post", "POST", "/v1/threads/ops-room/messages", {"body": "hello"}),
    ("knowledge:read", "GET", "/v1/knowledge/search?q=checklist", None),
    ("read", "GET", "/v1/events", None),
    ("read", "GET", "/v1/events/stream", None),
]


async def _issue(node, handle: str, body: dict, *, kind: str = "agents", expect: int = 201) -> dict:
    resp = await node.admin.post(f"/v1/{kind}/{handle}/tokens", json=body, headers=node.as_admin())
    assert resp.status == expect, await resp.text()
    return await resp.json()


async def _setup(node) -> None:
    await node.create("agent", "ops")
    resp = await node.admin.post("/v1/threads", json={"name": "ops-room", "title": "Ops", "members": ["agent:ops"]},
                                 headers=node.as_admin())
    assert resp.status == 201


async def test_client_endpoints_declare_scopes_in_openapi(node):
    document = await (await node.client.get("/openapi.json")).json()
    declared = {(m.upper(), path): op.get("x-required-scope") for path, ops in document["paths"].items()
                for m, op in ops.items()}
    for scope, method, path, _body in SCOPED:
        assert declared[(method, path.split("?")[0].replace("ops-room", "{name}"))] == scope
    assert declared[("GET", "/v1/whoami")] is None  # any valid token may ask who it is


@pytest.mark.parametrize("scope,method,path,body", SCOPED)
async def test_each_scoped_endpoint_refuses_a_token_without_its_scope(node, scope, method, path, body):
    await _setup(node)
    others = [s for s in SCOPES if s != scope]
    without = (await _issue(node, "ops", {"scopes": others}))["token"]
    resp = await node.client.request(method, path, json=body, headers=bearer(without))
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "insufficient_scope"
    with_it = (await _issue(node, "ops", {"scopes": [scope]}))["token"]
    resp = await node.client.request(method, path, json=body, headers=bearer(with_it))
    assert resp.status in (200, 201), await resp.text()
    resp.close()


async def test_refused_post_stores_nothing(node):
    await _setup(node)
    reader = (await _issue(node, "ops", {"scopes": ["read"]}))["token"]
    resp = await node.client.post("/v1/threads/ops-room/messages", json={"body": "x"}, headers=bearer(reader))
    assert resp.status == 403
    page = await (await node.client.get("/v1/threads/ops-room/messages", headers=bearer(reader))).json()
    assert page["messages"] == []


async def test_tokens_are_listed_without_secrets_and_revoked_one_at_a_time(node):
    await _setup(node)
    first = await _issue(node, "ops", {"scopes": ["read"]})
    second = await _issue(node, "ops", {"scopes": ["read", "post"], "expires_in_seconds": 3600})
    assert second["expires_at"] is not None and second["scopes"] == ["post", "read"]
    listed = await (await node.admin.get("/v1/agents/ops/tokens", headers=node.as_admin())).json()
    assert len(listed["items"]) == 3  # the one made at creation, and two more
    assert all("token" not in t for t in listed["items"])
    assert first["token"] not in str(listed) and second["token"] not in str(listed)
    resp = await node.admin.post(f"/v1/agents/ops/tokens/{first['id']}/revoke", headers=node.as_admin())
    revoked = await resp.json()
    assert resp.status == 200 and revoked["active"] is False and revoked["revoked_at"] is not None
    assert (await node.client.get("/v1/whoami", headers=bearer(first["token"]))).status == 401
    assert (await node.client.get("/v1/whoami", headers=bearer(second["token"]))).status == 200
    audit = await (await node.admin.get("/v1/audit", headers=node.as_admin())).json()
    assert {"agent.token_issue", "agent.token_revoke"} <= {e["action"] for e in audit["items"]}


async def test_token_of_another_principal_cannot_be_revoked_through_this_one(node):
    await _setup(node)
    await node.create("person", "alex")
    alex_token = await _issue(node, "alex", {}, kind="people")
    resp = await node.admin.post(f"/v1/agents/ops/tokens/{alex_token['id']}/revoke", headers=node.as_admin())
    assert resp.status == 404
    assert (await node.client.get("/v1/whoami", headers=bearer(alex_token["token"]))).status == 200
    for bad in ("abc", "9" * 30):  # not a token id at all: refused at the edge, naming the parameter
        resp = await node.admin.post(f"/v1/agents/ops/tokens/{bad}/revoke", headers=node.as_admin())
        assert resp.status == 422
        assert [f["field"] for f in (await resp.json())["error"]["fields"]] == ["token_id"]


async def test_expired_token_is_refused(node):
    await _setup(node)
    issued = await _issue(node, "ops", {"expires_in_seconds": 60})
    assert (await node.client.get("/v1/whoami", headers=bearer(issued["token"]))).status == 200
    node.clock.now += 60_000
    resp = await node.client.get("/v1/whoami", headers=bearer(issued["token"]))
    assert resp.status == 401
    listed = await (await node.admin.get("/v1/agents/ops/tokens", headers=node.as_admin())).json()
    assert [t["active"] for t in listed["items"] if t["id"] == issued["id"]] == [False]


async def test_create_with_scopes_and_rotate_keeps_asked_scopes(node):
    resp = await node.admin.post("/v1/agents", json={"handle": "bot", "display_name": "Bot", "scopes": ["read"],
                                                     "token_expires_in_seconds": 600}, headers=node.as_admin())
    created = await resp.json()
    assert created["scopes"] == ["read"] and created["token_expires_at"] is not None
    rotated = await (await node.admin.post("/v1/agents/bot/token", json={"scopes": ["read", "post"]},
                                           headers=node.as_admin())).json()
    assert rotated["scopes"] == ["post", "read"] and rotated["id"] == f"agent:bot@{SERVER}"
    assert (await node.client.get("/v1/whoami", headers=bearer(created["token"]))).status == 401
    plain = await (await node.admin.post("/v1/agents/bot/token", headers=node.as_admin())).json()
    assert plain["scopes"] == sorted(DEFAULT_SCOPES)  # no body: every scope but threads, as at creation


@pytest.mark.parametrize("body", [
    {"scopes": ["admin"]}, {"scopes": []}, {"scopes": "read"}, {"expires_in_seconds": 5},
    {"expires_in_seconds": 10**12}, {"expires_in_seconds": "60"}, {"other": 1},
])
async def test_bad_token_requests_are_refused_and_change_nothing(node, body):
    await _setup(node)
    before = await (await node.admin.get("/v1/agents/ops/tokens", headers=node.as_admin())).json()
    resp = await node.admin.post("/v1/agents/ops/tokens", json=body, headers=node.as_admin())
    assert resp.status == 422, await resp.text()
    assert (await resp.json())["error"]["code"] == "invalid_request"
    after = await (await node.admin.get("/v1/agents/ops/tokens", headers=node.as_admin())).json()
    assert after == before


async def test_tokens_of_unknown_principal_are_404(node):
    resp = await node.admin.post("/v1/agents/ghost/tokens", json={}, headers=node.as_admin())
    assert resp.status == 404
    assert (await node.admin.get("/v1/agents/ghost/tokens", headers=node.as_admin())).status == 404


async def test_every_scoped_route_of_an_assembled_node_refuses_a_token_without_its_scope(tmp_path):
    """Over the whole client API as assembled (shared threads, events, webhooks included):
    the scope is checked before anything else, so a token lacking it gets 403 whatever the path."""
    from tests.cluster import start_node
    from tests.tls_fixtures import TestCertificateAuthority

    node = await start_node(tmp_path, "acme.example", TestCertificateAuthority())
    try:
        await node.create("agent", "ops", "Ops")
        document = await node.client(await _token(node, list(SCOPES)), "GET", "/openapi.json")
        scoped = [(method.upper(), path, op["x-required-scope"]) for path, ops in document["paths"].items()
                  for method, op in ops.items() if "x-required-scope" in op]
        assert {scope for _m, _p, scope in scoped} == set(SCOPES)
        assert any(path.startswith("/v1/networks/") for _m, path, _s in scoped)
        assert any(path.startswith("/v1/webhooks") for _m, path, _s in scoped)
        for method, path, scope in scoped:
            without = await _token(node, [s for s in SCOPES if s != scope])
            concrete = path.replace("{", "x").replace("}", "")
            answer = await node.client(without, method, concrete, {} if method == "POST" else None, expect=403)
            assert answer["error"]["code"] == "insufficient_scope", (method, path)
    finally:
        await node.stop()


async def _token(node, scopes: list[str]) -> str:
    return (await node.admin("POST", "/v1/agents/ops/tokens", {"scopes": scopes}))["token"]
