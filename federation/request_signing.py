"""The signing envelope of node-to-node HTTP requests: one recipe, both directions.

Why a request is signed and not just sent over TLS: TLS proves which host answered, not
which node asked. Every federation request therefore carries, in its ``Authorization``
header, an Ed25519 signature by the origin node over a small canonical JSON object::

    {"body": B(SHA-256(body)), "destination": ..., "method": "PUT", "nonce": ...,
     "origin": ..., "path": "/path?query", "ts": <ms>}

Each field closes one attack:

- ``method`` and ``path`` (with its query string, exactly as written in the request line,
  never re-encoded or normalised) stop a signature for one endpoint being used on another.
- ``body`` is a digest, so the signed object stays small whatever the body's size, and the
  same bytes are hashed on both sides: the receiver hashes the bytes it read, never a
  re-serialisation of what it parsed. GET requests sign the digest of the empty body.
- ``origin`` says whose key to look up; ``destination`` stops a peer that received a signed
  request from replaying it to a third node (each node checks it is the destination).
- ``ts`` bounds how long a captured request stays usable (``MAX_SKEW_MS`` either way), and
  ``nonce`` makes each request unique within that span, so the receiver can refuse a replay
  by remembering the nonces it has accepted.

Replay detection is the only stateful check, so it is the caller's: after
``verify_request`` succeeds (never before, or unauthenticated junk could fill the store or
burn a peer's nonces), the receiver records ``(origin, nonce)`` and refuses any request whose
pair it already holds. A request is accepted while ``|now - ts| <= MAX_SKEW_MS``, so a nonce
first accepted at ``now`` can come back until ``now + REPLAY_WINDOW_MS`` at the latest; the
receiver forgets it after that, when the timestamp check alone refuses the copy.

The same ``signing_bytes`` builds what the sender signs and what the receiver checks, so the
two sides cannot drift. The header names the key id (``ed25519:...``), so the algorithm is
explicit and rotation needs no guessing. Parsing is strict and bounded: exactly six
parameters, once each, each in a fixed alphabet; anything else is the same opaque
``InvalidSignature`` as a bad signature, with the precise cause in ``detail`` for the logs.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from federation.canonical_json import MAX_INT, encode_canonical
from federation.errors import (
    ClockSkew,
    InvalidEncoding,
    InvalidIdentifier,
    InvalidSignature,
    UnknownKey,
    WrongDestination,
)
from federation.events import KeyLookup
from federation.identifiers import validate_server_name
from federation.keys import SigningKey, b64decode, b64encode

__all__ = [
    "AUTH_SCHEME",
    "MAX_AUTHORIZATION_CHARS",
    "MAX_SKEW_MS",
    "REPLAY_WINDOW_MS",
    "RequestSignature",
    "parse_authorization",
    "sign_request",
    "signing_bytes",
    "verify_request",
]

AUTH_SCHEME = "AgentNet"
# Five minutes either way: what Kerberos and AWS SigV4 accept; NTP-synced servers are within
# milliseconds, and a tighter bound only turns a drifting clock into an outage.
MAX_SKEW_MS = 5 * 60 * 1000
# A request stays acceptable from ts - MAX_SKEW_MS to ts + MAX_SKEW_MS of the receiver's
# clock: a 10-minute span, and so the time a receiver must remember each accepted nonce.
REPLAY_WINDOW_MS = 2 * MAX_SKEW_MS
# Two 255-character server names, a key id, a 16-digit ts, a 64-character nonce and an
# 86-character signature come to about 800 characters; 2048 leaves room, bounds the parse.
MAX_AUTHORIZATION_CHARS = 2048
# 16 random bytes (128 bits, 22 characters): collisions are negligible within a window.
_NONCE_BYTES = 16
# 16 characters is the shortest that still carries 96 bits; 64 bounds what we store.
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_KEY_ID_RE = re.compile(r"ed25519:[A-Za-z0-9_-]{8}")
_TS_RE = re.compile(r"0|[1-9][0-9]{0,15}")  # MAX_INT has 16 digits
_SIG_RE = re.compile(r"[A-Za-z0-9_-]{86}")  # a 64-byte ed25519 signature
# RFC 9110 token characters; the longest registered method (UPDATEREDIRECTREF) has 17.
_METHOD_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Z-]{1,20}")
# A request target in origin form ("/a/b?c"), printable ASCII without spaces. 8190 is
# aiohttp's default request-line limit, so no longer path could reach us anyway.
_PATH_RE = re.compile(r"/[\x21-\x7e]{0,8189}")
_PARAMS = ("origin", "destination", "key", "ts", "nonce", "sig")
# One auth-param: a lowercase name and a quoted value without quotes, escapes or controls.
_PARAM_RE = re.compile(r'([a-z]{1,16})="([\x20\x21\x23-\x5b\x5d-\x7e]*)"')
_SEPARATOR_RE = re.compile(r",[ \t]*")  # RFC 9110 lists allow whitespace after the comma


@dataclass(frozen=True, slots=True)
class RequestSignature:
    """The parsed ``Authorization`` header: who signed, for whom, when, and the signature."""

    origin: str
    destination: str
    key_id: str
    timestamp_ms: int
    nonce: str
    signature: bytes

    def __post_init__(self) -> None:
        try:
            validate_server_name(self.origin)
            validate_server_name(self.destination)
        except InvalidIdentifier as e:
            raise InvalidSignature(detail=f"bad server name in header: {e}") from e
        if not isinstance(self.key_id, str) or not _KEY_ID_RE.fullmatch(self.key_id):
            raise InvalidSignature(detail="key is not an ed25519 key id")
        if type(self.timestamp_ms) is not int or not 0 <= self.timestamp_ms <= MAX_INT:
            raise InvalidSignature(detail=f"ts is not an integer in [0, {MAX_INT}]")
        if not isinstance(self.nonce, str) or not _NONCE_RE.fullmatch(self.nonce):
            raise InvalidSignature(detail="nonce is not 16-64 base64url characters")
        if type(self.signature) is not bytes or len(self.signature) != 64:
            raise InvalidSignature(detail="sig is not 64 bytes")

    def to_authorization(self) -> str:
        """The header value; ``parse_authorization`` is its exact inverse."""
        return (
            f'{AUTH_SCHEME} origin="{self.origin}",destination="{self.destination}",'
            f'key="{self.key_id}",ts="{self.timestamp_ms}",nonce="{self.nonce}",'
            f'sig="{b64encode(self.signature)}"'
        )


def signing_bytes(
    *,
    method: str,
    path: str,
    origin: str,
    destination: str,
    timestamp_ms: int,
    nonce: str,
    body: bytes,
) -> bytes:
    """The canonical bytes both sides sign and verify.

    ``path`` is the request target exactly as in the request line (path and query, still
    percent-encoded). Raises ``ValueError`` for values no valid request could carry.
    """
    method = method.upper() if isinstance(method, str) else method
    if not isinstance(method, str) or not _METHOD_RE.fullmatch(method):
        raise ValueError("method is not an HTTP token")
    if not isinstance(path, str) or not _PATH_RE.fullmatch(path):
        raise ValueError("path is not an origin-form request target")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ValueError("body must be bytes")
    if type(timestamp_ms) is not int or not 0 <= timestamp_ms <= MAX_INT:
        raise ValueError(f"timestamp must be an integer in [0, {MAX_INT}]")
    if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
        raise ValueError("nonce must be 16-64 base64url characters")
    return encode_canonical(
        {
            "body": b64encode(hashlib.sha256(body).digest()),
            "destination": validate_server_name(destination),
            "method": method,
            "nonce": nonce,
            "origin": validate_server_name(origin),
            "path": path,
            "ts": timestamp_ms,
        }
    )


def sign_request(
    key: SigningKey,
    *,
    method: str,
    path: str,
    origin: str,
    destination: str,
    body: bytes,
    now_ms: int,
    nonce: str | None = None,
) -> str:
    """Return the ``Authorization`` header value for one outgoing request.

    ``nonce`` is only for tests and known-answer vectors; leave it out in real use.
    """
    nonce = b64encode(secrets.token_bytes(_NONCE_BYTES)) if nonce is None else nonce
    message = signing_bytes(
        method=method, path=path, origin=origin, destination=destination,
        timestamp_ms=now_ms, nonce=nonce, body=body,
    )
    signature = RequestSignature(origin, destination, key.key_id, now_ms, nonce, key.sign(message))
    return signature.to_authorization()


def parse_authorization(header: object) -> RequestSignature:
    """Parse an ``Authorization`` header value; any defect raises ``InvalidSignature``."""
    if not isinstance(header, str):
        raise InvalidSignature(detail="authorization header is not a string")
    if len(header) > MAX_AUTHORIZATION_CHARS:
        raise InvalidSignature(detail=f"authorization header over {MAX_AUTHORIZATION_CHARS}")
    scheme, space, rest = header.partition(" ")
    if scheme != AUTH_SCHEME or not space:
        raise InvalidSignature(detail=f"authorization scheme is not {AUTH_SCHEME}")
    params = _parse_params(rest)
    if not _TS_RE.fullmatch(params["ts"]):
        raise InvalidSignature(detail="ts is not a decimal integer")
    if not _SIG_RE.fullmatch(params["sig"]):
        raise InvalidSignature(detail="sig is not 86 base64url characters")
    try:
        signature = b64decode(params["sig"])
    except InvalidEncoding as e:
        raise InvalidSignature(detail="sig is not strict base64url") from e
    return RequestSignature(
        origin=params["origin"],
        destination=params["destination"],
        key_id=params["key"],
        timestamp_ms=int(params["ts"]),
        nonce=params["nonce"],
        signature=signature,
    )


def _parse_params(text: str) -> dict[str, str]:
    """Split ``a="x",b="y"`` into a dict: exactly the six names, each once."""
    params: dict[str, str] = {}
    pos = 0
    while True:
        match = _PARAM_RE.match(text, pos)
        if match is None:
            raise InvalidSignature(detail=f"malformed auth-param at offset {pos}")
        name, value = match.groups()
        if name not in _PARAMS or name in params:
            raise InvalidSignature(detail=f"unexpected or repeated parameter {name!r}")
        params[name] = value
        pos = match.end()
        if pos == len(text):
            break
        separator = _SEPARATOR_RE.match(text, pos)
        if separator is None:
            raise InvalidSignature(detail=f"expected ',' at offset {pos}")
        pos = separator.end()
    if len(params) != len(_PARAMS):
        missing = sorted(set(_PARAMS) - params.keys())
        raise InvalidSignature(detail=f"missing parameters {missing}")
    return params


def verify_request(
    sig: RequestSignature,
    *,
    method: str,
    path: str,
    body: bytes,
    expected_destination: str,
    now_ms: int,
    lookup: KeyLookup,
) -> None:
    """Check one incoming request; return quietly or raise.

    Order: destination (``WrongDestination``), clock (``ClockSkew``), key (``UnknownKey``),
    signature (``InvalidSignature``). The caller then refuses a replayed ``(origin, nonce)``
    (see the module docstring) and only then acts on the request.
    """
    if sig.destination != expected_destination:
        raise WrongDestination(f"request is addressed to {sig.destination}")
    if abs(now_ms - sig.timestamp_ms) > MAX_SKEW_MS:
        raise ClockSkew(
            f"request timestamp is {now_ms - sig.timestamp_ms} ms off; "
            f"at most {MAX_SKEW_MS} ms is accepted"
        )
    key = lookup(sig.origin, sig.key_id)
    if key is None:
        raise UnknownKey(f"no pinned key {sig.key_id} for {sig.origin}")
    if key.key_id != sig.key_id:
        raise InvalidSignature(detail=f"lookup for {sig.key_id} returned {key.key_id}")
    try:
        message = signing_bytes(
            method=method, path=path, origin=sig.origin, destination=sig.destination,
            timestamp_ms=sig.timestamp_ms, nonce=sig.nonce, body=body,
        )
    except ValueError as e:
        raise InvalidSignature(detail=f"request cannot be signed: {e}") from e
    key.verify(message, sig.signature)
