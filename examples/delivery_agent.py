"""Globex's Delivery Agent.

When webhook validation or retries come up in the shared thread, it reads Globex's rollout
plan (its own knowledge, through its own node) and recommends what to do before cutover.

    AGENTNET_TOKEN=anagt_... python examples/delivery_agent.py \\
        --url http://127.0.0.1:8702 --network acme-rollout --thread rollout-status
"""

from __future__ import annotations

import argparse
import re
import sys

from agent_runtime import AgentSpec, main, open_items

from node.client import KnowledgeOut

_WEBHOOK = re.compile(r"\bwebhooks?\b", re.I)
_CONCERN = re.compile(r"\b(validat\w*|retr(y|ies|ied))\b", re.I)
_RETRY = re.compile(r"\bretr(y|ies|ied)\b", re.I)
_WINDOW = re.compile(r"^\s*cutover window:\s*(?P<window>\S.*?)\s*$", re.I | re.M)
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def triggers(body: str) -> bool:
    return bool(_WEBHOOK.search(body) and _CONCERN.search(body))


def compose(found: list[KnowledgeOut], args: argparse.Namespace) -> str:
    plan = f"The {args.company} rollout plan" if args.company else "Our rollout plan"
    if not found:
        return "I could not find a rollout plan I can read; I cannot say whether retries are covered."
    issues = [item for k in found for item in open_items(k.body) if _WEBHOOK.search(item)]
    windows = [m.group("window") for k in found for m in _WINDOW.finditer(k.body)]
    window = f" ({windows[0]})" if windows else ""
    if not issues:
        return f"{plan} shows nothing open on webhooks. We are clear for the cutover window{window}."
    count = _NUMBERS.get(len(issues), str(len(issues)))
    kind = "webhook retry" if all(_RETRY.search(i) for i in issues) else "webhook"
    noun = "issue" if len(issues) == 1 else "issues"
    return (f"{plan} still shows {count} unresolved {kind} {noun}: {'; '.join(issues)}. "
            f"Recommend validating retries before the cutover window{window}.")


SPEC = AgentSpec(name="Delivery Agent", triggers=triggers, query="rollout plan", compose=compose)

if __name__ == "__main__":
    sys.exit(main(SPEC, company="Globex"))
