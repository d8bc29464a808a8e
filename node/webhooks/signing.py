"""Signing webhook deliveries in the Standard Webhooks form (https://www.standardwebhooks.com).

A delivery carries three headers:

    webhook-id          msg_<webhook>_<cursor>: the same for every retry of one event
    webhook-timestamp   seconds since the epoch, when this attempt was signed
    webhook-signature   v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"> (space-separated
                        list, so a receiver can accept several during a secret rotation)

The secret is `whsec_` plus the base64 of 32 random bytes (the specification asks for 24 to
64); the HMAC key is the decoded bytes, never the text. A receiver checks the timestamp
against its own clock (five minutes either way, which bounds how long a captured delivery can
be replayed) and compares signatures in constant time. `verify` below is that recipe; it is
pure (the time is an argument) and raises one error whatever check failed, with the check
named in the message for the receiver's log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping

from node.basics.errors import Unauthorized

__all__ = [
    "SECRET_PREFIX", "TOLERANCE_S", "InvalidWebhookSignature", "generate_secret", "sign", "signature_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"
# 32 bytes: the HMAC-SHA256 output size; the specification allows 24 to 64.
SECRET_BYTES = 32
_MIN_SECRET_BYTES, _MAX_SECRET_BYTES = 24, 64
# The specification's replay window: a receiver refuses a timestamp further than this from now.
TOLERANCE_S = 300


class InvalidWebhookSignature(Unauthorized):
    code = "invalid_webhook_signature"


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidWebhookSignature("the webhook secret is not whsec_ followed by base64") from None
    if not _MIN_SECRET_BYTES <= len(key) <= _MAX_SECRET_BYTES:
        raise InvalidWebhookSignature("the webhook secret must decode to 24 to 64 bytes")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt: `v1,<base64>`."""
    return "v1," + base64.b64encode(_digest(_key(secret), msg_id, timestamp, body)).decode()


def signature_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now_s: int,
           tolerance_s: int = TOLERANCE_S) -> str:
    """Check a delivery as a receiver; returns its `webhook-id` (to drop duplicates).

    `headers` may be any mapping (names are matched case-insensitively); `body` is the raw
    request body, exactly as received, before any JSON parsing.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise InvalidWebhookSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise InvalidWebhookSignature("webhook-timestamp is not whole seconds since the epoch")
    sent_at = int(timestamp)
    if abs(now_s - sent_at) > tolerance_s:
        raise InvalidWebhookSignature("webhook-timestamp is too far from now")
    expected = _digest(_key(secret), msg_id, sent_at, body)
    for candidate in signatures.split(" "):
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, given):
            return msg_id
    raise InvalidWebhookSignature("no webhook-signature matches")
