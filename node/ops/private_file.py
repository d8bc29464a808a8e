"""The private export file, `agentnet-private/1`: a company's private side as one JSON document,
independent of the database it came from (`docs/operations.md`, "Moving the private side").

`PrivateFile` is both what `GET /v1/export/private` answers and what `agentnet import` accepts,
so a file the exporter could write is a file the importer reads. Validating one checks
everything that can be checked without a database, before anything is written: each value
against its column and the API's rules, every reference between rows (a message's thread and
sender, a token's owner, a reader), names and token digests that must be unique, each policy
against the model the node reads it with, and the audit log's hash chain from its first entry
to the head the file names.

The chain shows the log is whole and unchanged *relative to its own head*. The file is not
signed: whoever can edit it can recompute every hash. An operator who wrote the head down
elsewhere (`agentnet audit-verify` prints it) checks it with `agentnet audit-verify --anchor`
after the import.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, model_validator

from node.federation.policy import DEFAULT_PARTNER_SCOPE, NODE_SCOPE, NodePolicy, PartnerPolicy
from node.guard.outbound import GUARD_SCOPE
from node.guard.rules import GuardPolicy
from node.http.fields import MAX_BODY_CHARS, Handle, ServerName, Slug, form
from node.workspace.models import MAX_KNOWLEDGE_CHARS, MAX_MEMBERS, MAX_PROFILE_CHARS, Scope
from storage.private.audit import GENESIS_HASH, entry_hash
from storage.transfer import PrivateRows

__all__ = ["MAX_PRIVATE_FILE_BYTES", "PRIVATE_FORMAT", "PrivateFile", "describe_errors", "from_rows", "to_rows"]

PRIVATE_FORMAT = "agentnet-private/1"

# Twice a network export's 64 MiB (federation.export_file): the private side is a company's
# whole own history; and a parsed file takes several times its size in memory, which must
# still fit beside a running node on a small machine. Larger companies move by backup/restore.
MAX_PRIVATE_FILE_BYTES = 128 * 2**20
# List caps: each is far past what one company's node holds, and makes a file's shape bounded
# before any row is looked at; the byte cap above is what binds in practice.
MAX_PRINCIPALS = 10_000
MAX_TOKENS = 100_000  # ten per principal
MAX_THREADS = 10_000
MAX_MESSAGES = 1_000_000
MAX_KNOWLEDGE = 100_000
MAX_WEBHOOKS = 10_000
MAX_POLICIES = 10_000  # one per partner, and then some
MAX_AUDIT_ENTRIES = 1_000_000

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
Ms = Annotated[int, Field(ge=0, le=2**63 - 1)]
Sha256 = Annotated[str, StringConstraints(pattern=form(r"^[0-9a-f]{64}$", "a SHA-256 in 64 lowercase hex digits"))]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Prefix = Annotated[str, StringConstraints(min_length=1, max_length=16)]
_SERVER: TypeAdapter[str] = TypeAdapter(ServerName)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CompanyRecord(_Record):
    server_name: ServerName
    display_name: Text200
    created_at: Ms


class PrincipalRecord(_Record):
    id: Id
    kind: Literal["agent", "person", "app"]
    handle: Handle
    display_name: Text200
    profile: str = Field(max_length=MAX_PROFILE_CHARS)
    disabled: bool
    created_at: Ms


class TokenRecord(_Record):
    """A principal's bearer token by its SHA-256: the token itself is never stored, so never
    exported; restoring the digest keeps the token working."""

    id: Id
    principal_id: Id
    token_sha256: Sha256
    prefix: Prefix
    scopes: list[Scope] = Field(max_length=4)
    created_at: Ms
    expires_at: Ms | None
    revoked_at: Ms | None


class AdminTokenRecord(_Record):
    token_sha256: Sha256
    prefix: Prefix
    created_at: Ms
    revoked_at: Ms | None


class ThreadRecord(_Record):
    id: Id
    name: Slug
    title: Text200
    created_at: Ms
    members: list[Id] = Field(max_length=MAX_MEMBERS)


class MessageRecord(_Record):
    id: Id
    thread_id: Id
    sender_id: Id
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS)
    created_at: Ms


class KnowledgeRecord(_Record):
    id: Id
    title: Text200
    body: str = Field(min_length=1, max_length=MAX_KNOWLEDGE_CHARS)
    created_at: Ms
    readers: list[Id] | None = Field(max_length=MAX_MEMBERS, description="null: every person and agent may read it")


class WebhookRecord(_Record):
    """The secret signs deliveries, so the node keeps it in clear and the file carries it."""

    id: Id
    principal_id: Id
    url: str = Field(min_length=8, max_length=2000, pattern=form(r"^https?://", "an http:// or https:// URL"))
    secret: str = Field(min_length=1, max_length=100)
    status: Literal["active", "disabled"]
    disabled_reason: str | None = Field(max_length=4000)
    created_at: Ms
    filter: str | None = Field(None, max_length=4000, description="what it follows (node.feed.filters), as JSON")


class AppAgentRecord(_Record):
    """An agent an application may act as (node.workspace.apps)."""

    app_id: Id
    agent_id: Id


class PolicyRecord(_Record):
    scope: str = Field(max_length=300)
    settings: dict[str, Any]
    updated_at: Ms
    updated_by: str = Field(max_length=200)


class AuditRecord(_Record):
    seq: Id
    at: Ms
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    target: str = Field(max_length=300)
    network: str | None = Field(max_length=64)
    partner: str | None = Field(max_length=255)
    detail: str = Field(max_length=1_000_000, description="the stored JSON text, byte for byte: the hash covers it")
    prev_hash: Sha256
    hash: Sha256


class AuditHead(_Record):
    seq: int = Field(ge=0, le=2**63 - 1)
    hash: Sha256


class AuditLog(_Record):
    head: AuditHead
    entries: list[AuditRecord] = Field(max_length=MAX_AUDIT_ENTRIES)


class PrivateFile(_Record):
    """The whole file. Ids are the source node's; the import keeps them."""

    format: Literal["agentnet-private/1"]
    exported_at: Ms
    exported_by: str = Field(max_length=200)
    company: CompanyRecord
    principals: list[PrincipalRecord] = Field(max_length=MAX_PRINCIPALS)
    tokens: list[TokenRecord] = Field(max_length=MAX_TOKENS)
    admin_tokens: list[AdminTokenRecord] = Field(max_length=MAX_TOKENS)
    private_threads: list[ThreadRecord] = Field(max_length=MAX_THREADS)
    private_messages: list[MessageRecord] = Field(max_length=MAX_MESSAGES)
    knowledge: list[KnowledgeRecord] = Field(max_length=MAX_KNOWLEDGE)
    webhooks: list[WebhookRecord] = Field(max_length=MAX_WEBHOOKS)
    policies: list[PolicyRecord] = Field(max_length=MAX_POLICIES)
    audit: AuditLog
    app_agents: list[AppAgentRecord] = Field(default_factory=list, max_length=MAX_TOKENS)

    @model_validator(mode="after")
    def _consistent(self) -> PrivateFile:
        principals = _unique("principals", "id", [p.id for p in self.principals])
        _unique("principals", "kind:handle", [f"{p.kind}:{p.handle}" for p in self.principals])
        _unique("tokens", "id", [t.id for t in self.tokens])
        _unique("tokens", "token_sha256", [t.token_sha256 for t in self.tokens])
        _unique("admin_tokens", "token_sha256", [t.token_sha256 for t in self.admin_tokens])
        threads = _unique("private_threads", "id", [t.id for t in self.private_threads])
        _unique("private_threads", "name", [t.name for t in self.private_threads])
        _unique("private_messages", "id", [m.id for m in self.private_messages])
        _unique("knowledge", "id", [k.id for k in self.knowledge])
        _unique("webhooks", "id", [w.id for w in self.webhooks])
        _unique("policies", "scope", [p.scope for p in self.policies])
        _known("tokens", "principal_id", [t.principal_id for t in self.tokens], principals)
        for i, thread in enumerate(self.private_threads):
            _unique(f"private_threads[{i}]", "members", thread.members)
            _known(f"private_threads[{i}]", "members", thread.members, principals)
        _known("private_messages", "thread_id", [m.thread_id for m in self.private_messages], threads)
        _known("private_messages", "sender_id", [m.sender_id for m in self.private_messages], principals)
        for i, item in enumerate(self.knowledge):
            _unique(f"knowledge[{i}]", "readers", item.readers or [])
            _known(f"knowledge[{i}]", "readers", item.readers or [], principals)
        _known("webhooks", "principal_id", [w.principal_id for w in self.webhooks], principals)
        _known("app_agents", "app_id", [a.app_id for a in self.app_agents], principals)
        _known("app_agents", "agent_id", [a.agent_id for a in self.app_agents], principals)
        for i, policy in enumerate(self.policies):
            _check_policy(i, policy)
        _check_chain(self.audit)
        return self


def _unique(where: str, field: str, values: list[Any]) -> set[Any]:
    seen = set(values)
    if len(seen) != len(values):
        twice = next(v for v, n in Counter(values).items() if n > 1)
        raise ValueError(f"{where}: {field} {twice!r} appears more than once")
    return seen


def _known(where: str, field: str, values: Iterable[int], known: set[int]) -> None:
    for i, value in enumerate(values):
        if value not in known:
            raise ValueError(f"{where}[{i}]: {field} {value} is not in the file")


def _check_policy(i: int, policy: PolicyRecord) -> None:
    """Each row against the model the node reads it with: a row it could not read would fail
    every partner's event later, far from the import that let it in."""
    scope = policy.scope
    model: type[BaseModel]
    if scope == NODE_SCOPE:
        model = NodePolicy
    elif scope == GUARD_SCOPE:
        model = GuardPolicy
    elif scope.startswith("partner:"):
        if scope != DEFAULT_PARTNER_SCOPE:
            try:
                _SERVER.validate_python(scope.removeprefix("partner:"))
            except ValidationError:
                raise ValueError(f"policies[{i}]: scope {scope!r} does not name a server") from None
        model = PartnerPolicy
    else:
        raise ValueError(f"policies[{i}]: scope {scope!r} is not one this node has")
    try:
        model.model_validate(policy.settings)
    except ValidationError as e:
        raise ValueError(f"policies[{i}] ({scope}): {describe_errors(e)}") from None


def _check_chain(audit: AuditLog) -> None:
    previous = GENESIS_HASH
    for i, entry in enumerate(audit.entries):
        where = f"audit.entries[{i}] (seq {entry.seq})"
        if entry.seq != i + 1:
            raise ValueError(f"{where}: expected seq {i + 1}: entries are missing or out of order")
        if entry.prev_hash != previous:
            raise ValueError(f"{where}: its prev_hash is not the hash of the entry before it")
        if entry_hash(entry.model_dump()) != entry.hash:
            raise ValueError(f"{where}: its fields do not match its hash: it was changed")
        try:
            detail = json.loads(entry.detail)
        except ValueError:
            detail = None
        if not isinstance(detail, dict):
            raise ValueError(f"{where}: its detail is not a JSON object")
        previous = entry.hash
    if (audit.head.seq, audit.head.hash) != (len(audit.entries), previous):
        raise ValueError(f"audit.head: says {audit.head.seq}:{audit.head.hash[:12]}…, the entries end at "
                         f"{len(audit.entries)}:{previous[:12]}…")


def describe_errors(error: ValidationError, *, most: int = 5) -> str:
    """A ValidationError in a line or a few: where and what, never the (possibly huge) input."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:most]:
        where = ".".join(str(p) for p in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = error.error_count() - most
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


# --- the file and the tables: one mapping each way ---------------------------------------------


def from_rows(rows: PrivateRows, *, exported_at: int, exported_by: str) -> PrivateFile:
    """The file for the rows a database holds (ValidationError: they do not fit it)."""
    t = rows.tables
    members: dict[int, list[int]] = {r["id"]: [] for r in t["private_threads"]}
    for pair in t["private_thread_members"]:
        members[pair["thread_id"]].append(pair["principal_id"])
    readers: dict[int, list[int]] = {r["id"]: [] for r in t["knowledge_items"]}
    for pair in t["knowledge_readers"]:
        readers[pair["item_id"]].append(pair["principal_id"])
    return PrivateFile.model_validate({
        "format": PRIVATE_FORMAT, "exported_at": exported_at, "exported_by": exported_by,
        "company": rows.company,
        "principals": t["principals"],
        "tokens": [{**_without(r, "token_hash", "scopes"), "token_sha256": r["token_hash"],
                    "scopes": r["scopes"].split()} for r in t["principal_tokens"]],
        "admin_tokens": [{**_without(r, "token_hash"), "token_sha256": r["token_hash"]} for r in t["admin_tokens"]],
        "private_threads": [{**r, "members": members[r["id"]]} for r in t["private_threads"]],
        "private_messages": t["private_messages"],
        "knowledge": [{**_without(r, "restricted"), "readers": readers[r["id"]] if r["restricted"] else None}
                      for r in t["knowledge_items"]],
        "webhooks": t["webhooks"],
        "app_agents": t["app_agents"],
        "policies": [{**r, "settings": json.loads(r["settings"])} for r in t["policies"]],
        "audit": {"head": {"seq": rows.audit_head[0], "hash": rows.audit_head[1]}, "entries": t["audit_log"]},
    })


def to_rows(file: PrivateFile) -> PrivateRows:
    """The rows to write for a file (validated: every reference holds)."""
    def plain(records: Iterable[BaseModel], *drop: str) -> list[dict[str, Any]]:
        return [r.model_dump(exclude=set(drop)) for r in records]

    tables = {
        "principals": plain(file.principals),
        "principal_tokens": [{**_without(r, "token_sha256", "scopes"), "token_hash": r["token_sha256"],
                              "scopes": " ".join(sorted(r["scopes"]))} for r in plain(file.tokens)],
        "admin_tokens": [{**_without(r, "token_sha256"), "token_hash": r["token_sha256"]}
                         for r in plain(file.admin_tokens)],
        "private_threads": plain(file.private_threads, "members"),
        "private_thread_members": [{"thread_id": t.id, "principal_id": p} for t in file.private_threads
                                   for p in t.members],
        "private_messages": plain(file.private_messages),
        "knowledge_items": [{**_without(r, "readers"), "restricted": r["readers"] is not None}
                            for r in plain(file.knowledge)],
        "knowledge_readers": [{"item_id": k.id, "principal_id": p} for k in file.knowledge for p in k.readers or []],
        "webhooks": plain(file.webhooks),
        "app_agents": plain(file.app_agents),
        # As `storage.network.policies.PolicyRepository.put` writes it.
        "policies": [{**r, "settings": json.dumps(r["settings"], sort_keys=True)} for r in plain(file.policies)],
        "audit_log": plain(file.audit.entries),
    }
    return PrivateRows(file.company.model_dump(), tables, (file.audit.head.seq, file.audit.head.hash))


def _without(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}
