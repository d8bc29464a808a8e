"""The one error tree of the federation protocol.

Every failure a peer can cause is a ``ProtocolError`` with a stable ``code`` and an HTTP
``status``, so one renderer at the edge can turn any of them into the JSON error shape and
nothing above the crypto module ever sees a nacl or pydantic exception::

    ProtocolError                      (code,                status)
    ├── CanonicalJsonError             bad_json              400
    ├── InvalidEncoding  (ValueError)  bad_encoding          400
    ├── InvalidIdentifier (ValueError) invalid_identifier    400
    ├── InvalidEvent                   invalid_event         400
    ├── InvalidKeyDocument             invalid_key_document  400
    ├── InvalidExport                  invalid_export        400   not a readable export file
    ├── InvalidSignature               invalid_signature     401   opaque; ``detail`` for logs
    ├── UnknownKey                     unknown_key           401
    ├── ClockSkew                      clock_skew            401   request timestamp too far off
    ├── WrongDestination               wrong_destination     403   request signed for another node
    ├── RuleViolation                  forbidden             403   ``reason`` says which rule
    ├── ChainError                     broken_chain          409
    └── KeyFileError                   key_file              500   local only, never on the wire

``InvalidEncoding`` and ``InvalidIdentifier`` are also ``ValueError`` so that pydantic
validators calling our validators report them as ordinary validation errors.
"""

from __future__ import annotations

__all__ = [
    "CanonicalJsonError",
    "ChainError",
    "ClockSkew",
    "InvalidEncoding",
    "InvalidEvent",
    "InvalidExport",
    "InvalidIdentifier",
    "InvalidKeyDocument",
    "InvalidSignature",
    "KeyFileError",
    "ProtocolError",
    "RuleViolation",
    "UnknownKey",
    "WrongDestination",
]


class ProtocolError(Exception):
    """Base of every protocol failure; ``str(e)`` is safe to send to a peer."""

    code: str = "protocol_error"
    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CanonicalJsonError(ProtocolError):
    code = "bad_json"


class InvalidEncoding(ProtocolError, ValueError):
    code = "bad_encoding"


class InvalidIdentifier(ProtocolError, ValueError):
    code = "invalid_identifier"


class InvalidEvent(ProtocolError):
    code = "invalid_event"


class InvalidKeyDocument(ProtocolError):
    """A published key document that is malformed, oversized or self-contradictory."""

    code = "invalid_key_document"


class InvalidExport(ProtocolError):
    """A network export (``federation.export_file``) that cannot be read as one: too large,
    not JSON, another format, or the wrong shape. Checked offline, never sent to a peer."""

    code = "invalid_export"


class InvalidSignature(ProtocolError):
    """Every crypto failure looks the same to a peer, so it cannot probe which check failed."""

    code = "invalid_signature"
    status = 401
    OPAQUE_MESSAGE = "invalid signature"

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.OPAQUE_MESSAGE)
        self.detail = detail


class UnknownKey(ProtocolError):
    code = "unknown_key"
    status = 401


class ClockSkew(ProtocolError):
    """Said apart from a bad signature so an operator can tell a wrong clock from an attack;
    the timestamp is not secret, so naming it tells a peer nothing it could not see."""

    code = "clock_skew"
    status = 401


class WrongDestination(ProtocolError):
    """A request signed for another node: replayed or misrouted, never to be acted on."""

    code = "wrong_destination"
    status = 403


class RuleViolation(ProtocolError):
    """``reason`` is a stable machine code (``not_a_member``, ``thread_closed``...)."""

    code = "forbidden"
    status = 403

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason.replace("_", " "))
        self.reason = reason


class ChainError(ProtocolError):
    code = "broken_chain"
    status = 409


class KeyFileError(ProtocolError):
    """A local misconfiguration (unsafe mode, bad contents); shown to the operator."""

    code = "key_file"
    status = 500
