"""What the federation code path may hold: a network transaction, and a store that opens only
those. Every module under `node/federation/` is typed against `NetworkStore`, never the full
`storage.storage.Storage`, so the type checker refuses a call that would open a transaction
with the private repositories (`tests/test_import_rules.py` checks the imports).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from storage.audit_writer import AuditWriter
from storage.feed_writer import FeedWriter
from storage.network.alerts import AlertRepository
from storage.network.consents import ConsentRepository
from storage.network.events import EventRepository
from storage.network.files import FileRepository
from storage.network.halts import HaltRepository
from storage.network.inbound import InboundRepository
from storage.network.message_text import MessageTextRepository
from storage.network.networks import NetworkRepository
from storage.network.node_keys import NodeKeyRepository
from storage.network.outbox import OutboxRepository
from storage.network.peers import PeerRepository
from storage.network.policies import PolicyRepository
from storage.network.vouched_keys import VouchedKeyRepository

__all__ = ["NetworkStore", "NetworkTransaction"]


class NetworkTransaction:
    """Only the network-side repositories (`storage.network.tables`), plus two append-only
    writers: the feed's (local clients learn an event arrived) and the audit log's. The
    federation code path gets this and nothing else, so it cannot read a private table even
    by mistake."""

    def __init__(self, conn: AsyncConnection) -> None:
        # Scratch space for callers' per-transaction state (e.g. rule states not yet
        # committed); it goes with the transaction.
        self.memo: dict[object, object] = {}
        self._after_commit: list[Callable[[], None]] = []
        self.feed_writer = FeedWriter(conn)
        self.audit = AuditWriter(conn)
        self.networks = NetworkRepository(conn)
        self.events = EventRepository(conn)
        self.outbox = OutboxRepository(conn)
        self.peers = PeerRepository(conn)
        self.inbound = InboundRepository(conn)
        self.node_keys = NodeKeyRepository(conn)
        self.vouched_keys = VouchedKeyRepository(conn)
        self.halts = HaltRepository(conn)
        self.alerts = AlertRepository(conn)
        self.policies = PolicyRepository(conn)
        self.consents = ConsentRepository(conn)
        self.files = FileRepository(conn)
        self.message_text = MessageTextRepository(conn)

    async def flush(self) -> None:
        """Write what the repositories hold back until commit (heads, feed and audit rows)."""
        await self.networks.flush()
        await self.feed_writer.flush()
        await self.audit.flush()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed; never if it rolls back."""
        self._after_commit.append(callback)


class NetworkStore(Protocol):
    """The part of `storage.storage.Storage` the federation path is given."""

    def network_transaction(self, *, read_only: bool = False) -> AbstractAsyncContextManager[NetworkTransaction]:
        ...
