"""Third-party tooling the suite installs into the checkout (Node.js packages for the
TypeScript checks, a virtualenv for LangChain's MCP adapter): a machine without Node skips the
TypeScript checks unless CI says it must not, and what is installed or built is done by one
test process at a time, so xdist's workers never race on it."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["exclusive", "require_node"]


def require_node() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("AGENTNET_REQUIRE_NODE"):
            pytest.fail("Node.js and npm are required (AGENTNET_REQUIRE_NODE is set)")
        pytest.skip("Node.js and npm are not installed")


@contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Hold `directory`'s lock (a file in it) while installing or building there."""
    with open(directory / ".suite.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
