"""The certificates a node makes for federation TLS: the self-signed one `agentnet init`
writes, and a small private certificate authority (`agentnet tls make-ca`, `agentnet tls issue`).

This is the one module that needs `cryptography` (X.509, not protocol signing); commands
import it when they make certificates, so a running node does not carry it.

Two companies that trust each other's nodes directly need no public CA: one of them (or a
deployment's init step, as in `docker-compose.federation.yml`) makes a CA, issues each node a
certificate for its server name, and every node lists the CA certificate in `tls_ca_file`.

The certificates are what `node.federation.tls.client_ssl_context` accepts under X.509 strict mode:
ECDSA P-256 (accepted by every TLS stack in use), a critical basicConstraints on both, key
identifiers on both, and on the leaf a subject alternative name for the server name's host
(a DNS name, or an IP address for an IPv4 host) with the serverAuth usage. Key files are
created 0600 before a byte is written; nothing is ever overwritten.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.basics.errors import ConfigError
from node.federation.tls import SELF_SIGNED_DAYS, host_of, write_new

__all__ = [
    "CA_CERT", "CA_DAYS", "CA_KEY", "LEAF_CERT", "LEAF_KEY", "Issued", "issue", "make_ca", "write_pair",
    "write_self_signed",
]

CA_CERT, CA_KEY = "ca.crt", "ca.key"
# The names a node's settings use by default (tls_cert_file, tls_key_file).
LEAF_CERT, LEAF_KEY = "tls.crt", "tls.key"

# Ten years: a private CA is replaced on purpose, not by expiry in the middle of a quarter.
CA_DAYS = 3650

# Backdate a new certificate so a peer whose clock runs a little behind still accepts it.
_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Issued:
    paths: tuple[Path, ...]
    fingerprint: str  # SHA-256 of the certificate, colon-separated hex
    created: bool  # False: every file was already there (exist_ok)


def make_ca(out_dir: Path, *, name: str, now: datetime, days: int = CA_DAYS, exist_ok: bool = False) -> Issued:
    """Write `ca.crt` and `ca.key` (0600) into `out_dir`."""
    paths = (out_dir / CA_CERT, out_dir / CA_KEY)
    if existing := _existing(paths, exist_ok):
        return existing
    _check_now(now)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    public_key = key.public_key()
    certificate = (
        _builder(subject, subject, public_key, now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_pair(*paths, certificate, key)
    return Issued(paths, _fingerprint(certificate), True)


def issue(ca_dir: Path, out_dir: Path, *, server_name: str, now: datetime, days: int = SELF_SIGNED_DAYS,
          exist_ok: bool = False) -> Issued:
    """Write `tls.crt`, `tls.key` (0600) and a copy of `ca.crt` into `out_dir`: everything a
    node needs for its federation listener and for trusting its peers."""
    paths = (out_dir / LEAF_CERT, out_dir / LEAF_KEY, out_dir / CA_CERT)
    if existing := _existing(paths, exist_ok):
        return existing
    _check_now(now)
    ca_cert, ca_key = _load_ca(ca_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _server_certificate(host_of(server_name), key, issuer=ca_cert.subject, issuer_key=ca_key,
                                      now=now, days=days)
    out_dir.mkdir(parents=True, exist_ok=True)
    if paths[2].exists():
        raise ConfigError(f"{paths[2]} already exists; refusing to overwrite it")
    write_pair(*paths[:2], certificate, key)
    try:
        write_new(paths[2], ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    except BaseException:
        for path in paths[:2]:
            path.unlink(missing_ok=True)
        raise
    return Issued(paths, _fingerprint(certificate), True)


def write_self_signed(cert_path: Path, key_path: Path, server_name: str, *, now: datetime,
                      days: int = SELF_SIGNED_DAYS) -> str:
    """Write a self-signed certificate for ``server_name``'s host and return its fingerprint.

    This is what ``agentnet init`` uses so a node serves TLS from its first start. Peers will
    only accept it once it is in their ``tls_ca_file`` bundle (or once the node switches to a
    certificate from a CA they trust), so the returned SHA-256 fingerprint, as colon-separated
    hex, is for the operator to compare with what the peer's operator sees.

    ECDSA P-256 rather than Ed25519: every TLS stack in use accepts P-256 certificates, while
    Ed25519 ones are still refused by some. The key file is created with mode 0600 before
    any byte is written; existing files are never overwritten.
    """
    _check_now(now)
    host = host_of(server_name)
    for path in (cert_path, key_path):
        if path.exists():
            raise ConfigError(f"{path} already exists; refusing to overwrite it")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    certificate = _server_certificate(host, key, issuer=name, issuer_key=key, now=now, days=days)
    write_pair(cert_path, key_path, certificate, key)
    return _fingerprint(certificate)


def write_pair(cert_path: Path, key_path: Path, certificate: x509.Certificate,
               key: ec.EllipticCurvePrivateKey) -> None:
    """The key (0600) and then its certificate, both created exclusively; on failure, neither."""
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    write_new(key_path, key_pem, 0o600)
    try:
        write_new(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    except BaseException:
        key_path.unlink(missing_ok=True)  # a key without its certificate would block a retry
        raise


def _server_certificate(host: str, key: ec.EllipticCurvePrivateKey, *, issuer: x509.Name,
                        issuer_key: ec.EllipticCurvePrivateKey, now: datetime, days: int) -> x509.Certificate:
    """A leaf for ``host``: its subject alternative name is a DNS name or an IPv4 address,
    matching how clients check it; key identifiers are there for X.509 strict mode."""
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.IPv4Address(host))
    except ValueError:
        san = x509.DNSName(host)
    public_key = key.public_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    return (
        _builder(subject, issuer, public_key, now, days)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _existing(paths: tuple[Path, ...], exist_ok: bool) -> Issued | None:
    present = [p for p in paths if p.exists()]
    if not present:
        return None
    if not exist_ok:
        raise ConfigError(f"{present[0]} already exists; refusing to overwrite it")
    if len(present) != len(paths):
        missing = ", ".join(str(p) for p in paths if not p.exists())
        raise ConfigError(f"{present[0]} exists but {missing} does not; remove the partial set and run again")
    try:
        certificate = x509.load_pem_x509_certificate(paths[0].read_bytes())
    except (OSError, ValueError):
        raise ConfigError(f"{paths[0]} exists but does not hold a PEM certificate") from None
    return Issued(paths, _fingerprint(certificate), False)


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as e:
        raise ConfigError(f"cannot read the CA in {ca_dir}: {e.strerror} ({e.filename})") from None
    except (ValueError, TypeError):
        raise ConfigError(f"{ca_dir} does not hold a CA made by `agentnet tls make-ca`") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != certificate.public_key():
        raise ConfigError(f"{key_path} is not the key of {cert_path}")
    return certificate, key


def _builder(subject: x509.Name, issuer: x509.Name, public_key, now: datetime, days: int) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )


def _check_now(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware; a naive time would be misread as UTC")


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


