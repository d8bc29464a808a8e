"""Running a node: open what it needs, serve its listeners, and close everything on the way out.

Start-up checks refuse to serve a node whose files disagree with each other (a database made
for another server name, a missing or readable key), because serving in that state would sign
or store under the wrong identity.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from aiohttp import web

from federation.errors import KeyFileError
from federation.keys import SigningKey
from node.app import build_admin_app, build_client_app
from node.clock import Clock, SystemClock
from node.config import NodeSettings
from node.directory import Directory
from node.errors import ConfigError
from storage.storage import Storage

__all__ = ["serve"]

log = logging.getLogger(__name__)


async def serve(settings: NodeSettings, *, clock: Clock | None = None, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set or the process gets SIGINT/SIGTERM."""
    clock = clock or SystemClock()
    stop = stop or _stop_on_signals()
    try:
        key_id = SigningKey.load(settings.signing_key_path).key_id
    except KeyFileError as e:
        raise ConfigError(str(e)) from None
    async with AsyncExitStack() as stack:
        storage = await Storage.open(settings.resolved_database_url, auto_migrate=settings.auto_migrate)
        stack.push_async_callback(storage.close)
        async with storage.transaction() as tx:
            company = await tx.company.find()
        if company is None:
            raise ConfigError("the database holds no company: run `agentnet init` for this data dir")
        if company.server_name != settings.server_name:
            raise ConfigError(
                f"the database belongs to {company.server_name!r} but the settings say "
                f"{settings.server_name!r}; refusing to serve under two names"
            )
        directory = Directory(settings.server_name)
        listeners = [
            ("admin", build_admin_app(storage, clock, directory, max_body_bytes=settings.max_body_bytes),
             settings.admin_host, settings.admin_port),
            ("client", build_client_app(storage, clock, directory, max_body_bytes=settings.max_body_bytes),
             settings.client_host, settings.client_port),
        ]
        for name, app, host, port in listeners:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as e:
                raise ConfigError(f"cannot listen for the {name} API on {host}:{port}: {e.strerror}") from None
            log.info("%s API listening on http://%s:%d", name, host, port)
        log.info("node %s ready (key %s)", settings.server_name, key_id)
        await stop.wait()
        log.info("node %s stopping", settings.server_name)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
