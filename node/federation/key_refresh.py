"""Learning a company's keys from the company itself.

A key document is self-signed, so what matters is who vouches for its signer:

- **Straight from the company** (`GET /keys` at its endpoint, over TLS that proves its
  server name): its signer is trusted if a key already learned from the company leads to it
  through rotation notices, or, when nothing of the company is known yet (first contact), on
  the strength of TLS alone. Its keys become keys *learned from the company itself*
  (`peer_keys`): they authenticate requests, verify host signatures, count everywhere.
- **Relayed by a network's host** (`GET /servers/{server}/keys`), for members that cannot
  reach the company: accepted only if signed through a key learned from the company itself
  (then it is the company's own word, whoever carried it); otherwise only through keys that
  host vouched for in that network, and then what it adds stays in that network too.

Revocations in an accepted document are applied within the same reach. Keys a host vouched
for are checked against each document learned from the company itself: a key the company
does not list is *disputed* (it verifies nothing) and the operator gets an alert naming both
fingerprints.

Where is the company? At the endpoint this node peers with it at, else where the hosts that
vouched for it say it is, else `https://<server name>`. A wrong address can only fail: TLS
checks the server name whatever the address.

A document no newer than the last one accepted from the company is ignored, so an old one
cannot undo a rotation; and each server is asked at most once per `MIN_INTERVAL_MS`, so forged
key ids cannot make this node hammer anyone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from federation.canonical_json import encode_canonical
from federation.errors import ProtocolError, UnknownKey
from federation.key_documents import VerifiedKeys, verify_key_document
from federation.keys import VerifyKey
from node.basics.clock import Clock
from node.basics.errors import NodeError
from node.federation.key_ring import KeyRing
from node.federation.peer_client import PeerClient
from storage.network.transaction import NetworkStore, NetworkTransaction

__all__ = ["MIN_INTERVAL_MS", "KeyRefresher"]

log = logging.getLogger(__name__)

# Ten seconds: a rotation is rare, and a peer retries refused deliveries anyway.
MIN_INTERVAL_MS = 10_000
# A key document fetch is a courtesy call on the path of an event: do not wait on a dead peer.
FETCH_TIMEOUT_S = 10
T = TypeVar("T")


class KeyRefresher:
    def __init__(self, storage: NetworkStore, client: PeerClient, clock: Clock, keys: KeyRing) -> None:
        self._storage = storage
        self._client = client
        self._clock = clock
        self._keys = keys
        self._last_try: dict[str, int] = {}
        self._last_confirm: dict[str, int] = {}  # apart: an admission must not delay a key refresh

    async def refresh(self, server: str, *, network: str | None = None) -> bool:
        """Learn `server`'s current keys (its events in `network`, if given, are what needs
        them); True if a key that was not usable here before is now. Only companies this node
        knows (a peer, or a co-member some host vouched for) are asked: a stranger's name in a
        forged signature never makes this node call out."""
        if server == self._keys.server_name:
            return False
        async with self._storage.network_transaction() as tx:
            peer = await tx.peers.find(server)
            known = (peer is not None and peer.status == "accepted") or bool(await tx.vouched_keys.of_server(server))
        if not known or not self._may_try(server):
            return False
        if await self._from_company(server):
            return True
        return network is not None and await self._via_host(server, network)

    async def confirm(self, server: str, key_id: str, public_key: bytes, endpoint: str | None) -> None:
        """Before a host's `member.admitted` is applied: if the key it vouches for is not one
        this node already learned from the company, ask the company (at `endpoint`, where the
        host says it is, among other places), so the admission is checked against its current
        document rather than only against what was known."""
        if server == self._keys.server_name:
            return
        async with self._storage.network_transaction() as tx:
            known = {k.key_id: k.public_key for k in await tx.peers.keys(server) if k.revoked_at is None}
        if known.get(key_id) != public_key and self._may_try(server, self._last_confirm):
            await self._from_company(server, hints=[endpoint] if endpoint else [])

    async def check_unconfirmed(self) -> None:
        """Ask each company whose vouched keys are unconfirmed for its own document (the
        housekeeping round calls this)."""
        async with self._storage.network_transaction() as tx:
            servers = await tx.vouched_keys.servers_with("unconfirmed")
        for server in servers:
            if self._may_try(server):
                await self._from_company(server)

    async def retrying(self, servers: list[str], network: str | None, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt`; if it meets a key it does not know, refresh the keys of `servers`
        once and run it again (the failed attempt's transaction was rolled back)."""
        try:
            return await attempt()
        except UnknownKey:
            refreshed = [await self.refresh(server, network=network) for server in servers]
            if not any(refreshed):
                raise
            return await attempt()

    async def relayable(self, server: str) -> bytes | None:
        """The document `server` gave us itself, fetching it first if we have none."""
        async with self._storage.network_transaction() as tx:
            stored = await tx.peers.key_document(server)
        if stored is None:
            self._last_try.pop(server, None)
            await self.refresh(server)
            async with self._storage.network_transaction() as tx:
                stored = await tx.peers.key_document(server)
        return None if stored is None else stored[0]

    def _may_try(self, server: str, last: dict[str, int] | None = None) -> bool:
        last = self._last_try if last is None else last
        now = self._clock.now_ms()
        if now - last.get(server, -MIN_INTERVAL_MS) < MIN_INTERVAL_MS:
            return False
        last[server] = now
        return True

    # From the company itself

    async def _from_company(self, server: str, hints: list[str] | None = None) -> bool:
        async with self._storage.network_transaction() as tx:
            peer = await tx.peers.find(server)
            pinned = {k.key_id: VerifyKey(k.public_key) for k in await tx.peers.keys(server) if k.revoked_at is None}
            hints = (hints or []) + [k.endpoint for k in await tx.vouched_keys.of_server(server) if k.endpoint]
            known = await tx.peers.key_document(server)
        endpoints = ([peer.endpoint] if peer is not None and peer.endpoint else []) + hints + [f"https://{server}"]
        for endpoint in dict.fromkeys(endpoints):
            try:
                wire = await self._client.call("GET", endpoint, server, "/keys", timeout_s=FETCH_TIMEOUT_S)
                verified = verify_key_document(wire, server=server, pinned=pinned, first_contact=not pinned)
            except (NodeError, ProtocolError) as e:
                log.info("could not get the keys of %s from %s: %s", server, endpoint, e)
                continue
            if known is not None and verified.ts < known[1]:
                return False  # older than what we hold: it cannot undo a rotation
            try:
                async with self._storage.network_transaction() as tx:
                    added = await self._pin_direct(tx, verified, pinned)
                    await tx.peers.save_key_document(server, encode_canonical(wire), ts=verified.ts,
                                                     now=self._clock.now_ms())
                    await self._check_vouched(tx, verified)
            except ValueError as e:  # a listed key reuses the id of a key we revoked
                log.warning("refused the key document of %s: %s", server, e)
                return False
            log.info("learned the keys of %s from %s itself (now signing with %s)", server, server,
                     verified.current_key_id)
            return added
        return False

    async def _pin_direct(self, tx: NetworkTransaction, verified: VerifiedKeys, pinned: dict[str, VerifyKey]) -> bool:
        now, server = self._clock.now_ms(), verified.server
        for info in verified.keys:
            await tx.peers.pin_key(server, key_id=info.key_id, public_key=info.verify_key.raw,
                                   valid_until=info.valid_until, revoked_at=now if info.revoked else None, now=now)
        await tx.peers.revoke_keys(server, verified.revoked_key_ids, now=now)
        await tx.vouched_keys.revoke(server, verified.revoked_key_ids, now=now)
        self._keys.forget(tx, server)
        learned = [info.verify_key.fingerprint for info in verified.keys
                   if not info.revoked and info.key_id not in pinned]
        revoked = sorted(set(verified.revoked_key_ids) & set(pinned))
        if learned or revoked:
            await tx.audit.record(actor=server, action="key.rotated" if pinned else "key.learned", target=server,
                                  partner=server, now=now,
                                  detail={"learned": learned, "revoked": revoked})
        return bool(learned)

    async def _check_vouched(self, tx: NetworkTransaction, verified: VerifiedKeys) -> None:
        """Every key hosts vouched for this company is now checked against its own word."""
        now, server = self._clock.now_ms(), verified.server
        for vouched in await tx.vouched_keys.of_server(server):
            info = verified.get(vouched.key_id)
            agrees = info is not None and info.verify_key.raw == vouched.public_key and not info.revoked
            if agrees:
                if vouched.status != "confirmed":
                    await tx.vouched_keys.set_status(server, vouched.key_id, "confirmed", now=now,
                                                     network_ids=[vouched.network_id])
                continue
            if vouched.status != "disputed":
                await tx.vouched_keys.set_status(server, vouched.key_id, "disputed", now=now,
                                                 network_ids=[vouched.network_id])
            names = await tx.networks.names_by_id({vouched.network_id})
            network = names.get(vouched.network_id)
            vouched_fp = VerifyKey(vouched.public_key).fingerprint
            published = [info.verify_key.fingerprint for info in verified.keys if not info.revoked]
            log.warning("the host of %s vouched for a key of %s (%s) that %s does not publish (%s)",
                        network, server, vouched_fp, server, ", ".join(published))
            if vouched.status != "disputed":
                await tx.audit.record(actor="node", action="key.disputed", target=server, network=network,
                                      partner=server, now=now, detail={"vouched": vouched_fp, "published": published})
            await tx.alerts.raise_alert(
                "key_conflict", network=network, server=server, now=now,
                message=f"the host of {network} vouched for a key of {server} that {server} itself does not "
                        f"publish: {vouched_fp} (vouched) against {', '.join(published)} (published by {server}); "
                        f"its events in {network} are refused",
                detail={"vouched": vouched_fp, "published": published, "key_id": vouched.key_id})
        self._keys.forget(tx, server)

    # Through a network's host

    async def _via_host(self, server: str, network_name: str) -> bool:
        async with self._storage.network_transaction() as tx:
            network = await tx.networks.find(network_name)
            host = None if network is None else await tx.peers.find(network.host)
            if network is None or host is None or host.status != "accepted" or network.host == server:
                return False
            direct = {k.key_id: VerifyKey(k.public_key) for k in await tx.peers.keys(server) if k.revoked_at is None}
            held = await tx.vouched_keys.in_network(network.id, server)
            vouched = {k.key_id: VerifyKey(k.public_key) for k in held if k.revoked_at is None and k.status != "disputed"}
        try:
            wire = await self._client.call("GET", host.endpoint, network.host, f"/servers/{server}/keys",
                                           timeout_s=FETCH_TIMEOUT_S)
            if direct:  # the company's own word, whoever carried it
                verified = verify_key_document(wire, server=server, pinned=direct)
            else:  # only as good as the host's word, and only in its network
                verified = verify_key_document(wire, server=server, pinned=vouched)
        except (NodeError, ProtocolError) as e:
            log.warning("could not get the keys of %s through %s: %s", server, network.host, e)
            return False
        async with self._storage.network_transaction() as tx:
            if direct:
                known = await tx.peers.key_document(server)
                if known is not None and verified.ts <= known[1]:
                    return False
                added = await self._pin_direct(tx, verified, direct)
                await tx.peers.save_key_document(server, encode_canonical(wire), ts=verified.ts,
                                                 now=self._clock.now_ms())
                await self._check_vouched(tx, verified)
                return added
            now = self._clock.now_ms()
            for info in verified.keys:  # new keys only: a disputed or revoked one stays so
                if not info.revoked and info.key_id not in {k.key_id for k in held}:
                    await tx.vouched_keys.pin(network.id, server, key_id=info.key_id, public_key=info.verify_key.raw,
                                              status="unconfirmed", endpoint=None, now=now,
                                              valid_until=info.valid_until)
            await tx.vouched_keys.revoke(server, verified.revoked_key_ids, now=now, network_ids=[network.id])
            self._keys.forget(tx, server)
        log.info("learned keys of %s through the host of %s (they count in %s only)", server, network_name,
                 network_name)
        return any(not info.revoked and info.key_id not in vouched for info in verified.keys)
