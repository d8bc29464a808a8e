"""The two example agents as real programs, each against its own company's node, talking in
the shared thread across the nodes: Alex's "ready for production" makes Acme's Customer Ops
Agent quote Acme's launch checklist, which makes Globex's Delivery Agent quote Globex's
rollout plan, and then both stay quiet. Each answer appears once, in order, on both nodes, and
quotes only its own company's knowledge (not even its own company's items it may not read)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, acme_and_globex, open_rollout  # noqa: F401

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TRIGGER = "We are ready to move the billing migration to production on Thursday."

ACME_CHECKLIST = """Launch checklist for the billing migration.
- [x] Invoice templates signed off (ACME-CHK-10)
- [x] Data backfill rehearsed (ACME-CHK-11)
- [ ] webhook validation (ACME-CHK-12)
"""
GLOBEX_PLAN = """Rollout plan for Acme's billing migration.
Cutover window: Thursday 06:00-08:00 UTC
- [x] Staging deploy verified (GLX-420)
- [ ] webhook retries stop after the third attempt (GLX-431)
"""
# Matching knowledge each agent may NOT read: it must never reach an answer.
HIDDEN = {ACME: "- [ ] launch checklist item HIDDEN-ACME-5c1d",
          GLOBEX: "- [ ] rollout plan webhook retry HIDDEN-GLX-9e0b"}


class AgentProcess:
    """One example agent as a subprocess; its stdout lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, script: str, node: ClusterNode, token: str, *extra: str) -> AgentProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / script), "--url", f"http://127.0.0.1:{node.ports['client']}",
            "--network", NETWORK, "--thread", THREAD, *extra,
            env={**os.environ, "AGENTNET_TOKEN": token}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        agent = cls(proc)
        await eventually(agent._is_ready, timeout=30)
        return agent

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode().rstrip())

    async def _is_ready(self) -> bool:
        if self.proc.returncode is not None:
            raise RuntimeError(f"the agent exited early: {self.lines}")
        return any(line.startswith("ready:") for line in self.lines)

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            code = await self.proc.wait()
            await self._reader
        return code


async def _thread(node: ClusterNode, token: str) -> list[tuple[str, str, str]]:
    page = await node.client(token, "GET", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages?limit=200")
    return [(m["sender"], m["body"], m["status"]) for m in page["messages"]]


async def test_the_two_example_agents_converse_across_two_nodes(acme_and_globex):  # noqa: F811
    acme, globex = acme_and_globex
    tokens = await open_rollout(acme, globex)
    await acme.admin("POST", "/v1/knowledge", {"title": "Billing migration launch checklist",
                                               "body": ACME_CHECKLIST, "readers": ["agent:ops"]})
    await globex.admin("POST", "/v1/knowledge", {"title": "Billing migration rollout plan",
                                                 "body": GLOBEX_PLAN, "readers": ["agent:delivery"]})
    for node, reader in ((acme, "person:alex"), (globex, "person:sam")):
        await node.admin("POST", "/v1/knowledge", {"title": "Launch checklist and rollout plan (restricted)",
                                                   "body": HIDDEN[node.server], "readers": [reader]})

    agents = [await AgentProcess.start("customer_ops_agent.py", acme, tokens["ops"], "--max-replies", "3"),
              await AgentProcess.start("delivery_agent.py", globex, tokens["delivery"], "--max-replies", "3")]
    try:
        await acme.client(tokens["alex"], "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                          {"body": TRIGGER}, expect=201)

        async def conversed():
            at_acme, at_globex = await _thread(acme, tokens["alex"]), await _thread(globex, tokens["sam"])
            return len(at_acme) >= 3 and at_acme == at_globex and all(m[2] == "sequenced" for m in at_acme)

        await eventually(conversed, timeout=30)
        await asyncio.sleep(1.5)  # room for a loop to show itself, if the guards failed
        codes = [await agent.stop() for agent in agents]
    finally:
        for agent in agents:
            if agent.proc.returncode is None:
                agent.proc.kill()
                await agent.proc.wait()

    assert codes == [0, 0], [a.lines for a in agents]
    at_acme, at_globex = await _thread(acme, tokens["alex"]), await _thread(globex, tokens["sam"])
    assert at_acme == at_globex
    assert [(sender, body) for sender, body, _ in at_acme] == [
        (f"person:alex@{ACME}", TRIGGER),
        (f"agent:ops@{ACME}",
         "I checked the customer-side launch checklist. The remaining blocker is webhook validation (ACME-CHK-12)."),
        (f"agent:delivery@{GLOBEX}",
         "The Globex rollout plan still shows one unresolved webhook retry issue: webhook retries stop after the "
         "third attempt (GLX-431). Recommend validating retries before the cutover window "
         "(Thursday 06:00-08:00 UTC)."),
    ]
    everything = "\n".join(body for _, body, _ in at_acme)
    assert "HIDDEN-" not in everything
    ops_answer, delivery_answer = at_acme[1][1], at_acme[2][1]
    assert "GLX" not in ops_answer and "ACME-CHK" not in delivery_answer
    assert [sum(line.startswith("answered") for line in agent.lines) for agent in agents] == [1, 1]


async def test_an_agent_exits_after_its_replies_and_answers_a_repeat_once(acme_and_globex):  # noqa: F811
    acme, globex = acme_and_globex
    tokens = await open_rollout(acme, globex)
    await acme.admin("POST", "/v1/knowledge", {"title": "Launch checklist", "body": ACME_CHECKLIST})
    ops = await AgentProcess.start("customer_ops_agent.py", acme, tokens["ops"], "--exit-after-replies", "2")
    try:
        for _ in range(2):  # the same words twice are two messages: each gets its one answer
            await acme.client(tokens["alex"], "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                              {"body": TRIGGER}, expect=201)
        async with asyncio.timeout(30):
            code = await ops.proc.wait()
            await ops._reader
    finally:
        if ops.proc.returncode is None:
            ops.proc.kill()
            await ops.proc.wait()
    assert code == 0, ops.lines
    assert ops.lines[-1] == "exiting after 2 replies"
    senders = [sender for sender, _, _ in await _thread(acme, tokens["alex"])]
    assert senders.count(f"agent:ops@{ACME}") == 2
