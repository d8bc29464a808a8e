"""A hostile node, written from `docs/protocol.md`: it has a certificate from the same CA as
the honest nodes and a key of its own, answers the federation routes it needs over real TLS,
and signs whatever it likes.

Events, sequencing and key documents are built here by hand from the byte recipes of
protocol.md §6 and §12 (canonical JSON, SHA-256, Ed25519 from `federation.keys`, whose
known-answer vectors tie it to the document), not with the product's own builders, so the
rogue can say things the product would never build: a key vouched for another company, a
host signature made by the wrong key, a document for somebody else.

As **outsider** or **member** it sends signed requests (`send`, `put_events`). As **host** it
runs networks of its own (`RogueNetwork`): it invites real nodes, answers their accept,
serves its chain for catch-up and pushes sequenced events. Everything it receives is kept
in `received`.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from federation.canonical_json import encode_canonical
from federation.keys import SigningKey, VerifyKey, b64encode
from federation.request_signing import sign_request
from node.federation.peer_client import FEDERATION_PREFIX
from node.federation.tls import client_ssl_context, host_of, server_ssl_context
from tests.cluster import ClusterNode
from tests.tls_fixtures import TestCertificateAuthority

__all__ = ["Answer", "RogueNetwork", "RoguePeer", "hand_signed", "now_ms"]


def now_ms() -> int:
    return int(time.time() * 1000)


def _b64(data: bytes) -> str:
    return b64encode(data)


def hand_signed(event: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """§6 steps 1–4: E = C(event), hash = SHA-256(E), signature = Ed25519(key, E)."""
    data = encode_canonical(event)
    return {"event": event, "hash": _b64(hashlib.sha256(data).digest()),
            "signature": {"key_id": key.key_id, "sig": _b64(key.sign(data))}}


def event_id(signed: dict[str, Any]) -> str:
    return "$" + signed["hash"]


@dataclass
class Answer:
    status: int
    raw: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def code(self) -> str | None:
        data = self.json
        return data.get("error", {}).get("code") if isinstance(data, dict) else None


@dataclass
class RogueNetwork:
    """A network the rogue hosts: a chain built by hand (§6 steps 5–7)."""

    name: str
    rogue: RoguePeer
    events: list[dict[str, Any]] = field(default_factory=list)
    link: bytes | None = None
    host_key: SigningKey | None = None  # signs placements; the rogue's own key unless replaced

    def operator(self) -> str:
        return f"operator:admin@{self.rogue.server}"

    def event(self, type_: str, content: dict[str, Any], *, sender: str | None = None, origin: str | None = None,
              thread: str | None = None, ts: int | None = None) -> dict[str, Any]:
        sender = sender or self.operator()
        return {"type": type_, "network": self.name, "thread": thread, "sender": sender,
                "origin": origin or sender.split("@", 1)[1], "origin_ts": now_ms() if ts is None else ts,
                "content": content}

    def sequence(self, signed: dict[str, Any], *, host_ts: int | None = None, host: str | None = None,
                 host_key: SigningKey | None = None) -> dict[str, Any]:
        """Append `signed` at the next seq: S = C({event_id, host, network, prev, seq, ts})."""
        key = host_key or self.host_key or self.rogue.key
        body = {"event_id": event_id(signed), "host": host or self.rogue.server, "network": self.name,
                "prev": None if self.link is None else _b64(self.link), "seq": len(self.events) + 1,
                "ts": now_ms() if host_ts is None else host_ts}
        data = encode_canonical(body)
        wire = {**signed, "seq": body["seq"], "prev": body["prev"], "host": body["host"], "host_ts": body["ts"],
                "host_signature": {"key_id": key.key_id, "sig": _b64(key.sign(data))}}
        self.events.append(wire)
        self.link = hashlib.sha256(data).digest()
        return wire

    def create(self, title: str = "Rogue deal", *, history_visible: bool = True) -> dict[str, Any]:
        content = {"title": title, "history_visible_to_new_members": history_visible}
        return self.sequence(hand_signed(self.event("network.created", content), self.rogue.key))

    def admit(self, server: str, key: VerifyKey, *, endpoint: str | None = None) -> dict[str, Any]:
        """The host's word for `server`'s key: whatever key the rogue likes."""
        content: dict[str, Any] = {"server": server, "key_id": key.key_id, "public_key": key.to_base64()}
        if endpoint is not None:
            content["endpoint"] = endpoint
        return self.sequence(hand_signed(self.event("member.admitted", content), self.rogue.key))

    def authored(self, type_: str, content: dict[str, Any], *, key: SigningKey, sender: str,
                 thread: str | None = None, ts: int | None = None) -> dict[str, Any]:
        """An event "from" `sender`, signed with `key`, sequenced here."""
        return self.sequence(hand_signed(self.event(type_, content, sender=sender, thread=thread, ts=ts), key))

    def after(self, seq: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["seq"] > seq]

    def truncate(self, length: int) -> None:
        """Forget every event after the first `length` (a host rewriting what it had not sent)."""
        self.events = self.events[:length]
        last = self.events[-1]
        body = {"event_id": event_id(last), "host": last["host"], "network": self.name, "prev": last["prev"],
                "seq": last["seq"], "ts": last["host_ts"]}
        self.link = hashlib.sha256(encode_canonical(body)).digest()


class RoguePeer:
    def __init__(self, server: str, ca: TestCertificateAuthority, directory: Path) -> None:
        self.server = server
        self.key = SigningKey.generate()
        self.ca = ca
        self.directory = directory
        self.networks: dict[str, RogueNetwork] = {}
        self.received: list[tuple[str, str, bytes]] = []
        self.accepted: dict[str, dict[str, Any]] = {}  # invite id -> the accepter's AcceptMessage
        self.invites: dict[str, dict[str, Any]] = {}  # invites real hosts sent the rogue
        self._invited: dict[str, str] = {}  # invite id the rogue sent -> its network
        self.relay: dict[str, dict[str, Any]] = {}  # server -> key document to relay
        self.transaction_answer: Callable[[list[Any]], list[dict]] | None = None
        self.error_answer: tuple[int, str] | None = None  # answer every request with this error
        self.files: dict[str, tuple[bytes, str]] = {}  # federation path tail -> (bytes, media type) it serves
        self.endpoint = ""
        self._runner: web.AppRunner | None = None
        self.http: aiohttp.ClientSession | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.ssl = client_ssl_context(ca.write_ca_bundle(directory / "rogue-ca.pem"))

    # --- serving ----------------------------------------------------------------------------

    async def start(self) -> RoguePeer:
        self.directory.mkdir(parents=True, exist_ok=True)
        cert, key = self.ca.issue(self.server, self.directory)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", FEDERATION_PREFIX + "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl_context(cert, key))
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.endpoint = f"https://127.0.0.1:{port}"
        self.http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.Response:
        body = await request.read()
        tail = request.match_info["tail"]
        self.received.append((request.method, tail, body))
        if self.error_answer is not None:
            status, code = self.error_answer
            return self._json({"error": {"code": code, "message": "refused by the rogue"}}, status=status)
        if tail == "keys":
            return self._json(self.own_document())
        if request.method == "GET" and tail in self.files:
            data, media_type = self.files[tail]
            return web.Response(body=data, content_type=media_type)
        if tail == "ping":
            return self._json({})
        if request.method == "POST" and tail == "invites":  # a real host invites the rogue
            message = json.loads(body)
            self.invites[message["invite_id"]] = message
            return self._json({"status": "pending"}, status=202)
        if request.method == "POST" and tail.startswith("invites/") and tail.endswith("/accept"):
            invite_id = tail.split("/")[1]
            self.accepted[invite_id] = json.loads(body)
            network = self.networks[self._invited[invite_id]]
            return self._json({"network": network.name, "head": len(network.events)})
        if tail.startswith("networks/") and tail.endswith("/events"):
            network = self.networks.get(tail.split("/")[1])
            if network is None:
                return self._json({"error": {"code": "unknown_network", "message": "no"}}, status=404)
            after = int(request.query.get("after", "0"))
            return self._json({"events": network.after(after), "head": len(network.events)})
        if tail.startswith("servers/") and tail.endswith("/keys"):
            document = self.relay.get(tail.split("/")[1])
            if document is None:
                return self._json({"error": {"code": "not_found", "message": "no"}}, status=404)
            return self._json(document)
        if tail.startswith("transactions/"):
            events = json.loads(body)["events"]
            answer = self.transaction_answer or (lambda evs: [{"status": 200} for _ in evs])
            return self._json({"results": answer(events)})
        return self._json({"error": {"code": "not_found", "message": "no"}}, status=404)

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.Response(body=encode_canonical(data), status=status, content_type="application/json")

    def own_document(self, *, key: SigningKey | None = None, server: str | None = None) -> dict[str, Any]:
        """§12: a self-signed key document (for the rogue's own name, or a forged one)."""
        key = key or self.key
        body = {"keys": [{"key_id": key.key_id, "public_key": key.verify_key.to_base64(), "valid_until": None}],
                "revocations": [], "rotations": [], "server": server or self.server, "ts": now_ms()}
        return {**body, "signature": {"key_id": key.key_id, "sig": _b64(key.sign(encode_canonical(body)))}}

    # --- hosting ----------------------------------------------------------------------------

    def host(self, name: str, title: str = "Rogue deal", *, history_visible: bool = True) -> RogueNetwork:
        network = self.networks[name] = RogueNetwork(name, self)
        network.create(title, history_visible=history_visible)
        return network

    async def invite(self, node: ClusterNode, network: RogueNetwork) -> str:
        """Send `node` an invite to `network` (self-certified with the rogue's key); its id."""
        invite_id = secrets.token_hex(16)
        self._invited[invite_id] = network.name
        message = {"invite_id": invite_id, "network": network.name, "title": "Rogue deal", "host": self.server,
                   "endpoint": self.endpoint, "key": {"key_id": self.key.key_id,
                                                      "public_key": self.key.verify_key.to_base64()},
                   "expires_at": now_ms() + 3600_000}
        answer = await self.send(node, "POST", "/invites", encode_canonical(message))
        assert answer.status == 202, (answer.status, answer.raw)
        return invite_id

    # --- joining a real host's network --------------------------------------------------------

    async def accept_invite(self, host: ClusterNode, invite_id: str) -> Answer:
        """Answer a real host's invite as an honest invitee would: the rogue becomes a member."""
        message = {"endpoint": self.endpoint,
                   "key": {"key_id": self.key.key_id, "public_key": self.key.verify_key.to_base64()}}
        return await self.send(host, "POST", f"/invites/{invite_id}/accept", encode_canonical(message))

    def submission(self, network: str, type_: str, content: dict[str, Any], *, sender: str,
                   thread: str | None = None, ts: int | None = None, key: SigningKey | None = None) -> dict[str, Any]:
        """A signed event (no placement) as a member submits it to its host."""
        event = {"type": type_, "network": network, "thread": thread, "sender": sender,
                 "origin": sender.split("@", 1)[1], "origin_ts": now_ms() if ts is None else ts, "content": content}
        return hand_signed(event, key or self.key)

    # --- sending ----------------------------------------------------------------------------

    async def send(self, node: ClusterNode, method: str, path: str, body: bytes = b"", *,
                   as_server: str | None = None, key: SigningKey | None = None,
                   unsigned: bool = False) -> Answer:
        """A request signed (§11) as `as_server` (default: the rogue itself) with `key`."""
        full = FEDERATION_PREFIX + path
        headers = {"Content-Type": "application/json"}
        if not unsigned:
            headers["Authorization"] = sign_request(
                key or self.key, method=method, path=full, origin=as_server or self.server,
                destination=node.server, body=body, now_ms=now_ms(), nonce=_b64(secrets.token_bytes(16)))
        assert self.http is not None
        url = URL(node.endpoint + full, encoded=True)
        data = io.BytesIO(body) if len(body) > 1024 * 1024 else body
        async with self.http.request(method, url, data=data, headers=headers, ssl=self.ssl,
                                     server_hostname=host_of(node.server), allow_redirects=False) as resp:
            return Answer(resp.status, await resp.read(), dict(resp.headers))

    async def put_events(self, node: ClusterNode, events: list[dict[str, Any]], **kw: Any) -> Answer:
        body = encode_canonical({"events": events})
        return await self.send(node, "PUT", f"/transactions/rogue-{secrets.token_hex(6)}", body, **kw)
