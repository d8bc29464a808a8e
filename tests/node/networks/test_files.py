"""Files in shared threads across three real nodes over TLS: Acme hosts, Globex and Initech are
members that never peered with each other, so Initech gets Globex's file through the host.
Each file is checked against what its author's node signed; partner policy keeps files out in
both directions; the outbound guard reads a file before it is signed; a delete removes the file
from every node; a host that swaps a file's bytes is caught."""

from __future__ import annotations

import asyncio
import hashlib
from base64 import urlsafe_b64encode

from sqlalchemy import func, select, update

from storage.network.tables import shared_files
from tests.cluster import ClusterNode, eventually
from tests.node.federation.test_lifecycle import NETWORK, SERVERS, THREAD, incident

ACME, GLOBEX, INITECH = SERVERS
MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"
RUNBOOK = b"Cutover runbook\n1. drain the queue\n2. switch DNS\n3. watch the error rate for 10 minutes\n"


def digest(data: bytes) -> str:
    return urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


async def message(node: ClusterNode, token: str, event_id: str) -> dict | None:
    page = await node.client(token, "GET", f"{MESSAGES}?limit=200")
    return next((m for m in page["messages"] if m["id"] == event_id), None)


async def files_held(node: ClusterNode) -> list[tuple[str | None, int | None, bool]]:
    """(event id, position, bytes still held) of every file row on the node."""
    async with node.storage.engine.connect() as conn:
        rows = await conn.execute(select(shared_files.c.event_id, shared_files.c.position,
                                         shared_files.c.data.is_not(None)))
        return sorted((tuple(r) for r in rows), key=lambda r: (r[0] or "", r[1] if r[1] is not None else -1))


async def post_file(node: ClusterNode, token: str, name: str, content: bytes, content_type: str = "text/plain",
                    **extra) -> dict:
    upload = await node.upload(token, name, content, content_type)
    return await node.client(token, "POST", MESSAGES, {"body": f"see {name}", "attachments": [upload["id"]],
                                                       **extra}, expect=201)


async def test_a_file_crosses_to_every_member_checked_and_goes_with_its_message(three):
    acme, globex, initech = three
    tokens = await incident(three)
    posted = await post_file(globex, tokens[GLOBEX], "runbook.txt", RUNBOOK,
                             data={"ticket": "OPS-7", "steps": 3})
    assert posted["attachments"] == [{"position": 0, "name": "runbook.txt", "content_type": "text/plain",
                                      "size": len(RUNBOOK), "sha256": digest(RUNBOOK)}]
    assert posted["data"] == {"ticket": "OPS-7", "steps": 3}

    seen = await eventually(lambda: message(initech, tokens[INITECH], posted["id"]))
    assert seen["attachments"] == posted["attachments"] and seen["data"] == posted["data"]
    assert await files_held(initech) == []  # nothing crosses until someone asks

    path = f"{MESSAGES}/{posted['id']}/files/0"
    status, headers, body = await initech.download(tokens[INITECH], path)
    assert (status, body) == (200, RUNBOOK)
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"].startswith("sandbox")
    assert headers["Content-Disposition"] == "attachment; filename*=UTF-8''runbook.txt"
    # Initech never peered with Globex: the host fetched a copy, checked it, and passed it on.
    assert await files_held(acme) == [(posted["id"], 0, True)]
    assert await files_held(initech) == [(posted["id"], 0, True)]
    assert (await acme.download(tokens[ACME], path))[2] == RUNBOOK

    await globex.client(tokens[GLOBEX], "DELETE", f"{MESSAGES}/{posted['id']}")
    for node in three:
        async def gone(node: ClusterNode = node) -> bool:
            status, _, body = await node.download(tokens[node.server], path)
            return status == 410 and b"deleted" in body
        await eventually(gone)
        assert [held for (_, _, held) in await files_held(node)] == [False]  # the row says it was; no bytes
    tombstone = await message(initech, tokens[INITECH], posted["id"])
    assert tombstone["deleted"] and tombstone["attachments"] == [] and tombstone["data"] is None


async def test_partner_policy_keeps_files_out_in_both_directions(three):
    acme, globex, initech = three
    tokens = await incident(three)

    # As host: Acme takes no files from Globex; the post is refused before it is sequenced.
    await acme.admin("PUT", f"/v1/policy/partners/{GLOBEX}", {"files": False})
    refused = await post_file(globex, tokens[GLOBEX], "plan.txt", b"the plan")

    async def host_refused() -> str | None:
        audit = (await globex.admin("GET", f"/v1/audit?action=delivery.refused&partner={ACME}"))["items"]
        return next((e["detail"]["error"] for e in audit if e["detail"]["event"] == refused["id"]), None)

    assert "files_not_allowed" in await eventually(host_refused)
    assert await message(initech, tokens[INITECH], refused["id"]) is None
    await acme.admin("DELETE", f"/v1/policy/partners/{GLOBEX}")

    # As member: Initech takes Globex's files only up to 10 bytes, and only text.
    await initech.admin("PUT", f"/v1/policy/partners/{GLOBEX}", {"max_file_bytes": 10})
    small = await post_file(globex, tokens[GLOBEX], "ok.txt", b"0123456789")
    large = await post_file(globex, tokens[GLOBEX], "big.txt", b"0123456789A")
    await eventually(lambda: message(initech, tokens[INITECH], large["id"]))
    assert (await initech.download(tokens[INITECH], f"{MESSAGES}/{small['id']}/files/0"))[2] == b"0123456789"
    status, _, body = await initech.download(tokens[INITECH], f"{MESSAGES}/{large['id']}/files/0")
    assert status == 403 and b"file_too_large" in body
    await initech.admin("PUT", f"/v1/policy/partners/{GLOBEX}", {"file_types": ["text/*"]})
    image = await post_file(globex, tokens[GLOBEX], "shot.png", b"\x89PNG\r\n\x1a\n", "image/png")
    await eventually(lambda: message(initech, tokens[INITECH], image["id"]))
    status, _, body = await initech.download(tokens[INITECH], f"{MESSAGES}/{image['id']}/files/0")
    assert status == 403 and b"file_type_not_allowed" in body
    assert all(event == small["id"] for (event, _, _) in await files_held(initech))  # nothing refused was kept

    # As author: Globex serves its files to nobody at Acme; Acme's people cannot get them.
    await globex.admin("PUT", f"/v1/policy/partners/{ACME}", {"files": False})
    status, _, body = await acme.download(tokens[ACME], f"{MESSAGES}/{image['id']}/files/0")
    assert status == 403 and b"file_refused" in body and b"does not exchange files with acme.example" in body
    assert all(event != image["id"] for (event, _, _) in await files_held(acme))


async def test_the_outbound_guard_reads_a_file_before_it_is_signed(three):
    acme, globex, _ = three
    tokens = await incident(three)
    secret = b"deploy with AKIAIOSFODNN7EXAMPLE and wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    upload = await globex.upload(tokens[GLOBEX], "notes.txt", secret, "application/octet-stream")
    head = (await acme.admin("GET", f"/v1/networks/{NETWORK}"))["head_seq"]
    refused = await globex.client(tokens[GLOBEX], "POST", MESSAGES, {"body": "notes", "attachments": [upload["id"]]},
                                  expect=403)
    assert refused["error"]["code"] == "outbound_blocked" and "AKIA" not in str(refused)
    await globex.admin("PUT", "/v1/policy/guard", {"terms": ["Project Falcon"], "terms_action": "redact"})
    upload = await globex.upload(tokens[GLOBEX], "brief.md", b"# Project Falcon\nlaunch in May\n", "text/markdown")
    refused = await globex.client(tokens[GLOBEX], "POST", MESSAGES, {"body": "brief", "attachments": [upload["id"]]},
                                  expect=403)
    assert "cannot be redacted" in refused["error"]["message"]
    assert (await acme.admin("GET", f"/v1/networks/{NETWORK}"))["head_seq"] == head  # nothing reached the host
    blocked = (await globex.admin("GET", "/v1/audit?action=guard.blocked"))["items"]
    assert len(blocked) == 2 and all(e["detail"]["field"] == "file" for e in blocked)


async def test_uploads_are_the_uploader_s_and_bad_ones_are_refused(three):
    acme, globex, _ = three
    tokens = await incident(three)
    other = await globex.create("agent", "other", "Other")
    upload = await globex.upload(tokens[GLOBEX], "a.txt", b"a")
    # Another participant of the same company cannot post someone else's upload.
    await globex.admin("POST", f"/v1/networks/{NETWORK}/participants", {"participant": "agent:other"})
    await eventually(lambda: _attached(acme, f"agent:other@{GLOBEX}"))
    await globex.admin("POST", f"/v1/networks/{NETWORK}/threads", {
        "name": "side", "title": "Side", "participants": [f"agent:other@{GLOBEX}", f"agent:oncall@{GLOBEX}"]},
        expect=201)
    await eventually(lambda: globex.client(other, "GET", f"/v1/networks/{NETWORK}/threads/side/messages"))
    answer = await globex.client(other, "POST", f"/v1/networks/{NETWORK}/threads/side/messages",
                                 {"body": "x", "attachments": [upload["id"]]}, expect=404)
    assert "no upload" in answer["error"]["message"]
    for name, data, content_type, field in (("../a.txt", b"a", "text/plain", "name"),
                                            ("a.txt", b"a", "Text/Plain Bad", "Content-Type"),
                                            ("a.txt", b"", "text/plain", "body")):
        bad = await globex.upload(tokens[GLOBEX], name, data, content_type, expect=422)
        assert bad["error"]["fields"][0]["field"] == field
    too_big = await globex.upload(tokens[GLOBEX], "big.bin", b"x" * (25 * 1024 * 1024 + 1), "application/zip",
                                  expect=413)
    assert too_big["error"]["code"] == "file_too_large"
    posted = await globex.client(tokens[GLOBEX], "POST", MESSAGES, {"body": "a", "attachments": [upload["id"]]},
                                 expect=201)
    again = await globex.client(tokens[GLOBEX], "POST", MESSAGES, {"body": "a", "attachments": [upload["id"]]},
                                expect=409)
    assert posted["id"] in again["error"]["message"]
    assert len(await files_held(globex)) == 1
    # One token cannot make the node keep files without posting them: 32 may wait, not more.
    spare = await globex.create("agent", "spare", "Spare")
    for i in range(32):
        await globex.upload(spare, f"f{i}.txt", b"x")
        await asyncio.sleep(0.05)  # under the token's post rate (10 a second, bursts of 30)
    full = await globex.upload(spare, "one-more.txt", b"x", expect=409)
    assert "32 uploads of yours wait" in full["error"]["message"]
    assert len(await files_held(globex)) == 33


async def _attached(node: ClusterNode, participant: str) -> bool:
    network = await node.admin("GET", f"/v1/networks/{NETWORK}")
    return any(p["id"] == participant and p["attached"] for p in network["participants"])


async def test_a_host_that_swaps_a_file_is_caught_and_nothing_is_kept(three):
    acme, globex, initech = three
    tokens = await incident(three)
    posted = await post_file(globex, tokens[GLOBEX], "runbook.txt", RUNBOOK)
    path = f"{MESSAGES}/{posted['id']}/files/0"
    await eventually(lambda: message(initech, tokens[INITECH], posted["id"]))
    assert (await acme.download(tokens[ACME], path))[2] == RUNBOOK  # the host holds a checked copy
    async with acme.storage.engine.begin() as conn:  # the host's copy is altered (a hostile host)
        await conn.execute(update(shared_files).values(data=RUNBOOK.replace(b"10 minutes", b"0 minutes!")))
    status, _, body = await initech.download(tokens[INITECH], path)
    assert status == 503 and b"file_unavailable" in body and b"not the one signed" in body
    assert await files_held(initech) == []
    (entry,) = (await initech.admin("GET", "/v1/audit?action=file.mismatch"))["items"]
    assert entry["partner"] == ACME and entry["target"] == posted["id"]
    async with initech.storage.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(shared_files)) == 0

