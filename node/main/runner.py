"""Running a node: open what it needs, serve its listeners, run its workers, and close
everything on the way out.

Start-up checks refuse to serve a node whose files disagree with each other (a database made
for another server name, a missing or readable key, TLS files that do not load), because
serving in that state would sign or store under the wrong identity. Other files in the data
dir that others may read are narrowed to the owner, with a warning (`node.basics.file_modes`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

import aiohttp
from aiohttp import web

from federation.errors import KeyFileError
from federation.keys import SigningKey
from node.basics.clock import Clock, SystemClock
from node.basics.config import NodeSettings
from node.basics.errors import CannotListen, ConfigError
from node.basics.file_modes import narrow_modes
from node.federation.tls import PeerTrust, server_ssl_context
from node.http.connection_guard import FD_RESERVE, ConnectionGuard, GuardedSite, ensure_file_limit
from node.main.assembly import assemble, record_own_key
from storage.storage import Storage

__all__ = ["serve"]

log = logging.getLogger(__name__)


async def serve(settings: NodeSettings, *, clock: Clock | None = None, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set or the process gets SIGINT/SIGTERM."""
    clock = clock or SystemClock()
    stop = stop or _stop_on_signals()
    try:
        signing_key = SigningKey.load(settings.signing_key_path)
    except KeyFileError as e:
        raise ConfigError(str(e)) from None
    _narrow_data_dir(settings)
    server_tls = server_ssl_context(settings.tls_cert_path, settings.tls_key_path)
    trust = PeerTrust(settings.tls_ca_path)
    ensure_file_limit(settings.federation_max_connections + settings.client_max_connections + FD_RESERVE)
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
        await record_own_key(storage, signing_key, now=clock.now_ms())
        session = await stack.enter_async_context(aiohttp.ClientSession())
        parts = assemble(
            server_name=settings.server_name, endpoint=settings.resolved_public_endpoint, signing_key=signing_key,
            storage=storage, clock=clock, session=session, trust=trust,
            certificate_file=settings.tls_cert_path,
            max_body_bytes=settings.max_body_bytes, limits=settings.client_limits,
            webhook_limits=settings.webhook_limits, federation_limits=settings.federation_limits,
            web_url=settings.resolved_web_url, admin_url=f"http://{settings.admin_host}:{settings.admin_port}",
        )
        guards = {
            "client": ConnectionGuard("client", settings.client_connection_limits, on_shed=parts.metrics.connection_shed),
            "federation": ConnectionGuard("federation", settings.federation_connection_limits, ssl_context=server_tls,
                                          on_shed=parts.metrics.connection_shed),
        }
        listeners = [
            ("admin", parts.admin_app, settings.admin_host, settings.admin_port),
            ("client", parts.client_app, settings.client_host, settings.client_port),
            ("federation", parts.federation_app, settings.federation_host, settings.federation_port),
        ]
        for name, app, host, port in listeners:
            guard = guards.get(name)  # the admin listener is loopback only and needs the admin token
            if guard is not None:
                guard.protect(app)
                def open_connections(g: ConnectionGuard = guard) -> int:
                    return g.open_connections

                parts.metrics.watch_connections(name, open_connections)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = GuardedSite(runner, guard, host=host, port=port) if guard else web.TCPSite(runner, host, port)
            try:
                await site.start()
            except OSError as e:
                raise CannotListen(f"cannot listen for the {name} API on {host}:{port}: {e.strerror}; stop what "
                                   f"holds the port or set {name}_port in agentnet.toml") from None
            scheme = "https" if guard is not None and guard.ssl_context is not None else "http"
            log.info("%s API listening on %s://%s:%d", name, scheme, host, port)
        key_id = signing_key.key_id  # public: the id of the key, never the key
        log.info("node %s ready (key %s, endpoint %s)", settings.server_name, key_id,
                 settings.resolved_public_endpoint)
        async with asyncio.TaskGroup() as workers:
            tasks = [workers.create_task(run(), name=name) for name, run in parts.background()]
            await stop.wait()
            log.info("node %s stopping", settings.server_name)
            for task in tasks:
                task.cancel()


def _narrow_data_dir(settings: NodeSettings) -> None:
    try:
        narrowed = narrow_modes(settings.data_dir)
    except OSError as e:
        raise ConfigError(f"cannot read the data dir {settings.data_dir}: {e.strerror}") from None
    for item in narrowed:
        if item.now is not None:
            log.warning("%s was open to others (mode %04o); narrowed to %04o", item.path, item.was, item.now)
        else:
            log.warning("%s is open to others (mode %04o) and could not be narrowed (%s): run chmod go-rwx %s",
                        item.path, item.was, item.error, item.path)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
