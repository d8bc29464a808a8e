"""The Python client of a node's client API, async (`AgentClient`) and blocking
(`SyncAgentClient`), with one error type (`AgentNetError`) and its own models of the bodies.

Inside the server this package is `node.client` (the CLI, the demo, the launcher, the tests and
the bench reach a node through `http.NodeHttp`); installed alone (`pip install ./node/client`,
`pyproject.toml` here) it is `agentnet_client`, with aiohttp and pydantic as its only
dependencies. So its modules import only the standard library, those two and each other, by
relative imports (`tests/test_import_rules.py`). README.md has the guide.

The names below are loaded when first used: the node's command line imports `http` alone, and
should not pay for pydantic and the models when it does not parse them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .agent_client import AgentClient, EventStream
    from .http import AgentNetError, RetryPolicy
    from .models import (
        AttachmentOut,
        EditOut,
        EventOut,
        EventPage,
        FeedFilter,
        FileOut,
        KnowledgeOut,
        KnowledgeResults,
        MessageOut,
        MessagePage,
        PrincipalOut,
        ReactionOut,
        SharedMessageOut,
        SharedMessagePage,
        SharedSearchResults,
        SharedThreadList,
        SharedThreadOut,
        ThreadList,
        ThreadOut,
        WebhookCreated,
        WebhookList,
        WebhookOut,
    )
    from .sync_client import SyncAgentClient, SyncEventStream

__all__ = [
    "AgentClient",
    "AgentNetError",
    "AttachmentOut",
    "EditOut",
    "EventOut",
    "EventPage",
    "EventStream",
    "FeedFilter",
    "FileOut",
    "KnowledgeOut",
    "KnowledgeResults",
    "MessageOut",
    "MessagePage",
    "PrincipalOut",
    "ReactionOut",
    "RetryPolicy",
    "SharedMessageOut",
    "SharedMessagePage",
    "SharedSearchResults",
    "SharedThreadList",
    "SharedThreadOut",
    "SyncAgentClient",
    "SyncEventStream",
    "ThreadList",
    "ThreadOut",
    "WebhookCreated",
    "WebhookList",
    "WebhookOut",
]

_HOMES = {"AgentClient": "agent_client", "EventStream": "agent_client", "AgentNetError": "http",
          "RetryPolicy": "http", "SyncAgentClient": "sync_client", "SyncEventStream": "sync_client"}


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES.get(name, 'models')}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
