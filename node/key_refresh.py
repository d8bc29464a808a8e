"""Learning a peer's new key after it rotated.

When a signature names a key id this node has not pinned, the server's key document is
fetched and accepted only if a key already pinned here leads to its signer through rotation
notices (`federation.key_documents`). A direct peer is asked itself; a company met only inside
a network (its key vouched for by the host) is looked up through the network's host, which
relays the document it holds: the document is self-signed, so the host cannot alter it.

A document no newer than the last one accepted is ignored, so an old one cannot undo a
rotation; and each server is looked up at most once per `MIN_INTERVAL_MS`, so forged key ids
cannot make this node hammer anyone.
"""

from __future__ import annotations

import logging

from federation.canonical_json import encode_canonical
from federation.errors import ProtocolError, UnknownKey
from federation.key_documents import verify_key_document
from federation.keys import VerifyKey
from node.clock import Clock
from node.errors import NodeError
from node.federation_client import PeerClient
from storage.storage import Storage

__all__ = ["KeyRefresher"]

log = logging.getLogger(__name__)

# Ten seconds: a rotation is rare, and a peer retries refused deliveries anyway.
MIN_INTERVAL_MS = 10_000


class KeyRefresher:
    def __init__(self, storage: Storage, client: PeerClient, clock: Clock) -> None:
        self._storage = storage
        self._client = client
        self._clock = clock
        self._last_try: dict[str, int] = {}

    async def refresh(self, server: str, *, network: str | None = None) -> bool:
        """True if new keys of `server` were pinned."""
        now = self._clock.now_ms()
        if now - self._last_try.get(server, -MIN_INTERVAL_MS) < MIN_INTERVAL_MS:
            return False
        self._last_try[server] = now
        async with self._storage.network_transaction() as tx:
            peer = await tx.peers.find(server)
            pinned = {k.key_id: VerifyKey(k.public_key) for k in await tx.peers.keys(server) if k.revoked_at is None}
            known = await tx.peers.key_document(server)
            source = None
            if peer is not None and peer.status == "accepted":
                source = (peer.endpoint, server, "/keys")
            elif network is not None:
                found = await tx.networks.find(network)
                host = None if found is None else await tx.peers.find(found.host)
                if host is not None and host.status == "accepted":
                    source = (host.endpoint, found.host, f"/servers/{server}/keys")
        if source is None or not pinned:
            return False
        try:
            wire = await self._client.call("GET", *source)
            verified = verify_key_document(wire, server=server, pinned=pinned)
        except (NodeError, ProtocolError) as e:
            log.warning("could not refresh the keys of %s: %s", server, e)
            return False
        if known is not None and verified.ts <= known[1]:
            return False
        async with self._storage.network_transaction() as tx:
            for info in verified.keys:
                await tx.peers.pin_key(server, key_id=info.key_id, public_key=info.verify_key.raw,
                                       valid_until=info.valid_until, revoked_at=now if info.revoked else None,
                                       now=now)
            await tx.peers.save_key_document(server, encode_canonical(wire), ts=verified.ts, now=now)
        log.info("pinned the current keys of %s (now signing with %s)", server, verified.current_key_id)
        return True

    async def retrying(self, servers: list[str], network: str | None, attempt):
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
        """The stored document of `server`, fetching it first if `server` is our peer."""
        async with self._storage.network_transaction() as tx:
            stored = await tx.peers.key_document(server)
        if stored is None:
            self._last_try.pop(server, None)
            await self.refresh(server)
            async with self._storage.network_transaction() as tx:
                stored = await tx.peers.key_document(server)
        return None if stored is None else stored[0]
