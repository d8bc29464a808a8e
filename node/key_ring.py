"""Which keys verify whose signatures: this node's own (current and past) and the keys pinned
for its peers. Pinned means an operator's invite or accept put them there, or a rotation notice
signed by a pinned key did; nothing else is ever trusted."""

from __future__ import annotations

from collections.abc import Iterable

from federation.errors import UnknownKey
from federation.events import KeyLookup
from federation.keys import SigningKey, VerifyKey
from storage.storage import NetworkTransaction

__all__ = ["KeyRing"]


class KeyRing:
    def __init__(self, server_name: str, signing_key: SigningKey) -> None:
        self.server_name = server_name
        self.signing_key = signing_key

    async def lookup(self, tx: NetworkTransaction, servers: Iterable[str]) -> KeyLookup:
        """A synchronous lookup over the keys of `servers`, fetched now in one pass, for the
        pure verification functions."""
        known: dict[tuple[str, str], VerifyKey] = {}
        for server in set(servers):
            if server == self.server_name:
                current = self.signing_key.verify_key
                known[(server, current.key_id)] = current
                for record in await tx.node_keys.list():
                    if record.revoked_at is None:
                        known[(server, record.key_id)] = VerifyKey(record.public_key)
            else:
                for key in await tx.peers.keys(server):
                    if key.revoked_at is None:
                        known[(server, key.key_id)] = VerifyKey(key.public_key)

        def lookup(server: str, key_id: str) -> VerifyKey:
            try:
                return known[(server, key_id)]
            except KeyError:
                raise UnknownKey(f"no pinned key {key_id} for {server}") from None

        return lookup
