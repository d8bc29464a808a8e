"""A small private certificate authority for federation TLS: `agentnet tls make-ca` and
`agentnet tls issue`.

Two companies that trust each other's nodes directly need no public CA: one of them (or a
deployment's init step, as in `docker-compose.federation.yml`) makes a CA, issues each node a
certificate for its server name, and every node lists the CA certificate in `tls_ca_file`.

The certificates are what `node.tls.client_ssl_context` accepts under X.509 strict mode:
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

from node.errors import ConfigError
from node.tls import SELF_SIGNED_DAYS, host_of, write_new, write_pair

__all__ = ["CA_CERT", "CA_DAYS", "CA_KEY", "LEAF_CERT", "LEAF_KEY", "Issued", "issue", "make_ca"]

CA_CERT, CA_KEY = "ca.crt", "ca.key"
# The names a node's settings use by default (tls_cert_file, tls_key_file).
LEAF_CERT, LEAF_KEY = "tls.crt", "tls.key"

# Ten years: a private CA is replaced on purpose, not by expiry in the middle of a quarter.
CA_DAYS = 3650

# Backdated like node.tls's self-signed certificate, for peers whose clocks run behind.
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
    host = host_of(server_name)
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.IPv4Address(host))
    except ValueError:
        san = x509.DNSName(host)
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    certificate = (
        _builder(subject, ca_cert.subject, public_key, now, days)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
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


