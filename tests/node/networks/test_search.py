"""Search over shared threads, in the reader's own node's copy, across three real nodes over TLS
(Globex on SQLite or PostgreSQL): a participant finds a message of a thread it is in, never one
of a thread it is not in, nor a private one; edits and deletes change what is found on every
node; a thread held back for consent is not searchable until accepted."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.network.tables import shared_message_text
from tests.cluster import ClusterNode, eventually, start_node
from tests.node.federation.test_lifecycle import NETWORK, SERVERS, THREAD, incident
from tests.node.networks.test_seed_scenario import GLOBEX, open_rollout
from tests.node.networks.test_seed_scenario import NETWORK as ROLLOUT
from tests.tls_fixtures import TestCertificateAuthority

ACME, _, INITECH = SERVERS
SEARCH = "/v1/shared-threads/search"


@pytest.fixture
async def three(tmp_path, database_url):
    ca = TestCertificateAuthority()
    nodes = [await start_node(tmp_path, server, ca, database_url if server == GLOBEX else None)
             for server in SERVERS]
    yield nodes
    for node in reversed(nodes):
        await node.stop()


async def found(node: ClusterNode, token: str, q: str, **params: str) -> list[str]:
    query = "&".join([f"q={q}", *(f"{k}={v}" for k, v in params.items())])
    return [m["body"] for m in (await node.client(token, "GET", f"{SEARCH}?{query}"))["items"]]


async def test_a_participant_finds_what_it_may_read_and_nothing_else(three):
    acme, globex, initech = three
    tokens = await incident(three)
    await acme.admin("POST", f"/v1/networks/{NETWORK}/threads", {
        "name": "side", "title": "Side", "participants": [f"agent:oncall@{ACME}", f"agent:oncall@{GLOBEX}"]},
        expect=201)
    side = f"/v1/networks/{NETWORK}/threads/side/messages"
    bridge = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"
    await eventually(lambda: globex.client(tokens[GLOBEX], "GET", side))
    await globex.client(tokens[GLOBEX], "POST", side, {"body": "Rotate the canary xyzzy credentials first"},
                        expect=201)
    window = await initech.client(tokens[INITECH], "POST", bridge, {"body": "Deploy window agreed: 06:00 xyzzy"},
                                  expect=201)
    await initech.admin("POST", "/v1/threads", {"name": "notes", "title": "Notes", "members": ["agent:oncall"]})
    await initech.client(tokens[INITECH], "POST", "/v1/threads/notes/messages", {"body": "private xyzzy"},
                         expect=201)

    async def globex_finds_both() -> bool:
        return len(await found(globex, tokens[GLOBEX], "xyzzy")) == 2

    await eventually(globex_finds_both)
    assert sorted(await found(globex, tokens[GLOBEX], "xyzzy")) == ["Deploy window agreed: 06:00 xyzzy",
                                                                      "Rotate the canary xyzzy credentials first"]
    # Initech is not in "side", and its private note is not a shared message.
    await eventually(lambda: found(acme, tokens[ACME], "window"))
    assert await found(initech, tokens[INITECH], "xyzzy") == ["Deploy window agreed: 06:00 xyzzy"]
    assert await found(initech, tokens[INITECH], "canary") == []
    assert await found(globex, tokens[GLOBEX], "xyzzy", network="elsewhere") == []
    assert await found(globex, tokens[GLOBEX], "WINDOW  agreed") == ["Deploy window agreed: 06:00 xyzzy"]
    assert await found(globex, tokens[GLOBEX], '"%20OR%201') == []  # quoted into the match: no error, no match
    async with globex.storage.engine.connect() as conn:  # Globex answered from its own copy
        bodies = (await conn.execute(select(shared_message_text.c.body))).scalars().all()
    assert "Deploy window agreed: 06:00 xyzzy" in bodies and "private xyzzy" not in bodies

    await initech.client(tokens[INITECH], "PATCH", f"{bridge}/{window['id']}", {"body": "Deploy window moved"})

    async def edited_everywhere() -> bool:
        return all([await found(n, tokens[n.server], "moved") == ["Deploy window moved"] for n in three])

    await eventually(edited_everywhere)
    assert await found(globex, tokens[GLOBEX], "agreed") == []
    await initech.client(tokens[INITECH], "DELETE", f"{bridge}/{window['id']}")

    async def deleted_everywhere() -> bool:
        return all([await found(n, tokens[n.server], "window") == [] for n in three])

    await eventually(deleted_everywhere)
    bad = await globex.client(tokens[GLOBEX], "GET", f"{SEARCH}?q=", expect=422)
    assert bad["error"]["fields"][0]["field"] == "q"


async def test_a_thread_held_back_for_consent_is_not_searched_until_accepted(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await globex.admin("PUT", f"/v1/policy/partners/{ACME}", {"threads": "ask"})
    await acme.admin("POST", f"/v1/networks/{ROLLOUT}/threads", {
        "name": "pay", "title": "Payment", "participants": [f"person:alex@{ACME}", f"person:sam@{GLOBEX}"]},
        expect=201)
    await acme.client(tokens["alex"], "POST", f"/v1/networks/{ROLLOUT}/threads/pay/messages",
                      {"body": "Please pay invoice 42 to IBAN XX"}, expect=201)

    async def held() -> list:
        return (await globex.admin("GET", "/v1/consents"))["items"]

    (consent,) = await eventually(held)
    await eventually(lambda: _stored_at(globex, "invoice"))
    assert await found(globex, tokens["sam"], "invoice") == []
    await globex.admin("POST", f"/v1/consents/{ROLLOUT}/pay/accept")
    assert await found(globex, tokens["sam"], "invoice") == ["Please pay invoice 42 to IBAN XX"]
    assert consent["thread"] == "pay"


async def _stored_at(node: ClusterNode, word: str) -> bool:
    async with node.storage.engine.connect() as conn:
        return any(word in b for b in (await conn.execute(select(shared_message_text.c.body))).scalars())
