"""Node signing keys: the only module that touches nacl or key files.

Everything above this module sees ``SigningKey``/``VerifyKey`` and our errors, never a nacl
exception, so a crypto failure is always the same opaque ``InvalidSignature`` to a peer.
The key id carries the algorithm (``ed25519:...``) so a second algorithm can be added later
without guessing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

from federation.errors import InvalidEncoding, InvalidSignature, KeyFileError

__all__ = [
    "KEY_ALGORITHM",
    "SigningKey",
    "VerifyKey",
    "b64decode",
    "b64encode",
]

KEY_ALGORITHM = "ed25519"
# Ed25519 sizes are fixed by RFC 8032.
_SEED_BYTES = 32
_PUBLIC_KEY_BYTES = 32
_SIGNATURE_BYTES = 64
# 8 base64url characters = 48 bits of the key's hash: ids only need to be unique among one
# node's own keys (old and new during rotation), not globally.
_KEY_ID_CHARS = 8
# 16 bytes (128 bits) shown as 8 groups of 4 hex digits: short enough to read over the phone,
# long enough that nobody can grind a key with a matching fingerprint.
_FINGERPRINT_BYTES = 16
# A key file holds one base64 seed (43 characters) and a newline; refuse anything much bigger.
_MAX_KEY_FILE_BYTES = 256
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


def b64encode(data: bytes) -> str:
    """Unpadded base64url, the one binary-to-text form used on the wire."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict inverse of ``b64encode``: exactly one accepted spelling per byte string."""
    if not isinstance(text, str) or not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidEncoding("not unpadded base64url")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidEncoding("not unpadded base64url") from e
    # Non-zero padding bits would give a second spelling of the same bytes (malleable ids).
    if b64encode(data) != text:
        raise InvalidEncoding("non-canonical base64url")
    return data


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A public key as a value: safe to compare, hash, pin and publish."""

    raw: bytes

    def __post_init__(self) -> None:
        if type(self.raw) is not bytes or len(self.raw) != _PUBLIC_KEY_BYTES:
            raise InvalidEncoding(f"an {KEY_ALGORITHM} public key is {_PUBLIC_KEY_BYTES} bytes")

    @classmethod
    def from_base64(cls, text: str) -> VerifyKey:
        return cls(b64decode(text))

    def to_base64(self) -> str:
        return b64encode(self.raw)

    @property
    def key_id(self) -> str:
        digest = hashlib.sha256(self.raw).digest()
        return f"{KEY_ALGORITHM}:{b64encode(digest)[:_KEY_ID_CHARS]}"

    @property
    def fingerprint(self) -> str:
        hexed = hashlib.sha256(self.raw).digest()[:_FINGERPRINT_BYTES].hex().upper()
        return " ".join(hexed[i : i + 4] for i in range(0, len(hexed), 4))

    def verify(self, message: bytes, signature: bytes) -> None:
        """Return quietly or raise ``InvalidSignature``; nothing else escapes."""
        if type(signature) is not bytes or len(signature) != _SIGNATURE_BYTES:
            raise InvalidSignature(detail=f"signature is not {_SIGNATURE_BYTES} bytes")
        try:
            nacl.signing.VerifyKey(self.raw).verify(bytes(message), signature)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
            raise InvalidSignature(detail=f"{KEY_ALGORITHM} check failed for {self.key_id}") from e


class SigningKey:
    """A node's private key. Its seed never appears in ``repr`` and leaves only via ``save``."""

    __slots__ = ("_key",)

    def __init__(self, key: nacl.signing.SigningKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if type(seed) is not bytes or len(seed) != _SEED_BYTES:
            raise InvalidEncoding(f"an {KEY_ALGORITHM} seed is {_SEED_BYTES} bytes")
        return cls(nacl.signing.SigningKey(seed))

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(bytes(self._key.verify_key))

    @property
    def key_id(self) -> str:
        return self.verify_key.key_id

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte detached signature of ``message``."""
        return self._key.sign(bytes(message)).signature

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id})"

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the seed so that no reader ever sees a partial file or a readable mode."""
        target = Path(path)
        if target.exists() and not overwrite:
            raise KeyFileError(f"key file {target} already exists; refusing to overwrite it")
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                os.fchmod(f.fileno(), 0o600)  # the mode must be right before the secret lands
                f.write(b64encode(self._key.encode()) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read a seed written by ``save``; refuse a file others could have read."""
        source = Path(path)
        try:
            fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as e:
            raise KeyFileError(f"cannot open key file {source}: {e.strerror}") from e
        with os.fdopen(fd, "rb") as f:
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            if mode & 0o077:
                raise KeyFileError(
                    f"key file {source} has mode {mode:04o}; it must be readable by its owner "
                    f"only (run: chmod 600 {source})"
                )
            data = f.read(_MAX_KEY_FILE_BYTES + 1)
        if len(data) > _MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"key file {source} is too large to be a key")
        try:
            return cls.from_seed(b64decode(data.decode("ascii").strip()))
        except (UnicodeDecodeError, InvalidEncoding) as e:
            raise KeyFileError(f"key file {source} does not hold a base64url seed") from e


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
