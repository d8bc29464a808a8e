"""A throwaway certificate authority for tests that run nodes over real TLS.

Plain helpers, no pytest: fixtures anywhere in the suite wrap them. Certificates are issued
for the host part of a server name, as a real CA would, so a test exercises the same name
checks (DNS name or IPv4 address) that production peers do.
"""

from __future__ import annotations

import os
from pathlib import Path

import trustme

from node.federation.tls import host_of

__all__ = ["TestCertificateAuthority"]


class TestCertificateAuthority:
    """A private CA (``trustme.CA``) that writes PEM files where a node's settings expect them."""

    __test__ = False  # a helper, not a test class, whatever its name

    def __init__(self) -> None:
        self._ca = trustme.CA()

    def issue(self, server_name: str, dir: Path) -> tuple[Path, Path]:
        """Write ``<name>.crt`` (leaf + chain) and ``<name>.key`` (mode 0600) into ``dir``.

        The certificate names the host part of ``server_name``: an IP SAN for IPv4, a DNS
        SAN otherwise (trustme decides from the text).
        """
        leaf = self._ca.issue_cert(host_of(server_name))
        stem = server_name.replace(":", "_")
        cert_path, key_path = dir / f"{stem}.crt", dir / f"{stem}.key"
        cert_path.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(leaf.private_key_pem.bytes())
        return cert_path, key_path

    def write_ca_bundle(self, path: Path) -> Path:
        """Write the CA certificate, for a node's ``tls_ca_file``; returns ``path``."""
        path.write_bytes(self._ca.cert_pem.bytes())
        return path
