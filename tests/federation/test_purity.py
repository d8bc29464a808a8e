"""The core's boundaries, checked on the source: no I/O stacks, one crypto module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import federation

SOURCES = sorted(Path(federation.__file__).parent.glob("*.py"))
# No network or database stack, and no clock: time is always passed in.
FORBIDDEN = {"aiohttp", "asyncio", "sqlalchemy", "node", "storage", "socket", "time", "datetime"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_core_imports_no_io_stack(path: Path) -> None:
    assert not imported_roots(path) & FORBIDDEN


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_only_keys_imports_nacl(path: Path) -> None:
    assert ("nacl" in imported_roots(path)) == (path.name == "keys.py")


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "__init__.py"],
                         ids=lambda p: p.name)
def test_every_module_declares_all_and_stays_small(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
             if isinstance(t, ast.Name)}
    assert "__all__" in names
    assert ast.get_docstring(tree)
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400
