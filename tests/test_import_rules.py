"""The rooms' import rules (`docs/architecture.md`), checked on the source.

The trust model's central rule is that nothing shared can reach a private row. The types carry
part of it (the federation path holds a `NetworkStore`, whose transactions have only the
network repositories); these tests carry the rest: which module may import which, followed
through every import, at module level or inside a function. `federation/`'s own purity is
`tests/federation/test_purity.py`.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("node", "storage", "federation")
# The two bridges from the network side into a private table: a network transaction appends
# pointer rows to the local clients' feed, and entries to the audit log, and can read nothing
# through either.
FEED_BRIDGE = "storage.feed_writer"
AUDIT_BRIDGE = "storage.audit_writer"
BRIDGES = frozenset({FEED_BRIDGE, AUDIT_BRIDGE})
# What the client's distribution depends on (node/client/pyproject.toml), besides the standard library.
CLIENT_DEPENDENCIES = frozenset({"aiohttp", "pydantic"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` names in an import, and every `module.name` it imports from one;
    a relative import (`from .http import x`) by the absolute name it stands for."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _absolute_imports(path: Path) -> set[str]:
    """The modules `path` names in an import by their absolute names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


SOURCES = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
           if "versions" not in p.parts and "node_modules" not in p.parts}
GRAPH = {name: {d for d in _imports(path) if d in SOURCES} for name, path in SOURCES.items()}


def _first_path(start: str, forbidden: tuple[str, ...], *, through: frozenset[str] = frozenset()) -> str | None:
    """The import chain from `start` to a module under one of `forbidden`, or None. Modules in
    `through` are not followed (the documented bridges). A module is under `f` if it is `f`
    or inside it."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for dep in sorted(GRAPH[module]):
            if dep in came_from:
                continue
            came_from[dep] = module
            if any(dep == f or dep.startswith(f + ".") for f in forbidden):
                chain = [dep]
                while (previous := came_from[chain[-1]]) is not None:
                    chain.append(previous)
                return " <- ".join(chain)
            if dep not in through:
                queue.append(dep)
    return None


def _room(prefix: str) -> list[str]:
    return sorted(m for m in GRAPH if m == prefix or m.startswith(prefix + "."))


def test_every_room_holds_modules():
    rooms = ["node.main", "node.basics", "node.http", "node.workspace", "node.networks", "node.federation",
             "node.feed", "node.webhooks", "node.mcp", "node.a2a", "node.web", "node.ops", "node.client", "node.guard",
             "storage.private", "storage.network"]
    assert all(len(_room(room)) > 1 for room in rooms), [room for room in rooms if len(_room(room)) <= 1]
    assert not [m for m in GRAPH if m.count(".") == 1 and m.startswith("node.") and m not in rooms], \
        "node/ holds rooms only"


@pytest.mark.parametrize("module", _room("storage.network"))
def test_network_tables_reach_nothing_private(module):
    """The network side of storage names no private table, and nothing of the node."""
    assert _first_path(module, ("storage.private", "storage.storage", "storage.feed", "node"),
                       through=BRIDGES) is None


@pytest.mark.parametrize("bridge", sorted(BRIDGES))
def test_only_the_network_transaction_crosses_a_bridge(bridge):
    """The audit bridge is also extended by the private side's reader (storage.private.audit)."""
    crossing = sorted(m for m in GRAPH if bridge in GRAPH[m] and not m.startswith("storage.private"))
    assert crossing == ["storage.network.transaction"]
    assert {d for d in GRAPH[bridge] if d.startswith("storage.")} <= {"storage.private.tables"}


@pytest.mark.parametrize("module", _room("node.federation"))
def test_the_federation_path_reaches_nothing_private(module):
    """The node's half of federation never holds the full storage facade, a private
    repository, the workspace, or the rooms that serve local clients."""
    forbidden = ("storage.private", "storage.storage", "storage.feed", "node.workspace", "node.networks",
                 "node.feed", "node.webhooks", "node.mcp", "node.ops", "node.http.auth", "node.main")
    assert _first_path(module, forbidden, through=BRIDGES) is None


@pytest.mark.parametrize("module", _room("node.workspace"))
def test_the_workspace_imports_nothing_of_federation(module):
    """The private side imports neither the protocol core nor the node's half of federation.
    (The shared HTTP plumbing it uses parses JSON with the core's bounded parser; that is
    plumbing, not federation, so only what the workspace names itself is held to the core.)"""
    assert not {d for d in GRAPH[module] if d.startswith("federation")}
    assert _first_path(module, ("node.federation", "node.networks", "node.main")) is None


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not m.startswith("node.main")))
def test_nothing_imports_the_entry_point(module):
    """`node.main` wires everything and is imported by nothing (the tests and the bench,
    which start nodes, aside)."""
    assert not {d for d in GRAPH[module] if d.startswith("node.main")}


@pytest.mark.parametrize("module", _room("node.client"))
def test_the_client_stands_alone(module):
    """`node/client/` is also the `agentnet-client` distribution (`node/client/pyproject.toml`),
    installed without the server as `agentnet_client`: its modules import the standard library,
    aiohttp, pydantic and each other, and each other by relative imports only (`node.client`
    is not there when it is installed alone)."""
    imported = _imports(SOURCES[module])
    outside = sorted(name for name in imported if name != "node.client" and not name.startswith("node.client."))
    assert {name.split(".")[0] for name in outside} <= set(sys.stdlib_module_names) | CLIENT_DEPENDENCIES, outside
    assert not {name for name in _absolute_imports(SOURCES[module]) if name.split(".")[0] in PACKAGES}


def test_the_rules_can_fail():
    """A check that cannot fail checks nothing: the walk finds a known chain."""
    assert _first_path("node.main.assembly", ("storage.private",)) is not None
    assert _first_path("storage.network.transaction", ("storage.private",)) == \
        "storage.private.tables <- storage.audit_writer <- storage.network.transaction"
    # A relative import is followed like an absolute one.
    assert "node.client.http" in GRAPH["node.client.agent_client"]
    assert {"node.client.models", "node.client.http"} <= _imports(SOURCES["node.client"])
