"""TLS for federation: the server's context, the client's context, and a first certificate.

Nodes talk to each other over HTTPS only; signed requests prove *which company* sent a
request, TLS keeps it private and proves the peer's endpoint really serves that company's
name. Three things shape this module:

* A peer's endpoint URL may differ from its server name (``globex.example`` reachable at
  ``https://127.0.0.1:40123`` behind a proxy, or in tests). The client connects to the
  endpoint but checks the certificate against the *server name's* host, which callers pass
  to aiohttp per request as ``server_hostname=host_of(server_name)``; aiohttp sends it as
  SNI, verifies against it, and keeps it in the pool key, so a connection verified for one
  name is never reused for another.
* Verification is never optional. There is no flag to switch it off: a private network
  trusts a private CA (or each peer's self-signed certificate) through ``tls_ca_file``.
* ``agentnet init`` must give a node something to serve before anyone has set up a CA, so
  ``node.ops.tls_ca.write_self_signed`` makes a certificate whose fingerprint the operator can
  read out to the peers that will trust it.
* Partners come and go while a node runs: ``PeerTrust`` re-reads the ``tls_ca_file`` when it
  changes (checked at most once a second), so adding a partner's certificate needs no
  restart, and a certificate a peer shows that is not trusted is reported as exactly that,
  naming the file to add it to.

Every failure to read the operator's files is a one-line ``ConfigError`` naming the file;
key material never appears in a message.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from node.basics.errors import ConfigError

__all__ = [
    "AEAD_CIPHERS",
    "MIN_TLS_VERSION",
    "SELF_SIGNED_DAYS",
    "PeerTrust",
    "certificate_not_after_ms",
    "client_ssl_context",
    "host_of",
    "server_ssl_context",
    "write_new",
]

log = logging.getLogger(__name__)

# TLS 1.0 and 1.1 are deprecated by RFC 8996; every supported OpenSSL speaks 1.2.
MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2

# TLS 1.2 suites both contexts offer: forward-secret key exchange (ECDHE) with an AEAD cipher
# (AES-GCM, ChaCha20-Poly1305), the set Mozilla's "intermediate" profile keeps. OpenSSL's
# default list still has CBC suites (ECDHE-ECDSA-AES256-SHA384 ...), whose MAC-then-encrypt
# construction has a long record of padding-oracle attacks (Lucky13 and its successors).
# TLS 1.3 suites are set apart by OpenSSL, and every one of them is AEAD.
AEAD_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"

# 825 days is the longest lifetime Apple platforms accept for a TLS server certificate
# (since 2019); a self-signed certificate only needs to outlive the first real one.
SELF_SIGNED_DAYS = 825

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


def server_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The federation listener's context: the certificate chain and key, TLS 1.2 or newer,
    AEAD suites only.

    ``cert_file`` holds the leaf first, then any intermediates. An encrypted key is refused
    rather than letting OpenSSL prompt on a terminal a daemon does not have.
    """
    _check_certificates(cert_file, "TLS certificate file")
    try:
        with open(key_file, "rb"):
            pass
    except OSError as e:
        raise ConfigError(f"cannot read TLS key file {key_file}: {e.strerror}") from None

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MIN_TLS_VERSION
    context.set_ciphers(AEAD_CIPHERS)
    try:
        context.load_cert_chain(cert_file, key_file, password=_refuse_password)
    except _PasswordRequired:
        raise ConfigError(
            f"TLS key file {key_file} is encrypted; the node needs an unencrypted key "
            "(readable by its owner only)"
        ) from None
    except ssl.SSLError as e:
        if e.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(
                f"TLS key file {key_file} does not match certificate {cert_file}"
            ) from None
        raise ConfigError(f"TLS key file {key_file} does not hold a PEM private key") from None
    except OSError as e:
        raise ConfigError(f"cannot load TLS files {cert_file}, {key_file}: {e.strerror}") from None
    return context


def client_ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """The context for calling peers: certificate and hostname always verified, TLS 1.2+,
    AEAD suites only.

    With ``ca_file`` the bundle *replaces* the system trust store, so a private network
    trusts only its own CA (or its peers' self-signed certificates); without it, the
    system's public CAs are trusted. X.509 strict mode is on, as Python 3.13 does by default,
    so a certificate that works here works on every supported Python.
    """
    if ca_file is not None:
        _check_certificates(ca_file, "TLS CA file")
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except ssl.SSLError:
        raise ConfigError(f"TLS CA file {ca_file} holds no usable CA certificate") from None
    except OSError as e:
        raise ConfigError(f"cannot read TLS CA file {ca_file}: {e.strerror}") from None
    context.minimum_version = MIN_TLS_VERSION
    context.set_ciphers(AEAD_CIPHERS)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    # create_default_context already sets both; saying so here keeps an edit from loosening them.
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class PeerTrust:
    """The client context for calling peers, rebuilt when the CA file changes. A file that
    turns out unusable is logged and the trust in force is kept, so a half-written bundle
    never cuts a node off from its partners."""

    def __init__(self, ca_file: Path | None, *, check_every_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ca_file = ca_file
        self._context = client_ssl_context(ca_file)
        self._stamp = _stamp(ca_file)
        self._every = check_every_s
        self._now = monotonic
        self._checked = monotonic()

    def context(self) -> ssl.SSLContext:
        if self.ca_file is None or self._now() - self._checked < self._every:
            return self._context
        self._checked = self._now()
        stamp = _stamp(self.ca_file)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._context = client_ssl_context(self.ca_file)
            except ConfigError as e:
                log.warning("keeping the TLS trust in force: %s", e)
            else:
                log.info("TLS trust reloaded from %s", self.ca_file)
        return self._context

    def describe(self) -> str:
        """Where a partner's certificate (or its CA's) goes to be trusted."""
        if self.ca_file is None:
            return ("this node trusts the system's public CAs only: put the partner's certificate, or its CA's, "
                    "in a file and name it in tls_ca_file (then restart the node)")
        return f"add the partner's certificate, or its CA's, to {self.ca_file} (tls_ca_file; read again within a second)"


def certificate_not_after_ms(cert_file: Path) -> int | None:
    """When the first certificate in `cert_file` expires, for the operator's overview; None if
    it cannot be read (serving it has already been checked)."""
    from cryptography import x509  # loaded once, at start

    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        return None
    return int(cert.not_valid_after_utc.timestamp() * 1000)


def _stamp(path: Path | None) -> tuple[int, int, int] | None:
    try:
        info = path.stat() if path is not None else None
    except OSError:
        return None
    return None if info is None else (info.st_mtime_ns, info.st_size, info.st_ino)


def host_of(server_name: str) -> str:
    """The host part of ``host[:port]``: the name a peer's certificate must carry.

    Server names are DNS names or IPv4 addresses (never bracketed IPv6), so the port, if
    any, is whatever follows the single colon.
    """
    return server_name.partition(":")[0]


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` exclusively with ``mode`` (narrowed only by the umask) before writing,
    so the key is never readable by others, not even for a moment."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as e:
        raise ConfigError(f"cannot create {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _check_certificates(path: Path, what: str) -> None:
    """Fail with a message naming ``path`` unless it holds PEM certificates OpenSSL can load
    (checked with the standard library: this runs at every start, and `cryptography` is
    needed only to make certificates, in `node.ops.tls_ca`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None
    blocks = _PEM_CERTIFICATE.findall(data)
    try:
        if not blocks:
            raise ValueError("no certificate")
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=b"\n".join(blocks).decode("ascii"))
    except (ValueError, ssl.SSLError):
        raise ConfigError(f"{what} {path} does not hold a PEM certificate") from None


class _PasswordRequired(Exception):
    pass


def _refuse_password() -> bytes:
    raise _PasswordRequired
