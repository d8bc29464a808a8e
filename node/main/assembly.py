"""Everything one node is made of, wired in one place: storage and keys in, three listener
applications and three background workers out. `node.main.runner` serves them; tests assemble
several nodes in one process the same way."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from federation.keys import SigningKey
from node.a2a.gateway import A2AGateway, a2a_endpoints
from node.basics.clock import Clock
from node.basics.limits import ClientLimits, FederationLimits, WebhookLimits
from node.basics.rate_limit import PostRateLimiter
from node.federation.activity import ActivityBoard, ActivityRelay
from node.federation.api import build_federation_app
from node.federation.catch_up import CatchUpWorker
from node.federation.chain_state import StateCache
from node.federation.delivery import DeliveryWorker
from node.federation.engine import FederationEngine
from node.federation.files import FileExchange
from node.federation.halting import HaltKeeper
from node.federation.key_refresh import KeyRefresher
from node.federation.key_ring import KeyRing
from node.federation.peer_client import PeerClient
from node.federation.peering import PeeringReceiver
from node.federation.tls import PeerTrust
from node.feed.api import feed_endpoints
from node.feed.hub import FeedHub
from node.feed.service import FeedService
from node.guard.admin_api import guard_admin_endpoints
from node.guard.outbound import OutboundGuard
from node.http.auth import Caller, authenticate_digest
from node.main.housekeeping import HousekeepingWorker
from node.main.listeners import DEFAULT_MAX_BODY_BYTES, build_admin_app, build_client_app
from node.mcp.mount import mount_mcp
from node.networks.admin_api import network_admin_endpoints
from node.networks.consent_api import consent_admin_endpoints
from node.networks.export import NetworkExporter
from node.networks.export_api import export_admin_endpoints
from node.networks.files import SharedFileService
from node.networks.partners import PartnerService
from node.networks.policy import PolicyService
from node.networks.policy_api import policy_admin_endpoints
from node.networks.retention import RetentionService
from node.networks.service import NetworkService
from node.networks.thread_api import shared_thread_endpoints
from node.networks.threads import SharedThreadService
from node.ops.health import WorkerMonitor, health_endpoints, readiness
from node.ops.metrics import NodeMetrics, metrics_endpoints
from node.ops.overview import NodeIdentity, overview_builder, overview_endpoints
from node.ops.private_export import PrivateExporter, private_export_endpoints
from node.web.admin_api import web_admin_endpoints
from node.web.console import ConsoleSessions, console_endpoints, console_routes
from node.web.pages import web_routes
from node.web.sessions import WebSessions
from node.webhooks.api import WebhookService, webhook_admin_endpoints, webhook_client_endpoints
from node.webhooks.resolver import Destinations
from node.webhooks.worker import WebhookWorker
from node.workspace.admin_service import AdminService
from node.workspace.client_service import ClientService
from node.workspace.directory import Directory
from storage.storage import Storage

__all__ = ["NodeParts", "assemble", "record_own_key"]


WORKER_NAMES = ("delivery", "catch-up", "housekeeping", "webhooks")


@dataclass(frozen=True, slots=True)
class NodeParts:
    engine: FederationEngine
    delivery: DeliveryWorker
    catch_up: CatchUpWorker
    housekeeping: HousekeepingWorker
    webhooks: WebhookWorker
    admin_app: web.Application
    client_app: web.Application
    federation_app: web.Application
    metrics: NodeMetrics
    workers: WorkerMonitor
    web_sessions: WebSessions

    def background(self) -> list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]]:
        """The node's worker loops by name, each watched so readiness knows it runs."""
        loops = [self.delivery.run, self.catch_up.run, self.housekeeping.run, self.webhooks.run]
        return [(name, self.workers.watch(name, run)) for name, run in zip(WORKER_NAMES, loops, strict=True)]


def assemble(*, server_name: str, endpoint: str, signing_key: SigningKey, storage: Storage, clock: Clock,
             session: aiohttp.ClientSession, trust: PeerTrust, certificate_file: Path | None = None,
             max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, limits: ClientLimits = ClientLimits(),
             webhook_limits: WebhookLimits = WebhookLimits(),
             federation_limits: FederationLimits = FederationLimits(), web_url: str | None = None,
             admin_url: str | None = None) -> NodeParts:
    """`web_url`: where people open the web app (sign-in links point there); `admin_url`: the
    admin listener, where the operator console's links point."""
    directory = Directory(server_name)
    client = PeerClient(session, trust, server_name=server_name, signing_key=signing_key, clock=clock)
    delivery = DeliveryWorker(storage, client, clock)
    client.on_reachable = delivery.wake
    engine = FederationEngine(KeyRing(server_name, signing_key), clock, StateCache(), on_enqueue=delivery.queued)
    metrics, workers = NodeMetrics(storage), WorkerMonitor(WORKER_NAMES)
    delivery.on_settled = metrics.delivery_settled
    health = health_endpoints(storage, workers)
    refresher = KeyRefresher(storage, client, clock, engine.keys)
    halts = HaltKeeper(storage, clock, server_name)
    catch_up = CatchUpWorker(storage, engine, client, clock, refresher, halts)
    peering = PeeringReceiver(storage, engine, clock, delivery)
    partners = PartnerService(storage, engine, client, clock, catch_up, endpoint=endpoint)
    peering.on_auto_accept = partners.accept_later
    identity = NodeIdentity(signing_key.key_id, signing_key.verify_key.fingerprint, certificate_file)
    guard = OutboundGuard(storage, clock)
    retention = RetentionService(storage, clock)
    networks = NetworkService(storage, engine, delivery, directory, clock, catch_up, guard)
    exchange = FileExchange(storage, client, server=server_name, clock=clock)
    activity = ActivityRelay(storage, client, ActivityBoard(), server=server_name)
    shared = SharedThreadService(storage, engine, directory, clock, guard,
                                 SharedFileService(storage, exchange, guard, clock), activity)
    hub = FeedHub()
    storage.on_feed_commit(hub.notify)
    feed = FeedService(storage, clock, directory, hub, poll_interval_s=limits.feed_poll_s)
    destinations = Destinations.from_limits(webhook_limits)  # one rule for registering and delivering
    webhooks = WebhookWorker(storage, feed, clock, webhook_limits, destinations=destinations)
    storage.on_feed_commit(webhooks.feed_grew)
    webhook_service = WebhookService(storage, clock, directory, webhook_limits, wake=webhooks.wake,
                                     destinations=destinations)
    limiter = PostRateLimiter(rate_per_s=limits.post_rate_per_s, burst=limits.post_burst)
    client_service = ClientService(storage, clock, directory, on_private_added=guard.touch)
    client_app = build_client_app(
        storage, clock, directory, service=client_service, limiter=limiter, max_body_bytes=max_body_bytes,
        tokens_version=lambda: hub.tokens_version,
        extra=[*shared_thread_endpoints(shared, limiter), *feed_endpoints(feed, storage, clock, limits),
               *a2a_endpoints(A2AGateway(storage, shared, client_service, server=server_name), limiter),
               *webhook_client_endpoints(webhook_service), *health],
    )
    async def token_still_valid(caller: Caller) -> bool:
        return await authenticate_digest(storage, clock, caller.token_hash) is not None

    mount_mcp(client_app, client=client_service, shared=shared, feed=feed, limiter=limiter,
              still_valid=token_still_valid)
    sessions = WebSessions(storage, clock, directory, web_url=web_url or "http://127.0.0.1:8702")
    overview = overview_builder(AdminService(storage, clock, directory).status, networks, partners, identity, clock)
    console = ConsoleSessions(clock, admin_url=admin_url or "http://127.0.0.1:8701")
    exporter, policies = NetworkExporter(storage, engine.keys, clock), PolicyService(storage, clock)
    web_routes(client_app, sessions=sessions, shared=shared, client=client_service, feed=feed, directory=directory,
               limiter=limiter)
    client_app.on_shutdown.append(lambda _app: _close(hub))
    parts = NodeParts(
        engine=engine, delivery=delivery, catch_up=catch_up, webhooks=webhooks,
        housekeeping=HousekeepingWorker(storage, clock, feed_retention_ms=limits.feed_retention_ms,
                                        refresher=refresher, retention=retention),
        admin_app=build_admin_app(storage, clock, directory, extra=[*network_admin_endpoints(networks, partners),
                                                                *export_admin_endpoints(
                                                                    exporter),
                                                                *policy_admin_endpoints(policies, retention),
                                                                *private_export_endpoints(PrivateExporter(storage, clock)),
                                                                *guard_admin_endpoints(storage, clock, guard),
                                                                *consent_admin_endpoints(storage, clock),
                                                                *overview_endpoints(overview),
                                                                *console_endpoints(console),
                                                                *webhook_admin_endpoints(webhook_service),
                                                                *web_admin_endpoints(sessions),
                                                                *health, *metrics_endpoints(metrics)],
                                  max_body_bytes=max_body_bytes, on_tokens_changed=hub.tokens_changed,
                                  on_private_deleted=guard.forget, on_private_added=guard.touch),
        client_app=client_app,
        federation_app=build_federation_app(storage=storage, engine=engine, peering=peering, delivery=delivery,
                                            catch_up=catch_up, refresher=refresher, halts=halts, clock=clock,
                                            files=exchange, activity=activity, limits=federation_limits,
                                            on_event=metrics.event_received),
        metrics=metrics, workers=workers, web_sessions=sessions,
    )
    console_routes(parts.admin_app, sessions=console, overview=overview, partners=partners, web_sessions=sessions,
                   admin=AdminService(storage, clock, directory, on_tokens_changed=hub.tokens_changed),
                   networks=networks, storage=storage, clock=clock, server=server_name, exporter=exporter,
                   policies=policies, ready=lambda: readiness(storage, workers))
    for listener, app in (("admin", parts.admin_app), ("client", parts.client_app),
                          ("federation", parts.federation_app)):
        app.middlewares.insert(0, metrics.middleware(listener))  # outermost: sees the final status
    return parts


async def _close(hub: FeedHub) -> None:
    hub.close()  # open streams and long polls end, so the listener can shut down at once


async def record_own_key(storage: Storage, signing_key: SigningKey, *, now: int) -> None:
    """Keep the node's current public key in its key history (published at the keys endpoint)."""
    async with storage.network_transaction() as tx:
        if signing_key.key_id not in {k.key_id for k in await tx.node_keys.all()}:
            await tx.node_keys.add(key_id=signing_key.key_id, public_key=signing_key.verify_key.raw, now=now)
