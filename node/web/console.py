"""The operator console: pages on the admin listener (loopback only, like the admin API) under
/console, rendered like the people's pages and as strictly secured.

An operator opens it with a one-time link (`agentnet console`), made with their admin token:
the console session acts with that operator's name in the audit log and that operator's role
(`node.http.roles`), checked for every action against the API route it stands for. Console
sessions live in the node process's memory (at most a few at once, 12 hours each): a restart
signs everyone out, and with several node processes a console session is one process's.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from node.basics.clock import Clock
from node.basics.errors import NodeError
from node.federation.policy import PartnerPolicy
from node.guard.admin_api import Review, flag_page, review_flag
from node.http.auth import current_operator
from node.http.io import respond
from node.http.openapi import Endpoint
from node.http.roles import area_of, permits
from node.networks.admin_api import invite_out
from node.networks.consent_api import consents, decide_consent
from node.networks.export import NetworkExporter
from node.networks.partners import PartnerService
from node.networks.policy import PolicyService
from node.networks.service import NetworkService
from node.ops.overview import OverviewOut
from node.web.pages import SECURITY_HEADERS, static_file, template_env
from node.web.sessions import WebSessions, csrf_matches
from node.workspace.admin_service import AdminService
from node.workspace.models import CreatePrincipal, IssueToken
from node.workspace.tokens import hash_token
from storage.errors import AlreadyExists, NotFound
from storage.private.audit import AuditFilter
from storage.storage import Storage

__all__ = ["CONSOLE_COOKIE", "ConsoleLink", "ConsoleSessions", "console_endpoints", "console_routes"]

CONSOLE_COOKIE = "agentnet_console"
_LINK_MS = 10 * 60 * 1000
_SESSION_MS = 12 * 3600 * 1000
_MAX_OPEN = 32  # links and sessions each; the oldest goes first
_FORM = web.RequestKey("agentnet.console.form", dict)


class ConsoleLink(BaseModel):
    url: str = Field(description="open it in a browser on this machine, once, within 10 minutes")
    expires_at: int


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    actor: str
    role: str
    csrf: str
    expires_at: int


class ConsoleSessions:
    """One-time links and sessions, by the SHA-256 of their tokens, in memory."""

    def __init__(self, clock: Clock, *, admin_url: str) -> None:
        self._clock = clock
        self._admin_url = admin_url.rstrip("/")
        self._links: OrderedDict[str, ConsoleSession] = OrderedDict()
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()

    def link(self, actor: str, role: str) -> ConsoleLink:
        token, now = secrets.token_urlsafe(32), self._clock.now_ms()
        self._put(self._links, hash_token(token), ConsoleSession(actor, role, "", now + _LINK_MS))
        return ConsoleLink(url=f"{self._admin_url}/console/sign-in?token={token}", expires_at=now + _LINK_MS)

    def usable(self, token: str) -> bool:
        found = self._links.get(hash_token(token))
        return found is not None and found.expires_at > self._clock.now_ms()

    def open(self, token: str) -> tuple[str, ConsoleSession] | None:
        link = self._links.pop(hash_token(token), None)
        now = self._clock.now_ms()
        if link is None or link.expires_at <= now:
            return None
        cookie = secrets.token_urlsafe(32)
        session = ConsoleSession(link.actor, link.role, secrets.token_urlsafe(24), now + _SESSION_MS)
        self._put(self._sessions, hash_token(cookie), session)
        return cookie, session

    def session(self, cookie: str | None) -> ConsoleSession | None:
        if not cookie or len(cookie) > 100:
            return None
        found = self._sessions.get(hash_token(cookie))
        return found if found is not None and found.expires_at > self._clock.now_ms() else None

    def close(self, cookie: str | None) -> None:
        if cookie:
            self._sessions.pop(hash_token(cookie), None)

    @staticmethod
    def _put(store: OrderedDict[str, ConsoleSession], key: str, value: ConsoleSession) -> None:
        store[key] = value
        while len(store) > _MAX_OPEN:
            store.popitem(last=False)


def console_endpoints(sessions: ConsoleSessions) -> list[Endpoint]:
    async def make_link(request: web.Request) -> web.Response:
        operator = current_operator(request)
        return respond(sessions.link(operator.actor, operator.role), status=201)

    return [Endpoint("POST", "/v1/console/sign-in-link", make_link,
                     "A one-time link to the operator console for the caller (10 minutes, this machine)",
                     response=ConsoleLink, status=201)]


def console_routes(app: web.Application, *, sessions: ConsoleSessions, overview: Callable[[], Awaitable[OverviewOut]],
                   partners: PartnerService, admin: AdminService, web_sessions: WebSessions,
                   networks: NetworkService, storage: Storage, clock: Clock, server: str,
                   exporter: NetworkExporter, policies: PolicyService,
                   ready: Callable[[], Awaitable[dict[str, str]]]) -> None:
    env = template_env()

    def page(name: str, status: int = 200, **values: Any) -> web.Response:
        return web.Response(text=env.get_template(name).render(console=True, static="/console/static", **values),
                            status=status,
                            content_type="text/html", headers=SECURITY_HEADERS)

    def problem(status: int, message: str) -> web.Response:
        return page("problem.html", status, title="Not possible", message=message, home="/console/")

    def operator_only(handler: Callable[..., Awaitable[web.StreamResponse]], *, api: tuple[str, str] | None = None):
        """`api`: the admin route the action stands for; the operator's role must allow it."""
        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = sessions.session(request.cookies.get(CONSOLE_COOKIE))
            if session is None:
                return page("problem.html", 401, title="Signed out",
                            message="Run `agentnet console` on this machine for a sign-in link.", home=None)
            if request.method == "POST":
                fields = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
                origin_ok = request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
                if not origin_ok or not csrf_matches(session.csrf, fields.get("csrf")):
                    return problem(403, "This form is out of date or came from another site; reload and try again.")
                request[_FORM] = fields
            try:
                if api is not None:
                    permits(session.role, area_of(*api))
                return await handler(request, session)
            except (ValidationError, ValueError) as e:
                return problem(422, f"That is not valid: {e}".splitlines()[0][:300])
            except (NodeError, NotFound, AlreadyExists) as e:
                return problem(getattr(e, "status", 404) if isinstance(e, NodeError) else
                               404 if isinstance(e, NotFound) else 409, getattr(e, "message", None) or str(e))
        return wrapped

    async def sign_in_page(request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        if not token or not sessions.usable(token):
            return page("problem.html", 400, title="Console", home=None,
                        message="This console link was used already or has expired; run `agentnet console` again.")
        return page("sign_in.html", token=token, action="/console/sign-in")

    async def sign_in(request: web.Request) -> web.StreamResponse:
        token = str((await request.post()).get("token", ""))
        opened = sessions.open(token) if token else None
        if opened is None:
            return page("problem.html", 400, title="Console", home=None,
                        message="This console link was used already or has expired; run `agentnet console` again.")
        response = web.HTTPSeeOther("/console/")
        response.set_cookie(CONSOLE_COOKIE, opened[0], httponly=True, samesite="Strict", path="/console",
                            secure=request.secure)
        raise response

    async def status(request: web.Request, session: ConsoleSession) -> web.Response:
        return page("console_status.html", me=session, view=await overview(), csrf=session.csrf,
                    checks=await ready())

    async def invites(request: web.Request, session: ConsoleSession) -> web.Response:
        found = [invite_out(i) for i in await partners.invites()]
        return page("console_invites.html", me=session, csrf=session.csrf,
                    incoming=[i for i in found if i.direction == "incoming"],
                    outgoing=[i for i in found if i.direction == "outgoing"])

    async def answer_invite(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        invite, verb = request.match_info["invite"], request.match_info["verb"]
        permits(session.role, area_of("POST", f"/v1/invites/{{invite}}/{verb}"))
        if verb == "accept":
            await partners.accept(invite, actor=session.actor)
        else:
            await partners.decline(invite, actor=session.actor)
        raise web.HTTPSeeOther("/console/invites")

    async def send_invite(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        fields = request[_FORM]
        await partners.invite(fields.get("network", ""), fields.get("server", "").strip(),
                              fields.get("endpoint", "").strip() or None, actor=session.actor)
        raise web.HTTPSeeOther("/console/invites")

    async def withdraw(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        permits(session.role, area_of("POST", "/v1/invites/{invite}/withdraw"))
        await partners.withdraw(request.match_info["invite"], actor=session.actor)
        raise web.HTTPSeeOther("/console/invites")

    async def policy(request: web.Request, session: ConsoleSession) -> web.Response:
        shown = await policies.show()
        partners_seen = sorted({p.server for p in (await overview()).peers} | {p.server for p in shown.partners})
        rows = [await policies.partner(s) for s in partners_seen]
        return page("console_policy.html", me=session, csrf=session.csrf, rows=rows, blocked=shown.blocked)

    async def set_policy(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        permits(session.role, area_of("PUT", "/v1/policy/partners/{server}"))
        server_name, fields = request.match_info["server"], request[_FORM]
        current = (await policies.partner(server_name)).policy
        updated = current.model_copy(update={
            "agents": fields.get("agents") == "yes", "files": fields.get("files") == "yes",
            "threads": "ask" if fields.get("threads") == "ask" else "auto",
            "max_message_chars": int(fields.get("max_message_chars") or current.max_message_chars)})
        await policies.set_partner(server_name, PartnerPolicy.model_validate(updated.model_dump()),
                                   actor=session.actor)
        raise web.HTTPSeeOther("/console/policy")

    async def rotate(request: web.Request, session: ConsoleSession) -> web.Response:
        permits(session.role, area_of("POST", "/v1/agents/{handle}/token"))
        handle = request.match_info["handle"]
        rotated = await admin.rotate_token("agent", handle, IssueToken(), actor=session.actor)
        return await people_page(session, {"who": rotated.principal, "token": rotated.token})

    async def export(request: web.Request, session: ConsoleSession) -> web.Response:
        permits(session.role, area_of("GET", "/v1/networks/{network}/export"))
        name = request.match_info["network"]
        document = await exporter.export(name, actor=session.actor)
        return web.Response(body=document.model_dump_json().encode(), content_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="{name}.export.json"', **SECURITY_HEADERS})

    async def people_page(session: ConsoleSession, made: dict[str, str] | None = None) -> web.Response:
        """The people page; `made`: what was just created or rotated, shown this once (the
        open web sessions are left out of that answer)."""
        lists = {kind: (await admin.list_principals(kind)).items for kind in ("person", "agent", "app")}
        return page("console_people.html", me=session, csrf=session.csrf, lists=lists, made=made,
                    sessions=[] if made else (await web_sessions.sessions()).items)

    def new_principal(fields: dict[str, str]) -> CreatePrincipal:
        return CreatePrincipal.model_validate({"handle": fields.get("handle", ""),
                                               "display_name": fields.get("display_name", "")}, strict=False)

    async def people(request: web.Request, session: ConsoleSession) -> web.Response:
        return await people_page(session)

    async def add_person(request: web.Request, session: ConsoleSession) -> web.Response:
        created = await admin.create_principal("person", new_principal(request[_FORM]), actor=session.actor)
        link = await web_sessions.make_link(created.handle, actor=session.actor)
        return await people_page(session, {"who": created.id, "link": link.url})

    async def set_disabled(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        kind, handle, verb = request.match_info["kind"], request.match_info["handle"], request.match_info["verb"]
        plural = {"person": "people", "agent": "agents", "app": "apps"}[kind]
        permits(session.role, area_of("POST", f"/v1/{plural}/{{handle}}/{verb}"))
        await admin.set_disabled(kind, handle, verb == "disable", actor=session.actor)
        raise web.HTTPSeeOther("/console/people")

    async def add_agent(request: web.Request, session: ConsoleSession) -> web.Response:
        created = await admin.create_principal("agent", new_principal(request[_FORM]), actor=session.actor)
        return await people_page(session, {"who": created.id, "token": created.token})

    async def network_list(request: web.Request, session: ConsoleSession) -> web.Response:
        held = [await networks.get(n.name) for n in (await networks.list()).items]
        own = [p for kind in ("person", "agent") for p in (await admin.list_principals(kind)).items if not p.disabled]
        return page("console_networks.html", me=session, csrf=session.csrf, networks=held, own=own,
                    mine=f"@{server}")

    async def attach(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        name, verb = request.match_info["network"], request.match_info["verb"]
        permits(session.role, area_of("POST", "/v1/networks/{network}/participants"))
        ref = request[_FORM].get("participant", "")
        if verb == "attach":
            await networks.attach(name, ref, actor=session.actor)
        else:
            await networks.detach(name, ref, actor=session.actor)
        raise web.HTTPSeeOther("/console/networks")

    async def consent_list(request: web.Request, session: ConsoleSession) -> web.Response:
        return page("console_consents.html", me=session, csrf=session.csrf,
                    requests=(await consents(storage, "pending")).items)

    async def consent_decide(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        network, thread, verb = (request.match_info[k] for k in ("network", "thread", "verb"))
        permits(session.role, area_of("POST", f"/v1/consents/{{network}}/{{thread}}/{verb}"))
        await decide_consent(storage, clock, network, thread, "accepted" if verb == "accept" else "declined",
                             actor=session.actor)
        raise web.HTTPSeeOther("/console/consents")

    async def flag_list(request: web.Request, session: ConsoleSession) -> web.Response:
        return page("console_flags.html", me=session, csrf=session.csrf,
                    flags=(await flag_page(storage, status="open", after=0, limit=100)).items)

    async def flag_review(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        permits(session.role, area_of("POST", "/v1/guard/flags/{flag}/review"))
        verdict = request.match_info["verdict"]
        await review_flag(storage, clock, int(request.match_info["flag"]),
                          Review(verdict="ok" if verdict == "ok" else "leak", note=None), actor=session.actor)
        raise web.HTTPSeeOther("/console/flags")

    async def revoke_session(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        permits(session.role, area_of("POST", "/v1/web-sessions/{session}/revoke"))
        await web_sessions.revoke(int(request.match_info["session"]), actor=session.actor)
        raise web.HTTPSeeOther("/console/people")

    async def audit(request: web.Request, session: ConsoleSession) -> web.Response:
        action = request.query.get("action", "").strip()[:64] or None
        actor = request.query.get("actor", "").strip()[:200] or None
        found = await admin.audit(before=None, limit=100, where=AuditFilter(actor=actor, action=action))
        return page("console_audit.html", me=session, csrf=session.csrf, entries=found.items,
                    action=action or "", actor=actor or "")

    async def sign_out(request: web.Request, session: ConsoleSession) -> web.StreamResponse:
        sessions.close(request.cookies.get(CONSOLE_COOKIE))
        response = web.HTTPSeeOther("/console/signed-out")
        response.del_cookie(CONSOLE_COOKIE, path="/console")
        raise response

    async def signed_out(request: web.Request) -> web.Response:
        return page("problem.html", title="Signed out", home=None,
                    message="You are signed out of the console. Run `agentnet console` to sign in again.")

    r = app.router
    r.add_get("/console/static/{name}", static_file)
    r.add_get("/console/sign-in", sign_in_page)
    r.add_post("/console/sign-in", sign_in)
    r.add_get("/console/signed-out", signed_out)
    r.add_get("/console/", operator_only(status))
    r.add_get("/console/invites", operator_only(invites))
    r.add_post("/console/invites/{invite}/{verb:accept|decline}", operator_only(answer_invite))
    r.add_post("/console/invites", operator_only(send_invite, api=("POST", "/v1/networks/{network}/invites")))
    r.add_post("/console/invites/{invite}/withdraw", operator_only(withdraw))
    r.add_get("/console/policy", operator_only(policy))
    r.add_post("/console/policy/{server}", operator_only(set_policy))
    r.add_post("/console/agents/{handle}/token", operator_only(rotate))
    r.add_get("/console/networks/{network}/export", operator_only(export))
    r.add_get("/console/people", operator_only(people))
    r.add_post("/console/people", operator_only(add_person, api=("POST", "/v1/people")))
    r.add_post("/console/people/{kind:person|agent|app}/{handle}/{verb:disable|enable}", operator_only(set_disabled))
    r.add_post("/console/agents", operator_only(add_agent, api=("POST", "/v1/agents")))
    r.add_get("/console/networks", operator_only(network_list))
    r.add_post("/console/networks/{network}/{verb:attach|detach}", operator_only(attach))
    r.add_get("/console/consents", operator_only(consent_list))
    r.add_post("/console/consents/{network}/{thread}/{verb:accept|decline}", operator_only(consent_decide))
    r.add_get("/console/flags", operator_only(flag_list))
    r.add_post("/console/flags/{flag:[0-9]{1,18}}/{verdict:ok|leak}", operator_only(flag_review))
    r.add_post("/console/web-sessions/{session:[0-9]{1,18}}/revoke", operator_only(revoke_session))
    r.add_get("/console/audit", operator_only(audit))
    r.add_post("/console/sign-out", operator_only(sign_out))

