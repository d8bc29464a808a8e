"""The rogue as the host of a network of its own, with Acme and Globex as members.

Issue 12, finding 1: a host vouched for a key of its own for a company it never invited, and
its members then trusted that key for that company everywhere (requests, other networks, host
signatures). Finding 2: the event they could not verify stopped the network for good, with a
retry loop. Finding 4: a document relayed by the host for another company was trusted.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from federation.keys import SigningKey
from storage.network.tables import peer_keys
from tests.cluster import eventually
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD
from tests.rogue.conftest import (
    World,
    event_count,
    head,
    head_is,
    join_rogue_network,
    nonces_of,
    stored,
    vouched_for,
)
from tests.rogue.peer import RogueNetwork, event_id, hand_signed, now_ms

DEAL = "rogue-deal"


async def metrics(node) -> str:
    async with node.http.get(f"http://127.0.0.1:{node.ports['admin']}/metrics",
                             headers={"Authorization": f"Bearer {node.admin_token}"}) as resp:
        return await resp.text()


async def _halt(node, network: str) -> dict | None:
    return (await node.admin("GET", f"/v1/networks/{network}"))["halted"]


async def _alerts(node, kind: str) -> list[dict]:
    return [a for a in (await node.admin("GET", "/v1/alerts"))["items"] if a["kind"] == kind]


async def test_a_host_cannot_vouch_for_a_key_the_company_itself_does_not_publish(world: World):
    """The critical finding, Acme's side: the rogue admits globex.example (never invited) with
    a key of its own. Acme knows Globex's real key, refuses the admission, stops following the
    rogue's network, and shows its operator both fingerprints."""
    deal = world.rogue.host(DEAL)
    await join_rogue_network(world.rogue, world.acme, deal)
    before_events, before_head = await event_count(world.acme), await head(world.acme, DEAL)
    fake = SigningKey.generate()
    forged = deal.admit(GLOBEX, fake.verify_key, endpoint=world.rogue.endpoint)

    answer = await world.rogue.put_events(world.acme, [forged])

    (result,) = answer.json["results"]
    assert (answer.status, result["status"], result["code"]) == (200, 403, "key_conflict"), result
    assert not await stored(world.acme, event_id(forged))
    assert (await event_count(world.acme), await head(world.acme, DEAL)) == (before_events, before_head)
    assert await vouched_for(world.acme, GLOBEX) == []  # nothing pinned, in any scope
    halt = await _halt(world.acme, DEAL)
    assert (halt["seq"], halt["event_id"], halt["code"]) == (before_head + 1, event_id(forged), "key_conflict")
    (alert,) = await _alerts(world.acme, "key_conflict")
    real = world.globex.key.verify_key.fingerprint
    assert (alert["network"], alert["server"]) == (DEAL, GLOBEX)
    assert alert["detail"]["vouched"] == fake.verify_key.fingerprint and alert["detail"]["published"] == [real]
    assert fake.verify_key.fingerprint in alert["message"] and real in alert["message"]
    assert f'agentnet_network_halted{{network="{DEAL}",seq="{before_head + 1}"}} 1.0' in await metrics(world.acme)
    # Acme's own network with the real Globex is untouched.
    assert await _halt(world.acme, NETWORK) is None


async def test_a_key_a_host_vouched_for_never_authenticates_a_request(world: World):
    """Signed as Globex with the rogue's key, the rogue reads and writes nothing at Acme."""
    deal = world.rogue.host(DEAL)
    await join_rogue_network(world.rogue, world.acme, deal)
    fake = SigningKey.generate()
    await world.rogue.put_events(world.acme, [deal.admit(GLOBEX, fake.verify_key)])
    nonces, events = await nonces_of(world.acme, GLOBEX), await event_count(world.acme)

    read = await world.rogue.send(world.acme, "GET", f"/networks/{NETWORK}/events?after=0", as_server=GLOBEX,
                                  key=fake)
    message = world.rogue.submission(NETWORK, "message.posted", {"body": "Please pay invoice 42 to IBAN XX"},
                                     sender=f"agent:delivery@{GLOBEX}", thread=THREAD, key=fake)
    write = await world.rogue.put_events(world.acme, [message], as_server=GLOBEX, key=fake)

    assert (read.status, read.code) == (401, "unknown_key")
    assert (write.status, write.code) == (401, "unknown_key")
    assert not await stored(world.acme, event_id(message))
    assert (await nonces_of(world.acme, GLOBEX), await event_count(world.acme)) == (nonces, events)


async def test_a_host_cannot_place_events_of_a_network_it_does_not_host(world: World):
    """The mirror attack, Globex's side: the rogue vouches for a key of its own for Acme in its
    network, then tries to get an acme-rollout event "from" Acme, host-signed with that key,
    into Globex's copy: relayed as itself, or signed as Acme."""
    deal = world.rogue.host(DEAL)
    await join_rogue_network(world.rogue, world.globex, deal)
    fake = SigningKey.generate()
    answer = await world.rogue.put_events(world.globex, [deal.admit(ACME, fake.verify_key)])
    assert answer.json["results"][0]["code"] == "key_conflict"

    async with world.globex.storage.network_transaction() as tx:
        rollout = await tx.networks.get(NETWORK)
    signed = hand_signed({"type": "message.posted", "network": NETWORK, "thread": THREAD,
                          "sender": f"agent:ops@{ACME}", "origin": ACME, "origin_ts": now_ms(),
                          "content": {"body": "Acme approves the wire transfer"}}, fake)
    forged_chain = RogueNetwork(NETWORK, world.rogue, link=rollout.head_hash, host_key=fake)
    forged_chain.events = [{}] * rollout.head_seq  # place it right after Globex's head
    forged = forged_chain.sequence(signed, host=ACME)

    relayed = await world.rogue.put_events(world.globex, [forged])
    as_acme = await world.rogue.put_events(world.globex, [forged], as_server=ACME, key=fake)

    (result,) = relayed.json["results"]
    assert (result["status"], result["code"], result.get("reason")) == (403, "forbidden", "wrong_relay")
    assert (as_acme.status, as_acme.code) == (401, "unknown_key")
    assert not await stored(world.globex, event_id(forged))
    assert await head_is(world.globex, NETWORK, rollout.head_seq)
    assert await _halt(world.globex, NETWORK) is None  # a non-host cannot halt Globex's copy


async def test_a_halted_network_refuses_pushes_resumes_when_fixed_and_can_be_left(world: World):
    """Finding 2: the refused event halts the network here, with its reason; the host's later
    pushes are answered network_halted, not retried in a loop; once the host serves an event
    this node can accept at that place, `resume` picks the network up again; and leaving
    works while it is halted."""
    deal = world.rogue.host(DEAL)
    await join_rogue_network(world.rogue, world.acme, deal)
    fake = SigningKey.generate()
    good_head = len(deal.events)
    forged = deal.admit(GLOBEX, fake.verify_key)
    await world.rogue.put_events(world.acme, [forged])
    later = deal.authored("participant.attached", {"participant": f"agent:mole@{world.rogue.server}",
                                                   "display_name": "Mole"},
                          key=world.rogue.key, sender=f"operator:admin@{world.rogue.server}")
    answer = await world.rogue.put_events(world.acme, [later])
    assert answer.json["results"][0]["code"] == "network_halted"

    # An operator's resume with the cause unchanged: tried at once, halted again, one more try.
    tries = (await _halt(world.acme, DEAL))["tries"]
    await world.acme.admin("POST", f"/v1/networks/{DEAL}/resume")
    await eventually(lambda: _tries_above(world.acme, tries))
    assert await head(world.acme, DEAL) == good_head
    pages = sum(1 for method, tail, _ in world.rogue.received if tail.startswith(f"networks/{DEAL}/events"))

    # The host fixes its chain (a genuine event at that place): resume picks it up.
    deal.truncate(good_head)
    deal.authored("participant.attached", {"participant": f"agent:mole@{world.rogue.server}",
                                           "display_name": "Mole"},
                  key=world.rogue.key, sender=f"operator:admin@{world.rogue.server}")
    await world.acme.admin("POST", f"/v1/networks/{DEAL}/resume")
    await eventually(lambda: head_is(world.acme, DEAL, good_head + 1))
    assert await _halt(world.acme, DEAL) is None
    assert sum(1 for method, tail, _ in world.rogue.received if tail.startswith(f"networks/{DEAL}/events")) \
        <= pages + 3  # a resume is one catch-up, not a loop

    # Halt it again, then leave: the way out that needs nothing from the host.
    await world.rogue.put_events(world.acme, [deal.admit(GLOBEX, fake.verify_key)])
    assert (await _halt(world.acme, DEAL))["code"] == "key_conflict"
    left = await world.acme.admin("POST", f"/v1/networks/{DEAL}/leave")
    assert left["pending_events"] == 1


async def _tries_above(node, tries: int) -> bool:
    halt = await _halt(node, DEAL)
    return halt is not None and halt["tries"] > tries


async def test_resuming_a_network_that_is_not_halted_is_refused(world: World):
    answer = await world.acme.admin("POST", f"/v1/networks/{NETWORK}/resume", expect=409)
    assert answer["error"]["code"] == "conflict" and "not halted" in answer["error"]["message"]


async def test_a_document_the_host_relays_is_trusted_only_as_far_as_its_signer(world: World):
    """Finding 4: the rogue relays, for Acme (a company Globex knows itself), a document signed
    with a key the rogue made, revoking Acme's real key. Globex asks Acme itself first, then
    checks the relayed document against the keys Acme gave it: refused, nothing revoked."""
    deal = world.rogue.host(DEAL)
    await join_rogue_network(world.rogue, world.globex, deal)
    fake = SigningKey.generate()
    world.rogue.relay[ACME] = world.rogue.own_document(key=fake, server=ACME)
    # An event "from" Acme in the rogue's network, signed with the fake key: Globex looks for
    # that key, first at Acme, then at the rogue's relay.
    deal.authored("message.posted", {"body": "from acme?"}, key=fake, sender=f"agent:ops@{ACME}", thread="t")
    answer = await world.rogue.put_events(world.globex, [deal.events[-1]])

    (result,) = answer.json["results"]
    assert (result["status"], result["code"]) == (401, "unknown_key")
    async with world.globex.storage.engine.connect() as conn:
        keys = (await conn.execute(select(peer_keys.c.key_id, peer_keys.c.revoked_at)
                                   .where(peer_keys.c.server == ACME))).all()
    assert [(k, r) for k, r in keys] == [(world.acme.key.key_id, None)]
    assert ("GET", f"servers/{ACME}/keys", b"") in world.rogue.received  # it did ask the relay
    assert await vouched_for(world.globex, ACME) == []


@pytest.mark.parametrize("origin_ts", [1, 2**53 - 1])
async def test_a_member_refuses_an_event_dated_outside_the_window_of_the_host_time(world: World, origin_ts: int):
    """Finding 5, host side of the rule: the rogue sequences an event whose origin_ts is absurd
    against its own host time; a member replaying the rules refuses it (and halts)."""
    deal = world.rogue.host(DEAL)
    await join_rogue_network(world.rogue, world.acme, deal)
    wire = deal.authored("participant.attached", {"participant": f"agent:mole@{world.rogue.server}",
                                                  "display_name": "Mole"},
                         key=world.rogue.key, sender=f"operator:admin@{world.rogue.server}", ts=origin_ts)
    answer = await world.rogue.put_events(world.acme, [wire])
    (result,) = answer.json["results"]
    assert (result["status"], result["code"], result["reason"]) == (403, "forbidden", "origin_ts_out_of_range")
    assert not await stored(world.acme, event_id(wire))


async def test_the_operator_cli_shows_the_halt_the_alert_and_resumes(world: World, capsys):
    """The same halt, through `agentnet`: `network show` says where and why and what to do,
    `network list` marks it, `alerts` names both fingerprints, `network resume` tries again."""
    from tests.node.ops.test_admin_commands import Cli
    cli = Cli(capsys)
    deal = world.rogue.host(DEAL)
    await join_rogue_network(world.rogue, world.acme, deal)
    fake = SigningKey.generate()
    await world.rogue.put_events(world.acme, [deal.admit(GLOBEX, fake.verify_key)])

    shown = await cli.admin(world.acme, "network", "show", DEAL)
    assert "HALTED at seq:" in shown and "key_conflict" in shown and f"agentnet network resume {DEAL}" in shown
    listed = await cli.admin(world.acme, "network", "list")
    assert any(line.startswith(DEAL) and " halted " in line for line in listed.splitlines())
    alerts = await cli.admin(world.acme, "alerts")
    assert "key_conflict" in alerts and fake.verify_key.fingerprint in alerts
    assert world.globex.key.verify_key.fingerprint in alerts
    tries = (await _halt(world.acme, DEAL))["tries"]
    assert f"Trying {DEAL} again now" in await cli.admin(world.acme, "network", "resume", DEAL)
    await eventually(lambda: _tries_above(world.acme, tries))
    refused = await cli.admin(world.acme, "network", "resume", NETWORK, expect=1)
    assert refused == ""


async def test_a_host_whose_invite_misstates_the_history_rule_is_not_followed(world: World):
    """The invite said earlier history is visible to members who join later (the default, as
    the rogue sends it); the chain's network.created says hidden. Acme refuses the first event
    and stops following the network, so it never takes stubs it was promised it would not get."""
    deal = world.rogue.host(DEAL, history_visible=False)
    invite_id = await world.rogue.invite(world.acme, deal)
    shown = next(i for i in (await world.acme.admin("GET", "/v1/invites"))["items"] if i["id"] == invite_id)
    assert shown["history_visible"] is True  # what the operator was shown before accepting
    await world.acme.admin("POST", f"/v1/invites/{invite_id}/accept")
    answer = await world.rogue.put_events(world.acme, deal.events[:1])
    (result,) = answer.json["results"]
    assert (result["status"], result["reason"]) == (403, "invite_mismatch"), result
    assert await head(world.acme, DEAL) == 0
    assert (await _halt(world.acme, DEAL))["code"] == "forbidden"
