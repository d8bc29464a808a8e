"""The node's error tree. Every error a client or operator can see is one of these, rendered
in one place (`node.http.errors`) as `{"error": {"code", "message"}}` with its HTTP status.

    NodeError                      500 internal_error
    ├── BadRequest                 400 bad_request
    │   └── MalformedJson          400 malformed_json
    ├── InvalidRequest             422 invalid_request   (names the offending fields)
    ├── Unauthorized               401 unauthorized
    │   └── Replayed               401 replayed          (a request nonce seen before)
    ├── Forbidden                  403 forbidden
    │   ├── InsufficientScope      403 insufficient_scope (the token lacks a scope)
    │   ├── NotAPeer               403 not_a_peer        (peering is default-deny)
    │   ├── Blocked                403 blocked           (an operator blocked the server)
    │   ├── KeyConflict            403 key_conflict      (a host vouched for a key the company
    │                                                     itself does not publish)
    │   └── OutboundBlocked        403 outbound_blocked  (the outbound guard stopped a message;
    │                                                     names the rules that matched)
    ├── NotFoundError              404 not_found
    │   └── UnknownNetwork         404 unknown_network
    ├── Conflict                   409 conflict
    ├── OutOfOrder                 409 out_of_order      (a gap before this event: retry later)
    ├── NetworkHalted              409 network_halted    (this member stopped following the
    │                                                     network: an earlier event was refused)
    ├── NetworkFrozen              409 network_frozen    (this company's operators froze it)
    ├── Gone                       410 gone              (an expired invite, a pruned cursor)
    ├── RequestTimeout             408 request_timeout   (a body that did not arrive in time)
    ├── PayloadTooLarge            413 payload_too_large
    ├── TooManyRequests            429 too_many_requests (with Retry-After)
    ├── PeerUnreachable            502 peer_unreachable
    ├── PeerRefused                502 peer_refused      (the peer answered with an error)
    └── ConfigError                (not HTTP: bad settings, reported by the CLI)

The same renderer maps storage's errors (NotFound 404, AlreadyExists 409, DatabaseUnavailable
503); handlers never catch them.
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Blocked",
    "CannotListen",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Gone",
    "InsufficientScope",
    "InvalidRequest",
    "KeyConflict",
    "MalformedJson",
    "NetworkFrozen",
    "NetworkHalted",
    "NodeError",
    "NotAPeer",
    "NotFoundError",
    "OutOfOrder",
    "OutboundBlocked",
    "PayloadTooLarge",
    "PeerRefused",
    "PeerUnreachable",
    "PeerUntrusted",
    "Replayed",
    "RequestTimeout",
    "TooManyRequests",
    "Unauthorized",
    "UnknownNetwork",
    "WrongTokenKind",
]


class NodeError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = {}


class BadRequest(NodeError):
    status = 400
    code = "bad_request"


class MalformedJson(BadRequest):
    code = "malformed_json"


class InvalidRequest(NodeError):
    status = 422
    code = "invalid_request"

    def __init__(self, message: str, fields: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.fields = fields


class Unauthorized(NodeError):
    status = 401
    code = "unauthorized"


class WrongTokenKind(Unauthorized):
    """A token of another kind than this listener takes (told apart by its prefix)."""

    code = "wrong_token_kind"


class NotFoundError(NodeError):
    status = 404
    code = "not_found"


class RequestTimeout(NodeError):
    status = 408
    code = "request_timeout"


class PayloadTooLarge(NodeError):
    status = 413
    code = "payload_too_large"


class ConfigError(NodeError):
    code = "config_error"


class Replayed(Unauthorized):
    code = "replayed"


class Forbidden(NodeError):
    status = 403
    code = "forbidden"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"


class NotAPeer(Forbidden):
    code = "not_a_peer"


class Blocked(Forbidden):
    code = "blocked"


class KeyConflict(Forbidden):
    """A host vouched for a key of `server` that `server` itself does not publish (or that it
    revoked): the event is refused and the operator is shown both fingerprints."""

    code = "key_conflict"

    def __init__(self, message: str, *, server: str, vouched: str, published: list[str]) -> None:
        super().__init__(message)
        self.server = server
        self.vouched = vouched
        self.published = published


class OutboundBlocked(Forbidden):
    """This company's outbound guard stopped a message before it left: `rules` names what
    matched, never the matched text."""

    code = "outbound_blocked"

    def __init__(self, message: str, *, rules: list[str]) -> None:
        super().__init__(message)
        self.rules = rules


class UnknownNetwork(NotFoundError):
    code = "unknown_network"


class OutOfOrder(NodeError):
    status = 409
    code = "out_of_order"


class NetworkHalted(NodeError):
    status = 409
    code = "network_halted"


class NetworkFrozen(NodeError):
    status = 409
    code = "network_frozen"


class Gone(NodeError):
    status = 410
    code = "gone"


class PeerUnreachable(NodeError):
    status = 502
    code = "peer_unreachable"


class PeerUntrusted(PeerUnreachable):
    """The peer's TLS certificate is not trusted here: no retry helps until an operator adds it."""

    code = "peer_untrusted"


class PeerRefused(NodeError):
    """A peer answered with an error; its status and code are kept for the caller."""

    status = 502
    code = "peer_refused"

    def __init__(self, message: str, *, peer_status: int, peer_code: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.peer_status = peer_status
        self.peer_code = peer_code
        self.retry_after_s = retry_after_s  # the peer's Retry-After, if it sent one


class Conflict(NodeError):
    status = 409
    code = "conflict"


class TooManyRequests(NodeError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers["Retry-After"] = str(retry_after_s)


class CannotListen(Exception):
    """A listener's port is taken (or not ours to bind): the node cannot do its job here
    (`agentnet run` exits 1), though nothing in its settings is malformed."""
