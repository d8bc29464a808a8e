"""Files over the federation route, asked for or served by the rogue: a member gets a file only
while it is a member and the host's policy lets files cross with it; a member that serves bytes
other than the ones it signed is caught, and nothing of them is kept."""

from __future__ import annotations

import hashlib
from base64 import urlsafe_b64encode

from sqlalchemy import func, select

from storage.network.tables import shared_files
from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import ACME, NETWORK, THREAD
from tests.rogue.conftest import MOLE, ROGUE, World, rogue_joins_rollout, stored
from tests.rogue.peer import event_id

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"


def digest(data: bytes) -> str:
    return urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


async def file_rows(node: ClusterNode) -> int:
    async with node.storage.engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(shared_files))


async def test_a_member_gets_a_file_only_while_it_is_one_and_policy_allows(world: World):
    token = world.tokens["delivery"]
    upload = await world.globex.upload(token, "plan.txt", b"go live on Thursday")
    posted = await world.globex.client(token, "POST", MESSAGES, {"body": "plan", "attachments": [upload["id"]]})
    await eventually(lambda: stored(world.acme, posted["id"]))
    await rogue_joins_rollout(world)
    path = f"/networks/{NETWORK}/files/{posted['id']}/0"

    answer = await world.rogue.send(world.acme, "GET", path)
    assert (answer.status, answer.raw) == (200, b"go live on Thursday")
    assert answer.headers["Content-Type"].startswith("text/plain")
    for wrong, status in ((f"/networks/{NETWORK}/files/{posted['id']}/1", 404),
                          (f"/networks/{NETWORK}/files/$" + "A" * 43 + "/0", 404),
                          (f"/networks/nowhere/files/{posted['id']}/0", 404),
                          (f"/networks/{NETWORK}/files/{posted['id']}/x", 422)):
        assert (await world.rogue.send(world.acme, "GET", wrong)).status == status, wrong

    await world.acme.admin("PUT", f"/v1/policy/partners/{ROGUE}", {"files": False})
    refused = await world.rogue.send(world.acme, "GET", path)
    assert (refused.status, refused.json["error"]["reason"]) == (403, "files_not_allowed")
    await world.acme.admin("DELETE", f"/v1/policy/partners/{ROGUE}")

    await world.acme.admin("POST", f"/v1/networks/{NETWORK}/members/{ROGUE}/remove")
    removed = await world.rogue.send(world.acme, "GET", path)
    assert (removed.status, removed.code) == (403, "not_a_peer") and "not a member" in removed.json["error"]["message"]
    assert await file_rows(world.acme) == 1  # the host's checked copy; the rogue's asking stored nothing


async def test_a_member_serving_other_bytes_than_it_signed_is_caught(world: World):
    await rogue_joins_rollout(world)
    ops = f"agent:ops@{ACME}"
    opened = world.rogue.submission(NETWORK, "thread.opened", {"title": "Side deal", "participants": [MOLE, ops]},
                                    sender=MOLE, thread="side")
    signed = b"invoice 42: pay to the usual account"
    posted = world.rogue.submission(NETWORK, "message.posted", {
        "body": "invoice attached", "attachments": [{"name": "invoice.txt", "content_type": "text/plain",
                                                     "size": len(signed), "sha256": digest(signed)}]},
        sender=MOLE, thread="side")
    answer = await world.rogue.put_events(world.acme, [opened, posted])
    assert [r["status"] for r in answer.json["results"]] == [200, 200], answer.raw
    swapped = b"invoice 42: pay to IBAN XX00 0000"  # what it serves instead
    world.rogue.files[f"networks/{NETWORK}/files/{event_id(posted)}/0"] = (swapped.ljust(len(signed)), "text/plain")

    token = world.tokens["ops"]
    path = f"/v1/networks/{NETWORK}/threads/side/messages/{event_id(posted)}/files/0"
    status, _, body = await world.acme.download(token, path)
    assert status == 503 and b"not the one signed" in body and b"SHA-256" in body
    (entry,) = (await world.acme.admin("GET", "/v1/audit?action=file.mismatch"))["items"]
    assert entry["partner"] == ROGUE and entry["target"] == event_id(posted)
    assert await file_rows(world.acme) == 0

    world.rogue.files[f"networks/{NETWORK}/files/{event_id(posted)}/0"] = (signed + b"!", "text/plain")
    status, _, body = await world.acme.download(token, path)
    assert status == 503 and b"over the" in body  # more bytes than signed: not read past the size
    world.rogue.files[f"networks/{NETWORK}/files/{event_id(posted)}/0"] = (signed, "text/html")
    status, _, body = await world.acme.download(token, path)
    assert status == 503 and b"type text/html, signed text/plain" in body
    world.rogue.files[f"networks/{NETWORK}/files/{event_id(posted)}/0"] = (signed, "text/plain")
    status, _, body = await world.acme.download(token, path)
    assert (status, body) == (200, signed)  # the honest bytes, at last, are kept and shown
    assert await file_rows(world.acme) == 1
