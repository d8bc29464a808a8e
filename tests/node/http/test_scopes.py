"""A client route's scope is checked once per request, in one place (`node.main.listeners`,
from the endpoint's declaration), before the handler runs; MCP tools check their own, since
one `/mcp` route carries tools of every scope."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.node.conftest import bearer

ROOT = Path(__file__).resolve().parents[3]
ONE_PLACE = {"node/main/listeners.py", "node/mcp/endpoint.py", "node/mcp/resources.py"}


def _calls_require_scope(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == "require_scope"
               for n in ast.walk(tree))


def test_only_the_listener_guard_and_mcp_check_scopes():
    callers = {str(p.relative_to(ROOT)) for p in (ROOT / "node").rglob("*.py") if _calls_require_scope(p)}
    assert callers == ONE_PLACE


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/v1/events", None),
    ("POST", "/v1/threads/all-hands/messages", {"body": "hi"}),
])
async def test_a_token_without_the_scope_is_refused_once_before_the_handler(node, monkeypatch, method, path, body):
    made = await node.admin.post("/v1/agents", json={"handle": "reader", "display_name": "Reader"},
                                 headers=bearer(node.admin_token))
    assert made.status == 201
    issued = await node.admin.post("/v1/agents/reader/tokens", json={"scopes": ["knowledge:read"]},
                                   headers=bearer(node.admin_token))
    assert issued.status == 201, await issued.text()
    token = (await issued.json())["token"]

    import node.main.listeners as listeners
    checks = []
    real = listeners.require_scope
    monkeypatch.setattr(listeners, "require_scope", lambda caller, scope: (checks.append(scope), real(caller, scope)))
    answer = await node.client.request(method, path, json=body, headers=bearer(token))
    assert answer.status == 403, await answer.text()
    assert (await answer.json())["error"]["code"] == "insufficient_scope"
    assert len(checks) == 1
