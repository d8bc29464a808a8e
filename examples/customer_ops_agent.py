"""Acme's Customer Ops Agent.

When someone in the shared thread says they are ready to go to production, it reads Acme's
launch checklist (its own knowledge, through its own node) and names what is still open.

    AGENTNET_TOKEN=anagt_... python examples/customer_ops_agent.py \\
        --url http://127.0.0.1:8702 --network acme-rollout --thread rollout-status
"""

from __future__ import annotations

import argparse
import re
import sys

from agent_runtime import AgentSpec, main, open_items

from node.client import KnowledgeOut

# "ready to move ... to production", "ready for prod", "ready to go live"
_READY = re.compile(r"\bready\b.{0,80}\b(production|prod|go live|go-live)\b", re.I | re.S)


def triggers(body: str) -> bool:
    return bool(_READY.search(body))


def compose(found: list[KnowledgeOut], args: argparse.Namespace) -> str:
    if not found:
        return "I could not find a launch checklist I can read, so I cannot confirm we are ready."
    blockers = [item for k in found for item in open_items(k.body)]
    if not blockers:
        return "I checked the customer-side launch checklist. Nothing is left open on our side."
    if len(blockers) == 1:
        return f"I checked the customer-side launch checklist. The remaining blocker is {blockers[0]}."
    listed = ", ".join(blockers[:-1]) + f" and {blockers[-1]}"
    return f"I checked the customer-side launch checklist. The remaining blockers are {listed}."


SPEC = AgentSpec(name="Customer Ops Agent", triggers=triggers, query="launch checklist", compose=compose)

if __name__ == "__main__":
    sys.exit(main(SPEC, company="Acme"))
