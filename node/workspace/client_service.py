"""What a person or agent can do through the client API, always as itself.

A thread the caller does not belong to answers exactly like a thread that does not exist, so
the client API never reveals which private threads the company has.
"""

from __future__ import annotations

from collections.abc import Callable

from node.basics.clock import Clock
from node.basics.errors import NotFoundError
from node.http.idempotency import IdempotencyKey, Posted, run_once
from node.workspace.admin_service import knowledge_out, threads_out
from node.workspace.directory import Directory
from node.workspace.models import KnowledgeResults, MessageOut, MessagePage, ThreadList
from storage.errors import NotFound
from storage.private.principals import Principal
from storage.private.threads import PrivateMessage, PrivateThread
from storage.storage import Storage, Transaction

__all__ = ["ClientService"]


class ClientService:
    def __init__(self, storage: Storage, clock: Clock, directory: Directory, *,
                 on_private_added: Callable[[], None] = lambda: None) -> None:
        self._storage = storage
        self._clock = clock
        self._directory = directory
        self._private_added = on_private_added  # the outbound guard reads what is new at its next check

    async def threads(self, caller: Principal) -> ThreadList:
        async with self._storage.transaction() as tx:
            threads = await tx.private_threads.all(member_id=caller.id)
            return ThreadList(items=await threads_out(self._directory, tx, threads))

    async def read(self, caller: Principal, name: str, *, after: int, limit: int) -> MessagePage:
        async with self._storage.transaction() as tx:
            thread = await self._thread_of(tx, caller, name)
            messages = await tx.private_threads.messages(thread.id, after_id=after, limit=limit)
            names = await self._directory.ids_to_names(tx, [m.sender_id for m in messages])
        out = [self._message_out(thread, m, names) for m in messages]
        return MessagePage(items=out, next_cursor=out[-1].id if len(out) == limit else None)

    async def post(self, caller: Principal, name: str, body: str, *,
                   idempotency: IdempotencyKey | None = None) -> Posted[MessageOut]:
        async def work(tx: Transaction) -> MessageOut:
            thread = await self._thread_of(tx, caller, name)
            now = self._clock.now_ms()
            message = await tx.private_threads.post(thread.id, sender_id=caller.id, body=body, now=now)
            await tx.feed_writer.append_private_message(thread_id=thread.id, message_id=message.id, now=now)
            return self._message_out(thread, message, {caller.id: self._directory.participant_id(caller)})

        posted = await run_once(self._storage, self._clock, caller.id, idempotency, MessageOut, work)
        self._private_added()
        return posted

    async def search_knowledge(self, caller: Principal, query: str, *, limit: int) -> KnowledgeResults:
        async with self._storage.transaction() as tx:
            items = await tx.knowledge.search(query, reader_id=caller.id, limit=limit)
            return KnowledgeResults(items=await knowledge_out(self._directory, tx, items))

    async def _thread_of(self, tx: Transaction, caller: Principal, name: str) -> PrivateThread:
        try:
            thread = await tx.private_threads.get(name)
        except NotFound:
            thread = None
        if thread is None or caller.id not in thread.member_ids:
            raise NotFoundError(f"thread {name!r} not found")
        return thread

    @staticmethod
    def _message_out(thread: PrivateThread, m: PrivateMessage, names: dict[int, str]) -> MessageOut:
        return MessageOut(
            id=str(m.id), thread=thread.name, sender=names[m.sender_id], body=m.body,
            created_at=m.created_at,
        )
