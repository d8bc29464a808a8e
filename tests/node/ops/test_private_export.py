"""`agentnet export --private` and `agentnet import`: a company's private side moves from a
SQLite node to a fresh PostgreSQL node and works there as before (old tokens, private threads,
knowledge with its readers, webhooks, policy, and the audit chain, whole); and every refusal
(a used node, a changed, broken or oversized file, another company's file) writes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from federation.keys import SigningKey
from node.main.cli import main
from storage.storage import Storage
from tests.cluster import ClusterNode, start_node
from tests.tls_fixtures import TestCertificateAuthority

ACME = "acme.example"
HOOK = "http://127.0.0.1:9/agentnet-hook"  # nothing listens: the hook only has to be stored


@dataclass
class Exported:
    file: Path
    admin_token: str
    tokens: dict[str, str]  # handle (or label) -> bearer token
    seen: dict[str, Any]  # what the source answered, to compare the imported node with


async def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = await asyncio.to_thread(main, list(argv))
    return code, out.getvalue(), err.getvalue()


def _admin(node: ClusterNode) -> list[str]:
    return ["--admin-url", f"http://127.0.0.1:{node.ports['admin']}", "--admin-token", node.admin_token]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Exported:
    """A SQLite node with people, agents, tokens, a private thread, knowledge, a webhook,
    policy rows and audit entries, exported with the CLI (built once per module)."""
    tmp = tmp_path_factory.mktemp("private")
    with ThreadPoolExecutor(max_workers=1) as pool:  # a loop of its own, whatever the tests run in
        return pool.submit(asyncio.run, _populate_and_export(tmp)).result()


async def _populate_and_export(tmp: Path) -> Exported:
    node = await start_node(tmp, ACME, TestCertificateAuthority())
    try:
        tokens = {"ops": await node.create("agent", "ops", "Customer Ops", profile="Answers billing questions."),
                  "alex": await node.create("person", "alex", "Alex Rivera"),
                  "bot": await node.create("agent", "bot", "Retired bot")}
        narrow = await node.admin("POST", "/v1/agents/ops/tokens", {"scopes": ["read"], "expires_in_seconds": 86400})
        tokens["ops-read"] = narrow["token"]
        revoked = await node.admin("POST", "/v1/people/alex/tokens", {})
        await node.admin("POST", f"/v1/people/alex/tokens/{revoked['id']}/revoke")
        tokens["alex-revoked"] = revoked["token"]
        await node.admin("POST", "/v1/agents/bot/disable")
        await node.admin("POST", "/v1/threads", {"name": "billing", "title": "Billing escalations",
                                                 "members": ["agent:ops", "person:alex"]})
        for token, body in ((tokens["ops"], "Looking into invoice 4411."), (tokens["alex"], "Thanks, ping me."),
                            (tokens["ops"], "Refund issued.")):
            await node.client(token, "POST", "/v1/threads/billing/messages", {"body": body}, expect=201)
        await node.admin("POST", "/v1/knowledge", {"title": "Refund runbook", "body": "Refunds over 500 need "
                                                   "approval from finance.", "readers": ["agent:ops"]})
        await node.admin("POST", "/v1/knowledge", {"title": "Refund handbook", "body": "Every refund is logged."})
        partner = (await node.admin("GET", "/v1/policy/partners/globex.example"))["policy"]
        await node.admin("PUT", "/v1/policy/partners/globex.example", {**partner, "agents": False})
        await node.admin("PUT", "/v1/policy/guard", {"terms": ["Project Falcon"], "terms_action": "flag"})
        hook = await node.client(tokens["ops"], "POST", "/v1/webhooks", {"url": HOOK, "filter": {"mentions": True}},
                                 expect=201)
        await node.create("app", "fleet", "Agent fleet")
        await node.admin("PUT", "/v1/apps/fleet/agents", {"agents": ["ops"]})

        out = tmp / "acme.private.json"
        code, said, err = await _cli("export", "--private", "-o", str(out), *_admin(node))
        assert code == 0, err
        assert "Exported the private side of acme.example" in said and "agentnet import" in said
        assert (await _cli("export", "--private", "-o", str(out), *_admin(node)))[0] == 2  # exists: no --force
        assert (await _cli("export", "--private", "-o", str(out), "--force", *_admin(node)))[0] == 0
        audit = await node.admin("GET", "/v1/audit?action=node.export_private")
        assert [e["target"] for e in audit["items"]] == [ACME, ACME]
        seen = {
            "messages": (await node.client(tokens["alex"], "GET", "/v1/threads/billing/messages"))["messages"],
            "ops_tokens": (await node.admin("GET", "/v1/agents/ops/tokens"))["items"],
            "agents": (await node.admin("GET", "/v1/agents"))["items"],
            "people": (await node.admin("GET", "/v1/people"))["items"],
            "threads": (await node.admin("GET", "/v1/threads"))["items"],
            "policy": await node.admin("GET", "/v1/policy"),
            "guard": await node.admin("GET", "/v1/policy/guard"),
            "webhook": hook,
            "fleet": await node.admin("GET", "/v1/apps/fleet/agents"),
        }
        return Exported(out, node.admin_token, tokens, seen)
    finally:
        await node.stop()


async def _init(data_dir: Path, database_url: str | None = None) -> str:
    extra = ["--database-url", database_url] if database_url else []
    code, _, err = await _cli("init", "--server-name", ACME, "--data-dir", str(data_dir), *extra)
    assert code == 0, err
    return (data_dir / "admin.token").read_text().strip()


def _settings_url(data_dir: Path) -> str:
    from node.basics.config import load_settings

    return load_settings(data_dir).resolved_database_url


@pytest.mark.postgres
async def test_the_private_side_moves_from_sqlite_to_postgresql(exported, postgres_url, tmp_path):
    file = json.loads(exported.file.read_bytes())
    assert stat.S_IMODE(exported.file.stat().st_mode) == 0o600
    assert file["format"] == "agentnet-private/1" and "token" not in json.dumps(file["tokens"]).replace(
        "token_sha256", "")  # digests only
    assert not any(t in exported.file.read_text() for t in exported.tokens.values())
    head = file["audit"]["head"]

    target = tmp_path / "target"
    init_token = await _init(target, postgres_url)
    code, said, err = await _cli("import", str(exported.file), "--data-dir", str(target))
    assert code == 0, err
    assert f"head {head['seq']}:{head['hash']}" in said and "replaced this node's own 1 entries" in said

    # A second import finds a node in use: refused, nothing written.
    code, _, err = await _cli("import", str(exported.file), "--data-dir", str(target))
    assert code == 1 and "not a fresh node's" in err and "principals: 4 rows" in err and "nothing was written" in err

    node = ClusterNode(server=ACME, database_url=postgres_url, data_dir=tmp_path / "run",
                       key=SigningKey.load(target / "signing.key"), admin_token=exported.admin_token, ports={},
                       ca=TestCertificateAuthority())
    node.data_dir.mkdir()
    await node.start()
    try:
        await _check_imported(node, exported, head, init_token)
    finally:
        await node.stop()
    conn = await asyncpg.connect(postgres_url)
    try:
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("DELETE FROM audit_log")
    finally:
        await conn.close()


async def _check_imported(node: ClusterNode, exported: Exported, head: dict, init_token: str) -> None:
    tokens, seen = exported.tokens, exported.seen
    assert (await node.client(tokens["ops"], "GET", "/v1/whoami"))["id"] == "agent:ops@acme.example"
    assert (await node.client(tokens["ops-read"], "GET", "/v1/whoami"))["handle"] == "ops"
    for dead in ("bot", "alex-revoked"):  # disabled, revoked: still refused
        await node.client(tokens[dead], "GET", "/v1/whoami", expect=401)
    messages = (await node.client(tokens["ops"], "GET", "/v1/threads/billing/messages"))["messages"]
    assert messages == seen["messages"]
    ops_found = (await node.client(tokens["ops"], "GET", "/v1/knowledge/search?q=refund"))["items"]
    alex_found = (await node.client(tokens["alex"], "GET", "/v1/knowledge/search?q=refund"))["items"]
    assert sorted(k["title"] for k in ops_found) == ["Refund handbook", "Refund runbook"]
    assert [k["title"] for k in alex_found] == ["Refund handbook"]  # the runbook's readers: ops only
    for path, key in (("/v1/agents/ops/tokens", "ops_tokens"), ("/v1/agents", "agents"), ("/v1/people", "people"),
                      ("/v1/threads", "threads")):
        assert (await node.admin("GET", path))["items"] == seen[key], path
    assert await node.admin("GET", "/v1/policy") == seen["policy"]
    assert await node.admin("GET", "/v1/policy/guard") == seen["guard"]
    hooks = (await node.client(tokens["ops"], "GET", "/v1/webhooks"))["items"]
    assert [(h["id"], h["url"], h["filter"]["mentions"]) for h in hooks] == [(seen["webhook"]["id"], HOOK, True)]
    assert await node.admin("GET", "/v1/apps/fleet/agents") == seen["fleet"]  # the application and its agents

    anchor = f"{head['seq']}:{head['hash']}"
    check = await node.admin("GET", f"/v1/audit/verify?anchor={anchor}")
    assert check["ok"] and check["entries"] == head["seq"] + 1, check
    last = (await node.admin("GET", "/v1/audit?limit=1"))["items"][0]
    assert last["action"] == "node.import" and last["detail"]["audit_head"] == anchor
    exported_log = json.loads(exported.file.read_bytes())["audit"]["entries"]
    imported_log = (await node.admin("GET", f"/v1/audit?limit=200&before={head['seq'] + 1}"))["items"]
    assert [(int(e["id"]), e["hash"]) for e in reversed(imported_log)] == [(e["seq"], e["hash"]) for e in exported_log]

    again = await node.admin("GET", "/v1/export/private")  # from PostgreSQL now: the same private side
    before = json.loads(exported.file.read_bytes())
    for part in ("company", "principals", "tokens", "private_threads", "private_messages", "knowledge", "webhooks",
                 "policies", "app_agents"):
        assert again[part] == before[part], part
    assert again["audit"]["entries"][:head["seq"]] == before["audit"]["entries"]

    node.admin_token = init_token  # init's own admin token keeps working beside the imported ones
    made = await node.admin("POST", "/v1/agents", {"handle": "new", "display_name": "New agent"})  # ids move on
    posted = await node.client(tokens["alex"], "POST", "/v1/threads/billing/messages", {"body": "After the move."},
                               expect=201)
    assert made["handle"] == "new" and int(posted["id"]) > max(int(m["id"]) for m in messages)


@pytest.fixture
async def fresh(tmp_path) -> Path:
    """A SQLite node just made by `agentnet init`."""
    await _init(tmp_path / "fresh")
    return tmp_path / "fresh"


async def _untouched(data_dir: Path) -> None:
    storage = await Storage.open(_settings_url(data_dir))
    try:
        async with storage.read_transaction() as tx:
            assert await tx.transfer.leftovers(ACME) == []
            assert [e.action for e in await tx.audit.page(limit=10)] == ["node.init"]
    finally:
        await storage.close()


def _changed(exported: Exported, tmp_path: Path, change) -> Path:
    document = json.loads(exported.file.read_bytes())
    change(document)
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(document))
    return path


def _set(path: tuple, value: Any):
    def change(document: dict) -> None:
        *head, last = path
        for key in head:
            document = document[key]
        document[last] = value

    return change


@pytest.mark.parametrize(("change", "said"), [
    (_set(("audit", "entries", 1, "actor"), "admin:someone-else"), "its fields do not match its hash"),
    (_set(("audit", "entries", 2), None), "audit.entries.2"),
    (_set(("private_messages", 0, "sender_id"), 999), "sender_id 999 is not in the file"),
    (_set(("knowledge", 0, "readers"), [999]), "readers 999 is not in the file"),
    (_set(("tokens", 0, "scopes"), ["root"]), "tokens.0.scopes.0"),
    (_set(("policies", 1, "settings"), {"agents": "maybe"}), "policies[1] (partner:globex.example): agents"),
    (_set(("policies", 1, "scope"), "everything"), "scope 'everything' is not one this node has"),
    (_set(("format",), "agentnet-private/2"), "format"),
    (_set(("company", "server_name"), "globex.example"), "the file holds globex.example's private side"),
])
async def test_a_changed_file_is_refused_and_nothing_is_written(exported, fresh, tmp_path, change, said):
    code, _, err = await _cli("import", str(_changed(exported, tmp_path, change)), "--data-dir", str(fresh))
    assert code == 2 and said in err, err
    await _untouched(fresh)


async def test_garbage_and_oversized_files_are_refused(exported, fresh, tmp_path, monkeypatch):
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00not json{")
    code, _, err = await _cli("import", str(garbage), "--data-dir", str(fresh))
    assert code == 2 and "is not a private export" in err
    monkeypatch.setattr("node.ops.private_import.MAX_PRIVATE_FILE_BYTES", 1000)
    code, _, err = await _cli("import", str(exported.file), "--data-dir", str(fresh))
    assert code == 2 and "is over 1000 bytes" in err
    code, _, err = await _cli("import", str(tmp_path / "missing.json"), "--data-dir", str(fresh))
    assert code == 2 and "cannot read" in err
    await _untouched(fresh)


async def test_a_used_sqlite_node_is_not_fresh(exported, fresh):
    """A node that made so much as one agent refuses, naming what it holds."""
    storage = await Storage.open(_settings_url(fresh))
    try:
        async with storage.transaction() as tx:
            await tx.principals.create(kind="agent", handle="early", display_name="Early", profile="", now=1)
    finally:
        await storage.close()
    code, _, err = await _cli("import", str(exported.file), "--data-dir", str(fresh))
    assert code == 1 and "principals: 1 row)" in err


async def test_export_takes_a_network_or_private_not_both():
    admin = ["--admin-url", "http://127.0.0.1:1", "--admin-token", "anadm_x"]
    for argv in (["export", *admin], ["export", "acme-rollout", "--private", *admin]):
        code, _, err = await _cli(*argv)
        assert code == 2 and "or pass --private" in err


async def test_an_import_into_sqlite_keeps_the_chain_and_the_log_append_only(exported, fresh):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    code, _, err = await _cli("import", str(exported.file), "--data-dir", str(fresh))
    assert code == 0, err
    head = json.loads(exported.file.read_bytes())["audit"]["head"]
    storage = await Storage.open(_settings_url(fresh))
    try:
        async with storage.read_transaction() as tx:
            check = await tx.audit.verify(anchor=(head["seq"], head["hash"]))
        assert check.ok and check.entries == head["seq"] + 1
        with pytest.raises(DBAPIError, match="append-only"):
            async with storage.engine.begin() as conn:
                await conn.execute(text("DELETE FROM audit_log"))
    finally:
        await storage.close()


async def test_a_fresh_node_that_ran_once_is_still_fresh(exported, fresh, tmp_path):
    """Starting a new node to see it work (its own key recorded, workers run) uses nothing up."""
    node = ClusterNode(server=ACME, database_url=_settings_url(fresh), data_dir=tmp_path / "run",
                       key=SigningKey.load(fresh / "signing.key"), admin_token=(fresh / "admin.token").read_text().strip(),
                       ports={}, ca=TestCertificateAuthority())
    node.data_dir.mkdir()
    await node.start()
    try:
        assert (await node.admin("GET", "/v1/agents"))["items"] == []
    finally:
        await node.stop()
    code, _, err = await _cli("import", str(exported.file), "--data-dir", str(fresh))
    assert code == 0, err
