"""The client API: callers act as themselves and see only what they belong to."""

from tests.node.conftest import SERVER, bearer


async def _setup(node):
    alex = await node.create("person", "alex")
    ops = await node.create("agent", "ops")
    sam = await node.create("person", "sam")
    for name, members in [("billing-escalations", ["person:alex", "agent:ops"]), ("internal-qa", ["person:sam"])]:
        resp = await node.admin.post("/v1/threads", json={"name": name, "title": name, "members": members},
                                     headers=node.as_admin())
        assert resp.status == 201
    return alex, ops, sam


async def test_whoami(node):
    token = await node.create("agent", "ops")
    me = await (await node.client.get("/v1/whoami", headers=bearer(token))).json()
    assert me["id"] == f"agent:ops@{SERVER}" and me["kind"] == "agent"


async def test_caller_lists_only_its_threads(node):
    alex, _ops, sam = await _setup(node)
    mine = await (await node.client.get("/v1/threads", headers=bearer(alex))).json()
    assert [t["name"] for t in mine["items"]] == ["billing-escalations"]
    theirs = await (await node.client.get("/v1/threads", headers=bearer(sam))).json()
    assert [t["name"] for t in theirs["items"]] == ["internal-qa"]


async def test_post_and_read_with_cursor_pagination(node):
    alex, ops, _sam = await _setup(node)
    for i, token in enumerate([alex, ops, alex, ops, alex]):
        resp = await node.client.post("/v1/threads/billing-escalations/messages", json={"body": f"m{i}"},
                                      headers=bearer(token))
        assert resp.status == 201
    seen, cursor = [], None
    while True:
        url = "/v1/threads/billing-escalations/messages?limit=2" + (f"&after={cursor}" if cursor else "")
        page = await (await node.client.get(url, headers=bearer(ops))).json()
        seen += [(m["sender"], m["body"]) for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [b for _, b in seen] == ["m0", "m1", "m2", "m3", "m4"]
    assert seen[1][0] == f"agent:ops@{SERVER}"


async def test_threads_of_others_look_like_missing_threads(node):
    _alex, _ops, sam = await _setup(node)
    hidden = await node.client.get("/v1/threads/billing-escalations/messages", headers=bearer(sam))
    missing = await node.client.get("/v1/threads/no-such-thread/messages", headers=bearer(sam))
    assert hidden.status == missing.status == 404
    assert (await hidden.json())["error"]["code"] == (await missing.json())["error"]["code"] == "not_found"
    post = await node.client.post("/v1/threads/billing-escalations/messages", json={"body": "hi"},
                                  headers=bearer(sam))
    assert post.status == 404
    async with node.storage.transaction() as tx:
        thread = await tx.private_threads.get("billing-escalations")
        assert await tx.private_threads.count_messages(thread.id) == 0


async def test_knowledge_search_is_limited_to_readable_items(node):
    alex, ops, _sam = await _setup(node)
    await node.admin.post("/v1/knowledge", json={"title": "Runbook", "body": "cutover plan"}, headers=node.as_admin())
    await node.admin.post("/v1/knowledge", json={"title": "Accounts", "body": "cutover pricing", "readers": ["agent:ops"]},
                          headers=node.as_admin())
    by_ops = await (await node.client.get("/v1/knowledge/search?q=cutover", headers=bearer(ops))).json()
    by_alex = await (await node.client.get("/v1/knowledge/search?q=cutover", headers=bearer(alex))).json()
    assert [i["title"] for i in by_ops["items"]] == ["Runbook", "Accounts"]
    assert [i["title"] for i in by_alex["items"]] == ["Runbook"]


async def test_admin_token_does_not_work_on_client_api(node):
    assert (await node.client.get("/v1/whoami", headers=node.as_admin())).status == 401
