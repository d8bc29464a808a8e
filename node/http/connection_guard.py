"""Connection-level defences of a listener: who may hold a connection, and for how long.

Signatures and rules protect what a request *says*; nothing there stops a party that never
finishes saying it. The federation listener is public, and every other node may be hostile,
so a connection has to earn its place at each step, under a clock:

1. **Admission**, when the TCP connection is accepted and before any TLS work is spent on
   it: at most `per_address` open connections per remote address (an IPv6 address counts by
   its /64, which one party usually holds whole), and at most `total` on the listener. A
   connection over the per-address limit is closed at once. At the total cap, the oldest
   connection that has not yet sent a complete request gives way to the new one; only if
   every connection has sent one is the new connection closed. So a flood of silent
   connections from many addresses cannot lock a peer out, and the cap keeps the process
   below its open-file limit (at which asyncio stops accepting for a second, for everyone).
2. **TLS handshake**, within `handshake_timeout_s` (asyncio's own default is 60 s).
3. **Request headers**, complete within `header_timeout_s` of the handshake, or of the first
   byte that follows an answer on a kept-alive connection (slowloris).
4. **Request body**, complete within `body_timeout_s` of the headers: a handler waiting for
   it gets 408 `request_timeout`, and the connection closes after the answer.
5. **Idle keep-alive**, closed after `idle_timeout_s` without a request (not counted as an
   attack: it is how connections end).

aiohttp leaves 2 to asyncio's 60 s, bounds 3 only by its keep-alive timeout (an hour by
default), has no 4 and counts no addresses, so the guard sits under it, with public asyncio
APIs: the listening socket serves `_Gate`, a plain protocol
that admits or closes the connection, upgrades it with `loop.start_tls(...)` and then hands
the TLS transport to aiohttp's request handler, forwarding the bytes to it (and holding the
few that arrive between the handshake and the hand-over). The gate keeps one timer for the
phase it is in. It learns that a request's headers are complete, and when its answer is
done, from the guard's middleware, which `protect` makes the app's outermost: aiohttp starts
the middlewares as soon as it has parsed the headers, before the body is read. The plain-HTTP client
listener uses the same gate without TLS.

Refusals and cuts are counted (`on_shed`, the node's `/metrics`) and logged at most once a
minute per address, with the address and the reason only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import socket
import ssl
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from node.basics.errors import ConfigError, RequestTimeout

__all__ = [
    "BODY_TIMEOUT_S",
    "FD_RESERVE",
    "HANDSHAKE_TIMEOUT_S",
    "HEADER_TIMEOUT_S",
    "IDLE_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "PER_ADDRESS_CONNECTIONS",
    "Admission",
    "ConnectionGuard",
    "ConnectionLimits",
    "GuardedSite",
    "ShedLog",
    "address_key",
    "ensure_file_limit",
]

log = logging.getLogger(__name__)

# A node sends to a peer one transaction at a time, plus catch-up pages and key fetches: a
# handful of connections. 64 leaves room for several companies behind one NAT address (and
# for a test cluster, where every node is 127.0.0.1), and stays under the 100 connections
# aiohttp's client pool opens at most, so one hostile node cannot hold more than this.
PER_ADDRESS_CONNECTIONS = 64
# Far above what honest peers hold (tens of peers, a few connections each). With the client
# listener's cap and FD_RESERVE a node needs 2,304 open files; at start `ensure_file_limit`
# raises the soft limit (1,024 on many systems) that far when the hard limit allows.
MAX_CONNECTIONS = 1024
# asyncio waits 60 s by default; a peer's handshake on a slow link takes a few round trips.
HANDSHAKE_TIMEOUT_S = 10.0
# An honest client sends its whole header block in one write right after the handshake; 5 s
# still covers a lost segment retransmitted twice (TCP waits 1 s, then 2 s).
HEADER_TIMEOUT_S = 5.0
# The sender's own whole-request timeout (node.federation.peer_client, 30 s): a body slower than
# that is one an honest peer has already given up on.
BODY_TIMEOUT_S = 30.0
# Longer than the 15 s aiohttp's client keeps an idle pooled connection, so an honest peer
# closes first and never sends a request on a connection this side is closing.
IDLE_TIMEOUT_S = 20.0
# Descriptors the node needs besides its listeners' connections: database connections, its
# own connections to peers and webhook receivers, the admin listener, logs and files.
FD_RESERVE = 256
# One log line per address per this many seconds; the counter counts every event.
LOG_EVERY_S = 60.0
# Addresses remembered for the once-a-minute rule. Beyond this many in one minute (an attack
# from many addresses), new addresses are not logged until older entries expire: the log stays
# bounded, and the counter still counts them all.
_LOG_MEMORY = 4096

# Reasons a connection is shed; all are counted, these are also logged (the others are how
# connections end anyway, or what every port scanner does).
_LOGGED = frozenset({"per_address_limit", "connection_limit", "evicted", "handshake_timeout",
                     "header_timeout", "body_timeout"})
_DESCRIBED = {
    "per_address_limit": "over the limit of {per_address} open connections per address",
    "connection_limit": "the listener holds {total} connections that all sent a request",
    "evicted": "it had sent no request when the listener reached {total} connections",
    "handshake_timeout": "no TLS handshake within {handshake_timeout_s:g} s",
    "header_timeout": "request headers not complete within {header_timeout_s:g} s",
    "body_timeout": "request body not complete within {body_timeout_s:g} s",
}


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    per_address: int | None = PER_ADDRESS_CONNECTIONS  # None: no per-address limit
    total: int = MAX_CONNECTIONS
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    idle_timeout_s: float = IDLE_TIMEOUT_S

    def describe(self, reason: str) -> str:
        return _DESCRIBED.get(reason, reason).format(
            per_address=self.per_address, total=self.total, handshake_timeout_s=self.handshake_timeout_s,
            header_timeout_s=self.header_timeout_s, body_timeout_s=self.body_timeout_s)


def address_key(host: str) -> str:
    """What the per-address limit counts by: the IPv4 address (also when mapped into IPv6),
    or the /64 of an IPv6 address."""
    if ":" not in host:  # IPv4 already (the common case, and the one a flood makes hot)
        return host
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Admission:
    """Counts open connections per address and in total, and decides who gets in (pure: the
    caller closes what it is told to)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self._limits = limits
        self._per_address: dict[str, int] = {}
        self._unproven: OrderedDict[object, None] = OrderedDict()  # oldest first
        self.open = 0

    def admit(self, conn: object, key: str) -> tuple[str | None, object | None]:
        """(refusal reason or None, a connection to close to make room or None)."""
        if self._limits.per_address is not None and self._per_address.get(key, 0) >= self._limits.per_address:
            return "per_address_limit", None
        evicted = None
        if self.open >= self._limits.total:
            if not self._unproven:
                return "connection_limit", None
            evicted, _ = self._unproven.popitem(last=False)
        self._per_address[key] = self._per_address.get(key, 0) + 1
        self._unproven[conn] = None
        self.open += 1
        return None, evicted

    def proven(self, conn: object) -> None:
        """`conn` sent a complete request: it is no longer the first to give way at the cap."""
        self._unproven.pop(conn, None)

    def release(self, conn: object, key: str) -> None:
        self._unproven.pop(conn, None)
        left = self._per_address.get(key, 0) - 1
        if left > 0:
            self._per_address[key] = left
        else:
            self._per_address.pop(key, None)
        self.open -= 1


class ShedLog:
    """Whether to log an event for an address now: at most once per `every_s` per address,
    reporting how many were held back since the last line."""

    def __init__(self, every_s: float = LOG_EVERY_S, memory: int = _LOG_MEMORY) -> None:
        self._every_s = every_s
        self._memory = memory
        self._last: dict[str, tuple[float, int]] = {}  # address -> (logged at, held back since)

    def due(self, key: str, now: float) -> int | None:
        """None: hold this one back; else the number held back before it."""
        logged_at, held = self._last.get(key, (None, 0))
        if logged_at is not None and now - logged_at < self._every_s:
            self._last[key] = (logged_at, held + 1)
            return None
        if logged_at is None and len(self._last) >= self._memory:
            self._last = {k: v for k, v in self._last.items() if now - v[0] < self._every_s}
            if len(self._last) >= self._memory:
                return None
        self._last[key] = (now, 0)
        return held


def ensure_file_limit(needed: int) -> int:
    """Raise the soft open-file limit to `needed` if the hard limit allows (as Go's runtime
    does at start); refuse to start if it does not."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigError(
            f"the listeners' connection caps need {needed} open files but the process may open at most "
            f"{hard} (ulimit -Hn): raise that limit, or lower federation_max_connections and client_max_connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


class _BodyOverdue(RequestTimeout, TimeoutError):
    """Also a TimeoutError, so aiohttp's read of the unread rest after the answer (its
    "lingering") ends on it quietly and closes the connection, instead of logging it."""


class ConnectionGuard:
    """One listener's guard: admission, the gates' timers, the middleware, counting and logs."""

    def __init__(self, listener: str, limits: ConnectionLimits, *, ssl_context: ssl.SSLContext | None = None,
                 on_shed: Callable[[str, str], None] | None = None) -> None:
        self.listener = listener
        self.limits = limits
        self.ssl_context = ssl_context
        self._on_shed = on_shed or (lambda listener, reason: None)
        self._admission = Admission(limits)
        self._log = ShedLog()
        self._gates: set[_Gate] = set()
        self._by_transport: dict[asyncio.BaseTransport, _Gate] = {}

    @property
    def open_connections(self) -> int:
        return self._admission.open

    def protect(self, app: web.Application) -> None:
        """Make the guard's middleware the app's outermost (before the app is frozen)."""
        app.middlewares.insert(0, self._middleware)

    def close_unanswered(self) -> None:
        """Close the connections still in the guard's hands (handshake, or not handed to
        aiohttp yet): they have nothing to finish when the listener stops."""
        for gate in [g for g in self._gates if g.app_transport is None]:
            gate.abort()

    # Called by the gates.

    def admit(self, gate: _Gate) -> bool:
        refused, evicted = self._admission.admit(gate, gate.key)
        if refused is not None:
            self.shed(gate, refused)
            return False
        self._gates.add(gate)
        if isinstance(evicted, _Gate):
            self.shed(evicted, "evicted")
            evicted.abort()
        return True

    def handed_over(self, gate: _Gate, transport: asyncio.BaseTransport) -> None:
        self._by_transport[transport] = gate

    def release(self, gate: _Gate) -> None:
        if gate in self._gates:
            self._gates.discard(gate)
            self._admission.release(gate, gate.key)
        if gate.app_transport is not None:
            self._by_transport.pop(gate.app_transport, None)

    def proven(self, gate: _Gate) -> None:
        self._admission.proven(gate)

    def shed(self, gate: _Gate, reason: str) -> None:
        self._on_shed(self.listener, reason)
        if reason not in _LOGGED:
            return
        held = self._log.due(gate.key, asyncio.get_running_loop().time())
        if held is not None:
            more = f" ({held} more from this address in the last minute)" if held else ""
            log.warning("%s listener: closed a connection from %s: %s%s", self.listener, gate.key,
                        self.limits.describe(reason), more)

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        gate = self._by_transport.get(request.transport) if request.transport is not None else None
        if gate is None:  # not a guarded connection
            return await handler(request)
        gate.request_started()
        overdue: list[bool] = []
        timer = None
        if not request.content.is_eof():
            def body_overdue() -> None:
                if not request.content.is_eof():
                    overdue.append(True)
                    self.shed(gate, "body_timeout")
                    request.content.set_exception(_BodyOverdue(
                        f"the request body did not arrive within {self.limits.body_timeout_s:g} s; "
                        "send the whole body at once"))
            timer = asyncio.get_running_loop().call_later(self.limits.body_timeout_s, body_overdue)
        try:
            response = await handler(request)
            if overdue:
                response.force_close()
            return response
        finally:
            if timer is not None:
                timer.cancel()
            gate.request_finished()


_HANDSHAKE, _HEADERS, _REQUEST, _IDLE = "handshake", "headers", "request", "idle"


class _Gate(asyncio.Protocol):
    """One accepted connection: admitted or closed, upgraded to TLS, then aiohttp's, with the
    timer of the phase it is in."""

    def __init__(self, guard: ConnectionGuard, server: web.Server) -> None:
        self._guard = guard
        self._server = server
        self._loop = asyncio.get_running_loop()
        self.key = "unknown"
        self._raw: asyncio.Transport | None = None
        self.app_transport: asyncio.Transport | None = None
        self._app: asyncio.Protocol | None = None
        self._early: list[bytes] = []
        self._phase = _HANDSHAKE
        self._timer: asyncio.TimerHandle | None = None
        self._handshake: asyncio.Task[None] | None = None
        self._closed = False

    # asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport), "a stream server hands over a stream transport"
        self._raw = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.key = address_key(str(peer[0]))
        if not self._guard.admit(self):
            self._closed = True
            transport.abort()
            return
        if self._guard.ssl_context is None:
            self._hand_over(transport)
        else:
            self._handshake = self._loop.create_task(self._start_tls())

    def data_received(self, data: bytes) -> None:
        if self._app is None:
            self._early.append(data)  # between the handshake and the hand-over
            return
        if self._phase == _IDLE:
            self._arm(_HEADERS, self._guard.limits.header_timeout_s, self._headers_overdue)
        self._app.data_received(data)

    def eof_received(self) -> bool | None:
        return self._app.eof_received() if self._app is not None else None

    def pause_writing(self) -> None:
        if self._app is not None:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        if self._app is not None:
            self._app.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._close()
        if self._app is not None:
            self._app.connection_lost(exc)

    # phases

    async def _start_tls(self) -> None:
        assert self._raw is not None and self._guard.ssl_context is not None
        limits = self._guard.limits
        try:
            transport = await self._loop.start_tls(
                self._raw, self, self._guard.ssl_context, server_side=True,
                ssl_handshake_timeout=limits.handshake_timeout_s, ssl_shutdown_timeout=limits.handshake_timeout_s)
        except ConnectionAbortedError:  # asyncio's handshake timeout
            transport = None
            if not self._closed:
                self._guard.shed(self, "handshake_timeout")
        except (OSError, ssl.SSLError, EOFError):  # not TLS, or the client went away
            transport = None
            if not self._closed:
                self._guard.shed(self, "handshake_failed")
        finally:
            self._handshake = None
        if transport is None or self._closed:
            # asyncio closed the connection, and an unfinished handshake tells no one else.
            self._close()
            return
        self._hand_over(transport)

    def _hand_over(self, transport: asyncio.Transport) -> None:
        self.app_transport = transport
        self._guard.handed_over(self, transport)
        self._app = self._server()
        self._app.connection_made(transport)
        self._arm(_HEADERS, self._guard.limits.header_timeout_s, self._headers_overdue)
        early, self._early = self._early, []
        for chunk in early:
            self._app.data_received(chunk)

    def request_started(self) -> None:
        self._arm(_REQUEST, None, None)
        self._guard.proven(self)

    def request_finished(self) -> None:
        if not self._closed:
            self._arm(_IDLE, self._guard.limits.idle_timeout_s, self._idle_over)

    def _arm(self, phase: str, after_s: float | None, then: Callable[[], None] | None) -> None:
        self._phase = phase
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if after_s is not None and then is not None and not self._closed:
            self._timer = self._loop.call_later(after_s, then)

    def _headers_overdue(self) -> None:
        self._timer = None
        self._guard.shed(self, "header_timeout")
        self.abort()

    def _idle_over(self) -> None:
        self._timer = None
        transport = self.app_transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():  # still sending the last answer
            self._arm(_IDLE, self._guard.limits.idle_timeout_s, self._idle_over)
            return
        self._guard.shed(self, "idle_timeout")
        transport.close()

    def abort(self) -> None:
        """Close now, without a goodbye (an attacker gets nothing to wait for)."""
        if self._handshake is not None:
            self._handshake.cancel()
        if self.app_transport is not None:
            self.app_transport.abort()  # also aborts the TCP transport under it
        elif self._raw is not None:
            self._raw.abort()
        self._close()

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closed = True
        self._guard.release(self)


class GuardedSite(web.BaseSite):
    """Serves a runner's app on a socket (or host and port) through a `ConnectionGuard`."""

    __slots__ = ("_guard", "_host", "_port", "_sock")

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, *, sock: socket.socket | None = None,
                 host: str | None = None, port: int | None = None, backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self._guard = guard
        self._sock = sock
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._guard.ssl_context is not None else "http"
        host, port = self._sock.getsockname()[:2] if self._sock is not None else (self._host, self._port)
        return f"{scheme}://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def gate() -> _Gate:
            return _Gate(self._guard, server)

        if self._sock is not None:
            self._server = await loop.create_server(gate, sock=self._sock, backlog=self._backlog)
        else:
            assert self._port is not None, "a listener without a socket needs a port"
            self._server = await loop.create_server(gate, self._host, self._port, backlog=self._backlog)

    async def stop(self) -> None:
        await super().stop()
        self._guard.close_unanswered()  # the runner shuts down aiohttp's own connections
