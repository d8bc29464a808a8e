"""The rogue as an outsider: a valid certificate and a key of its own, peer of nobody.

Issue 12, finding 3: `POST /invites` (self-certified, so open to anyone) parsed a 7.9 MiB body
of 1.3 million integers for 6.7 s before refusing it. Now nothing but the signature header is
looked at before the origin's standing is known, and what an unknown server may send is small.
(The request-level refusals of the federation protocol itself, for outsiders and members alike,
are `test_receipt.py` in this folder.)
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from federation.canonical_json import encode_canonical
from federation.request_signing import sign_request
from node.federation.peer_client import FEDERATION_PREFIX
from storage.network.tables import network_invites
from tests.rogue.conftest import ROGUE, World, nonces_of
from tests.rogue.peer import now_ms


async def _invites(node) -> int:
    async with node.storage.engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(network_invites))


def _invite_body(**extra) -> dict:
    return {"invite_id": "a" * 32, "network": "deal", "title": "Deal", "host": ROGUE,
            "endpoint": "https://127.0.0.1:1", "expires_at": now_ms() + 3_600_000, **extra}


async def test_a_huge_invite_is_refused_before_it_is_read(world: World):
    body = b'{"invite_id":[' + b",".join(b"1" for _ in range(1_300_000)) + b"]}"
    assert len(body) > 2 * 1024 * 1024
    invites, nonces = await _invites(world.acme), await nonces_of(world.acme, ROGUE)
    answer = await world.rogue.send(world.acme, "POST", "/invites", body)
    assert (answer.status, answer.code) == (413, "payload_too_large")
    assert "65536" in answer.json["error"]["message"]
    assert (await _invites(world.acme), await nonces_of(world.acme, ROGUE)) == (invites, nonces)


async def test_an_invite_body_streamed_without_a_length_is_cut_at_the_cap(world: World):
    invites = await _invites(world.acme)
    body = encode_canonical(_invite_body(title="x" * 60_000, padding="y" * 60_000))
    path = FEDERATION_PREFIX + "/invites"
    headers = {"Content-Type": "application/json",
               "Authorization": sign_request(world.rogue.key, method="POST", path=path, origin=ROGUE,
                                             destination=world.acme.server, body=body, now_ms=now_ms())}

    async def chunks():
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    async with world.rogue.http.post(world.acme.endpoint + path, data=chunks(), headers=headers,
                                     ssl=world.rogue.ssl, server_hostname=world.acme.server) as resp:
        assert resp.status == 413 and (await resp.json())["error"]["code"] == "payload_too_large"
    assert await _invites(world.acme) == invites


async def test_an_invite_of_many_values_is_refused_without_building_them(world: World):
    body = encode_canonical(_invite_body(key={"key_id": "ed25519:AAAAAAAA", "public_key": "A" * 43},
                                         padding=list(range(5000))))
    assert len(body) < 64 * 1024
    invites = await _invites(world.acme)
    answer = await world.rogue.send(world.acme, "POST", "/invites", body)
    assert (answer.status, answer.code) == (400, "malformed_json")
    assert "more than 200 values" in answer.json["error"]["message"]
    assert await _invites(world.acme) == invites


async def test_an_unsigned_request_is_answered_before_its_body_is_read(world: World):
    """The header is checked first: a server that claims 8 MiB and sends them slowly is told
    401 at once, without the node waiting for (or reading) the body."""
    path = FEDERATION_PREFIX + "/transactions/t1"

    async def slow():
        yield b'{"events":['
        await asyncio.sleep(30)
        yield b"]}"

    started = time.monotonic()
    async with world.rogue.http.put(world.acme.endpoint + path, data=slow(),
                                    headers={"Content-Type": "application/json", "Content-Length": str(8 << 20)},
                                    ssl=world.rogue.ssl, server_hostname=world.acme.server) as resp:
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_signature"
    assert time.monotonic() - started < 10


async def test_a_server_that_is_not_a_peer_is_refused_before_its_body_is_read(world: World):
    body = encode_canonical({"events": [{"x": 1}] * 10})
    answer = await world.rogue.send(world.acme, "PUT", "/transactions/t1", body)
    assert (answer.status, answer.code) == (403, "not_a_peer")
    assert await nonces_of(world.acme, ROGUE) == 0
