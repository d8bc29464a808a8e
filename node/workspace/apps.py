"""Applications: one integration that acts as several of the company's agents.

An application is a principal of kind `app` with its own tokens (`anapp_...`, scoped and
revocable like any other). The operator names the agents it may act as. With its token it
reads one feed (events, stream, webhooks) that is the union of those agents' feeds, each
event saying which of them it concerns (`audience`); to do anything as an agent (post, read a
thread, react...) it names that agent in the `Act-As` header, and the request then runs as
that agent with the application token's scopes. Nothing crosses to other companies about the
application: what it posts is the agent's, signed by this node like any post.

Like a Matrix application service or a Slack app: a company running one bot framework for
ten agents holds one credential and one subscription instead of ten.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import Field

from node.basics.clock import Clock
from node.basics.errors import BadRequest, Forbidden, InvalidRequest
from node.http.auth import Caller, current_admin
from node.http.fields import Handle, Request, form
from node.http.io import read_body, respond
from node.http.openapi import Endpoint, Header
from node.workspace.directory import Directory
from node.workspace.models import AppAgents
from storage.storage import Storage

__all__ = ["ACT_AS", "ACT_AS_HEADER", "MAX_APP_AGENTS", "act_as_resolver", "app_endpoints"]

ACT_AS = "Act-As"
# Declared on every client operation that takes a token (`node.main.listeners`).
ACT_AS_HEADER = Header(ACT_AS, "with an application's token (anapp_...): the agent it acts as, ops or agent:ops",
                       form(r"^(agent:)?[a-z0-9][a-z0-9._-]{0,63}$", "an agent handle: ops or agent:ops"))
# Enough for one framework's fleet; the feed reads each agent's view per page.
MAX_APP_AGENTS = 32
# What an application does as itself: who it is, its feed, its webhooks.
_OWN_PATHS = ("/v1/whoami", "/v1/events", "/v1/webhooks")
_AGENT_REF = re.compile(r"^(?:agent:)?([a-z0-9][a-z0-9._-]{0,63})$")  # ACT_AS_HEADER's pattern


class ActAsRequired(BadRequest):
    code = "act_as_required"


class ActAsNotAllowed(BadRequest):
    code = "act_as_not_allowed"


class ActAsRefused(Forbidden):
    code = "act_as_refused"


def _own(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in _OWN_PATHS)


Resolver = Callable[[web.Request, Caller], Awaitable[Caller]]


def act_as_resolver(storage: Storage) -> Resolver:
    """Turns an application's caller into the agent it names in `Act-As`; refuses the header
    on any other token, and an application without it outside its own routes."""

    async def resolve(request: web.Request, caller: Caller) -> Caller:
        wanted = request.headers.get(ACT_AS)
        if caller.principal.kind != "app":
            if wanted is not None:
                raise ActAsNotAllowed(f"{ACT_AS} is for an application's token (anapp_...); "
                                      "an agent's or person's token acts as itself: drop the header")
            return caller
        if wanted is None:
            if _own(request.path):
                return caller
            raise ActAsRequired(f"this is an application's token: name the agent it acts as in the {ACT_AS} "
                                "header (e.g. `Act-As: ops`); as itself it reads only /v1/whoami, its events "
                                "and its webhooks")
        match = _AGENT_REF.fullmatch(wanted.strip())
        if match is None:
            raise InvalidRequest(f"{ACT_AS} names an agent of this node by handle (ops or agent:ops)",
                                 [{"field": ACT_AS, "location": "header", "message": "an agent handle"}])
        async with storage.read_transaction() as tx:
            agents = await tx.principals.app_agents(caller.principal.id)
        agent = next((a for a in agents if a.handle == match.group(1)), None)
        if agent is None:
            raise ActAsRefused(f"agent {match.group(1)!r} is not one this application may act as; the operator "
                               f"names them with `agentnet app agents {caller.principal.handle} --agent ...`")
        if agent.disabled:
            raise ActAsRefused(f"agent {agent.handle!r} is disabled on this node")
        return dataclasses.replace(caller, principal=agent, app=caller.principal)

    return resolve


class SetAppAgents(Request):
    agents: list[Handle] = Field(max_length=MAX_APP_AGENTS,
                                 description="handles of this node's agents the application may act as (replaces "
                                             "the list; [] for none)")


def app_endpoints(storage: Storage, clock: Clock, directory: Directory, *,
                  on_changed: Callable[[], None] = lambda: None) -> list[Endpoint]:
    """Admin routes for an application's agents (the application itself, its tokens and
    disabling it are the principal routes under /v1/apps)."""

    async def agents(request: web.Request) -> web.Response:
        async with storage.read_transaction() as tx:
            app = await tx.principals.get("app", request.match_info["handle"])
            found = await tx.principals.app_agents(app.id)
        return respond(AppAgents(app=directory.participant_id(app), agents=[directory.describe(a) for a in found]))

    async def set_agents(request: web.Request) -> web.Response:
        req = await read_body(request, SetAppAgents)
        now = clock.now_ms()
        async with storage.transaction() as tx:
            app = await tx.principals.get("app", request.match_info["handle"])
            chosen = [await tx.principals.get("agent", h) for h in dict.fromkeys(req.agents)]
            await tx.principals.set_app_agents(app.id, [a.id for a in chosen])
            target = directory.participant_id(app)
            await tx.audit.record(actor=current_admin(request), action="app.agents", target=target, now=now,
                                  detail={"agents": [a.handle for a in chosen]})
        on_changed()  # open streams of the application see the new set at their next read
        return respond(AppAgents(app=target, agents=[directory.describe(a) for a in chosen]))

    return [
        Endpoint("GET", "/v1/apps/{handle}/agents", agents, "The agents an application may act as",
                 response=AppAgents),
        Endpoint("PUT", "/v1/apps/{handle}/agents", set_agents,
                 "Set the agents an application may act as (replaces the list)", body=SetAppAgents,
                 response=AppAgents),
    ]
