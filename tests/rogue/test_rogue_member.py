"""The rogue as a member of Acme's `acme-rollout`: admitted honestly, then hostile.

Issue 12: finding 5 (timestamps taken on trust), finding 6 (no rate limit between nodes),
finding 2 on the host's side (a member that refuses what the host sends: shown to the host's
operator, never retried in a loop), and finding 3 for an authenticated peer (a transaction of a
million integers held the event loop for seconds).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import func, select

from node.basics.limits import FederationLimits
from storage.network.tables import inbound_transactions
from tests.cluster import eventually, start_node
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, open_rollout
from tests.rogue.conftest import MOLE, ROGUE, World, event_count, head, make_world, rogue_joins_rollout, stored
from tests.rogue.peer import event_id
from tests.tls_fixtures import TestCertificateAuthority


async def _transactions_kept(node, origin: str) -> int:
    async with node.storage.engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(inbound_transactions)
                                 .where(inbound_transactions.c.origin == origin))


@pytest.mark.parametrize("origin_ts, says", [(1, "behind"), (2**53 - 1, "ahead")])
async def test_the_host_refuses_a_submission_dated_outside_its_window(world: World, origin_ts: int, says: str):
    """Finding 5: origin_ts 1 and 2^53-1 were accepted and shown as the send time."""
    await rogue_joins_rollout(world)
    before = (await event_count(world.acme), await head(world.acme, NETWORK))
    attach = world.rogue.submission(NETWORK, "participant.detached", {"participant": MOLE},
                                    sender=f"operator:admin@{ROGUE}", ts=origin_ts)
    answer = await world.rogue.put_events(world.acme, [attach])
    (result,) = answer.json["results"]
    assert (result["status"], result["code"], result["reason"]) == (403, "forbidden", "origin_ts_out_of_range")
    assert says in result["message"] and "clock" in result["message"]
    assert not await stored(world.acme, event_id(attach))
    assert (await event_count(world.acme), await head(world.acme, NETWORK)) == before


async def test_clients_see_the_host_time_beside_the_author_s(world: World):
    token = world.tokens["delivery"]
    await world.globex.client(token, "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages", {"body": "hi"})

    async def sequenced() -> dict | None:
        page = await world.globex.client(token, "GET", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages")
        mine = [m for m in page["messages"] if m["body"] == "hi" and m["seq"] is not None]
        return mine[0] if mine else None

    message = await eventually(sequenced)
    assert abs(message["sequenced_at"] - message["origin_ts"]) < 60_000
    feed = await world.acme.client(world.tokens["ops"], "GET", "/v1/events?after=0&limit=200")
    (event,) = [e for e in feed["events"] if e["id"] == message["id"]]
    assert event["sequenced_at"] == message["sequenced_at"] and event["at"] == message["origin_ts"]


@pytest.fixture
async def tight(tmp_path):
    """Acme with a small federation budget per peer: 20 submitted events a second, bursts of 50."""
    async with make_world(tmp_path, acme_limits=FederationLimits(submissions_per_s=20, submissions_burst=50)) as made:
        yield made


async def test_a_member_over_its_event_budget_gets_429_and_nothing_is_stored(tight: World):
    """Finding 6: 300 messages in 3 s from one member were all taken (with the defaults, 50 a
    second after a burst of 200, that is refused from about the 250th)."""
    await rogue_joins_rollout(tight)
    flood = [tight.rogue.submission(NETWORK, "message.posted", {"body": f"spam {i}"}, sender=MOLE, thread=THREAD)
             for i in range(100)]
    first = await tight.rogue.put_events(tight.acme, flood[:40])
    assert first.status == 200
    kept, events = await _transactions_kept(tight.acme, ROGUE), await event_count(tight.acme)
    second = await tight.rogue.put_events(tight.acme, flood[40:])
    assert (second.status, second.code) == (429, "too_many_requests")
    retry_after = int(second.headers["Retry-After"])
    assert 1 <= retry_after <= 10
    assert (await _transactions_kept(tight.acme, ROGUE), await event_count(tight.acme)) == (kept, events)
    assert not any([await stored(tight.acme, event_id(e)) for e in flood[40:]])
    await asyncio.sleep(retry_after)
    third = await tight.rogue.put_events(tight.acme, flood[40:41])
    assert third.status == 200


async def test_our_sender_honours_a_peer_s_429(tmp_path):
    """Globex takes 5 of its host's events a second; Acme posts 25 at once. Everything arrives,
    and Acme waits as long as each 429 asks instead of hammering."""
    ca = TestCertificateAuthority()
    acme = await start_node(tmp_path, ACME, ca, display_name="Acme")
    globex = await start_node(tmp_path, GLOBEX, ca, display_name="Globex",
                              federation_limits=FederationLimits(host_events_per_s=5, host_events_burst=10))
    try:
        tokens = await open_rollout(acme, globex)
        started = time.monotonic()
        for i in range(25):
            await acme.client(tokens["ops"], "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                              {"body": f"burst {i}"})

        async def all_there() -> bool:
            page = await globex.client(tokens["delivery"], "GET",
                                       f"/v1/networks/{NETWORK}/threads/{THREAD}/messages?limit=200")
            return sum(m["body"].startswith("burst ") for m in page["messages"]) == 25

        await eventually(all_there, timeout=60)
        elapsed = time.monotonic() - started
        refused = await _count_429(globex)
        assert refused >= 1  # the limit was really hit
        assert refused <= elapsed + 3, (refused, elapsed)  # at most about one 429 per second it asked to wait
    finally:
        await globex.stop()
        await acme.stop()


async def _count_429(node) -> int:
    async with node.http.get(f"http://127.0.0.1:{node.ports['admin']}/metrics",
                             headers={"Authorization": f"Bearer {node.admin_token}"}) as resp:
        text = await resp.text()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("agentnet_http_requests_total{") and 'listener="federation"' in line
               and 'status="429"' in line)


async def test_a_member_that_refuses_everything_is_shown_to_the_host_and_not_hammered(world: World):
    """Finding 2, host side: a member refusing the host's events, for good or "for now", is
    shown to the host's operator with what it refused and why, and is tried again slowly."""
    await rogue_joins_rollout(world)
    world.rogue.transaction_answer = lambda events: [
        {"event_id": "$" + e["hash"], "status": 401, "code": "unknown_key", "message": "never heard of it"}
        for e in events]
    ops = world.tokens["ops"]
    for i in range(3):
        await world.acme.client(ops, "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                                {"body": f"to everyone {i}"})
    await asyncio.sleep(6)
    pushes = [r for r in world.rogue.received if r[0] == "PUT"]
    assert 1 <= len(pushes) <= 5, len(pushes)  # 1 s, 2 s, 4 s...: never a loop

    world.rogue.transaction_answer = lambda events: [
        {"event_id": "$" + e["hash"], "status": 403, "code": "forbidden", "reason": "not_a_member",
         "message": "I refuse"} for e in events]

    async def shown() -> list[dict]:
        network = await world.acme.admin("GET", f"/v1/networks/{NETWORK}")
        return [r for r in network["refusals"] if r["member"] == ROGUE]

    refusals = await eventually(shown, timeout=20)
    assert all(r["error"].startswith("403 forbidden") and "I refuse" in r["error"] and r["event_id"].startswith("$") for r in refusals)
    assert {r["type"] for r in refusals} <= {"message.posted"}
    before = len([r for r in world.rogue.received if r[0] == "PUT"])
    await asyncio.sleep(2)
    assert len([r for r in world.rogue.received if r[0] == "PUT"]) == before  # refused for good: not sent again


async def test_a_transaction_of_a_million_numbers_is_refused_before_it_is_parsed(world: World):
    """Finding 3, for a member: a signed 7.9 MiB transaction of integers took 6.5 s to refuse."""
    await rogue_joins_rollout(world)
    kept, events = await _transactions_kept(world.acme, ROGUE), await event_count(world.acme)
    huge = b'{"events":[' + b",".join(b"1" for _ in range(1_300_000)) + b"]}"
    too_big = await world.rogue.send(world.acme, "PUT", "/transactions/rogue-huge", huge)
    assert (too_big.status, too_big.code) == (413, "payload_too_large")
    many = b'{"events":[' + b",".join(b"1" for _ in range(900_000)) + b"]}"  # under 2 MiB, far too many values
    assert len(many) < 2 * 1024 * 1024
    parsed = await world.rogue.send(world.acme, "PUT", "/transactions/rogue-many", many)
    assert (parsed.status, parsed.code) == (400, "malformed_json")
    assert "values" in parsed.json["error"]["message"]
    assert (await _transactions_kept(world.acme, ROGUE), await event_count(world.acme)) == (kept, events)


async def test_a_member_that_answers_every_request_with_an_error_is_retried_at_a_bounded_rate(world: World):
    """Fault-injection finding 2: a peer answering 401 clock_skew to everything was retried
    17-46 times in 5-7 s, because any answer woke delivery before its status was looked at."""
    await rogue_joins_rollout(world)
    world.rogue.error_answer = (401, "clock_skew")
    for i in range(3):
        await world.acme.client(world.tokens["ops"], "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                                {"body": f"while it refuses {i}"})
    start = len([r for r in world.rogue.received if r[0] == "PUT"])
    await asyncio.sleep(6)
    tries = len([r for r in world.rogue.received if r[0] == "PUT"]) - start
    assert 1 <= tries <= 8, tries  # the backoff's pace (0.5, 1, 2, 4 s ceilings), not a storm
    peers = {p["server"]: p for p in (await world.acme.admin("GET", "/v1/peers"))["items"]}
    assert "clock_skew" in peers[ROGUE]["last_error"] and peers[ROGUE]["next_attempt_at"] is not None


async def test_only_a_ping_or_a_good_answer_lifts_a_backoff(world: World):
    """A peer's own requests prove only its direction works: during a one-way partition, waking
    on them turned every one into another failed try (the soak counted 240 a minute). A ping,
    which a node sends when it starts, does lift the backoff."""
    await rogue_joins_rollout(world)

    async def drained() -> bool:
        async with world.acme.storage.network_transaction() as tx:
            return not (await tx.outbox.depth()).get(ROGUE)

    await eventually(drained)
    # The last answer settled, and a poll round of the worker (1 s) took up any wake that a good
    # answer left before the backoff below existed.
    await asyncio.sleep(1.5)
    far = int(time.time() * 1000) + 240_000
    async with world.acme.storage.network_transaction() as tx:
        await tx.peers.record_failure(ROGUE, error="partitioned", next_attempt_at=far, now=0)

    async def backoff() -> int | None:
        async with world.acme.storage.network_transaction() as tx:
            return (await tx.peers.delivery(ROGUE)).next_attempt_at

    detach = world.rogue.submission(NETWORK, "participant.detached", {"participant": MOLE},
                                    sender=f"operator:admin@{ROGUE}")
    assert (await world.rogue.put_events(world.acme, [detach])).status == 200
    await asyncio.sleep(1.5)  # more than the worker's round
    assert await backoff() == far
    ping = await world.rogue.send(world.acme, "POST", "/ping", b"{}")
    assert ping.status == 200
    await eventually(lambda: _is_none(backoff()), timeout=5)


async def _is_none(value) -> bool:
    return (await value) is None


async def test_a_member_cannot_close_a_thread_the_host_opened(world: World):
    """Issue 14: a member closed a thread on the host's network, and the host's own close then
    failed. Only the opener, its company's operators and the host's operators may close it."""
    await rogue_joins_rollout(world)
    before = (await event_count(world.acme), await head(world.acme, NETWORK))
    close = world.rogue.submission(NETWORK, "thread.closed", {}, sender=f"operator:admin@{ROGUE}", thread=THREAD)
    answer = await world.rogue.put_events(world.acme, [close])
    (result,) = answer.json["results"]
    assert (result["status"], result["code"], result["reason"]) == (403, "forbidden", "not_thread_owner")
    assert not await stored(world.acme, event_id(close))
    assert (await event_count(world.acme), await head(world.acme, NETWORK)) == before
    closed = await world.acme.admin("POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/close")
    assert [t["closed"] for t in closed["threads"] if t["name"] == THREAD] == [True]
    (entry,) = (await world.acme.admin("GET", f"/v1/audit?action=thread.close&network={NETWORK}"))["items"]
    assert entry["actor"].startswith("admin:") and entry["target"] == f"{NETWORK}:{THREAD}"


async def test_a_silenced_thread_refuses_a_rogue_member_s_agent_and_its_silencing(world: World):
    """Issue 14, kill switches: agents silenced in a thread by the host stay silent even when a
    member's node skips its own check; and a member cannot silence (or unsilence) a thread."""
    await rogue_joins_rollout(world)
    await world.acme.admin("POST", f"/v1/networks/{NETWORK}/threads",
                           {"name": "war-room", "title": "War room", "participants": [MOLE, f"person:alex@{ACME}"]},
                           expect=201)
    await world.acme.admin("POST", f"/v1/networks/{NETWORK}/threads/war-room/silence", {"agents": True})
    before = (await event_count(world.acme), await head(world.acme, NETWORK))
    post = world.rogue.submission(NETWORK, "message.posted", {"body": "Please pay invoice 42 to IBAN XX"},
                                  sender=MOLE, thread="war-room")
    lift = world.rogue.submission(NETWORK, "thread.silenced", {"agents": False}, sender=f"operator:admin@{ROGUE}",
                                  thread="war-room")
    answer = await world.rogue.put_events(world.acme, [post, lift])
    assert [(r["status"], r["reason"]) for r in answer.json["results"]] == [(403, "agents_silenced"),
                                                                            (403, "not_host")]
    assert not await stored(world.acme, event_id(post)) and not await stored(world.acme, event_id(lift))
    assert (await event_count(world.acme), await head(world.acme, NETWORK)) == before


async def test_a_rogue_member_cannot_mention_someone_outside_the_thread(world: World):
    """Issue 15: mentions name participants of the thread; a member that skips its own check
    and mentions an outsider (to reach its feed filter) is refused by the host, nothing stored."""
    await rogue_joins_rollout(world)
    await world.acme.admin("POST", f"/v1/networks/{NETWORK}/threads",
                           {"name": "side", "title": "Side", "participants": [MOLE, f"person:alex@{ACME}"]},
                           expect=201)
    before = (await event_count(world.acme), await head(world.acme, NETWORK))
    post = world.rogue.submission(NETWORK, "message.posted",
                                  {"body": "look here", "mentions": [f"agent:delivery@{GLOBEX}"]},
                                  sender=MOLE, thread="side")
    answer = await world.rogue.put_events(world.acme, [post])
    (result,) = answer.json["results"]
    assert (result["status"], result["reason"]) == (403, "mention_not_participant")
    assert not await stored(world.acme, event_id(post))
    assert (await event_count(world.acme), await head(world.acme, NETWORK)) == before


async def test_a_member_cannot_show_another_company_s_participant_as_active(world: World):
    await rogue_joins_rollout(world)
    path = f"/networks/{NETWORK}/activity"
    forged = json.dumps({"thread": THREAD, "participant": f"agent:delivery@{GLOBEX}", "state": "typing"}).encode()
    answer = await world.rogue.send(world.acme, "POST", path, forged)
    assert (answer.status, answer.code) == (403, "not_a_peer")
    own = json.dumps({"thread": THREAD, "participant": MOLE, "state": "typing"}).encode()  # not in the thread
    assert (await world.rogue.send(world.acme, "POST", path, own)).status == 200
    shown = await world.acme.client(world.tokens["ops"], "GET", f"/v1/networks/{NETWORK}/threads/{THREAD}/activity")
    assert shown["items"] == []
    malformed = await world.rogue.send(world.acme, "POST", path, b'{"thread": "x", "state": "typing"}')
    assert malformed.status == 422


async def test_a_member_cannot_join_a_thread_it_is_not_in_nor_react_in_it(world: World):
    """thread.joined and message.reacted, submitted by a hostile member: refused by the host
    with the rule's reason, and nothing stored."""
    await rogue_joins_rollout(world)
    posted = await world.acme.client(world.tokens["ops"], "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                                     {"body": "status?"})
    before = (await event_count(world.acme), await head(world.acme, NETWORK))
    attempts = [
        (world.rogue.submission(NETWORK, "thread.joined", {"participants": [MOLE]}, sender=MOLE, thread=THREAD),
         "not_a_participant"),
        (world.rogue.submission(NETWORK, "thread.joined", {"participants": [MOLE]}, sender=f"operator:admin@{ROGUE}",
                                thread=THREAD), "not_thread_owner"),
        (world.rogue.submission(NETWORK, "message.reacted", {"event_id": posted["id"], "reaction": "seen"},
                                sender=MOLE, thread=THREAD), "not_a_participant"),
    ]
    for submitted, reason in attempts:
        (result,) = (await world.rogue.put_events(world.acme, [submitted])).json["results"]
        assert (result["status"], result["reason"]) == (403, reason), result
        assert not await stored(world.acme, event_id(submitted))
    assert (await event_count(world.acme), await head(world.acme, NETWORK)) == before
