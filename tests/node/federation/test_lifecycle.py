"""A network's life across three companies over real TLS: invite and accept, attach, talk,
close a thread, a company leaves, the host removes one, the network closes; blocking; and the
host going away while members keep reading and posting."""

from __future__ import annotations

from tests.cluster import ClusterNode, eventually

NETWORK, THREAD = "incident-42", "bridge"
SERVERS = ["acme.example", "globex.example", "initech.example"]


async def _network(node: ClusterNode) -> dict:
    return await node.admin("GET", f"/v1/networks/{NETWORK}")


async def join(host: ClusterNode, member: ClusterNode) -> None:
    invite = await host.admin("POST", f"/v1/networks/{NETWORK}/invites",
                              {"server": member.server, "endpoint": member.endpoint}, expect=201)
    await member.admin("POST", f"/v1/invites/{invite['id']}/accept")

    async def is_member():
        return (await _network(member))["members"].get(member.server) == "member"

    await eventually(is_member)


async def incident(nodes: list[ClusterNode]) -> dict[str, str]:
    """A network on nodes[0] with every node a member, one agent each attached, one thread."""
    host = nodes[0]
    await host.admin("POST", "/v1/networks", {"name": NETWORK, "title": "Incident 42"}, expect=201)
    tokens = {}
    for node in nodes:
        tokens[node.server] = await node.create("agent", "oncall", f"On-call {node.server}")
        if node is not host:
            await join(host, node)
        await node.admin("POST", f"/v1/networks/{NETWORK}/participants", {"participant": "agent:oncall"})

    async def all_attached():
        return sum(p["attached"] for p in (await _network(host))["participants"]) == len(nodes)

    await eventually(all_attached)
    await host.admin("POST", f"/v1/networks/{NETWORK}/threads", {
        "name": THREAD, "title": "Bridge", "participants": [f"agent:oncall@{n.server}" for n in nodes],
    }, expect=201)
    for node in nodes:
        await eventually(lambda node=node: _thread_visible(node, tokens[node.server]))
    return tokens


async def _thread_visible(node: ClusterNode, token: str) -> bool:
    return bool((await node.client(token, "GET", "/v1/shared-threads"))["items"])


async def post(node: ClusterNode, token: str, body: str, *, expect: int = 201) -> dict:
    return await node.client(token, "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages", {"body": body},
                             expect=expect)


async def bodies(node: ClusterNode, token: str) -> list[tuple[int | None, str]]:
    page = await node.client(token, "GET", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages?limit=200")
    return [(m["seq"], m["body"]) for m in page["messages"]]


async def test_three_companies_converge(three):
    tokens = await incident(three)
    for node in three:
        await post(node, tokens[node.server], f"status from {node.server}")

    async def converged():
        views = [await bodies(n, tokens[n.server]) for n in three]
        return len(views[0]) == 3 and all(v == views[0] and None not in [s for s, _ in v] for v in views)

    await eventually(converged)
    heads = {(await _network(n))["head_seq"] for n in three}
    assert len(heads) == 1


async def test_closed_thread_and_closed_network_are_read_only_everywhere(three):
    tokens = await incident(three)
    acme, globex, initech = three
    await post(globex, tokens[globex.server], "before close")
    await eventually(lambda: _has(acme, tokens[acme.server], "before close"))
    # Only the host's side opened the thread: a participating company may not close it, the host may.
    refused = await globex.admin("POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/close", expect=403)
    assert refused["error"]["reason"] == "not_thread_owner" and acme.server in refused["error"]["message"]
    await acme.admin("POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/close")
    await eventually(lambda: _thread_closed(initech, tokens[initech.server]))
    again = await acme.admin("POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/close", expect=403)
    assert again["error"]["reason"] == "thread_closed"

    async def audited_as_partner_action() -> bool:  # each member's log says who closed it
        items = (await initech.admin("GET", f"/v1/audit?action=thread.closed&partner={acme.server}"))["items"]
        return [(e["network"], e["target"]) for e in items] == [(NETWORK, f"{NETWORK}:{THREAD}")]

    await eventually(audited_as_partner_action)
    refused = await post(initech, tokens[initech.server], "after close", expect=403)
    assert refused["error"]["code"] == "forbidden"
    await acme.admin("POST", f"/v1/networks/{NETWORK}/close")

    async def closed_everywhere():
        return all([(await _network(n))["closed"] for n in three])

    await eventually(closed_everywhere)
    for node in three:  # history is kept on every node
        assert (None, "before close") not in await bodies(node, tokens[node.server])
        assert [b for _, b in await bodies(node, tokens[node.server])] == ["before close"]
    await acme.admin("POST", f"/v1/networks/{NETWORK}/participants/detach", {"participant": "agent:oncall"},
                     expect=403)


async def _has(node: ClusterNode, token: str, body: str) -> bool:
    return body in [b for _, b in await bodies(node, token)]


async def _thread_closed(node: ClusterNode, token: str) -> bool:
    return all(t["closed"] for t in (await node.client(token, "GET", "/v1/shared-threads"))["items"])


async def test_a_company_that_leaves_or_is_removed_receives_nothing_more(three):
    tokens = await incident(three)
    acme, globex, initech = three
    await globex.admin("POST", f"/v1/networks/{NETWORK}/leave")

    async def globex_left_at_host():
        return (await _network(acme))["members"][globex.server] == "left"

    await eventually(globex_left_at_host)
    await acme.admin("POST", f"/v1/networks/{NETWORK}/members/initech.example/remove")

    async def initech_knows_it_was_removed():
        return (await _network(initech))["members"][initech.server] == "removed"

    await eventually(initech_knows_it_was_removed)
    globex_head, initech_head = (await _network(globex))["head_seq"], (await _network(initech))["head_seq"]
    await post(acme, tokens[acme.server], "after they went")
    await eventually(lambda: _has(acme, tokens[acme.server], "after they went"))
    await eventually(lambda: _outbox_empty(acme))
    assert (await _network(globex))["head_seq"] == globex_head
    assert (await _network(initech))["head_seq"] == initech_head
    assert not await _has(initech, tokens[initech.server], "after they went")
    # And they cannot write any more: their own node refuses, nothing is queued.
    refused = await post(initech, tokens[initech.server], "let me back", expect=403)
    assert refused["error"]["code"] == "forbidden"


async def _outbox_empty(node: ClusterNode) -> bool:
    async with node.storage.network_transaction() as tx:
        return await tx.outbox.depth() == {}


async def test_blocking_a_server_stops_traffic_both_ways(three):
    tokens = await incident(three)
    acme, globex, _ = three
    await globex.admin("POST", f"/v1/peers/{acme.server}/block")
    peers = {p["server"]: p for p in (await globex.admin("GET", "/v1/peers"))["items"]}
    assert peers[acme.server]["status"] == "blocked"
    head = (await _network(globex))["head_seq"]
    await post(acme, tokens[acme.server], "while blocked")
    await eventually(lambda: _peer_error(acme, globex.server))
    assert (await _network(globex))["head_seq"] == head
    async with globex.storage.network_transaction() as tx:
        assert await tx.outbox.depth() == {}  # nothing is queued for a blocked server
    await globex.admin("POST", f"/v1/peers/{acme.server}/unblock")
    await acme.admin("GET", "/v1/peers")


async def _peer_error(node: ClusterNode, server: str) -> bool:
    peers = {p["server"]: p for p in (await node.admin("GET", "/v1/peers"))["items"]}
    return peers[server]["last_error"] is not None and "blocked" in peers[server]["last_error"]


async def test_members_keep_reading_and_posting_while_the_host_is_down(three):
    tokens = await incident(three)
    acme, globex, initech = three
    await post(acme, tokens[acme.server], "before the outage")
    await eventually(lambda: _has(globex, tokens[globex.server], "before the outage"))
    await acme.stop()
    assert (None, "posted during the outage") not in await bodies(globex, tokens[globex.server])
    pending = await post(globex, tokens[globex.server], "posted during the outage")
    assert pending["status"] == "pending"
    undelivered = await delivery_of(globex, tokens[globex.server], pending["id"])
    assert list(undelivered) == [acme.server] and undelivered[acme.server] in ("pending", "in_flight")
    view = await bodies(globex, tokens[globex.server])
    assert view[-1] == (None, "posted during the outage") and ("before the outage" in [b for _, b in view])

    async def host_marked_down():
        peers = {p["server"]: p for p in (await globex.admin("GET", "/v1/peers"))["items"]}
        return peers[acme.server]["last_error"] and peers[acme.server]["queue_depth"] == 1

    await eventually(host_marked_down)
    await acme.start()  # same ports, same database

    async def delivered_everywhere():
        views = [await bodies(n, tokens[n.server]) for n in three]
        return all(v and v[-1][1] == "posted during the outage" and v[-1][0] is not None for v in views) and \
            views[0] == views[1] == views[2]

    await eventually(delivered_everywhere, timeout=30)
    peers = {p["server"]: p for p in (await globex.admin("GET", "/v1/peers"))["items"]}
    assert peers[acme.server]["queue_depth"] == 0 and peers[acme.server]["last_success_at"]
    assert await delivery_of(globex, tokens[globex.server], pending["id"]) == {acme.server: "delivered"}
    assert [b for _, b in await bodies(initech, tokens[initech.server])].count("posted during the outage") == 1


async def delivery_of(node: ClusterNode, token: str, event_id: str) -> dict | None:
    page = await node.client(token, "GET", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages?limit=200")
    return next(m["delivery"] for m in page["messages"] if m["id"] == event_id)


async def _back_off_far(node: ClusterNode, server: str) -> None:
    """As if `node` had failed to reach `server` for a long time: its next try is four minutes
    away (the longest backoff is five; a due time past that would count as a clock step)."""
    import time

    from sqlalchemy import update

    from storage.network.tables import delivery_status, outbox

    far = int(time.time() * 1000) + 240_000
    async with node.storage.network_transaction() as tx:
        await tx.peers.record_failure(server, error="simulated outage", next_attempt_at=far, now=0)
        await tx.peers._conn.execute(update(outbox).where(outbox.c.destination == server, outbox.c.state == "pending")
                                     .values(next_attempt_at=far))
        await tx.peers._conn.execute(update(delivery_status).where(delivery_status.c.server == server)
                                     .values(next_attempt_at=far))


async def test_a_returning_host_gets_pending_posts_at_once_and_they_survive_restarts(three):
    tokens = await incident(three)
    acme, globex, initech = three
    await acme.stop()
    pending = await post(globex, tokens[globex.server], "queued while the host is away")
    await globex.stop()  # the author's node restarts too, with the post still queued
    await globex.start()
    await _back_off_far(globex, acme.server)  # long backoff: only a wake-up can help now
    await acme.start()  # announces itself to its peers on start

    async def delivered():
        view = await bodies(initech, tokens[initech.server])
        return ("queued while the host is away" in [b for s, b in view if s is not None])

    await eventually(delivered, timeout=10)  # far less than the backoff or the 60 s catch-up sweep
    assert await delivery_of(globex, tokens[globex.server], pending["id"]) == {acme.server: "delivered"}


async def test_detached_participants_stop_posting_and_can_come_back(three):
    tokens = await incident(three)
    acme, globex, _ = three
    await globex.admin("POST", f"/v1/networks/{NETWORK}/participants/detach", {"participant": "agent:oncall"})

    async def detached_at_host():
        participants = {p["id"]: p for p in (await _network(acme))["participants"]}
        return participants[f"agent:oncall@{globex.server}"]["attached"] is False

    await eventually(detached_at_host)
    refused = await post(globex, tokens[globex.server], "still here?", expect=403)
    assert refused["error"]["reason"] == "not_attached"
    # A company cannot detach another company's participant.
    other = await globex.admin("POST", f"/v1/networks/{NETWORK}/participants/detach",
                               {"participant": f"agent:oncall@{acme.server}"}, expect=422)
    assert other["error"]["code"] == "invalid_request"
    await globex.admin("POST", f"/v1/networks/{NETWORK}/participants", {"participant": "agent:oncall"})
    await eventually(lambda: _can_post(globex, tokens[globex.server]))


async def _can_post(node: ClusterNode, token: str) -> bool:
    try:
        await post(node, token, "back again")
    except AssertionError:  # still refused: the re-attach has not come back from the host yet
        return False
    return True
