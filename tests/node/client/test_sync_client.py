"""The blocking client (`SyncAgentClient`) against real nodes, called from plain synchronous code:
a worker thread with no event loop (`asyncio.to_thread`), while the nodes run on the test's
loop. It has every call of the async client with the same parameters; a conversation across
two federated nodes (an application's token acting as an agent on one side) is typed end to
end, with a blocking stream; closing ends a stream another thread waits on and stops the
client's thread, and so does dropping a client without closing it."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from node.client import (
    AgentClient,
    AgentNetError,
    EventOut,
    KnowledgeResults,
    MessageOut,
    MessagePage,
    PrincipalOut,
    SharedMessageOut,
    SharedMessagePage,
    SyncAgentClient,
)
from tests.cluster import ClusterNode, start_node
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, open_rollout
from tests.tls_fixtures import TestCertificateAuthority

DELIVERY = f"agent:delivery@{GLOBEX}"


def url(node: ClusterNode) -> str:
    return f"http://127.0.0.1:{node.ports['client']}"


def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll a blocking `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "not met in time"
        time.sleep(0.05)
    return found


def _public_calls(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in vars(cls).items()
            if not name.startswith("_") and inspect.isfunction(member)}


def test_the_sync_client_has_every_call_of_the_async_client_with_the_same_parameters():
    asynchronous, synchronous = _public_calls(AgentClient), _public_calls(SyncAgentClient)
    assert set(synchronous) == set(asynchronous)
    for name, signature in asynchronous.items():
        assert list(synchronous[name].parameters.values()) == list(signature.parameters.values()), name
    sync_init = inspect.signature(SyncAgentClient).parameters
    assert {**sync_init} == {k: v for k, v in inspect.signature(AgentClient).parameters.items() if k != "session"}


async def test_a_plain_program_talks_across_two_nodes(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await acme.admin("POST", "/v1/knowledge", {"title": "Launch checklist", "body": "- [ ] webhook validation",
                                               "readers": ["agent:ops"]})
    app = await globex.create("app", "fleet", "Globex agent fleet")
    await globex.admin("PUT", "/v1/apps/fleet/agents", {"agents": ["delivery"]})
    await asyncio.wait_for(asyncio.to_thread(_conversation, url(acme), tokens["ops"], url(globex), app), 90)


def _conversation(acme_url: str, ops_token: str, globex_url: str, app_token: str) -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # plain synchronous code: no event loop in this thread
    with SyncAgentClient(acme_url, ops_token) as ops, \
            SyncAgentClient(globex_url, app_token, act_as="delivery") as delivery, \
            SyncAgentClient(globex_url, app_token) as fleet:
        me = ops.whoami()
        assert isinstance(me, PrincipalOut) and me.id == f"agent:ops@{ACME}"
        assert (delivery.whoami().id, fleet.whoami().kind) == (DELIVERY, "app")
        assert [t.name for t in ops.shared_threads().items] == [THREAD]

        start = fleet.events().next_cursor
        asked = ops.post(THREAD, "Delivery, are webhook retries covered?", network=NETWORK, mentions=[DELIVERY])
        assert isinstance(asked, SharedMessageOut) and asked.mentions == [DELIVERY]
        with fleet.stream(start, mentions_only=True) as events:
            stop = threading.Timer(30, events.close)  # a stream that never delivers ends the wait
            stop.start()
            try:
                event = next(events, None)
            finally:
                stop.cancel()
            assert isinstance(event, EventOut), "nothing arrived on the stream"
            assert (event.id, event.sender, event.audience) == (asked.id, me.id, [DELIVERY])
            assert events.cursor == event.cursor
        assert next(events, None) is None  # closed: the iteration is over

        answer = delivery.reply(NETWORK, THREAD, asked.id, "Yes: retries stop after the third attempt.")
        assert (answer.sender, answer.reply_to) == (DELIVERY, asked.id)

        def answered() -> SharedMessagePage | None:
            page = ops.read(THREAD, network=NETWORK)
            return page if any(m.id == answer.id for m in page.items) else None

        page = until(answered)
        assert isinstance(page, SharedMessagePage)
        assert [(m.sender, m.reply_to) for m in page.items] == [(me.id, None), (DELIVERY, asked.id)]
        seen = ops.react(NETWORK, THREAD, answer.id, "seen")
        assert (seen.message, seen.participant) == (answer.id, me.id)
        latest = ops.read_latest(NETWORK, THREAD, limit=1)
        assert [m.id for m in latest.items] == [answer.id]

        found = ops.search_knowledge("webhook validation")
        assert isinstance(found, KnowledgeResults) and [k.title for k in found.items] == ["Launch checklist"]
        assert [m.id for m in ops.search_messages("retries").items] == [answer.id, asked.id]
        note = ops.post("billing-escalations", "Asked Globex about retries.")
        assert isinstance(note, MessageOut)
        private = ops.read("billing-escalations")
        assert isinstance(private, MessagePage) and private.items[-1] == note

        upload = ops.upload("plan.txt", b"retry plan", "text/plain")
        attached = ops.post(THREAD, "The plan.", network=NETWORK, attachments=[upload.id])
        assert ops.download(NETWORK, THREAD, attached.id) == b"retry plan"

        hook = fleet.create_webhook("https://hooks.globex.example/agentnet", only={"mentions": True})
        assert hook.secret.startswith("whsec_") and hook.filter is not None and hook.filter.mentions
        assert [w.id for w in fleet.webhooks().items] == [hook.id]
        assert fleet.delete_webhook(hook.id).id == hook.id

        with pytest.raises(AgentNetError) as caught:
            ops.read("no-such-thread")
        assert (caught.value.status, caught.value.code) == (404, "not_found")
        with pytest.raises(AgentNetError) as caught:
            fleet.post(THREAD, "as no one", network=NETWORK)
        assert (caught.value.status, caught.value.code) == (400, "act_as_required")


@pytest.fixture
async def acme(tmp_path):
    node = await start_node(tmp_path, ACME, TestCertificateAuthority())
    yield node
    await node.stop()


async def test_closing_ends_waits_in_other_threads_and_stops_the_clients_thread(acme):
    token = await acme.create("agent", "ops", "Ops")
    await asyncio.wait_for(asyncio.to_thread(_close_while_waiting, url(acme), token), 60)


def _close_while_waiting(node_url: str, token: str) -> None:
    client = SyncAgentClient(node_url, token)
    worker = client._thread
    assert worker.is_alive()

    def waiting(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(call())
            except BaseException as e:
                outcome.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        return thread, outcome

    stream = client.stream()
    reader, read = waiting(lambda: next(stream, "ended"))
    until(lambda: stream.cursor is not None)  # connected: the node said where the stream starts
    stream.close()  # from this thread, while the reader waits in its own
    reader.join(10)
    assert read == ["ended"]

    other = client.stream()
    reader, read = waiting(lambda: next(other, "ended"))
    poller, polled = waiting(lambda: client.events(wait=30))
    until(lambda: other.cursor is not None)
    time.sleep(0.2)  # the long poll is under way
    client.close()  # ends the open streams and what is still waiting
    for thread in (reader, poller):
        thread.join(10)
    assert read == ["ended"]
    assert isinstance(polled[0], RuntimeError) and "closed" in str(polled[0])
    assert client.closed and not worker.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        client.whoami()
    client.close()  # again: nothing to do

    forgotten = SyncAgentClient(node_url, token)
    assert forgotten.whoami().handle == "ops"
    worker = forgotten._thread
    del forgotten
    gc.collect()
    worker.join(10)
    assert not worker.is_alive()
