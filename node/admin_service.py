"""What an operator can do on the node's private side. Every change writes its audit row in
the same transaction, so the log cannot miss a change nor record one that did not happen."""

from __future__ import annotations

from importlib.metadata import version

from node.api_models import (
    AddKnowledge, AuditEntryOut, AuditPage, CreatePrincipal, CreateThread, KnowledgeOut,
    KnowledgePage, KnowledgeResults, PrincipalList, PrincipalOut, PrincipalWithToken, StatusOut,
    ThreadList, ThreadOut, TokenOut,
)
from node.clock import Clock
from node.directory import Directory
from node.tokens import issue_token
from storage.knowledge import KnowledgeItem
from storage.private_threads import PrivateThread
from storage.storage import Storage, Transaction

__all__ = ["AdminService", "TOKEN_TAGS", "knowledge_out", "threads_out"]

TOKEN_TAGS = {"agent": "agt", "person": "per"}


class AdminService:
    def __init__(self, storage: Storage, clock: Clock, directory: Directory) -> None:
        self._storage = storage
        self._clock = clock
        self._directory = directory

    async def status(self) -> StatusOut:
        async with self._storage.transaction() as tx:
            company = await tx.company.get()
            principals = await tx.principals.list()
            threads = await tx.private_threads.list()
        return StatusOut(
            server_name=company.server_name,
            display_name=company.display_name,
            version=version("agent-network"),
            people=sum(p.kind == "person" for p in principals),
            agents=sum(p.kind == "agent" for p in principals),
            private_threads=len(threads),
        )

    # People and agents

    async def create_principal(self, kind: str, req: CreatePrincipal, *, actor: str) -> PrincipalWithToken:
        now = self._clock.now_ms()
        token = issue_token(TOKEN_TAGS[kind])
        async with self._storage.transaction() as tx:
            principal = await tx.principals.create(
                kind=kind, handle=req.handle, display_name=req.display_name,
                profile=req.profile, now=now,
            )
            await tx.tokens.add(principal.id, token_hash=token.digest, prefix=token.prefix, now=now)
            await tx.audit.record(
                actor=actor, action=f"{kind}.create", target=self._directory.participant_id(principal),
                now=now, detail={"token_prefix": token.prefix},
            )
        return PrincipalWithToken(**self._directory.describe(principal).model_dump(), token=token.secret)

    async def list_principals(self, kind: str) -> PrincipalList:
        async with self._storage.transaction() as tx:
            found = await tx.principals.list(kind)
        return PrincipalList(items=[self._directory.describe(p) for p in found])

    async def set_disabled(self, kind: str, handle: str, disabled: bool, *, actor: str) -> PrincipalOut:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            principal = await tx.principals.get(kind, handle)
            await tx.principals.set_disabled(principal.id, disabled)
            await tx.audit.record(
                actor=actor, action=f"{kind}.{'disable' if disabled else 'enable'}",
                target=self._directory.participant_id(principal), now=now,
            )
            principal = await tx.principals.get(kind, handle)
        return self._directory.describe(principal)

    async def rotate_token(self, kind: str, handle: str, *, actor: str) -> TokenOut:
        now = self._clock.now_ms()
        token = issue_token(TOKEN_TAGS[kind])
        async with self._storage.transaction() as tx:
            principal = await tx.principals.get(kind, handle)
            revoked = await tx.tokens.revoke_all(principal.id, now=now)
            await tx.tokens.add(principal.id, token_hash=token.digest, prefix=token.prefix, now=now)
            target = self._directory.participant_id(principal)
            await tx.audit.record(
                actor=actor, action=f"{kind}.token_rotate", target=target, now=now,
                detail={"token_prefix": token.prefix, "revoked": revoked},
            )
        return TokenOut(id=target, token=token.secret)

    # Private threads

    async def create_thread(self, req: CreateThread, *, actor: str) -> ThreadOut:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            members = await self._directory.resolve(tx, req.members, field="members")
            thread = await tx.private_threads.create(
                name=req.name, title=req.title, member_ids=[m.id for m in members], now=now
            )
            await tx.audit.record(
                actor=actor, action="thread.create", target=req.name, now=now,
                detail={"members": len(members)},
            )
            return await self._thread_out(tx, thread)

    async def set_members(self, name: str, refs: list[str], *, actor: str) -> ThreadOut:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            thread = await tx.private_threads.get(name)
            members = await self._directory.resolve(tx, refs, field="members")
            await tx.private_threads.set_members(thread.id, [m.id for m in members])
            await tx.audit.record(
                actor=actor, action="thread.set_members", target=name, now=now,
                detail={"members": len(members)},
            )
            return await self._thread_out(tx, await tx.private_threads.get(name))

    async def list_threads(self) -> ThreadList:
        async with self._storage.transaction() as tx:
            return ThreadList(items=await threads_out(self._directory, tx, await tx.private_threads.list()))

    async def get_thread(self, name: str) -> ThreadOut:
        async with self._storage.transaction() as tx:
            return await self._thread_out(tx, await tx.private_threads.get(name))

    async def _thread_out(self, tx: Transaction, thread: PrivateThread) -> ThreadOut:
        return (await threads_out(self._directory, tx, [thread]))[0]

    # Knowledge

    async def add_knowledge(self, req: AddKnowledge, *, actor: str) -> KnowledgeOut:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            readers = None
            if req.readers is not None:
                readers = [p.id for p in await self._directory.resolve(tx, req.readers, field="readers")]
            item = await tx.knowledge.add(title=req.title, body=req.body, reader_ids=readers, now=now)
            await tx.audit.record(
                actor=actor, action="knowledge.add", target=f"knowledge:{item.id}", now=now,
                detail={"restricted": item.restricted},
            )
            return (await knowledge_out(self._directory, tx, [item]))[0]

    async def list_knowledge(self, *, after: int, limit: int) -> KnowledgePage:
        async with self._storage.transaction() as tx:
            items = await tx.knowledge.list(after_id=after, limit=limit)
            out = await knowledge_out(self._directory, tx, items)
        return KnowledgePage(items=out, next_cursor=out[-1].id if len(out) == limit else None)

    async def search_knowledge(self, query: str, *, limit: int) -> KnowledgeResults:
        async with self._storage.transaction() as tx:
            items = await tx.knowledge.search(query, reader_id=None, limit=limit)
            return KnowledgeResults(items=await knowledge_out(self._directory, tx, items))

    # Audit

    async def audit(self, *, before: int | None, limit: int) -> AuditPage:
        async with self._storage.transaction() as tx:
            entries = await tx.audit.list(before_id=before, limit=limit)
        items = [
            AuditEntryOut(id=str(e.id), at=e.at, actor=e.actor, action=e.action, target=e.target, detail=e.detail)
            for e in entries
        ]
        return AuditPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


async def threads_out(directory: Directory, tx: Transaction, threads: list[PrivateThread]) -> list[ThreadOut]:
    names = await directory.ids_to_names(tx, [m for t in threads for m in t.member_ids])
    return [
        ThreadOut(name=t.name, title=t.title, created_at=t.created_at, members=sorted(names[m] for m in t.member_ids))
        for t in threads
    ]


async def knowledge_out(directory: Directory, tx: Transaction, items: list[KnowledgeItem]) -> list[KnowledgeOut]:
    names = await directory.ids_to_names(tx, [r for i in items for r in i.reader_ids])
    return [
        KnowledgeOut(
            id=str(i.id), title=i.title, body=i.body, created_at=i.created_at,
            readers=sorted(names[r] for r in i.reader_ids) if i.restricted else None,
        )
        for i in items
    ]
