"""The product's own story, end to end over real TLS: Acme and Globex open `acme-rollout` with
thread `rollout-status`, both agents and both leads post, and both nodes hold the same four
messages in the same order. Each side keeps private threads, knowledge and profiles marked
with canary strings; none of them appears in any byte either node sent, nor in the other's
database."""

from __future__ import annotations

import pytest

from tests.cluster import ClusterNode, eventually, start_node
from tests.tls_fixtures import TestCertificateAuthority

ACME, GLOBEX = "acme.example", "globex.example"
NETWORK, THREAD = "acme-rollout", "rollout-status"
STORY = [
    ("acme", "alex", "We are ready to move the billing migration to production on Thursday."),
    ("acme", "ops", "I checked the customer-side launch checklist. The remaining blocker is webhook validation."),
    ("globex", "sam", "We can run that validation tomorrow morning."),
    ("globex", "delivery", "The Globex rollout plan still shows one unresolved webhook retry issue. "
                           "Recommend validating retries before the cutover window."),
]
CANARIES = {
    ACME: ["CANARY-acme-billing-7f3a", "CANARY-acme-runbook-91c2", "CANARY-acme-profile-4e8d"],
    GLOBEX: ["CANARY-globex-qa-2b6f", "CANARY-globex-playbook-c05e", "CANARY-globex-profile-77a1"],
}


async def _company(node: ClusterNode, people: dict[str, tuple[str, str]], private_thread: str) -> dict[str, str]:
    """Create people and agents with canary profiles, a private thread and knowledge."""
    thread_canary, knowledge_canary, profile_canary = CANARIES[node.server]
    tokens = {}
    for handle, (kind, name) in people.items():
        tokens[handle] = await node.create(kind, handle, name, profile=f"internal notes {profile_canary}")
    members = [f"{kind}:{handle}" for handle, (kind, _) in people.items()]
    await node.admin("POST", "/v1/threads", {"name": private_thread, "title": "Private", "members": members})
    first = next(iter(people))
    await node.client(tokens[first], "POST", f"/v1/threads/{private_thread}/messages",
                      {"body": f"internal only: {thread_canary}"})
    await node.admin("POST", "/v1/knowledge", {"title": "Runbook", "body": f"steps {knowledge_canary}"})
    return tokens


async def _messages(node: ClusterNode, token: str) -> list[tuple]:
    page = await node.client(token, "GET", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages?limit=200")
    return [(m["id"], m["seq"], m["sender"], m["body"], m["status"]) for m in page["messages"]]


@pytest.fixture
async def acme_and_globex(tmp_path):
    ca = TestCertificateAuthority()
    acme = await start_node(tmp_path, ACME, ca, display_name="Acme")
    globex = await start_node(tmp_path, GLOBEX, ca, display_name="Globex")
    yield acme, globex
    await globex.stop()
    await acme.stop()


async def open_rollout(acme: ClusterNode, globex: ClusterNode) -> dict[str, str]:
    """Both companies' people, the network with both members, all four attached, the thread open."""
    tokens = await _company(acme, {"ops": ("agent", "Customer Ops Agent"), "alex": ("person", "Alex Rivera")},
                            "billing-escalations")
    tokens |= await _company(globex, {"delivery": ("agent", "Delivery Agent"), "sam": ("person", "Sam Chen")},
                             "internal-qa")
    await acme.admin("POST", "/v1/networks", {"name": NETWORK, "title": "Acme rollout"}, expect=201)
    sent = await acme.admin("POST", f"/v1/networks/{NETWORK}/invites",
                            {"server": GLOBEX, "endpoint": globex.endpoint}, expect=201)
    (pending,) = (await globex.admin("GET", "/v1/invites"))["items"]
    assert (pending["id"], pending["status"], pending["host"]) == (sent["id"], "pending", ACME)
    assert pending["fingerprint"] == acme.key.verify_key.fingerprint  # what the operators compare
    await globex.admin("POST", f"/v1/invites/{pending['id']}/accept")

    async def globex_is_member():
        network = await globex.admin("GET", f"/v1/networks/{NETWORK}")
        return network["members"].get(GLOBEX) == "member"

    await eventually(globex_is_member)
    for node, refs in ((acme, ["agent:ops", "person:alex"]), (globex, ["agent:delivery", "person:sam"])):
        for ref in refs:
            await node.admin("POST", f"/v1/networks/{NETWORK}/participants", {"participant": ref})

    async def all_attached():
        network = await acme.admin("GET", f"/v1/networks/{NETWORK}")
        return sum(p["attached"] for p in network["participants"]) == 4

    await eventually(all_attached)
    participants = [f"agent:ops@{ACME}", f"person:alex@{ACME}", f"agent:delivery@{GLOBEX}", f"person:sam@{GLOBEX}"]
    await acme.admin("POST", f"/v1/networks/{NETWORK}/threads",
                     {"name": THREAD, "title": "Rollout status", "participants": participants}, expect=201)

    async def thread_reached_globex():
        return (await globex.client(tokens["sam"], "GET", "/v1/shared-threads"))["items"]

    await eventually(thread_reached_globex)
    return tokens


async def test_seed_story_converges_and_nothing_private_crosses(acme_and_globex):
    acme, globex = acme_and_globex
    tokens = await open_rollout(acme, globex)
    nodes = {"acme": acme, "globex": globex}
    for company, handle, body in STORY:
        posted = await nodes[company].client(tokens[handle], "POST",
                                             f"/v1/networks/{NETWORK}/threads/{THREAD}/messages", {"body": body},
                                             expect=201)

        async def sequenced():  # keep the story's order: each post is sequenced before the next
            # awaited within this turn of the loop, so it sees this turn's variables
            return all(m[4] == "sequenced" for m in await _messages(nodes[company], tokens[handle])  # noqa: B023
                       if m[0] == posted["id"])  # noqa: B023

        await eventually(sequenced)

    async def converged():
        at_acme = await _messages(acme, tokens["ops"])
        at_globex = await _messages(globex, tokens["delivery"])
        return len(at_acme) == 4 and at_acme == at_globex

    await eventually(converged)
    messages = await _messages(globex, tokens["sam"])
    assert [(m[2], m[3]) for m in messages] == [
        (f"{'agent' if h in ('ops', 'delivery') else 'person'}:{h}@{ACME if c == 'acme' else GLOBEX}", b)
        for c, h, b in STORY
    ]
    assert [m[1] for m in messages] == sorted(m[1] for m in messages)
    heads = [(await n.admin("GET", f"/v1/networks/{NETWORK}"))["head_seq"] for n in (acme, globex)]
    assert heads[0] == heads[1]

    # Privacy: no canary in any byte either node sent to the other, nor in the other's database.
    for node, other in ((acme, globex), (globex, acme)):
        sent = b"".join(node.sent)
        assert b"rollout-status" in sent  # the capture really saw the shared traffic
        database = b"".join(p.read_bytes() for p in other.data_dir.glob("node.db*"))
        assert b"rollout-status" in database
        for canary in CANARIES[node.server]:
            assert canary.encode() not in sent, f"{canary} left {node.server}"
            assert canary.encode() not in database, f"{canary} reached {other.server}'s database"
