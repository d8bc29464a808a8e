"""Request and response bodies of the admin and client APIs.

Requests are strict and closed (`extra="forbid"`): a typo in a field name is an error, not a
silently ignored setting. Every string and list is bounded.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, computed_field

from node.http.fields import (
    MAX_PAGE,
    Cursor,
    Handle,
    MessageBody,
    PrincipalRef,
    QueryModel,
    Request,
    ServerName,
    Slug,
    Title,
    form,
    formerly,
    old_name,
)

__all__ = [
    "AddKnowledge",
    "AuditCheckOut",
    "AuditEntryOut",
    "AuditPage",
    "AuditQuery",
    "AuditVerifyQuery",
    "CreatePrincipal",
    "CreateThread",
    "Deleted",
    "IssueToken",
    "IssuedToken",
    "KnowledgeOut",
    "KnowledgePage",
    "KnowledgeResults",
    "MessageOut",
    "MessagePage",
    "PageQuery",
    "PostMessage",
    "PrincipalList",
    "PrincipalOut",
    "PrincipalWithToken",
    "RenamePrincipal",
    "Scope",
    "SearchQuery",
    "SetMembers",
    "StatusOut",
    "ThreadList",
    "ThreadOut",
    "TokenInfo",
    "TokenList",
    "TokenOut",
]

# Limits. Knowledge items are documents, so they get more room than a message.
MAX_KNOWLEDGE_CHARS = 65_536
MAX_PROFILE_CHARS = 4_096
MAX_MEMBERS = 500  # a thread wider than this is an announcement list, not a conversation

Scope = Literal["read", "post", "knowledge:read", "webhooks", "threads"]  # node.http.auth.SCOPES
# Ten years: a token meant to outlive that should be rotated anyway.
MAX_TOKEN_LIFETIME_S = 10 * 365 * 24 * 3600
Scopes = Annotated[list[Scope], Field(min_length=1, max_length=5)]
Lifetime = Annotated[int, Field(ge=60, le=MAX_TOKEN_LIFETIME_S)]


class CreatePrincipal(Request):
    handle: Handle
    display_name: Title
    profile: str = Field("", max_length=MAX_PROFILE_CHARS)
    scopes: Scopes | None = Field(None, description="scopes of the first token; default: all but threads")
    token_expires_in_seconds: Lifetime | None = Field(None, description="default: the token does not expire")


class RenamePrincipal(Request):
    display_name: Title | None = None
    profile: str | None = Field(None, max_length=MAX_PROFILE_CHARS)


class Deleted(BaseModel):
    deleted: str
    messages: int | None = Field(None, description="for a private thread: how many messages went with it")


class IssueToken(Request):
    scopes: Scopes | None = Field(None, description="default: read, post, knowledge:read, webhooks (threads, to open "
                                                    "shared threads and add participants, only when asked)")
    expires_in_seconds: Lifetime | None = Field(None, description="default: the token does not expire")


class TokenInfo(BaseModel):
    id: str
    prefix: str = Field(description="the token's first characters, to tell tokens apart")
    scopes: list[str]
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    active: bool


class TokenList(BaseModel):
    items: list[TokenInfo]


class IssuedToken(TokenInfo):
    principal: str
    token: str = Field(description="the bearer token; shown only in this response")


class PrincipalOut(BaseModel):
    id: str = Field(description="participant id, kind:handle@server")
    kind: Literal["agent", "person", "app"]
    handle: str
    display_name: str
    disabled: bool
    created_at: int


class AppAgents(BaseModel):
    app: str = Field(description="the application, app:handle@server")
    agents: list[PrincipalOut] = Field(description="the agents it may act as (Act-As header)")


class PrincipalWithToken(PrincipalOut):
    token: str = Field(description="bearer token; shown only in this response")
    token_id: str
    scopes: list[str]
    token_expires_at: int | None


class PrincipalList(BaseModel):
    items: list[PrincipalOut]


class TokenOut(BaseModel):
    principal: str = Field(validation_alias=formerly("principal", "id"), description="whose token it is")
    token: str = Field(description="the new bearer token; every earlier token is revoked")
    token_id: str
    scopes: list[str]
    expires_at: int | None

    @computed_field(**old_name("principal"))  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        return self.principal


class CreateThread(Request):
    name: Slug
    title: Title
    members: list[PrincipalRef] = Field(default_factory=list, max_length=MAX_MEMBERS)


class SetMembers(Request):
    members: list[PrincipalRef] = Field(max_length=MAX_MEMBERS)


class ThreadOut(BaseModel):
    name: str
    title: str
    members: list[str]
    created_at: int


class ThreadList(BaseModel):
    items: list[ThreadOut]


class PostMessage(Request):
    body: MessageBody


class MessageOut(BaseModel):
    id: str
    thread: str
    sender: str
    body: str
    created_at: int


class MessagePage(BaseModel):
    items: list[MessageOut] = Field(validation_alias=formerly("items", "messages"))
    next_cursor: str | None = Field(description="pass as `after` for the next page; null at the end")

    @computed_field(**old_name("items"))  # type: ignore[prop-decorator]
    @property
    def messages(self) -> list[MessageOut]:
        return self.items


class PageQuery(QueryModel):
    after: Cursor | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE)


# The largest instant a query may name: far past any real date, well inside a 64-bit column.
MAX_MS = 10**15


class AuditQuery(QueryModel):
    after: Cursor | None = Field(None, description="`next_cursor` of the page before: the entries after it in "
                                                   "this list's order, newest first (the older ones)")
    before: Cursor | None = Field(None, description="deprecated: the same as `after` (a seq: older entries)",
                                  json_schema_extra={"deprecated": True})
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    actor: str | None = Field(None, min_length=1, max_length=200, description="e.g. admin:anadm_1a2b")
    action: str | None = Field(None, min_length=1, max_length=64,
                               description='an action, or a prefix ending in "." (e.g. "invite.")')
    network: Slug | None = None
    partner: ServerName | None = Field(None, description="another company's server name")
    since: int | None = Field(None, ge=0, le=MAX_MS, description="ms since the epoch, inclusive")
    until: int | None = Field(None, ge=0, le=MAX_MS, description="ms since the epoch, exclusive")


class AuditVerifyQuery(QueryModel):
    anchor: str | None = Field(None, pattern=form(r"^[1-9][0-9]{0,17}:[0-9a-f]{64}$",
                                                  "SEQ:HASH as `agentnet audit-verify` printed it (e.g. 12:3f9c…, "
                                                  "64 hex digits)"),
                               description="SEQ:HASH of a head written down earlier: it must still be there")


class SearchQuery(QueryModel):
    q: str = Field(min_length=1, max_length=500)
    limit: int = Field(20, ge=1, le=100)


class AddKnowledge(Request):
    title: Title
    body: str = Field(min_length=1, max_length=MAX_KNOWLEDGE_CHARS)
    readers: list[PrincipalRef] | None = Field(
        None, max_length=MAX_MEMBERS, description="null: every person and agent may read it"
    )


class KnowledgeOut(BaseModel):
    id: str
    title: str
    body: str
    readers: list[str] | None
    created_at: int


class KnowledgePage(BaseModel):
    items: list[KnowledgeOut]
    next_cursor: str | None


class KnowledgeResults(BaseModel):
    items: list[KnowledgeOut]


class AuditEntryOut(BaseModel):
    id: str = Field(description="the entry's seq in the chain, as a string (a cursor)")
    created_at: int = Field(validation_alias=formerly("created_at", "at"))
    actor: str
    action: str
    target: str
    network: str | None
    partner: str | None
    detail: dict
    hash: str

    @computed_field(**old_name("created_at"))  # type: ignore[prop-decorator]
    @property
    def at(self) -> int:
        return self.created_at


class AuditCheckOut(BaseModel):
    ok: bool
    entries: int
    head: str = Field(description="SEQ:HASH of the newest entry: keep it elsewhere, pass it as `anchor` later")
    broken_at: int | None = Field(description="the first entry that does not hold")
    problem: str | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


class StatusOut(BaseModel):
    server_name: str
    display_name: str
    version: str
    people: int
    agents: int
    private_threads: int
