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
        """A synchronous lookup over the keys of `servers`, for the pure verification functions.
        Each server's keys are read once per transaction (a batch of events from one company
        needs them once); `forget` drops them when the transaction pins a new one."""
        fetched: dict[str, dict[str, VerifyKey]] = tx.memo.setdefault(self, {})  # type: ignore[assignment]
        known: dict[tuple[str, str], VerifyKey] = {}
        for server in set(servers):
            if server not in fetched:
                fetched[server] = await self._keys_of(tx, server)
            known.update({(server, key_id): key for key_id, key in fetched[server].items()})

        def lookup(server: str, key_id: str) -> VerifyKey:
            try:
                return known[(server, key_id)]
            except KeyError:
                raise UnknownKey(f"no pinned key {key_id} for {server}") from None

        return lookup

    def forget(self, tx: NetworkTransaction, server: str) -> None:
        """`server`'s keys changed in `tx`: read them again at the next lookup."""
        tx.memo.get(self, {}).pop(server, None)  # type: ignore[union-attr]

    async def _keys_of(self, tx: NetworkTransaction, server: str) -> dict[str, VerifyKey]:
        keys: dict[str, VerifyKey] = {}
        if server == self.server_name:
            current = self.signing_key.verify_key
            keys[current.key_id] = current
            for record in await tx.node_keys.list():
                if record.revoked_at is None:
                    keys[record.key_id] = VerifyKey(record.public_key)
        else:
            for key in await tx.peers.keys(server):
                if key.revoked_at is None:
                    keys[key.key_id] = VerifyKey(key.public_key)
        return keys
