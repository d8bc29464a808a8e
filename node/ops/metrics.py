"""Prometheus metrics of one node, served at `GET /metrics` on the admin listener.

Each node has its own `CollectorRegistry` (several nodes share one test process; the global
registry would mix them). Counters and histograms are updated where things happen: a
middleware on every listener counts requests by route *template* (a raw path would carry
thread names and ids, one time series each), the federation listener counts the events it
settles, and the delivery worker reports each settled batch. Queue depths, webhook backlogs and
the feed head live in the database, so they are read at scrape time: the endpoint refreshes a
snapshot, and a collector renders it, so a peer or webhook that is gone drops out of the output.

No label ever holds a token, a body or a raw path: labels are listener and method names,
route templates, status codes, fixed result words, peer server names and webhook ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from node.http.openapi import Endpoint
from storage.storage import Storage

__all__ = ["NodeMetrics", "metrics_endpoints"]

log = logging.getLogger(__name__)

# Requests: the library's default buckets, plus 30 s and 60 s for long polls (`wait` is at most 25 s).
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Delivery latency runs from milliseconds (peer up) to the length of an outage: the backoff is
# capped at minutes, so buckets reach an hour.
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Routes whose responses stay open for as long as the client reads: counted as open streams,
# kept out of the duration histogram (their "duration" is the session's length).
STREAM_ROUTES = frozenset({"/v1/events/stream"})
# Methods outside this set (anything a client may type) share one label value.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# nginx's code for "the client closed the connection before the answer".
_CLIENT_GONE = "499"
# A scrape reads the database; do not let a slow one hold the scrape past Prometheus' default 10 s timeout.
_REFRESH_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class _Snapshot:
    queue_depth: dict[str, int] = field(default_factory=dict)
    webhook_backlog: dict[int, int] = field(default_factory=dict)
    feed_head: int = 0
    halted: dict[str, int] = field(default_factory=dict)  # network -> the seq it halted at
    alerts: dict[str, int] = field(default_factory=dict)  # kind -> distinct alerts


class _SnapshotCollector:
    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families(_Snapshot())

    def collect(self) -> Iterable[Metric]:
        return self._families(self._metrics.snapshot)

    @staticmethod
    def _families(snapshot: _Snapshot) -> list[Metric]:
        depth = GaugeMetricFamily("agentnet_outbox_queue_depth",
                                  "Events queued for a peer (pending or in flight)", labels=["peer"])
        for peer, count in sorted(snapshot.queue_depth.items()):
            depth.add_metric([peer], count)
        backlog = GaugeMetricFamily("agentnet_webhook_backlog",
                                    "Feed positions an active webhook has yet to pass", labels=["webhook"])
        for webhook_id, behind in sorted(snapshot.webhook_backlog.items()):
            backlog.add_metric([str(webhook_id)], behind)
        head = GaugeMetricFamily("agentnet_feed_head_position", "The newest position in the event feed",
                                 value=snapshot.feed_head)
        halted = GaugeMetricFamily("agentnet_network_halted",
                                   "1 for each network this node cannot follow past the host's next event",
                                   labels=["network", "seq"])
        for network, seq in sorted(snapshot.halted.items()):
            halted.add_metric([network, str(seq)], 1)
        alerts = GaugeMetricFamily("agentnet_alerts", "Distinct alerts raised for the operator, by kind",
                                   labels=["kind"])
        for kind, count in sorted(snapshot.alerts.items()):
            alerts.add_metric([kind], count)
        return [depth, backlog, head, halted, alerts]


class NodeMetrics:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("agentnet_http_requests", "HTTP requests answered",
                                ["listener", "method", "route", "status"], registry=r)
        self.request_seconds = Histogram("agentnet_http_request_duration_seconds", "Time to answer an HTTP request",
                                         ["listener", "method", "route"], buckets=_HTTP_BUCKETS, registry=r)
        self.open_streams = Gauge("agentnet_event_streams_open", "Open Server-Sent Events streams", registry=r)
        self.events_received = Counter("agentnet_federation_events_received",
                                       "Events peers pushed to this node, by result (accepted, duplicate, refused)",
                                       ["result"], registry=r)
        self.events_sent = Counter("agentnet_federation_events_sent",
                                   "Events this node sent to peers, by result (delivered, failed)",
                                   ["peer", "result"], registry=r)
        self.delivery_seconds = Histogram("agentnet_federation_delivery_latency_seconds",
                                          "Time from an event's enqueue to the peer's 2xx for it", ["peer"],
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.connections_shed = Counter("agentnet_connections_shed",
                                        "Connections the connection guard refused or closed, by reason",
                                        ["listener", "reason"], registry=r)
        self.connections_open = Gauge("agentnet_connections_open", "Open connections on a guarded listener",
                                      ["listener"], registry=r)
        self.snapshot = _Snapshot()
        r.register(_SnapshotCollector(self))

    # Requests

    def middleware(self, listener: str):
        @web.middleware
        async def measure(request: web.Request, handler) -> web.StreamResponse:
            route = _route_template(request)
            method = request.method if request.method in _METHODS else "other"
            streaming = route in STREAM_ROUTES
            if streaming:
                self.open_streams.inc()
            started = time.perf_counter()
            status = "500"
            try:
                response = await handler(request)
                status = str(response.status)
                return response
            except web.HTTPException as e:
                status = str(e.status)
                raise
            except asyncio.CancelledError:
                status = _CLIENT_GONE
                raise
            finally:
                if streaming:
                    self.open_streams.dec()
                else:
                    self.request_seconds.labels(listener, method, route).observe(time.perf_counter() - started)
                self.requests.labels(listener, method, route, status).inc()

        return measure

    # Connections (node.http.connection_guard)

    def connection_shed(self, listener: str, reason: str) -> None:
        self.connections_shed.labels(listener, reason).inc()

    def watch_connections(self, listener: str, count: Callable[[], int]) -> None:
        self.connections_open.labels(listener).set_function(count)

    # Federation

    def event_received(self, result: str) -> None:
        self.events_received.labels(result).inc()

    async def delivery_settled(self, peer: str, enqueued_at: list[int], failed: int, now: int) -> None:
        """A batch to `peer` was answered: `enqueued_at` holds when each event it took (2xx) was
        queued for it."""
        if failed:
            self.events_sent.labels(peer, "failed").inc(failed)
        if enqueued_at:
            self.events_sent.labels(peer, "delivered").inc(len(enqueued_at))
        for created_at in enqueued_at:
            self.delivery_seconds.labels(peer).observe(max(0, now - created_at) / 1000)

    # Scrape

    async def refresh(self) -> None:
        async with asyncio.timeout(_REFRESH_TIMEOUT_S):
            async with self._storage.transaction() as tx:
                depth = await tx.outbox.depth()
                peers = [p.server for p in await tx.peers.all() if p.status == "accepted"]
                _floor, head = await tx.feed.bounds()
                hooks = [h for h in await tx.webhooks.all() if h.status == "active"]
                halts = await tx.halts.all()
                alerts = await tx.alerts.all(limit=10_000)
        kinds: dict[str, int] = {}
        for alert in alerts:
            kinds[alert.kind] = kinds.get(alert.kind, 0) + 1
        self.snapshot = _Snapshot(
            queue_depth={**dict.fromkeys(peers, 0), **depth},
            webhook_backlog={h.id: max(0, head - h.cursor) for h in hooks},
            feed_head=head,
            halted={h.network: h.seq for h in halts},
            alerts=kinds,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None or request.match_info.http_exception is not None:
        return "unmatched"
    return resource.canonical


def metrics_endpoints(metrics: NodeMetrics) -> list[Endpoint]:
    async def scrape(_request: web.Request) -> web.Response:
        await metrics.refresh()
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [Endpoint("GET", "/metrics", scrape,
                     "Prometheus metrics in the text exposition format (needs the admin token)",
                     media_type="text/plain")]
