"""Webhook routes: a principal manages its own endpoints on the client listener (scope
`webhooks`); the operator sees every endpoint, why one was disabled, and can disable or enable
it on the admin listener. Another principal's webhook is answered 404, as if it did not exist.

A new webhook starts at the feed's head: it receives what happens from now on, never history.
Its URL must lead to a public receiver, or one the operator allowed (`node.webhooks.destinations`).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from yarl import URL

from node.basics.clock import Clock
from node.basics.errors import Conflict, InvalidRequest
from node.basics.limits import WebhookLimits
from node.feed.filters import FeedFilter
from node.http.auth import current_admin, current_caller
from node.http.io import read_body, respond
from node.http.openapi import Endpoint
from node.webhooks.models import (
    MAX_WEBHOOKS_PER_PRINCIPAL,
    AdminWebhookList,
    AdminWebhookOut,
    CreateWebhook,
    WebhookCreated,
    WebhookList,
    WebhookOut,
)
from node.webhooks.resolver import DestinationRefused, Destinations
from node.webhooks.signing import generate_secret
from node.workspace.directory import Directory
from storage.private.principals import Principal
from storage.private.webhooks import Webhook
from storage.storage import Storage

__all__ = ["WebhookService", "webhook_admin_endpoints", "webhook_client_endpoints"]


def _out(hook: Webhook) -> dict:
    return dict(id=str(hook.id), url=hook.url, status=hook.status, created_at=hook.created_at,
                failures=hook.failures, last_status=hook.last_status, last_error=hook.last_error,
                last_success_at=hook.last_success_at, disabled_reason=hook.disabled_reason,
                next_attempt_at=hook.next_attempt_at if hook.status == "active" else None,
                filter=FeedFilter.from_stored(hook.filter))


def _bad_url(message: str) -> InvalidRequest:
    return InvalidRequest(f"body field 'url': {message}", [{"field": "url", "location": "body", "message": message}])


def check_url(raw: str, *, allow_http: bool) -> str:
    try:
        url = URL(raw)
    except (ValueError, TypeError):
        raise _bad_url("not a URL") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if url.scheme not in schemes:
        raise _bad_url("must be an https URL" if not allow_http else "must be an http or https URL")
    if not url.host or not url.is_absolute():
        raise _bad_url("must name a host")
    if url.user is not None or url.password is not None:
        raise _bad_url("must not carry a user name or password (put a secret in the path instead)")
    if url.fragment or raw != raw.strip() or any(c.isspace() or ord(c) < 32 for c in raw):
        raise _bad_url("must not have a fragment, spaces or control characters")
    return raw


def _webhook_id(request: web.Request) -> int:
    return int(request.match_info["webhook"])  # digits: node.http.path_parameters


class WebhookService:
    def __init__(self, storage: Storage, clock: Clock, directory: Directory, limits: WebhookLimits,
                 wake: Callable[[], None] = lambda: None, destinations: Destinations | None = None) -> None:
        self._storage = storage
        self._clock = clock
        self._directory = directory
        self._limits = limits
        self._wake = wake
        self._destinations = destinations or Destinations.from_limits(limits)

    async def create(self, owner: Principal, url: str, only: FeedFilter | None = None) -> WebhookCreated:
        url = check_url(url, allow_http=self._limits.allow_http)
        parsed = URL(url)
        try:
            await self._destinations.check(parsed.raw_host or "", parsed.port or 0)  # check_url: both are there
        except DestinationRefused as e:
            raise _bad_url(str(e)) from None
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            if await tx.webhooks.count_for(owner.id) >= MAX_WEBHOOKS_PER_PRINCIPAL:
                raise Conflict(f"a principal has at most {MAX_WEBHOOKS_PER_PRINCIPAL} webhooks; delete one first")
            _floor, head = await tx.feed.bounds()
            hook = await tx.webhooks.create(owner.id, url=url, secret=generate_secret(), cursor=head, now=now,
                                            filter=only.stored() if only is not None else None)
            await tx.audit.record(actor=self._directory.participant_id(owner), action="webhook.create",
                                  target=f"webhook:{hook.id}", now=now, detail={"host": URL(url).host})
        return WebhookCreated(**_out(hook), secret=hook.secret)

    async def list_own(self, owner: Principal) -> WebhookList:
        async with self._storage.transaction() as tx:
            hooks = await tx.webhooks.all(principal_id=owner.id)
        return WebhookList(items=[WebhookOut(**_out(h)) for h in hooks])

    async def delete_own(self, owner: Principal, webhook_id: int) -> WebhookOut:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            hook = await tx.webhooks.get(webhook_id, principal_id=owner.id)
            await tx.webhooks.delete(webhook_id, principal_id=owner.id)
            await tx.audit.record(actor=self._directory.participant_id(owner), action="webhook.delete",
                                  target=f"webhook:{hook.id}", now=now)
        return WebhookOut(**_out(hook))

    async def enable_own(self, owner: Principal, webhook_id: int) -> WebhookOut:
        return await self._set_status(webhook_id, active=True, actor=self._directory.participant_id(owner),
                                      owner_id=owner.id)

    async def list_all(self) -> AdminWebhookList:
        async with self._storage.transaction() as tx:
            hooks = await tx.webhooks.all()
            owners = {p.id: p for p in await tx.principals.by_ids(sorted({h.principal_id for h in hooks}))}
        return AdminWebhookList(items=[
            AdminWebhookOut(**_out(h), owner=self._directory.participant_id(owners[h.principal_id]),
                            cursor=str(h.cursor))
            for h in hooks])

    async def set_status_as_admin(self, webhook_id: int, *, active: bool, actor: str) -> WebhookOut:
        return await self._set_status(webhook_id, active=active, actor=actor, owner_id=None)

    async def _set_status(self, webhook_id: int, *, active: bool, actor: str, owner_id: int | None) -> WebhookOut:
        now = self._clock.now_ms()
        async with self._storage.transaction() as tx:
            hook = await tx.webhooks.get(webhook_id, principal_id=owner_id)
            if active:
                await tx.webhooks.set_status(hook.id, status="active", reason=None, now=now)
            else:
                await tx.webhooks.set_status(hook.id, status="disabled", reason=f"disabled by {actor}", now=now)
            await tx.audit.record(actor=actor, action="webhook.enable" if active else "webhook.disable",
                                  target=f"webhook:{hook.id}", now=now,
                                  detail={"was": hook.status, "failures": hook.failures})
            hook = await tx.webhooks.get(hook.id)
        if active:
            self._wake()
        return WebhookOut(**_out(hook))


def webhook_client_endpoints(service: WebhookService) -> list[Endpoint]:
    async def create(request: web.Request) -> web.Response:
        req = await read_body(request, CreateWebhook)
        return respond(await service.create(current_caller(request).principal, req.url, req.filter), status=201)

    async def list_(request: web.Request) -> web.Response:
        return respond(await service.list_own(current_caller(request).principal))

    async def delete(request: web.Request) -> web.Response:
        return respond(await service.delete_own(current_caller(request).principal, _webhook_id(request)))

    async def enable(request: web.Request) -> web.Response:
        return respond(await service.enable_own(current_caller(request).principal, _webhook_id(request)))

    return [
        Endpoint("POST", "/v1/webhooks", create,
                 "Register a URL to receive the caller's events as signed POSTs; the secret is shown once",
                 body=CreateWebhook, response=WebhookCreated, status=201, scope="webhooks", errors=(409,)),
        Endpoint("GET", "/v1/webhooks", list_, "The caller's webhooks and how their delivery stands",
                 response=WebhookList, scope="webhooks"),
        Endpoint("DELETE", "/v1/webhooks/{webhook}", delete, "Delete one of the caller's webhooks",
                 response=WebhookOut, scope="webhooks"),
        Endpoint("POST", "/v1/webhooks/{webhook}/enable", enable,
                 "Enable a disabled webhook; delivery resumes where it stopped", response=WebhookOut,
                 scope="webhooks"),
    ]


def webhook_admin_endpoints(service: WebhookService) -> list[Endpoint]:
    async def list_(request: web.Request) -> web.Response:
        return respond(await service.list_all())

    def set_status(active: bool):
        async def handler(request: web.Request) -> web.Response:
            return respond(await service.set_status_as_admin(_webhook_id(request), active=active,
                                                             actor=current_admin(request)))
        return handler

    return [
        Endpoint("GET", "/v1/webhooks", list_,
                 "Every webhook with its owner, cursor, failures, last answer and why it was disabled",
                 response=AdminWebhookList),
        Endpoint("POST", "/v1/webhooks/{webhook}/disable", set_status(False), "Stop deliveries to a webhook",
                 response=WebhookOut),
        Endpoint("POST", "/v1/webhooks/{webhook}/enable", set_status(True),
                 "Enable a webhook; delivery resumes where it stopped", response=WebhookOut),
    ]
