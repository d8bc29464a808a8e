"""Which key may verify what. The rule that keeps one company from speaking for another:

- A key learned from the company itself (pinned at peering, or from its own key document:
  `storage.network.peers`' `peer_keys`) verifies that company's requests, its signatures as a host,
  and its events in any network.
- A key a network's host vouched for a co-member (`member.admitted`; `storage.network.vouched_keys`)
  verifies that co-member's events *in that network only*, and only while it is not disputed
  by the company's own document. It never authenticates a request, never verifies a host's
  signature and never counts in another network: otherwise any host could make its members
  trust a key of its own for any company, everywhere.
- This node's own keys verify its own events.

Keys retire. A key replaced at a rotation (`valid_until` set) still verifies what was signed
up to `RETIRE_GRACE_MS` after that moment, because the rotating node signs with it until it
restarts; anything dated later, and any request arriving later, is refused. A revoked key
verifies nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from federation.errors import UnknownKey
from federation.events import KeyLookup, SignedEvent
from federation.keys import SigningKey, VerifyKey
from federation.sequencing import SequencedEvent
from storage.network.transaction import NetworkTransaction

__all__ = ["RETIRE_GRACE_MS", "KeyRing", "usable_until"]

# A day: time for an operator who rotated a key to restart the node (which only then signs
# with the new key) and for peers to fetch the new document. Stated in docs/protocol.md.
RETIRE_GRACE_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class _Usable:
    key: VerifyKey
    until: int | None  # the last moment it may have signed; None while it is current


def usable_until(valid_until: int | None) -> int | None:
    """The last `ts` a key with this `valid_until` may verify."""
    return None if valid_until is None else valid_until + RETIRE_GRACE_MS


def _lookup(keys: dict[str, dict[str, _Usable]], at_ms: int, what: str) -> KeyLookup:
    def lookup(server: str, key_id: str) -> VerifyKey:
        found = keys.get(server, {}).get(key_id)
        if found is None:
            raise UnknownKey(f"no {what} key {key_id} for {server}")
        if found.until is not None and at_ms > found.until:
            raise UnknownKey(f"key {key_id} of {server} retired at {found.until}, before {at_ms}")
        return found.key

    return lookup


class KeyRing:
    def __init__(self, server_name: str, signing_key: SigningKey) -> None:
        self.server_name = server_name
        self.signing_key = signing_key

    async def direct_lookup(self, tx: NetworkTransaction, servers: Iterable[str], *, at_ms: int) -> KeyLookup:
        """Keys learned from each company itself, for what is dated `at_ms`."""
        return _lookup({server: await self._direct(tx, server) for server in set(servers)}, at_ms, "pinned")

    async def event_lookups(self, tx: NetworkTransaction, network_id: int,
                            event: SignedEvent | SequencedEvent) -> tuple[KeyLookup, KeyLookup | None]:
        """For the origin's signature: its own keys and those vouched for it in this network,
        at `origin_ts`; for a host's signature (None for an unsequenced event): the host's own
        keys only, at the host's time."""
        signed = event.signed if isinstance(event, SequencedEvent) else event
        origin = signed.event.origin
        keys = {**await self._vouched(tx, network_id, origin), **await self._direct(tx, origin)}
        origin_lookup = _lookup({origin: keys}, signed.event.origin_ts, "pinned or vouched")
        if not isinstance(event, SequencedEvent):
            return origin_lookup, None
        return origin_lookup, await self.direct_lookup(tx, [event.host], at_ms=event.host_ts)

    def forget(self, tx: NetworkTransaction, server: str) -> None:
        """`server`'s keys changed in `tx`: read them again at the next lookup."""
        memo: dict = tx.memo.get(self, {})  # type: ignore[assignment]
        for key in [k for k in memo if k[1] == server]:
            del memo[key]

    async def _direct(self, tx: NetworkTransaction, server: str) -> dict[str, _Usable]:
        memo: dict = tx.memo.setdefault(self, {})  # type: ignore[assignment]
        found = memo.get(("direct", server))
        if found is None:
            found = memo[("direct", server)] = await self._read_direct(tx, server)
        return found

    async def _vouched(self, tx: NetworkTransaction, network_id: int, server: str) -> dict[str, _Usable]:
        if server == self.server_name:
            return {}  # nobody vouches for this node's keys to this node
        memo: dict = tx.memo.setdefault(self, {})  # type: ignore[assignment]
        found = memo.get(("vouched", server, network_id))
        if found is None:
            found = memo[("vouched", server, network_id)] = {
                k.key_id: _Usable(VerifyKey(k.public_key), usable_until(k.valid_until))
                for k in await tx.vouched_keys.in_network(network_id, server)
                if k.revoked_at is None and k.status != "disputed"
            }
        return found

    async def _read_direct(self, tx: NetworkTransaction, server: str) -> dict[str, _Usable]:
        keys: dict[str, _Usable] = {}
        if server == self.server_name:
            for record in await tx.node_keys.all():
                if record.revoked_at is None:
                    keys[record.key_id] = _Usable(VerifyKey(record.public_key), usable_until(record.valid_until))
            current = self.signing_key.verify_key
            keys[current.key_id] = _Usable(current, None)
        else:
            for key in await tx.peers.keys(server):
                if key.revoked_at is None:
                    keys[key.key_id] = _Usable(VerifyKey(key.public_key), usable_until(key.valid_until))
        return keys
