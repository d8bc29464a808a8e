"""A2A with the official A2A SDK's client against real nodes: it fetches the card of an agent
Acme publishes, sends a message that lands in the shared thread (on Globex's node too),
addressed to that agent, as the token's own person; an agent Acme does not publish has no card,
a message without a thread is told where to say, and a request without a token is refused."""

from __future__ import annotations

import uuid

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.client.errors import AgentCardResolutionError
from a2a.types import Message, Part, Role, SendMessageRequest

from tests.cluster import eventually
from tests.node.networks.test_seed_scenario import ACME, NETWORK, THREAD, open_rollout

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"


async def _send(client, text: str, **where: str) -> str:
    message = Message(role=Role.ROLE_USER, parts=[Part(text=text)], message_id=str(uuid.uuid4()))
    message.metadata.update(where)
    replies = [r async for r in client.send_message(SendMessageRequest(message=message))]
    (reply,) = [r.message for r in replies if r.HasField("message")]
    return "".join(p.text for p in reply.parts)


async def test_an_a2a_client_fetches_a_card_and_talks_into_the_thread(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    node = (await acme.admin("GET", "/v1/policy"))["node"]
    await acme.admin("PUT", "/v1/policy/node", {**node, "a2a_agents": ["ops"]})
    base = f"http://127.0.0.1:{acme.ports['client']}"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tokens['alex']}"}, timeout=30) as http:
        card = await A2ACardResolver(http, f"{base}/a2a/ops").get_agent_card()
        assert card.name == "Customer Ops Agent"
        assert card.supported_interfaces[0].url == f"{base}/a2a/ops"
        assert "bearer" in card.security_schemes
        with pytest.raises(AgentCardResolutionError):
            await A2ACardResolver(http, f"{base}/a2a/alex").get_agent_card()  # a person, and not published

        client = await create_client(card, client_config=ClientConfig(httpx_client=http, streaming=False))
        said = await _send(client, "Is the rollout still on for Thursday?", network=NETWORK, thread=THREAD)
        assert said.startswith(f"posted to {NETWORK}/{THREAD} as $") and f"agent:ops@{ACME}" in said
        event_id = said.split(" as ")[1].split(",")[0]
        assert "say where" in await _send(client, "hello?")

    async def at_globex() -> dict | None:
        page = await globex.client(tokens["sam"], "GET", MESSAGES)
        return next((m for m in page["messages"] if m["id"] == event_id), None)

    shown = await eventually(at_globex)
    assert (shown["sender"], shown["body"], shown["mentions"]) == (
        f"person:alex@{ACME}", "Is the rollout still on for Thursday?", [f"agent:ops@{ACME}"])

    async with httpx.AsyncClient(timeout=30) as anonymous:
        refused = await anonymous.post(f"{base}/a2a/ops", json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                                                                "params": {}})
        assert refused.status_code == 401
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tokens['alex']}"}, timeout=30) as http:
        malformed = await http.post(f"{base}/a2a/ops", json={"method": "SendMessage"})
        assert malformed.status_code == 422
