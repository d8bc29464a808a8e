"""Named operators (`node.http.roles`): the owner gives each person who runs the node a token
of their own with a role, so the audit log says who did what, and takes it back."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from node.basics.clock import Clock
from node.basics.errors import Conflict
from node.http.auth import current_admin
from node.http.fields import Request, Slug
from node.http.io import read_body, respond
from node.http.openapi import Endpoint
from node.workspace.tokens import issue_token
from storage.errors import NotFound
from storage.private.principals import AdminTokenRecord
from storage.storage import Storage

__all__ = ["operator_endpoints"]

Role = Literal["owner", "networks", "workspace", "security", "auditor"]


class AddOperator(Request):
    name: Slug = Field(description="who this is, as the audit log will say it (admin:NAME)")
    role: Role


class OperatorOut(BaseModel):
    name: str
    role: str
    prefix: str = Field(description="the token's first characters")
    created_at: int
    revoked_at: int | None


class OperatorWithToken(OperatorOut):
    token: str = Field(description="the operator's admin token; shown only in this response")


class OperatorList(BaseModel):
    items: list[OperatorOut]


def _out(record: AdminTokenRecord) -> OperatorOut:
    assert record.name is not None
    return OperatorOut(name=record.name, role=record.role, prefix=record.prefix, created_at=record.created_at,
                       revoked_at=record.revoked_at)


def operator_endpoints(storage: Storage, clock: Clock, *, on_tokens_changed=lambda: None) -> list[Endpoint]:
    async def add(request: web.Request) -> web.Response:
        req, actor, now = await read_body(request, AddOperator), current_admin(request), clock.now_ms()
        token = issue_token("adm")
        async with storage.transaction() as tx:
            if any(r.name == req.name and r.revoked_at is None for r in await tx.admin_tokens.named()):
                raise Conflict(f"operator {req.name} already has a live token; revoke it first")
            await tx.admin_tokens.add(token_hash=token.digest, prefix=token.prefix, now=now, name=req.name,
                                      role=req.role)
            await tx.audit.record(actor=actor, action="operator.add", target=f"admin:{req.name}", now=now,
                                  detail={"role": req.role, "token_prefix": token.prefix})
        return respond(OperatorWithToken(name=req.name, role=req.role, prefix=token.prefix, created_at=now,
                                         revoked_at=None, token=token.secret), status=201)

    async def listed(request: web.Request) -> web.Response:
        async with storage.read_transaction() as tx:
            return respond(OperatorList(items=[_out(r) for r in await tx.admin_tokens.named()]))

    async def revoke(request: web.Request) -> web.Response:
        name, actor, now = request.match_info["operator"], current_admin(request), clock.now_ms()
        async with storage.transaction() as tx:
            revoked = await tx.admin_tokens.revoke_named(name, now=now)
            if not revoked:
                raise NotFound("operator with a live token", name)
            await tx.audit.record(actor=actor, action="operator.revoke", target=f"admin:{name}", now=now)
            records = [r for r in await tx.admin_tokens.named() if r.name == name]
        on_tokens_changed()
        return respond(_out(records[-1]))

    return [
        Endpoint("POST", "/v1/operators", add, "Name an operator with a role; returns their admin token once",
                 body=AddOperator, response=OperatorWithToken, status=201, errors=(409,)),
        Endpoint("GET", "/v1/operators", listed, "Named operators, their roles and tokens (never the secrets)",
                 response=OperatorList),
        Endpoint("POST", "/v1/operators/{operator}/revoke", revoke, "Revoke an operator's token at once",
                 response=OperatorOut),
    ]
