"""The operator commands against real nodes: `agentnet` is run in-process (in a worker thread,
since `main` runs its own event loop) and talks HTTP to the admin and client listeners."""

from __future__ import annotations

import asyncio
import io
import json
import socket

import pytest

from node.basics.config import write_config
from node.main.cli import main
from node.ops.output import Progress
from node.ops.output import last_error as out_last_error
from tests.cluster import ClusterNode, eventually, start_node
from tests.tls_fixtures import TestCertificateAuthority

NETWORK, THREAD = "acme-rollout", "rollout-status"


@pytest.fixture
async def ca():
    return TestCertificateAuthority()


@pytest.fixture
async def acme(tmp_path, ca):
    node = await start_node(tmp_path, "acme.example", ca)
    yield node
    await node.stop()


@pytest.fixture
async def globex(tmp_path, ca):
    node = await start_node(tmp_path, "globex.example", ca)
    yield node
    await node.stop()


class Cli:
    def __init__(self, capsys) -> None:
        self._capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(argv))
        captured = self._capsys.readouterr()
        # The nodes run in this process too: keep only what the command wrote to stderr.
        err = "".join(line for line in captured.err.splitlines(keepends=True) if line.startswith(("agentnet ", "(")))
        return code, captured.out, err

    async def admin(self, node: ClusterNode, *argv: str, expect: int = 0) -> str:
        code, out, err = await self(*argv, "--admin-url", f"http://127.0.0.1:{node.ports['admin']}",
                                    "--admin-token", node.admin_token)
        assert code == expect, (code, out, err)
        return out

    async def admin_json(self, node: ClusterNode, *argv: str) -> dict:
        return json.loads(await self.admin(node, *argv, "--json"))

    async def client(self, node: ClusterNode, token: str, *argv: str, expect: int = 0) -> str:
        code, out, err = await self(*argv, "--client-url", f"http://127.0.0.1:{node.ports['client']}",
                                    "--token", token)
        assert code == expect, (code, out, err)
        return out


@pytest.fixture
def cli(capsys) -> Cli:
    return Cli(capsys)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _created_token(output: str) -> str:
    return output.strip().splitlines()[-1]


async def test_tables_by_default_json_on_request(cli, acme):
    made = await cli.admin(acme, "agent", "create", "ops", "--display-name", "Customer Ops")
    token = _created_token(made)
    assert token.startswith("anagt_") and "shown once" in made

    listed = await cli.admin(acme, "agent", "list")
    header, row = listed.splitlines()
    assert header.split() == ["ID", "HANDLE", "NAME", "STATE", "CREATED"]
    assert row.startswith("agent:ops@acme.example") and "Customer Ops" in row and "active" in row
    assert header.index("HANDLE") == row.index("ops  ")  # columns line up

    as_json = await cli.admin_json(acme, "agent", "list")
    assert [p["handle"] for p in as_json["items"]] == ["ops"]
    assert (await cli.admin_json(acme, "status"))["node"]["agents"] == 1
    status = await cli.admin(acme, "status")
    assert "server:" in status and "acme.example" in status

    assert (await cli.admin(acme, "person", "list")).strip() == "(no people)"


async def test_tokens_appear_only_where_they_are_made(cli, acme):
    first = _created_token(await cli.admin(acme, "person", "create", "alex"))
    issued = _created_token(await cli.admin(acme, "person", "token", "issue", "alex", "--scope", "read"))
    tokens = await cli.admin_json(acme, "person", "token", "list", "alex")
    assert len(tokens["items"]) == 2
    for argv in (("person", "list"), ("person", "token", "list", "alex"), ("audit",), ("status",)):
        for extra in ((), ("--json",)):
            shown = await cli.admin(acme, *argv, *extra)
            assert first not in shown and issued not in shown

    revoked_id = next(t["id"] for t in tokens["items"] if t["scopes"] == ["read"])
    assert "Revoked token" in await cli.admin(acme, "person", "token", "revoke", "alex", revoked_id)
    rotated = _created_token(await cli.admin(acme, "person", "token", "rotate", "alex"))
    assert rotated not in (first, issued)
    listed = await cli.admin_json(acme, "person", "token", "list", "alex")
    assert [t["active"] for t in listed["items"]].count(True) == 1
    await cli.client(acme, first, "read", "anything", expect=2)  # the rotated-away token is refused

    assert "disabled" in await cli.admin(acme, "person", "disable", "alex")
    assert "disabled" in await cli.admin(acme, "person", "list")
    await cli.admin(acme, "person", "enable", "alex")


async def test_two_companies_through_the_cli_only(cli, acme, globex, tmp_path):
    await cli.admin(acme, "network", "create", NETWORK, "--title", "Rollout")
    invited = await cli.admin_json(acme, "network", "invite", NETWORK, globex.server, "--endpoint", globex.endpoint)
    invites = await cli.admin(globex, "invites")
    assert invited["id"] in invites and "acme.example" in invites and "FINGERPRINT" in invites
    accepted = await cli.admin(globex, "invite", "accept", invited["id"])
    assert f"joined {NETWORK}" in accepted

    ops = _created_token(await cli.admin(acme, "agent", "create", "ops"))
    delivery = _created_token(await cli.admin(globex, "agent", "create", "delivery"))
    await cli.admin(acme, "attach", NETWORK, "agent:ops")
    await cli.admin(globex, "attach", NETWORK, "agent:delivery")

    async def both_attached():
        shown = await cli.admin_json(acme, "network", "show", NETWORK)
        return sum(p["attached"] for p in shown["participants"]) == 2

    await eventually(both_attached)
    opened = await cli.admin(acme, "thread", "open", NETWORK, THREAD, "--title", "Rollout status",
                             "--participant", "agent:ops@acme.example",
                             "--participant", "agent:delivery@globex.example")
    assert f"Opened thread {THREAD} in {NETWORK}" in opened

    async def thread_reached_globex():
        return THREAD in await cli.admin(globex, "thread", "list", NETWORK)

    await eventually(thread_reached_globex)
    posted = await cli.client(acme, ops, "post", "--network", NETWORK, THREAD, "Ready for Thursday.")
    assert posted.startswith("Posted ")

    async def delivered():
        return "Ready for Thursday." in await cli.client(globex, delivery, "read", "--network", NETWORK, THREAD)

    await eventually(delivered)
    log = await cli.client(globex, delivery, "read", "--network", NETWORK, THREAD)
    assert "#" in log and "agent:ops@acme.example" in log
    await _converse_from_the_shell(cli, acme, globex, ops, delivery, posted.split()[1], tmp_path)

    shown = await cli.admin(acme, "network", "show", NETWORK)
    assert "Members" in shown and "globex.example" in shown and THREAD in shown
    peers = await cli.admin(acme, "peers")
    assert peers.splitlines()[0].split()[:2] == ["SERVER", "STATUS"] and "globex.example" in peers
    networks = await cli.admin(globex, "network", "list")
    assert NETWORK in networks and "member" in networks

    assert "Closed thread" in await cli.admin(acme, "thread", "close", NETWORK, THREAD)
    assert "Closed network" in await cli.admin(acme, "network", "close", NETWORK)


async def _converse_from_the_shell(cli, acme, globex, ops: str, delivery: str, first: str, tmp_path) -> None:
    """The participant verbs beside post and read, against two real nodes."""
    assert (await cli.client(globex, delivery, "whoami")).startswith("agent:delivery@globex.example (")
    plan = tmp_path / "plan.csv"
    plan.write_bytes(b"step,owner\ndrain,globex\n")
    reply = await cli.client(globex, delivery, "reply", NETWORK, THREAD, first, "Working on it.",
                             "--mention", "agent:ops@acme.example")
    answer_id = reply.split()[1]
    assert f"a reply to {first}" in reply
    assert "Edited" in await cli.client(globex, delivery, "edit", NETWORK, THREAD, answer_id, "Done: plan attached.")
    with_file = await cli.client(globex, delivery, "post", "--network", NETWORK, THREAD, "The plan.", "--file",
                                 str(plan), "--data", '{"ticket": "OPS-7"}')
    file_message = with_file.split()[1]
    assert "Reacted seen" in await cli.client(acme, ops, "react", NETWORK, THREAD, file_message, "seen")

    async def arrived() -> str | None:
        log = await cli.client(acme, ops, "read", "--network", NETWORK, THREAD)
        return log if "[file 0: plan.csv, text/csv, 24 bytes]" in log and "seen: agent:ops" in log else None

    log = await eventually(arrived)
    assert f"reply to {first}" in log and "(edited)" in log and '[data: {"ticket": "OPS-7"}]' in log
    saved = tmp_path / "saved.csv"
    assert "Wrote 24 bytes" in await cli.client(acme, ops, "download", NETWORK, THREAD, file_message, "-o", str(saved))
    assert saved.read_bytes() == plan.read_bytes() and saved.stat().st_mode & 0o777 == 0o600
    exists = await cli.client(acme, ops, "download", NETWORK, THREAD, file_message, "-o", str(saved), expect=2)
    assert exists == ""
    mentions = await cli.client(acme, ops, "events", "--after", "0", "--mentions")
    assert "Done: plan attached." not in mentions and "Working on it." in mentions  # the feed shows what was sent
    assert "Deleted" in await cli.client(globex, delivery, "delete", NETWORK, THREAD, answer_id)
    upload = await cli.client(globex, delivery, "upload", str(plan), "--name", "later.csv")
    assert upload.startswith("file_") and "text/csv, 24 bytes" in upload
    await cli.client(globex, delivery, "post", "--network", NETWORK, THREAD, "Later.", "--attach", upload.split()[0])
    private_only = await cli.client(globex, delivery, "post", "x", "hi", "--mention", "agent:ops@acme.example",
                                    expect=2)
    assert private_only == ""


async def test_exit_codes_and_one_line_errors(cli, acme):
    code, out, err = await cli("network", "show", "nope", "--admin-url", f"http://127.0.0.1:{acme.ports['admin']}",
                               "--admin-token", acme.admin_token)
    assert code == 1 and out == ""
    assert err == "agentnet network show: network not found (not_found)\n"

    code, _, err = await cli("status", "--admin-url", f"http://127.0.0.1:{acme.ports['admin']}",
                             "--admin-token", "anadm_wrong")
    assert code == 2 and err.count("\n") == 1 and "token was refused" in err and "anadm_wrong" not in err

    port = _free_port()
    code, _, err = await cli("status", "--admin-url", f"http://127.0.0.1:{port}", "--admin-token", "x")
    assert code == 1 and err.count("\n") == 1
    assert f"cannot reach the admin listener at http://127.0.0.1:{port}" in err and "agentnet run" in err

    # A request the node refuses as malformed is a usage error, naming the field.
    code, _, err = await cli("agent", "create", "Not A Handle", "--admin-url",
                             f"http://127.0.0.1:{acme.ports['admin']}", "--admin-token", acme.admin_token)
    assert code == 2 and "handle" in err and err.count("\n") == 1
    assert "must be a handle" in err and "^" not in err and err.count("must be") == 1  # in words, once

    # A shared thread named without its network: the hint says what is missing.
    code, _, err = await cli("read", "rollout-status", "--client-url", f"http://127.0.0.1:{acme.ports['client']}",
                             "--token", await _agent_token(cli, acme))
    assert code == 1 and "a shared thread needs --network NETWORK" in err

    # No node where the data dir points: said first, not as a missing token.
    code, _, err = await cli("status", "--data-dir", "/nonexistent-agentnet")
    assert code == 2 and "the data dir /nonexistent-agentnet does not exist" in err

    await cli.admin(acme, "network", "create", NETWORK, "--title", "Rollout")
    await cli.admin(acme, "network", "create", NETWORK, "--title", "Again", expect=1)  # 409

    with pytest.raises(SystemExit) as exited:  # argparse
        main(["network", "show"])
    assert exited.value.code == 2


async def test_settings_and_token_file_in_the_data_dir(cli, acme, monkeypatch):
    monkeypatch.delenv("AGENTNET_ADMIN_TOKEN", raising=False)
    data_dir = acme.data_dir
    code, _, err = await cli("status", "--data-dir", str(data_dir))
    assert code == 2 and f"the data dir {data_dir} holds no node (no agentnet.toml)" in err
    code, _, err = await cli("status", "--data-dir", str(data_dir), "--admin-url",
                             f"http://127.0.0.1:{acme.ports['admin']}")
    assert code == 2 and "admin.token" in err  # the node is named; its token is what is missing
    (data_dir / "admin.token").write_text(acme.admin_token + "\n")
    code, _, err = await cli("status", "--data-dir", str(data_dir))
    assert code == 2 and "agentnet.toml" in err and "--admin-url" in err
    write_config(data_dir, {"server_name": acme.server, "display_name": "Acme", "admin_port": acme.ports["admin"],
                            "client_port": acme.ports["client"], "federation_port": acme.ports["federation"]})
    monkeypatch.setenv("AGENTNET_DATA_DIR", str(data_dir))
    code, out, err = await cli("status")
    assert code == 0 and "acme.example" in out, err
    ops = _created_token((await cli("agent", "create", "ops"))[1])
    monkeypatch.setenv("AGENTNET_TOKEN", ops)
    await cli("private-thread", "create", "billing", "--title", "Billing", "--member", "agent:ops")
    assert (await cli("post", "billing", "hello"))[0] == 0
    code, out, _ = await cli("read", "billing")
    assert code == 0 and "hello" in out


async def test_private_threads_knowledge_audit_and_paging(cli, acme):
    ops = _created_token(await cli.admin(acme, "agent", "create", "ops"))
    await cli.admin(acme, "private-thread", "create", "billing", "--title", "Billing", "--member", "agent:ops")
    listed = await cli.admin(acme, "private-thread", "list")
    assert "billing" in listed and "agent:ops@acme.example" in listed
    for n in range(5):
        await cli.client(acme, ops, "post", "billing", f"message {n}\nsecond line")
    page = await cli.client(acme, ops, "read", "billing", "--limit", "2")
    assert "message 1" in page and "message 2" not in page
    everything = await cli.client(acme, ops, "read", "billing", "--limit", "2", "--all", "--json")
    assert [m["body"].split("\n")[0] for m in json.loads(everything)["items"]] == [f"message {n}" for n in range(5)]
    assert "    second line" in await cli.client(acme, ops, "read", "billing")

    await cli.admin(acme, "knowledge", "add", "--title", "Runbook", "--body", "Validate retries.",
                    "--reader", "agent:ops")
    knowledge = await cli.admin(acme, "knowledge", "list")
    assert "Runbook" in knowledge and "Validate retries." in knowledge
    await cli.admin(acme, "knowledge", "add", "--title", "Runbook", expect=2)  # no body
    audit = await cli.admin_json(acme, "audit", "--limit", "2", "--all")
    assert len(audit["items"]) >= 4 and audit["next_cursor"] is None
    assert "ACTION" in (await cli.admin(acme, "audit")).splitlines()[0]
    assert (await cli.admin(acme, "webhooks", "list")).strip() == "(no webhooks)"


async def test_audit_filters_and_a_broken_chain_fails_audit_verify(cli, acme):
    from sqlalchemy import text

    await cli.admin(acme, "agent", "create", "ops")
    await cli.admin(acme, "person", "create", "dana")
    agents = await cli.admin_json(acme, "audit", "--action", "agent.")
    assert {e["action"] for e in agents["items"]} == {"agent.create"}
    assert (await cli.admin_json(acme, "audit", "--since", "2000-01-01", "--until", "2000-01-02"))["items"] == []
    with pytest.raises(SystemExit) as refused:
        await cli("audit", "--since", "yesterday")
    assert refused.value.code == 2
    assert "not an ISO 8601 time: 'yesterday'" in cli._capsys.readouterr().err

    held = await cli.admin(acme, "audit-verify")
    assert held.startswith("The audit log holds:")
    head = (await cli.admin_json(acme, "audit-verify"))["head"]
    assert (await cli.admin_json(acme, "audit-verify", "--anchor", head))["ok"]

    async with acme.storage.engine.begin() as conn:  # someone with the database's file in hand
        await conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
        await conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
                           if acme.storage.engine.dialect.name == "postgresql" else text("SELECT 1"))
        await conn.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE action = 'agent.create'"))
    broken = await cli.admin(acme, "audit-verify", expect=1)
    assert "broken at entry" in broken and "changed" in broken


async def test_policy_commands_change_only_what_they_name(cli, acme):
    shown = await cli.admin(acme, "policy", "show")
    assert "accepts invites:    yes" in shown and "agents allowed:     yes" in shown
    await cli.admin(acme, "policy", "node", "--accept-invites", "no", "--auto-accept", "globex.example")
    node = (await cli.admin_json(acme, "policy", "show"))["node"]
    assert node == {"accept_invites": False, "auto_accept": ["globex.example"], "refuse_invites_from": [],
                    "retain_days_after_close": None, "a2a_agents": []}
    await cli.admin(acme, "policy", "node", "--auto-accept", "initech.example")  # adds; the switch stays
    node = (await cli.admin_json(acme, "policy", "show"))["node"]
    assert node == {"accept_invites": False, "auto_accept": ["globex.example", "initech.example"],
                    "refuse_invites_from": [], "retain_days_after_close": None, "a2a_agents": []}

    partner = await cli.admin(acme, "policy", "partner", "globex.example", "--agents", "no")
    assert partner.startswith("globex.example (its own):") and "agents allowed:     no" in partner
    await cli.admin(acme, "policy", "partner", "globex.example", "--max-message-chars", "500")
    mine = await cli.admin_json(acme, "policy", "partner", "globex.example")
    assert mine["policy"] == {"agents": False, "max_message_chars": 500, "max_events_per_minute": None, "threads": "auto",
                              "files": True, "max_file_bytes": 25 * 1024 * 1024, "file_types": None}
    shown = await cli.admin(acme, "policy", "partner", "globex.example", "--max-file-bytes", "1000",
                            "--file-types", "application/pdf,image/*")
    assert "files:              up to 1000 bytes, application/pdf, image/*" in shown
    assert "files:              none cross" in await cli.admin(acme, "policy", "partner", "globex.example",
                                                                 "--files", "no")
    await cli.admin(acme, "policy", "partner", "globex.example", "--files", "yes", "--file-types", "any")
    mine = await cli.admin_json(acme, "policy", "partner", "globex.example")
    assert (mine["policy"]["files"], mine["policy"]["file_types"]) == (True, None)
    await cli.admin(acme, "policy", "default", "--max-message-chars", "1000")
    assert "(the partners default)" in await cli.admin(acme, "policy", "reset", "globex.example")
    assert (await cli.admin_json(acme, "policy", "partner", "globex.example"))["policy"]["max_message_chars"] == 1000
    code, _, err = await cli("policy", "partner", "globex.example", "--max-message-chars", "0",
                             "--admin-url", f"http://127.0.0.1:{acme.ports['admin']}", "--admin-token", acme.admin_token)
    assert code == 2 and "max_message_chars" in err
    actions = [e["action"] for e in (await cli.admin_json(acme, "audit", "--action", "policy."))["items"]]
    assert actions == ["policy.partner_reset", "policy.default_partner", *["policy.partner"] * 5,
                       "policy.node", "policy.node"]
    await cli.admin(acme, "policy", "node", "--retain-days-after-close", "90")
    assert "removed 90 days after a network closes" in await cli.admin(acme, "policy", "show")
    assert "nothing due" in await cli.admin(acme, "retention")
    await cli.admin(acme, "policy", "node", "--retain-days-after-close", "never")
    assert (await cli.admin_json(acme, "policy", "show"))["node"]["retain_days_after_close"] is None
    await cli.admin(acme, "policy", "node", "--refuse-invites-from", "rogue.example")
    assert "invites refused from: rogue.example" in await cli.admin(acme, "policy", "show")
    await cli.admin(acme, "policy", "node", "--refuse-invites-from", "globex.example", expect=2)  # auto-accepted: 422
    await cli.admin(acme, "policy", "node", "--allow-invites-from", "rogue.example")
    assert (await cli.admin_json(acme, "policy", "show"))["node"]["refuse_invites_from"] == []


def test_progress_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet, tty = io.StringIO(), Tty()
    for stream in (quiet, tty):
        progress = Progress("messages", stream)
        progress.update(200)
        progress.done()
    assert quiet.getvalue() == ""
    assert "messages: 200" in tty.getvalue()


async def test_a_token_file_holds_the_new_token_and_the_screen_never_does(cli, acme, tmp_path):
    out = await cli.admin(acme, "agent", "create", "ops", "--token-file", str(tmp_path / "ops.token"))
    token = (tmp_path / "ops.token").read_text().strip()
    assert token.startswith("anagt_") and token not in out and f"saved to {tmp_path / 'ops.token'}" in out
    assert (tmp_path / "ops.token").stat().st_mode & 0o777 == 0o600
    listed = await cli.admin(acme, "agent", "token", "rotate", "ops", "--json", "--token-file",
                             str(tmp_path / "ops.token"))
    assert "anagt_" not in listed  # --json too
    rotated = (tmp_path / "ops.token").read_text().strip()
    assert rotated != token
    code, out, _ = await cli("read", "--client-url", f"http://127.0.0.1:{acme.ports['client']}", "--token-file",
                             str(tmp_path / "ops.token"), "nope")
    assert code == 1 and "nope" in _  # the token was read and accepted; the thread does not exist
    code, _, err = await cli("read", "--client-url", f"http://127.0.0.1:{acme.ports['client']}", "--token-file",
                             str(tmp_path / "missing.token"), "nope")
    assert code == 2 and "cannot read --token-file" in err


async def test_accepting_an_invite_by_network_names_what_is_missing(cli, acme):
    code, _, err = await cli("invite", "accept", "--admin-url", f"http://127.0.0.1:{acme.ports['admin']}",
                             "--admin-token", acme.admin_token)
    assert code == 2 and "its id, or --network NAME" in err
    code, _, err = await cli("invite", "accept", "--network", "acme-rollout", "--admin-url",
                             f"http://127.0.0.1:{acme.ports['admin']}", "--admin-token", acme.admin_token)
    assert code == 1 and "no pending invite to acme-rollout here" in err


async def _agent_token(cli: Cli, node: ClusterNode) -> str:
    made = await cli.admin_json(node, "agent", "create", "reader")
    return made["token"]


async def test_status_shows_the_node_at_a_glance(cli, acme, globex):
    await cli.admin(acme, "network", "create", NETWORK, "--title", "Rollout")
    await cli.admin(acme, "network", "invite", NETWORK, globex.server, "--endpoint", globex.endpoint)
    on_globex = await cli.admin(globex, "status")
    assert "pending invites:       1 (agentnet invites)" in on_globex
    as_json = await cli.admin_json(globex, "status")
    assert as_json["pending_invites"] == 1 and as_json["certificate"]["days_left"] > 300
    assert as_json["key"]["fingerprint"] == globex.key.verify_key.fingerprint

    await cli.admin(globex, "invite", "accept", "--network", NETWORK)
    on_acme = await cli.admin(acme, "status")
    assert "acme.example (acme.example)" in on_acme and "version:" in on_acme
    assert f"signing key:           {acme.key.key_id}  {acme.key.verify_key.fingerprint}" in on_acme
    assert "days)" in on_acme  # the TLS certificate's expiry
    assert "Networks\nNETWORK" in on_acme and f"{NETWORK}  acme.example  2" in on_acme
    assert "Peers\nPEER" in on_acme and "globex.example  accepted" in on_acme


def test_a_peers_last_error_has_its_time_and_says_when_it_answered_since():
    peer = {"last_error": "timeout", "last_error_at": 1_700_000_000_000, "last_success_at": 1_700_000_060_000}
    assert out_last_error(peer) == "2023-11-14 22:13Z (answered since): timeout"
    assert out_last_error({**peer, "last_success_at": None}) == "2023-11-14 22:13Z: timeout"
    assert out_last_error({**peer, "last_error": None}) == "-"


# Every operation of the admin API and the command that does it (docs/cli.md promises one
# each). A new admin endpoint without a command fails the first test below.
COMMANDS = {
    "POST /v1/agents": "agent create ops", "GET /v1/agents": "agent list",
    "POST /v1/agents/{handle}/disable": "agent disable ops", "POST /v1/agents/{handle}/enable": "agent enable ops",
    "POST /v1/agents/{handle}/token": "agent token rotate ops", "POST /v1/agents/{handle}/tokens": "agent token issue ops",
    "GET /v1/agents/{handle}/tokens": "agent token list ops",
    "POST /v1/agents/{handle}/tokens/{token_id}/revoke": "agent token revoke ops 1",
    "POST /v1/people": "person create sam", "GET /v1/people": "person list",
    "POST /v1/people/{handle}/disable": "person disable sam", "POST /v1/people/{handle}/enable": "person enable sam",
    "POST /v1/people/{handle}/token": "person token rotate sam", "POST /v1/people/{handle}/tokens": "person token issue sam",
    "GET /v1/people/{handle}/tokens": "person token list sam",
    "POST /v1/people/{handle}/tokens/{token_id}/revoke": "person token revoke sam 1",
    "POST /v1/apps": "app create fleet", "GET /v1/apps": "app list",
    "POST /v1/apps/{handle}/disable": "app disable fleet", "POST /v1/apps/{handle}/enable": "app enable fleet",
    "POST /v1/apps/{handle}/token": "app token rotate fleet", "POST /v1/apps/{handle}/tokens": "app token issue fleet",
    "GET /v1/apps/{handle}/tokens": "app token list fleet",
    "POST /v1/apps/{handle}/tokens/{token_id}/revoke": "app token revoke fleet 1",
    "POST /v1/apps/{handle}/tokens/revoke": "app token revoke-all fleet", "PATCH /v1/apps/{handle}": "app rename fleet",
    "GET /v1/apps/{handle}/agents": "app agents fleet", "PUT /v1/apps/{handle}/agents": "app agents fleet --agent ops",
    "POST /v1/people/{handle}/sign-in-link": "person sign-in-link alex",
    "POST /v1/console/sign-in-link": "console", "GET /v1/web-sessions": "web-session list", "POST /v1/web-sessions/{session}/revoke": "web-session revoke 1",
    "GET /v1/alerts": "alerts", "GET /v1/audit": "audit", "GET /v1/policy": "policy show", "PUT /v1/policy/node": "policy node", "PUT /v1/policy/partners": "policy default", "GET /v1/policy/partners/{server}": "policy partner globex.example", "PUT /v1/policy/partners/{server}": "policy partner globex.example --agents no",
    "DELETE /v1/policy/partners/{server}": "policy reset globex.example", "GET /v1/audit/verify": "audit-verify", "GET /v1/invites": "invites",
    "POST /v1/invites/{invite}/accept": "invite accept X", "POST /v1/invites/{invite}/decline": "invite decline X",
    "POST /v1/knowledge": "knowledge add --title T --body B", "GET /v1/knowledge": "knowledge list",
    "GET /v1/knowledge/search": "knowledge search webhook",
    "POST /v1/networks": "network create n --title T", "GET /v1/networks": "network list",
    "GET /v1/networks/{network}": "network show n", "POST /v1/networks/{network}/close": "network close n",
    "GET /v1/networks/{network}/export": "export n",
    "GET /v1/export/private": "export --private",
    "POST /v1/networks/{network}/invites": "network invite n globex.example",
    "POST /v1/networks/{network}/leave": "network leave n",
    "POST /v1/networks/{network}/members/{server}/remove": "network remove n globex.example",
    "POST /v1/networks/{network}/participants": "attach n agent:ops",
    "POST /v1/networks/{network}/participants/detach": "detach n agent:ops",
    "POST /v1/networks/{network}/resume": "network resume n",
    "POST /v1/networks/{network}/threads": "thread open n t --title T --participant agent:ops@acme.example",
    "POST /v1/networks/{network}/threads/{thread}/close": "thread close n t",
    "POST /v1/networks/{network}/threads/{thread}/participants": "thread add n t --participant agent:x@acme.example",
    "GET /v1/overview": "status", "GET /v1/status": "status --json",
    "GET /v1/peers": "peers", "POST /v1/peers/{server}/block": "block globex.example",
    "POST /v1/peers/{server}/unblock": "unblock globex.example",
    "POST /v1/threads": "private-thread create t --title T", "GET /v1/threads": "private-thread list",
    "GET /v1/threads/{name}": "private-thread show t", "PUT /v1/threads/{name}/members": "private-thread members t",
    "GET /v1/webhooks": "webhooks list", "POST /v1/webhooks/{webhook}/disable": "webhooks disable 1",
    "POST /v1/webhooks/{webhook}/enable": "webhooks enable 1",
    "GET /v1/policy/guard": "guard show", "PUT /v1/policy/guard": "guard set guard.json",
    "POST /v1/guard/check": "guard check text", "GET /v1/guard/flags": "guard flags",
    "POST /v1/guard/flags/{flag}/review": "guard review 1 --verdict ok",
    "POST /v1/agents/{handle}/tokens/revoke": "agent token revoke-all ops",
    "POST /v1/people/{handle}/tokens/revoke": "person token revoke-all sam",
    "POST /v1/networks/{network}/freeze": "network freeze n", "POST /v1/networks/{network}/unfreeze": "network unfreeze n",
    "POST /v1/networks/{network}/threads/{thread}/silence": "thread silence n t",
    "POST /v1/invites/{invite}/withdraw": "invite withdraw X", "PATCH /v1/agents/{handle}": "agent rename ops",
    "PATCH /v1/people/{handle}": "person rename sam --display-name Sam", "DELETE /v1/knowledge/{item}":
    "delete-knowledge 1", "DELETE /v1/threads/{name}": "delete-private-thread t",
    "POST /v1/operators": "operator add alice --role auditor", "GET /v1/operators": "operator list",
    "POST /v1/operators/{operator}/revoke": "operator revoke alice",
    "POST /v1/networks/{network}/archive": "network archive n",
    "POST /v1/networks/{network}/unarchive": "network unarchive n",
    "POST /v1/retention/run": "retention", "GET /v1/consents": "consent list", "POST /v1/consents/{network}/{thread}/accept": "consent accept n t",
    "POST /v1/consents/{network}/{thread}/decline": "consent decline n t",
}
NOT_COMMANDS = {"GET /healthz", "GET /readyz", "GET /metrics"}  # for probes and Prometheus


async def test_every_admin_operation_has_a_command(acme):
    from node.client.http import NodeHttp

    async with NodeHttp(f"http://127.0.0.1:{acme.ports['admin']}", acme.admin_token) as http:
        document = await http.call("GET", "/openapi.json")
    operations = {f"{m.upper()} {path}" for path, ops in document["paths"].items() for m in ops}
    assert operations - NOT_COMMANDS == set(COMMANDS)
    from node.main.cli import _parser

    parser = _parser()
    for argv in COMMANDS.values():
        parser.parse_args(argv.split())  # each exists (argparse exits 2 on an unknown command)


async def test_an_application_is_made_and_given_its_agents(cli, acme):
    await cli.admin(acme, "agent", "create", "ops")
    await cli.admin(acme, "agent", "create", "billing")
    made = await cli.admin(acme, "app", "create", "fleet", "--display-name", "Agent fleet")
    assert "anapp_" in made
    out = await cli.admin(acme, "app", "agents", "fleet", "--agent", "ops", "--agent", "billing")
    assert "app:fleet@acme.example acts as:" in out and "agent:billing@acme.example" in out
    shown = await cli.admin_json(acme, "app", "agents", "fleet")
    assert [a["handle"] for a in shown["agents"]] == ["billing", "ops"]
    assert "(no agents)" in await cli.admin(acme, "app", "agents", "fleet", "--none")


async def test_private_thread_show_members_and_knowledge_search(cli, acme):
    await cli.admin(acme, "agent", "create", "ops")
    await cli.admin(acme, "person", "create", "sam")
    await cli.admin(acme, "private-thread", "create", "billing", "--title", "Billing", "--member", "agent:ops")
    out = await cli.admin(acme, "private-thread", "members", "billing", "--member", "agent:ops", "--member",
                          "person:sam")
    assert "Private thread billing now has" in out and "person:sam" in out
    shown = await cli.admin(acme, "private-thread", "show", "billing")
    assert "billing" in shown and "agent:ops@acme.example" in shown and "person:sam@acme.example" in shown
    await cli.admin(acme, "knowledge", "add", "--title", "Runbook", "--body", "Validate webhook retries first.")
    found = await cli.admin_json(acme, "knowledge", "search", "webhook retries")
    assert [k["title"] for k in found["items"]] == ["Runbook"]
    assert "(nothing found)" in await cli.admin(acme, "knowledge", "search", "nonexistentword")


async def test_guard_commands(cli, acme, tmp_path):
    settings = tmp_path / "guard.json"
    settings.write_text('{"terms": ["Project Falcon"], "terms_action": "flag", '
                        '"rules": [{"name": "customer-id", "pattern": "CUST-[0-9]+", "action": "redact"}]}')
    shown = await cli.admin(acme, "guard", "set", str(settings))
    assert "Terms (flag): Project Falcon" in shown and "customer-id (redact): CUST-[0-9]+" in shown
    assert (await cli.admin_json(acme, "guard", "show"))["terms"] == ["Project Falcon"]
    checked = await cli.admin(acme, "guard", "check", "CUST-42 asks about project falcon")
    assert "Decision: redact" in checked and "Sent as:  [redacted: customer-id] asks about project falcon" in checked
    checked = await cli.admin(acme, "guard", "check", "AKIAIOSFODNN7EXAMPLE")
    assert "Decision: block" in checked and "secret.aws_access_key" in checked and "AKIAIOSFODNN7" not in checked
    assert "(no flags)" in await cli.admin(acme, "guard", "flags")
    settings.write_text('{"rules": [{"name": "x", "pattern": "(a)\\\\1"}]}')
    code, _, err = await cli("guard", "set", str(settings), "--admin-url", f"http://127.0.0.1:{acme.ports['admin']}",
                             "--admin-token", acme.admin_token)
    assert code != 0 and "RE2" in err


async def test_kill_switch_commands(cli, acme):
    await cli.admin(acme, "agent", "create", "ops")
    await cli.admin(acme, "agent", "token", "issue", "ops")
    said = await cli.admin(acme, "agent", "token", "revoke-all", "ops")
    assert "Every token of agent:ops is revoked (2 tokens, 0 active)" in said
    await cli.admin(acme, "network", "create", "incident", "--title", "Incident")
    assert "Froze incident" in await cli.admin(acme, "network", "freeze", "incident")
    assert (await cli.admin_json(acme, "network", "show", "incident"))["frozen_at"] is not None
    await cli.admin(acme, "network", "freeze", "incident", expect=1)  # already frozen: 409
    assert "Unfroze incident" in await cli.admin(acme, "network", "unfreeze", "incident")


async def test_rename_and_delete_commands(cli, acme):
    await cli.admin(acme, "agent", "create", "ops", "--display-name", "Ops")
    assert "agent:ops@acme.example is now Customer Ops" in await cli.admin(
        acme, "agent", "rename", "ops", "--display-name", "Customer Ops")
    assert [p["display_name"] for p in (await cli.admin_json(acme, "agent", "list"))["items"]] == ["Customer Ops"]
    await cli.admin(acme, "knowledge", "add", "--title", "Runbook", "--body", "Validate webhook retries first.")
    (item,) = (await cli.admin_json(acme, "knowledge", "list"))["items"]
    assert f"Deleted knowledge item {item['id']}" in await cli.admin(acme, "delete-knowledge", str(item["id"]))
    await cli.admin(acme, "private-thread", "create", "billing", "--title", "Billing", "--member", "agent:ops")
    assert "Deleted private thread billing (0 messages)" in await cli.admin(acme, "delete-private-thread", "billing")
    await cli.admin(acme, "delete-private-thread", "billing", expect=1)  # 404
    await cli.admin(acme, "network", "create", "incident", "--title", "Incident")
    await cli.admin(acme, "network", "archive", "incident", expect=1)  # open: 409
    await cli.admin(acme, "network", "close", "incident")
    assert "Archived incident" in await cli.admin(acme, "network", "archive", "incident")
    assert "(no networks)" in await cli.admin(acme, "network", "list")
    assert "incident" in await cli.admin(acme, "network", "list", "--archived")
    assert (await cli.admin_json(acme, "network", "show", "incident"))["archived_at"] is not None
    assert "Brought incident back" in await cli.admin(acme, "network", "unarchive", "incident")



async def test_a_sign_in_link_from_the_command_line_opens_a_session(cli, acme):
    import aiohttp

    await cli.admin(acme, "person", "create", "alex")
    said = await cli.admin(acme, "person", "sign-in-link", "alex")
    assert "Sign-in link for person:alex (works once, until" in said
    url = said.strip().splitlines()[-1]
    assert url.startswith(f"http://127.0.0.1:{acme.ports['client']}/app/sign-in?token=")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http, http.post(
            url.partition("?")[0], data={"token": url.partition("token=")[2]}) as page:
        assert page.status == 200 and "alex" in await page.text()
    listed = await cli.admin(acme, "web-session", "list")
    assert "person:alex@acme.example" in listed
    session_id = (await cli.admin_json(acme, "web-session", "list"))["items"][0]["id"]
    assert f"Signed out session {session_id}" in await cli.admin(acme, "web-session", "revoke", session_id)
    assert "(nobody is signed in)" in await cli.admin(acme, "web-session", "list")
