"""The connection guard (`node.http.connection_guard`) against hostile connections, on real nodes.

Acme and Globex share `acme-rollout` as in the seed scenario, over real TLS. Globex's listeners
run with short timeouts (1 s) and small caps. An attacker connects to Globex from loopback
addresses of its own (127.0.0.66 and up), while the two nodes talk from 127.0.0.1: each
attack is checked to be cut when and how the guard says, counted in `/metrics`, logged once,
and to leave honest traffic working (a signed ping from Acme and a message from Acme's agent
that reaches Globex) and nothing stored.

Whether honest *latency* stays within 2x of its baseline under attack is measured by
`bench/attacks.py`, with node and attacker in separate processes: here the attacker shares
the nodes' process and event loop, so timing it would measure the test, not the node.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from federation.canonical_json import encode_canonical
from federation.request_signing import parse_authorization, sign_request
from node.basics.clock import SystemClock
from node.federation.peer_client import FEDERATION_PREFIX, PeerClient
from node.federation.tls import PeerTrust
from node.http.connection_guard import Admission, ConnectionLimits, ShedLog, address_key
from storage.network.tables import inbound_transactions, request_nonces
from tests.cluster import ClusterNode, eventually, start_node
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, open_rollout
from tests.tls_fixtures import TestCertificateAuthority

TIMEOUT_S = 1.0
PER_ADDRESS, TOTAL = 8, 24
GLOBEX_FEDERATION = ConnectionLimits(per_address=PER_ADDRESS, total=TOTAL, handshake_timeout_s=TIMEOUT_S,
                                     header_timeout_s=TIMEOUT_S, body_timeout_s=TIMEOUT_S)
GLOBEX_CLIENT = ConnectionLimits(per_address=None, header_timeout_s=TIMEOUT_S, body_timeout_s=TIMEOUT_S)
# How long past a timeout a cut may come on a loaded machine, and still count as "on time".
LATE_S = 4.0
REPO_ROOT = Path(__file__).resolve().parents[3]


# --- the pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "key"), [
    ("127.0.0.66", "127.0.0.66"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("not an address", "not an address"),
])
def test_address_key_counts_ipv4_alone_and_ipv6_by_its_64(host, key):
    assert address_key(host) == key


def test_admission_limits_per_address_and_gives_the_oldest_silent_connection_up_at_the_cap():
    admission = Admission(ConnectionLimits(per_address=2, total=4))
    assert admission.admit("a1", "A") == (None, None)
    assert admission.admit("a2", "A") == (None, None)
    assert admission.admit("a3", "A") == ("per_address_limit", None)
    assert admission.admit("b1", "B") == (None, None)
    admission.proven("a1")
    assert admission.admit("c1", "C") == (None, None)
    assert admission.open == 4
    # At the cap: the oldest connection that has not sent a request gives way (a1 has).
    assert admission.admit("d1", "D") == (None, "a2")
    admission.release("a2", "A")
    for conn in ("b1", "c1", "d1"):
        admission.proven(conn)
    assert admission.admit("e1", "E") == ("connection_limit", None)
    admission.release("b1", "B")
    assert admission.admit("e1", "E") == (None, None)
    assert admission.admit("a3", "A") == (None, "e1")  # A holds one again (a1)


def test_shed_log_speaks_once_a_minute_per_address_and_says_how_many_it_held_back():
    shed = ShedLog(every_s=60)
    assert shed.due("A", 0.0) == 0
    assert shed.due("A", 10.0) is None
    assert shed.due("B", 10.0) == 0
    assert shed.due("A", 59.0) is None
    assert shed.due("A", 61.0) == 2
    assert shed.due("A", 62.0) is None


def test_shed_log_remembers_a_bounded_number_of_addresses():
    shed = ShedLog(every_s=60, memory=2)
    assert (shed.due("A", 0.0), shed.due("B", 1.0)) == (0, 0)
    assert shed.due("C", 2.0) is None  # a third address within the minute is not logged
    assert shed.due("C", 60.5) == 0  # A's entry expired: room again


# --- two nodes, an attacker -----------------------------------------------------------------


class Rollout:
    def __init__(self, acme: ClusterNode, globex: ClusterNode, tokens: dict[str, str], http: aiohttp.ClientSession,
                 tls: PeerTrust) -> None:
        self.acme, self.globex, self.tokens, self.http, self.tls = acme, globex, tokens, http, tls
        self.sent = 0

    async def ping_as_acme(self, *, fresh: bool = False) -> None:
        """An honest signed request from Acme's identity, from 127.0.0.1 (`fresh`: on a new
        connection rather than a pooled one)."""
        async with aiohttp.ClientSession() if fresh else _Borrowed(self.http) as http:
            client = PeerClient(http, self.tls, server_name=ACME, signing_key=self.acme.key, clock=SystemClock())
            assert await client.call("POST", self.globex.endpoint, GLOBEX, "/ping", {}) == {}

    async def message_reaches_globex(self) -> None:
        """Acme's agent posts; Acme delivers to Globex's federation listener; Globex shows it."""
        self.sent += 1
        body = f"honest update {self.sent}"
        await self.acme.client(self.tokens["ops"], "POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/messages",
                               {"body": body}, expect=201)

        async def arrived():
            page = await self.globex.client(self.tokens["sam"], "GET",
                                            f"/v1/networks/{NETWORK}/threads/{THREAD}/messages?limit=200")
            return any(m["body"] == body for m in page["messages"])

        await eventually(arrived)

    async def honest_traffic_works(self) -> None:
        await self.ping_as_acme()
        await self.ping_as_acme(fresh=True)
        await self.message_reaches_globex()

    def shed(self, reason: str, listener: str = "federation") -> float:
        return self.globex.parts.metrics.registry.get_sample_value(
            "agentnet_connections_shed_total", {"listener": listener, "reason": reason}) or 0.0


class _Borrowed:
    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def __aenter__(self) -> aiohttp.ClientSession:
        return self.http

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.fixture
async def rollout(tmp_path):
    ca = TestCertificateAuthority()
    acme = await start_node(tmp_path, ACME, ca, display_name="Acme")
    globex = await start_node(tmp_path, GLOBEX, ca, display_name="Globex", federation_connections=GLOBEX_FEDERATION,
                              client_connections=GLOBEX_CLIENT)
    try:
        tokens = await open_rollout(acme, globex)
        async with aiohttp.ClientSession() as http:
            yield Rollout(acme, globex, tokens, http, PeerTrust(ca.write_ca_bundle(tmp_path / "ca.pem")))
    finally:
        await globex.stop()
        await acme.stop()


def _no_verify() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Attacker:
    """Raw connections from a loopback address of the attacker's own; all closed at the end."""

    def __init__(self, port: int, source: str) -> None:
        self.port, self.source = port, source
        self.writers: list[asyncio.StreamWriter] = []

    async def connect(self, *, tls: bool = False) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(self.source, 0), ssl=_no_verify() if tls else None,
            server_hostname="attacker" if tls else None)
        self.writers.append(writer)
        return reader, writer

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        for writer in self.writers:
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass


async def closed_after(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, float]:
    """Everything the server sent until it closed the connection, and when it closed it."""
    started, data = time.monotonic(), b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return data, time.monotonic() - started


async def still_open(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return True
    return False


async def stored(node: ClusterNode, origin: str, txn_id: str, nonce: str) -> tuple[int, int]:
    """Whether `node` kept the answer to a transaction, or the nonce of a request."""
    async with node.storage.engine.connect() as conn:
        answers = await conn.scalar(select(func.count()).select_from(inbound_transactions).where(
            inbound_transactions.c.origin == origin, inbound_transactions.c.txn_id == txn_id))
        nonces = await conn.scalar(select(func.count()).select_from(request_nonces).where(
            request_nonces.c.origin == origin, request_nonces.c.nonce == nonce))
    return answers, nonces


def guard_warnings(caplog, address: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "node.http.connection_guard" and r.levelno == logging.WARNING and address in r.getMessage()]


async def test_connections_over_the_per_address_limit_are_closed_at_once(rollout, caplog):
    attacker = Attacker(rollout.globex.ports["federation"], "127.0.0.66")
    try:
        with caplog.at_level(logging.WARNING, logger="node.http.connection_guard"):
            held = [(await attacker.connect())[0] for _ in range(PER_ADDRESS)]
            for _ in range(4):  # over the limit: the TLS hello is never answered
                started = time.monotonic()
                with pytest.raises((ConnectionError, ssl.SSLError)):
                    await attacker.connect(tls=True)
                assert time.monotonic() - started < TIMEOUT_S  # at once, not after a timeout
            assert all(await asyncio.gather(*(still_open(r, 0.3) for r in held)))
            assert rollout.shed("per_address_limit") == 4
            # The limit is per address: the nodes' own traffic from 127.0.0.1 goes on.
            await rollout.honest_traffic_works()
        (line,) = guard_warnings(caplog, "127.0.0.66")  # once, however many were refused
        assert line == (f"federation listener: closed a connection from 127.0.0.66: over the limit of "
                        f"{PER_ADDRESS} open connections per address")
        metrics = rollout.globex.parts.metrics.registry
        open_now = metrics.get_sample_value("agentnet_connections_open", {"listener": "federation"})
        assert open_now == rollout.globex.guards["federation"].open_connections >= PER_ADDRESS
    finally:
        await attacker.close()


async def test_idle_tcp_connections_that_never_start_tls_are_closed_after_the_handshake_timeout(rollout):
    attacker = Attacker(rollout.globex.ports["federation"], "127.0.0.67")
    try:
        readers = [(await attacker.connect())[0] for _ in range(5)]
        honest = asyncio.create_task(rollout.honest_traffic_works())
        outcomes = await asyncio.gather(*(closed_after(r, TIMEOUT_S + LATE_S) for r in readers))
        for data, elapsed in outcomes:
            assert data == b"" and TIMEOUT_S * 0.8 <= elapsed < TIMEOUT_S + LATE_S, (data, elapsed)
        assert rollout.shed("handshake_timeout") == 5
        await honest
    finally:
        await attacker.close()


async def test_a_slowloris_is_closed_after_the_header_timeout(rollout):
    attacker = Attacker(rollout.globex.ports["federation"], "127.0.0.68")
    try:
        reader, writer = await attacker.connect(tls=True)

        async def trickle() -> None:
            for byte in b"GET /_agentnet/v1/keys HTTP/1.1\r\nHost: globex\r\nX-Slow: " + b"a" * 200:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)

        trickling = asyncio.create_task(trickle())
        data, elapsed = await closed_after(reader, TIMEOUT_S + LATE_S)
        trickling.cancel()
        assert data == b"", "a request whose headers never completed got an answer"
        assert TIMEOUT_S * 0.8 <= elapsed < TIMEOUT_S + LATE_S, elapsed
        assert rollout.shed("header_timeout") == 1
        await rollout.honest_traffic_works()
    finally:
        await attacker.close()


async def test_a_slow_body_is_answered_408_and_cut_and_nothing_is_stored(rollout, caplog):
    body = encode_canonical({"events": []})
    path = f"{FEDERATION_PREFIX}/transactions/slow-1"
    signature = sign_request(rollout.acme.key, method="PUT", path=path, origin=ACME, destination=GLOBEX, body=body,
                             now_ms=int(time.time() * 1000))
    attacker = Attacker(rollout.globex.ports["federation"], "127.0.0.69")
    try:
        with caplog.at_level(logging.INFO):
            reader, writer = await attacker.connect(tls=True)
            writer.write(f"PUT {path} HTTP/1.1\r\nHost: globex\r\nAuthorization: {signature}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                         + body[:5])
            honest = asyncio.create_task(rollout.honest_traffic_works())
            data, elapsed = await closed_after(reader, TIMEOUT_S + LATE_S)
            await honest
        head, _, answer = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), data
        assert b"Connection: close" in head
        assert b'"code": "request_timeout"' in answer and b"send the whole body at once" in answer
        assert TIMEOUT_S * 0.8 <= elapsed < TIMEOUT_S + LATE_S, elapsed
        assert rollout.shed("body_timeout") == 1
        # Refused before authentication: neither the transaction's answer nor even the nonce is kept.
        assert await stored(rollout.globex, ACME, "slow-1", parse_authorization(signature).nonce) == (0, 0)
        assert signature.split(",")[-1] not in caplog.text  # the request's signature is never logged
        assert "request body not complete within 1 s" in "\n".join(guard_warnings(caplog, "127.0.0.69"))
        assert "Unhandled exception" not in caplog.text and "unhandled error" not in caplog.text
    finally:
        await attacker.close()


async def test_at_the_cap_a_silent_connection_gives_way_to_an_honest_one(rollout):
    guard = rollout.globex.guards["federation"]
    attacker = [Attacker(rollout.globex.ports["federation"], f"127.0.1.{n}") for n in range(1, 5)]
    try:
        readers = []
        for n in range(TOTAL - guard.open_connections):
            readers.append((await attacker[n % len(attacker)].connect())[0])

        async def full():
            return guard.open_connections == TOTAL

        await eventually(full)
        await rollout.ping_as_acme(fresh=True)  # a new connection, past the cap
        assert rollout.shed("evicted") >= 1
        await rollout.message_reaches_globex()
        assert not all(await asyncio.gather(*(still_open(r, 0.2) for r in readers[:1])))  # the oldest went
    finally:
        for a in attacker:
            await a.close()


async def test_the_client_listener_cuts_a_slowloris_and_answers_a_slow_body_408(rollout):
    port = rollout.globex.ports["client"]
    attacker = Attacker(port, "127.0.0.70")
    try:
        reader, writer = await attacker.connect()
        writer.write(b"GET /v1/whoami HTTP/1.1\r\nHost: globex\r\nAuthoriz")
        data, elapsed = await closed_after(reader, TIMEOUT_S + LATE_S)
        assert data == b"" and TIMEOUT_S * 0.8 <= elapsed < TIMEOUT_S + LATE_S, (data, elapsed)

        reader, writer = await attacker.connect()
        writer.write(f"POST /v1/networks/{NETWORK}/threads/{THREAD}/messages HTTP/1.1\r\nHost: globex\r\n"
                     f"Authorization: Bearer {rollout.tokens['sam']}\r\nContent-Type: application/json\r\n"
                     "Content-Length: 40\r\n\r\n{\"body\": ".encode())
        data, _ = await closed_after(reader, TIMEOUT_S + LATE_S)
        assert data.startswith(b"HTTP/1.1 408 ") and b'"code": "request_timeout"' in data, data
        assert (rollout.shed("header_timeout", "client"), rollout.shed("body_timeout", "client")) == (1, 1)
        await rollout.message_reaches_globex()  # Globex's agents and people still read
    finally:
        await attacker.close()


async def test_idle_keep_alive_connections_are_closed_and_the_peer_reconnects(tmp_path):
    ca = TestCertificateAuthority()
    acme = await start_node(tmp_path, ACME, ca, display_name="Acme")
    globex = await start_node(tmp_path, GLOBEX, ca, display_name="Globex",
                              federation_connections=ConnectionLimits(idle_timeout_s=TIMEOUT_S))
    try:
        tokens = await open_rollout(acme, globex)
        guard = globex.guards["federation"]

        async def all_idle_closed():
            return guard.open_connections == 0

        await eventually(all_idle_closed)
        shed = globex.parts.metrics.registry.get_sample_value(
            "agentnet_connections_shed_total", {"listener": "federation", "reason": "idle_timeout"})
        assert shed >= 1
        rollout = Rollout(acme, globex, tokens, None, PeerTrust(ca.write_ca_bundle(tmp_path / "ca.pem")))
        await rollout.message_reaches_globex()
        await rollout.ping_as_acme(fresh=True)
    finally:
        await globex.stop()
        await acme.stop()


# --- the open-file limit the caps need --------------------------------------------------------

_FILE_LIMIT = """
import resource, sys
from node.http.connection_guard import ensure_file_limit
from node.basics.errors import ConfigError
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])))
try:
    ensure_file_limit(int(sys.argv[3]))
except ConfigError as e:
    print("refused:", e)
print("soft:", resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


@pytest.mark.parametrize(("soft", "hard", "needed", "says"), [
    (256, 4096, 2304, "soft: 2304"),  # raised, as far as needed
    (4096, 4096, 2304, "soft: 4096"),  # already enough: left alone
    (256, 1024, 2304, "refused: the listeners' connection caps need 2304 open files but the process may open at "
                      "most 1024 (ulimit -Hn): raise that limit, or lower federation_max_connections"),
])
def test_start_raises_the_open_file_limit_the_caps_need_or_says_what_to_change(soft, hard, needed, says):
    # In a child process: a lowered hard limit cannot be raised again.
    done = subprocess.run([sys.executable, "-c", _FILE_LIMIT, str(soft), str(hard), str(needed)],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=True)
    assert says in done.stdout, done.stdout + done.stderr
