"""Bearer tokens: 256 random bits, shown once, stored only as a SHA-256 hex digest.

A fast hash is right here: unlike passwords, the tokens carry full entropy, so nothing can be
guessed from the digest; the lookup by digest also keeps comparisons off the secret itself.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

__all__ = ["IssuedToken", "hash_token", "issue_token"]

# 32 bytes: the same strength as the node's ed25519 key.
_TOKEN_BYTES = 32
# Characters of the token kept in clear so operators can tell tokens apart in listings.
_PREFIX_CHARS = 10


@dataclass(frozen=True, slots=True)
class IssuedToken:
    secret: str
    digest: str
    prefix: str


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def issue_token(kind: str) -> IssuedToken:
    """`kind` is a short tag (`adm`, `agt`, `per`) that makes leaked tokens easy to spot."""
    secret = f"an{kind}_{secrets.token_urlsafe(_TOKEN_BYTES)}"
    return IssuedToken(secret=secret, digest=hash_token(secret), prefix=secret[:_PREFIX_CHARS])
