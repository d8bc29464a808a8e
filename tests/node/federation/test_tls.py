"""node.federation.tls over real sockets: an aiohttp server on 127.0.0.1 and an aiohttp client that dials
the endpoint address but verifies the certificate against the peer's server name."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import stat
import warnings
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from federation.keys import SigningKey
from node.basics.errors import ConfigError, PeerUnreachable, PeerUntrusted
from node.federation.peer_client import PeerClient
from node.federation.tls import PeerTrust, client_ssl_context, host_of, server_ssl_context
from node.ops.tls_ca import write_self_signed
from tests.node.conftest import FakeClock
from tests.tls_fixtures import TestCertificateAuthority

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def ca() -> TestCertificateAuthority:
    return TestCertificateAuthority()


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


@pytest.fixture
def serve(aiohttp_server):
    """Start an HTTPS server with the given cert and key files; returns its https:// URL."""

    async def start(cert_path, key_path) -> str:
        app = web.Application()
        app.router.add_get("/", _hello)
        server = await aiohttp_server(app, ssl=server_ssl_context(cert_path, key_path))
        return str(server.make_url("/"))

    return start


async def _fetch(url: str, context: ssl.SSLContext, server_name: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context, server_hostname=host_of(server_name)) as resp:
            return await resp.text()


# --- verification ---------------------------------------------------------------------------


async def test_client_verifies_the_server_name_not_the_endpoint_address(ca, serve, tmp_path):
    url = await serve(*ca.issue("acme.example", tmp_path))
    assert url.startswith("https://127.0.0.1:")
    context = client_ssl_context(ca.write_ca_bundle(tmp_path / "ca.pem"))
    assert await _fetch(url, context, "acme.example") == "hello"


async def test_system_trust_rejects_a_private_ca(ca, serve, tmp_path):
    url = await serve(*ca.issue("acme.example", tmp_path))
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _fetch(url, client_ssl_context(None), "acme.example")


async def test_certificate_for_another_name_is_rejected(ca, serve, tmp_path):
    url = await serve(*ca.issue("acme.example", tmp_path))
    context = client_ssl_context(ca.write_ca_bundle(tmp_path / "ca.pem"))
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _fetch(url, context, "globex.example")


async def test_ipv4_server_name_with_port_is_checked_against_an_ip_san(ca, serve, tmp_path):
    url = await serve(*ca.issue("127.0.0.1:8801", tmp_path))
    context = client_ssl_context(ca.write_ca_bundle(tmp_path / "ca.pem"))
    assert await _fetch(url, context, "127.0.0.1:8801") == "hello"
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _fetch(url, context, "127.0.0.2:8801")


@pytest.mark.parametrize(
    ("server_name", "host"),
    [("acme.example", "acme.example"), ("acme.example:8443", "acme.example"), ("10.0.0.7:1", "10.0.0.7")],
)
def test_host_of(server_name, host):
    assert host_of(server_name) == host


def test_contexts_never_go_below_tls_1_2_and_clients_always_verify(tmp_path, ca):
    client = client_ssl_context(None)
    assert (client.verify_mode, client.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_ssl_context(*ca.issue("acme.example", tmp_path)).minimum_version == ssl.TLSVersion.TLSv1_2


# --- trust that changes while the node runs ---------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_an_untrusted_peer_is_named_as_such_and_trusted_once_its_certificate_is_added(ca, serve, tmp_path):
    url = await serve(*ca.issue("acme.example", tmp_path))
    bundle = tmp_path / "partners.pem"
    other = TestCertificateAuthority()
    other.write_ca_bundle(bundle)  # some other partner's CA, not Acme's
    clock = _Clock()
    trust = PeerTrust(bundle, monotonic=clock)
    async with aiohttp.ClientSession() as session:
        client = PeerClient(session, trust, server_name="globex.example", signing_key=SigningKey.generate(),
                            clock=FakeClock())
        endpoint = url.rstrip("/")
        with pytest.raises(PeerUntrusted) as refused:
            await client.call("GET", endpoint, "acme.example", "/keys")
        assert refused.value.code == "peer_untrusted"
        assert "acme.example showed a TLS certificate this node does not trust" in refused.value.message
        assert f"add the partner's certificate, or its CA's, to {bundle}" in refused.value.message

        bundle.write_bytes(bundle.read_bytes() + ca.write_ca_bundle(tmp_path / "acme-ca.pem").read_bytes())
        with pytest.raises(PeerUntrusted):  # not looked at again within the second
            await client.call("GET", endpoint, "acme.example", "/keys")
        clock.now += 1.5
        with pytest.raises(PeerUnreachable) as answered:  # TLS passed: the test server answered, in plain text
            await client.call("GET", endpoint, "acme.example", "/keys")
        assert not isinstance(answered.value, PeerUntrusted) and "sent an answer" in answered.value.message


def test_a_broken_trust_file_keeps_the_trust_in_force(ca, tmp_path, caplog):
    bundle = ca.write_ca_bundle(tmp_path / "partners.pem")
    clock = _Clock()
    trust = PeerTrust(bundle, monotonic=clock)
    before = trust.context()
    bundle.write_text("not a certificate\n")
    clock.now += 1.5
    assert trust.context() is before
    assert "keeping the TLS trust in force" in caplog.text and str(bundle) in caplog.text


def test_without_a_trust_file_the_advice_is_to_make_one():
    assert "name it in tls_ca_file (then restart the node)" in PeerTrust(None).describe()


# --- self-signed certificates -----------------------------------------------------------------


@pytest.mark.parametrize("server_name", ["globex.example", "127.0.0.1:8801"])
async def test_self_signed_certificate_serves_peers_that_trust_it(serve, tmp_path, server_name):
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    fingerprint = write_self_signed(cert_path, key_path, server_name, now=datetime.now(UTC))

    url = await serve(cert_path, key_path)
    assert await _fetch(url, client_ssl_context(cert_path), server_name) == "hello"

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    assert fingerprint.replace(":", "").lower() == hashlib.sha256(der).hexdigest()
    assert len(fingerprint.split(":")) == 32


def test_self_signed_certificate_contents(tmp_path):
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_self_signed(cert_path, key_path, "127.0.0.1:8801", now=NOW, days=30)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == []
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.not_valid_before_utc <= NOW
    assert (cert.not_valid_after_utc - NOW).days == 30


async def test_self_signed_certificate_expires_by_the_injected_clock(serve, tmp_path):
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_self_signed(cert_path, key_path, "globex.example", now=datetime(2020, 1, 1, tzinfo=UTC), days=30)
    url = await serve(cert_path, key_path)
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _fetch(url, client_ssl_context(cert_path), "globex.example")


@pytest.mark.parametrize("existing", ["tls.crt", "tls.key"])
def test_self_signed_refuses_to_overwrite(tmp_path, existing):
    (tmp_path / existing).write_text("keep me\n")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        write_self_signed(tmp_path / "tls.crt", tmp_path / "tls.key", "acme.example", now=NOW)
    assert (tmp_path / existing).read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_self_signed_twice_keeps_the_first(tmp_path):
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_self_signed(cert_path, key_path, "acme.example", now=NOW)
    before = (cert_path.read_bytes(), key_path.read_bytes())
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        write_self_signed(cert_path, key_path, "acme.example", now=NOW)
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before


# --- configuration errors ---------------------------------------------------------------------


def _assert_names_file_without_secrets(error: ConfigError, path, key_path) -> None:
    message = str(error)
    assert str(path) in message
    assert "\n" not in message
    assert "PRIVATE KEY" not in message
    assert key_path.read_text().splitlines()[1] not in message


def test_missing_certificate(ca, tmp_path):
    _, key_path = ca.issue("acme.example", tmp_path)
    missing = tmp_path / "nope.crt"
    with pytest.raises(ConfigError) as info:
        server_ssl_context(missing, key_path)
    _assert_names_file_without_secrets(info.value, missing, key_path)


def test_missing_key(ca, tmp_path):
    cert_path, key_path = ca.issue("acme.example", tmp_path)
    missing = tmp_path / "nope.key"
    with pytest.raises(ConfigError) as info:
        server_ssl_context(cert_path, missing)
    _assert_names_file_without_secrets(info.value, missing, key_path)


def test_key_that_does_not_match_the_certificate(ca, tmp_path):
    cert_path, _ = ca.issue("acme.example", tmp_path)
    _, other_key = ca.issue("globex.example", tmp_path)
    with pytest.raises(ConfigError, match="does not match") as info:
        server_ssl_context(cert_path, other_key)
    _assert_names_file_without_secrets(info.value, other_key, other_key)


def test_key_given_as_certificate(ca, tmp_path):
    _, key_path = ca.issue("acme.example", tmp_path)
    with pytest.raises(ConfigError, match="does not hold a PEM certificate") as info:
        server_ssl_context(key_path, key_path)
    _assert_names_file_without_secrets(info.value, key_path, key_path)


def test_certificate_given_as_key(ca, tmp_path):
    cert_path, key_path = ca.issue("acme.example", tmp_path)
    with pytest.raises(ConfigError, match="does not hold a PEM private key") as info:
        server_ssl_context(cert_path, cert_path)
    _assert_names_file_without_secrets(info.value, cert_path, key_path)


def test_encrypted_key_is_refused_without_prompting(ca, tmp_path):
    cert_path, key_path = ca.issue("acme.example", tmp_path)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"hunter2"),
        )
    )
    with pytest.raises(ConfigError, match="encrypted") as info:
        server_ssl_context(cert_path, key_path)
    _assert_names_file_without_secrets(info.value, key_path, key_path)


@pytest.mark.parametrize(
    ("name", "content"),
    [("missing.pem", None), ("empty.pem", ""), ("junk.pem", "not a certificate\n")],
)
def test_bad_ca_file(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        client_ssl_context(path)
    assert str(path) in str(info.value)


def test_ca_file_holding_a_key(ca, tmp_path):
    _, key_path = ca.issue("acme.example", tmp_path)
    with pytest.raises(ConfigError) as info:
        client_ssl_context(key_path)
    _assert_names_file_without_secrets(info.value, key_path, key_path)


# --- protocol versions ------------------------------------------------------------------------


def _legacy_client(ca_bundle) -> ssl.SSLContext:
    """A client that offers only TLS 1.0/1.1 (still verifying), as an outdated peer would."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca_bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # naming TLS 1.0/1.1 warns
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 hides TLS 1.1 ciphers above level 0
    return context


def _legacy_server(cert_path, key_path) -> ssl.SSLContext:
    """A server that would still accept TLS 1.1, to show the local OpenSSL can speak it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(cert_path, key_path)
    return context


async def _handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> str:
    """Complete a TLS handshake over 127.0.0.1 and return the negotiated version."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname="acme.example"
        )
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return version
    finally:
        server.close()
        await server.wait_closed()


async def test_server_refuses_tls_1_1_clients(ca, tmp_path):
    cert_path, key_path = ca.issue("acme.example", tmp_path)
    legacy_client = _legacy_client(ca.write_ca_bundle(tmp_path / "ca.pem"))
    try:
        version = await _handshake(_legacy_server(cert_path, key_path), legacy_client)
    except (ssl.SSLError, ConnectionResetError) as e:
        pytest.skip(f"the local OpenSSL cannot negotiate TLS 1.1 at all: {e}")
    assert version == "TLSv1.1"

    server_context = server_ssl_context(cert_path, key_path)
    modern_client = client_ssl_context(tmp_path / "ca.pem")
    assert await _handshake(server_context, modern_client) in {"TLSv1.2", "TLSv1.3"}
    # The server answers with a protocol_version alert; the client sees it as an SSL error or,
    # depending on timing, as the connection being reset.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await _handshake(server_context, legacy_client)


# --- cipher suites ----------------------------------------------------------------------------

CBC_SUITES = ["ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256"]  # what Python's defaults still offer
AEAD_SUITES = ["ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"]


def _tls12_client(ca_bundle, suite: str) -> ssl.SSLContext:
    """A verifying client that speaks TLS 1.2 only and offers exactly one suite."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca_bundle)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(suite)
    return context


async def _negotiate(port: int, client_context: ssl.SSLContext) -> tuple[str, str]:
    """Handshake with 127.0.0.1:port; the (version, suite) agreed."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context, server_hostname="acme.example")
    try:
        tls = writer.get_extra_info("ssl_object")
        return tls.version(), tls.cipher()[0]
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def test_both_contexts_offer_only_aead_suites_with_ecdhe_on_tls_1_2(ca, tmp_path):
    for context in (server_ssl_context(*ca.issue("acme.example", tmp_path)), client_ssl_context(None)):
        suites = context.get_ciphers()
        assert suites and [s["name"] for s in suites if not s["aead"]] == []
        assert {s["kea"] for s in suites if s["protocol"] == "TLSv1.2"} == {"kx-ecdhe"}
        assert not {s["name"] for s in suites} & set(CBC_SUITES)


async def test_the_federation_listener_refuses_a_cbc_suite_and_agrees_on_an_aead_one(tmp_path):
    from tests.cluster import start_node

    ca = TestCertificateAuthority()
    node = await start_node(tmp_path, "acme.example", ca)
    try:
        bundle, port = node.data_dir / "ca.pem", node.ports["federation"]
        # The local OpenSSL still speaks each CBC suite: a server on its defaults agrees to it.
        default_server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        default_server.load_cert_chain(*node.tls)
        plain = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0, ssl=default_server)
        try:
            for suite in CBC_SUITES:
                assert await _negotiate(plain.sockets[0].getsockname()[1], _tls12_client(bundle, suite)) == (
                    "TLSv1.2", suite)
        finally:
            plain.close()
            await plain.wait_closed()
        for suite in CBC_SUITES:  # the node's listener does not
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                await _negotiate(port, _tls12_client(bundle, suite))
        for suite in AEAD_SUITES:
            assert await _negotiate(port, _tls12_client(bundle, suite)) == ("TLSv1.2", suite)
        # Its own client context agrees with it too, on TLS 1.3 by preference.
        assert (await _negotiate(port, client_ssl_context(bundle)))[0] == "TLSv1.3"
    finally:
        await node.stop()
