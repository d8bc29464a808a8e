"""What an operator can do on the node's private side. Every change writes its audit row in
the same transaction, so the log cannot miss a change nor record one that did not happen."""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import version

from node.basics.clock import Clock
from node.http.auth import DEFAULT_SCOPES
from node.workspace.directory import Directory
from node.workspace.models import (
    AddKnowledge,
    AuditCheckOut,
    AuditEntryOut,
    AuditPage,
    CreatePrincipal,
    CreateThread,
    Deleted,
    IssuedToken,
    IssueToken,
    KnowledgeOut,
    KnowledgePage,
    KnowledgeResults,
    PrincipalList,
    PrincipalOut,
    PrincipalWithToken,
    RenamePrincipal,
    StatusOut,
    ThreadList,
    ThreadOut,
    TokenInfo,
    TokenList,
    TokenOut,
)
from node.workspace.tokens import issue_token
from storage.private.audit import AuditFilter
from storage.private.knowledge import KnowledgeItem
from storage.private.principals import Principal, TokenRecord
from storage.private.threads import PrivateThread
from storage.storage import Storage, Transaction

__all__ = ["TOKEN_TAGS", "AdminService", "knowledge_out", "threads_out"]

log = logging.getLogger(__name__)

TOKEN_TAGS = {"agent": "agt", "person": "per", "app": "app"}


class AdminService:
    def __init__(self, storage: Storage, clock: Clock, directory: Directory, *,
                 on_tokens_changed: Callable[[], None] = lambda: None,
                 on_private_deleted: Callable[[], None] = lambda: None,
                 on_private_added: Callable[[], None] = lambda: None) -> None:
        self._storage = storage
        self._clock = clock
        self._directory = directory
        self._tokens_changed = on_tokens_changed  # open streams re-check their tokens at once
        self._private_deleted = on_private_deleted  # the outbound guard forgets what it indexed
        self._private_added = on_private_added  # and reads what is new at its next check

    async def status(self) -> StatusOut:
        async with self._storage.transaction() as tx:
            company = await tx.company.get()
            principals = await tx.principals.all()
            threads = await tx.private_threads.all()
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
        async with self._storage.transaction() as tx:
            principal = await tx.principals.create(
                kind=kind, handle=req.handle, display_name=req.display_name,
                profile=req.profile, now=now,
            )
            secret, record = await self._issue(tx, principal, IssueToken(
                scopes=req.scopes, expires_in_seconds=req.token_expires_in_seconds), now=now)
            await tx.audit.record(
                actor=actor, action=f"{kind}.create", target=self._directory.participant_id(principal),
                now=now, detail={"token_prefix": record.prefix, "scopes": sorted(record.scopes)},
            )
        return PrincipalWithToken(**self._directory.describe(principal).model_dump(), token=secret,
                                  token_id=str(record.id), scopes=sorted(record.scopes),
                                  token_expires_at=record.expires_at)

    async def list_principals(self, kind: str) -> PrincipalList:
        async with self._storage.transaction() as tx:
            found = await tx.principals.all(kind)
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
        self._tokens_changed()
        return self._directory.describe(principal)

    async def rename(self, kind: str, handle: str, req: RenamePrincipal, *, actor: str) -> PrincipalOut:
        """A new display name or profile, here. The name partners see in a network is the one it was
        attached with (in the chain): detach and attach again to show them the new one."""
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            principal = await tx.principals.get(kind, handle)
            await tx.principals.rename(principal.id, display_name=req.display_name, profile=req.profile)
            await tx.audit.record(actor=actor, action=f"{kind}.rename", target=self._directory.participant_id(principal),
                                  now=now, detail={"before": principal.display_name, "after": req.display_name})
            return self._directory.describe(await tx.principals.get(kind, handle))

    # Tokens

    async def rotate_token(self, kind: str, handle: str, req: IssueToken, *, actor: str) -> TokenOut:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            principal = await tx.principals.get(kind, handle)
            revoked = await tx.tokens.revoke_all(principal.id, now=now)
            secret, record = await self._issue(tx, principal, req, now=now)
            target = self._directory.participant_id(principal)
            await tx.audit.record(
                actor=actor, action=f"{kind}.token_rotate", target=target, now=now,
                detail={"token_prefix": record.prefix, "revoked": revoked, "scopes": sorted(record.scopes)},
            )
        self._tokens_changed()
        return TokenOut(principal=target, token=secret, token_id=str(record.id), scopes=sorted(record.scopes),
                        expires_at=record.expires_at)

    async def issue_token(self, kind: str, handle: str, req: IssueToken, *, actor: str) -> IssuedToken:
        """One more token beside the principal's others (one per agent process, say)."""
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            principal = await tx.principals.get(kind, handle)
            secret, record = await self._issue(tx, principal, req, now=now)
            target = self._directory.participant_id(principal)
            await tx.audit.record(actor=actor, action=f"{kind}.token_issue", target=target, now=now,
                                  detail={"token_prefix": record.prefix, "scopes": sorted(record.scopes)})
        return IssuedToken(**_token_info(record, now).model_dump(), principal=target, token=secret)

    async def list_tokens(self, kind: str, handle: str) -> TokenList:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            principal = await tx.principals.get(kind, handle)
            records = await tx.tokens.list_for(principal.id)
        return TokenList(items=[_token_info(r, now) for r in records])

    async def revoke_token(self, kind: str, handle: str, token_id: int, *, actor: str) -> TokenInfo:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            principal = await tx.principals.get(kind, handle)
            record = await tx.tokens.revoke(principal.id, token_id, now=now)
            await tx.audit.record(actor=actor, action=f"{kind}.token_revoke",
                                  target=self._directory.participant_id(principal), now=now,
                                  detail={"token_prefix": record.prefix})
        self._tokens_changed()
        return _token_info(record, now)

    async def revoke_all_tokens(self, kind: str, handle: str, *, actor: str) -> TokenList:
        """A kill switch: every token of the principal stops working at once and its streams end;
        it stays enabled, so a new token (`token issue`) brings it back."""
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            principal = await tx.principals.get(kind, handle)
            revoked = await tx.tokens.revoke_all(principal.id, now=now)
            await tx.audit.record(actor=actor, action=f"{kind}.token_revoke_all",
                                  target=self._directory.participant_id(principal), now=now,
                                  detail={"revoked": revoked})
            records = await tx.tokens.list_for(principal.id)
        self._tokens_changed()
        return TokenList(items=[_token_info(r, now) for r in records])

    @staticmethod
    async def _issue(tx: Transaction, principal: Principal, req: IssueToken, *, now: int) -> tuple[str, TokenRecord]:
        token = issue_token(TOKEN_TAGS[principal.kind])
        scopes = frozenset(req.scopes) if req.scopes is not None else frozenset(DEFAULT_SCOPES)
        expires_at = now + req.expires_in_seconds * 1000 if req.expires_in_seconds is not None else None
        record = await tx.tokens.add(principal.id, token_hash=token.digest, prefix=token.prefix, scopes=scopes,
                                     expires_at=expires_at, now=now)
        return token.secret, record

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
            out = await self._thread_out(tx, thread)
        self._private_added()
        return out

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

    async def delete_thread(self, name: str, *, actor: str) -> Deleted:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            thread = await tx.private_threads.get(name)
            messages = await tx.private_threads.delete(thread.id)
            await tx.audit.record(actor=actor, action="thread.delete", target=name, now=now,
                                  detail={"messages": messages})
        self._private_deleted()
        return Deleted(deleted=f"private thread {name}", messages=messages)

    async def list_threads(self) -> ThreadList:
        async with self._storage.transaction() as tx:
            return ThreadList(items=await threads_out(self._directory, tx, await tx.private_threads.all()))

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
            out = (await knowledge_out(self._directory, tx, [item]))[0]
        self._private_added()
        return out

    async def delete_knowledge(self, item_id: int, *, actor: str) -> Deleted:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            item = await tx.knowledge.delete(item_id)
            await tx.audit.record(actor=actor, action="knowledge.delete", target=f"knowledge:{item.id}", now=now,
                                  detail={"title": item.title[:80]})
        self._private_deleted()
        return Deleted(deleted=f"knowledge item {item_id}")

    async def list_knowledge(self, *, after: int, limit: int) -> KnowledgePage:
        async with self._storage.transaction() as tx:
            items = await tx.knowledge.page(after_id=after, limit=limit)
            out = await knowledge_out(self._directory, tx, items)
        return KnowledgePage(items=out, next_cursor=out[-1].id if len(out) == limit else None)

    async def search_knowledge(self, query: str, *, limit: int) -> KnowledgeResults:
        async with self._storage.transaction() as tx:
            items = await tx.knowledge.search(query, reader_id=None, limit=limit)
            return KnowledgeResults(items=await knowledge_out(self._directory, tx, items))

    # Audit

    async def audit(self, *, before: int | None, limit: int, where: AuditFilter) -> AuditPage:
        async with self._storage.read_transaction() as tx:
            entries = await tx.audit.page(before=before, limit=limit, where=where)
        items = [
            AuditEntryOut(id=str(e.seq), created_at=e.at, actor=e.actor, action=e.action, target=e.target,
                          network=e.network, partner=e.partner, detail=e.detail, hash=e.hash)
            for e in entries
        ]
        return AuditPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)

    async def verify_audit(self, *, anchor: tuple[int, str] | None) -> AuditCheckOut:
        async with self._storage.read_transaction() as tx:
            check = await tx.audit.verify(anchor=anchor)
        if not check.ok:
            log.error("the audit log does not verify at entry %s: %s", check.broken_at, check.problem)
        return AuditCheckOut(ok=check.ok, entries=check.entries, head=f"{check.head_seq}:{check.head_hash}",
                             broken_at=check.broken_at, problem=check.problem)


def _token_info(record: TokenRecord, now: int) -> TokenInfo:
    return TokenInfo(id=str(record.id), prefix=record.prefix, scopes=sorted(record.scopes),
                     created_at=record.created_at, expires_at=record.expires_at, revoked_at=record.revoked_at,
                     active=record.live_at(now))


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
