"""The admin API, driven over HTTP on both database backends."""

import pytest

from tests.node.conftest import SERVER, bearer


async def test_create_agent_returns_token_once_and_lists_without_it(node):
    resp = await node.admin.post(
        "/v1/agents", json={"handle": "ops", "display_name": "Customer Ops Agent"}, headers=node.as_admin()
    )
    assert resp.status == 201
    created = await resp.json()
    assert created["id"] == f"agent:ops@{SERVER}"
    assert created["token"].startswith("anagt_")
    listed = await (await node.admin.get("/v1/agents", headers=node.as_admin())).json()
    assert [a["id"] for a in listed["items"]] == [f"agent:ops@{SERVER}"]
    assert "token" not in listed["items"][0]
    # The token is stored only as a digest.
    async with node.storage.transaction() as tx:
        assert await tx.tokens.principal_for(created["token"], now=0) is None


async def test_duplicate_handle_is_409_and_changes_nothing(node):
    await node.create("person", "alex")
    resp = await node.admin.post("/v1/people", json={"handle": "alex", "display_name": "Again"}, headers=node.as_admin())
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "conflict"
    listed = await (await node.admin.get("/v1/people", headers=node.as_admin())).json()
    assert [p["display_name"] for p in listed["items"]] == ["Alex"]


async def test_disable_and_rotate_cut_off_old_tokens(node):
    token = await node.create("agent", "ops")
    assert (await node.client.get("/v1/whoami", headers=bearer(token))).status == 200
    resp = await node.admin.post("/v1/agents/ops/disable", headers=node.as_admin())
    assert (await resp.json())["disabled"] is True
    assert (await node.client.get("/v1/whoami", headers=bearer(token))).status == 401
    await node.admin.post("/v1/agents/ops/enable", headers=node.as_admin())
    assert (await node.client.get("/v1/whoami", headers=bearer(token))).status == 200
    rotated = await (await node.admin.post("/v1/agents/ops/token", headers=node.as_admin())).json()
    assert rotated["principal"] == rotated["id"] == f"agent:ops@{SERVER}"  # id: the old name, deprecated
    assert (await node.client.get("/v1/whoami", headers=bearer(token))).status == 401
    assert (await node.client.get("/v1/whoami", headers=bearer(rotated["token"]))).status == 200


async def test_threads_members_and_unknown_members(node):
    await node.create("person", "alex")
    await node.create("agent", "ops")
    resp = await node.admin.post(
        "/v1/threads",
        json={"name": "billing-escalations", "title": "Billing", "members": ["person:alex", f"agent:ops@{SERVER}"]},
        headers=node.as_admin(),
    )
    assert resp.status == 201
    assert (await resp.json())["members"] == [f"agent:ops@{SERVER}", f"person:alex@{SERVER}"]
    bad = await node.admin.post(
        "/v1/threads", json={"name": "other", "title": "x", "members": ["person:ghost"]}, headers=node.as_admin()
    )
    assert bad.status == 404
    foreign = await node.admin.post(
        "/v1/threads", json={"name": "other", "title": "x", "members": ["person:sam@globex.example"]},
        headers=node.as_admin(),
    )
    assert foreign.status == 422
    listed = await (await node.admin.get("/v1/threads", headers=node.as_admin())).json()
    assert [t["name"] for t in listed["items"]] == ["billing-escalations"]
    put = await node.admin.put("/v1/threads/billing-escalations/members", json={"members": ["person:alex"]},
                               headers=node.as_admin())
    assert (await put.json())["members"] == [f"person:alex@{SERVER}"]
    assert (await node.admin.get("/v1/threads/nope", headers=node.as_admin())).status == 404


async def test_knowledge_add_list_search(node):
    await node.create("agent", "ops")
    for i in range(3):
        resp = await node.admin.post(
            "/v1/knowledge", json={"title": f"Runbook {i}", "body": f"webhook step {i}"}, headers=node.as_admin()
        )
        assert resp.status == 201
    restricted = await node.admin.post(
        "/v1/knowledge", json={"title": "Notes", "body": "account notes", "readers": ["agent:ops"]},
        headers=node.as_admin(),
    )
    assert (await restricted.json())["readers"] == [f"agent:ops@{SERVER}"]
    page = await (await node.admin.get("/v1/knowledge?limit=2", headers=node.as_admin())).json()
    assert len(page["items"]) == 2 and page["next_cursor"] is not None
    page2 = await (await node.admin.get(f"/v1/knowledge?limit=2&after={page['next_cursor']}", headers=node.as_admin())).json()
    assert [i["title"] for i in page2["items"]] == ["Runbook 2", "Notes"]
    found = await (await node.admin.get("/v1/knowledge/search?q=webhook", headers=node.as_admin())).json()
    assert len(found["items"]) == 3


async def test_audit_log_records_changes_newest_first(node):
    await node.create("person", "alex")
    await node.admin.post("/v1/people/alex/disable", headers=node.as_admin())
    audit = await (await node.admin.get("/v1/audit?limit=10", headers=node.as_admin())).json()
    actions = [e["action"] for e in audit["items"]]
    assert actions == ["person.disable", "person.create", "node.init"]
    assert audit["items"][0]["actor"].startswith("admin:anadm_")
    assert all("token" not in str(e["detail"].get("token", "")) for e in audit["items"])
    # The next page: `after` the cursor in the list's order (older entries); `before` is its old name.
    first = await (await node.admin.get("/v1/audit?limit=1", headers=node.as_admin())).json()
    for name in ("after", "before"):
        rest = await (await node.admin.get(f"/v1/audit?limit=10&{name}={first['next_cursor']}",
                                           headers=node.as_admin())).json()
        assert [e["action"] for e in rest["items"]] == ["person.create", "node.init"]
        assert all(e["created_at"] == e["at"] for e in rest["items"])
    huge = await node.admin.get("/v1/audit?until=13125692329693127114752", headers=node.as_admin())
    assert huge.status == 422  # found by the API fuzz: was a 500 (the database's integer overflowed)
    both = await node.admin.get(f"/v1/audit?after={first['next_cursor']}&before=1", headers=node.as_admin())
    assert both.status == 422 and (await both.json())["error"]["fields"][0]["field"] == "before"


async def test_status(node):
    await node.create("agent", "ops")
    status = await (await node.admin.get("/v1/status", headers=node.as_admin())).json()
    assert (status["server_name"], status["agents"], status["people"]) == (SERVER, 1, 0)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer " + "x" * 5000}])
async def test_admin_api_requires_admin_token(node, headers):
    resp = await node.admin.get("/v1/agents", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_principal_token_is_not_an_admin_token(node):
    token = await node.create("agent", "ops")
    assert (await node.admin.get("/v1/agents", headers=bearer(token))).status == 401


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server that can go away
async def test_lost_database_is_503_not_500(node, database_url):
    from tests.conftest import _drop_postgres_database

    await _drop_postgres_database(database_url)
    resp = await node.admin.get("/v1/agents", headers=node.as_admin())
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "unavailable"
