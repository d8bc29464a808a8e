"""Liveness and readiness, for load balancers and orchestrators; served without a token on
the admin and client listeners (never on the federation listener: peers have no use for it).

`/healthz` says only that the process answers HTTP. `/readyz` says whether it can do its work:
the database answers a trivial query in time and every background worker is running. A 503
names the failed check but never the error itself (opaque on the wire, precise in the log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from node.http.errors import error_response
from node.http.openapi import Endpoint
from storage.storage import Storage

__all__ = ["READY_TIMEOUT_S", "WorkerMonitor", "health_endpoints", "readiness"]

log = logging.getLogger(__name__)

# Kubernetes' default probe timeout is 1 s: answer a slow database with our own 503 and its
# reason before the prober gives up on us.
READY_TIMEOUT_S = 0.8


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


class WorkerMonitor:
    """Knows which background workers are running: each worker's `run` is wrapped once, when
    the node is assembled, so whoever starts the workers needs to know nothing of this."""

    def __init__(self, names: tuple[str, ...] = ()) -> None:
        self._running: dict[str, bool] = dict.fromkeys(names, False)  # not ready until they start

    def watch(self, name: str, run: Callable[[], Awaitable[None]]) -> Callable[[], Coroutine[Any, Any, None]]:
        self._running[name] = False

        async def watched() -> None:
            self._running[name] = True
            try:
                await run()
            finally:
                self._running[name] = False

        return watched

    def stopped(self) -> list[str]:
        return sorted(name for name, running in self._running.items() if not running)


def health_endpoints(storage: Storage, workers: WorkerMonitor, *,
                     timeout_s: float = READY_TIMEOUT_S) -> list[Endpoint]:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = await readiness(storage, workers, timeout_s=timeout_s)
        failed = sorted(name for name, result in checks.items() if result != "ok")
        if failed:
            return error_response(503, "not_ready", f"not ready: {', '.join(failed)}", checks=checks)
        return web.json_response({"status": "ready", "checks": checks})

    return [
        Endpoint("GET", "/healthz", healthz, "Liveness: the process answers", response=Health, public=True),
        Endpoint("GET", "/readyz", readyz,
                 "Readiness: the database answers and the workers run; 503 names the failed check",
                 response=Health, public=True),
    ]


async def readiness(storage: Storage, workers: WorkerMonitor, *, timeout_s: float = READY_TIMEOUT_S) -> dict[str, str]:
    """Each check's result, "ok" when it passed (the probe's and the console's one reading)."""
    return {"database": await _database(storage, timeout_s), "workers": _workers(workers)}


async def _database(storage: Storage, timeout_s: float) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            async with storage.transaction() as tx:
                await tx.company.find()
    except TimeoutError:
        log.warning("readiness: the database did not answer within %g s", timeout_s)
        return "timed out"
    except Exception as e:  # any failure means not ready; the probe must answer, not raise
        log.warning("readiness: the database check failed: %s", e)
        return "failed"
    return "ok"


def _workers(workers: WorkerMonitor) -> str:
    stopped = workers.stopped()
    return "ok" if not stopped else "not running: " + ", ".join(stopped)
