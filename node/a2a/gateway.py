"""A2A (Agent2Agent) for the agents a company chooses to expose: an agent card each, and
messages from an A2A client posted into a thread, through the node.

The operator lists the agents (`agentnet policy node --a2a-agent ops`). Each one gets a card
at `/a2a/{handle}/.well-known/agent-card.json` (public, like any card; unlisted agents are 404)
and a JSON-RPC endpoint at `/a2a/{handle}`, served by the official A2A SDK's dispatcher and
request handler through the ASGI bridge, behind the same bearer-token authentication, `post`
scope and rate limit as the client API. A message asks for a thread in its metadata
(`{"network": ..., "thread": ...}`, or just `thread` for a private one) and is posted there as
the token's own person or agent, mentioning the exposed agent in a shared thread, through the
outbound guard and every rule: A2A is one more way in, never a way around. The answer is an
A2A message saying where it went; the agent replies in the thread, where the caller reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from a2a.helpers.proto_helpers import new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT
from a2a.utils.errors import TaskNotCancelableError
from aiohttp import web
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request

from node.basics.errors import NodeError, NotFoundError
from node.basics.rate_limit import PostRateLimiter
from node.federation.policy import node_policy
from node.http.asgi_bridge import call_asgi
from node.http.auth import Caller, current_caller
from node.http.io import parse_json_body, validate_body
from node.http.openapi import Endpoint
from node.networks.threads import SharedThreadService
from node.workspace.client_service import ClientService
from storage.storage import Storage

__all__ = ["CALLER_STATE_KEY", "A2AGateway", "a2a_endpoints"]

log = logging.getLogger(__name__)

CALLER_STATE_KEY = "agentnet.a2a.caller"


class _CallerContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's context, plus the caller the node's middleware authenticated."""

    def build(self, request: Request) -> Any:
        context = super().build(request)
        context.state["caller"] = request.scope.get("state", {}).get(CALLER_STATE_KEY)
        return context


class _ThreadExecutor(AgentExecutor):
    def __init__(self, gateway: A2AGateway, handle: str) -> None:
        self._gateway = gateway
        self._handle = handle

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        caller = context.call_context.state.get("caller")
        assert isinstance(caller, Caller), "the node's middleware authenticated the request"
        where = dict(context.message.metadata) if context.message is not None else {}
        try:
            said = await self._gateway.post(caller, self._handle, where, context.get_user_input())
        except NodeError as e:  # the node's refusal, in words the client can act on
            said = f"refused ({e.status} {e.code}): {e.message}"
        await event_queue.enqueue_event(new_text_message(said, context_id=context.context_id,
                                                         task_id=context.task_id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        # A message is posted at once and answered with a message, never a running task.
        raise TaskNotCancelableError("a message is posted at once; there is nothing to cancel")


@dataclass
class _Served:
    card: AgentCard
    app: Starlette


class A2AGateway:
    def __init__(self, storage: Storage, shared: SharedThreadService, client: ClientService, *, server: str) -> None:
        self._storage = storage
        self._shared = shared
        self._client = client
        self._server = server
        self._served: dict[tuple[str, str], _Served] = {}  # (handle, base URL) -> what serves it

    async def card(self, request: web.Request) -> web.Response:
        served = await self._serving(request)
        return web.json_response(MessageToDict(served.card), headers={"Cache-Control": "max-age=300"})

    async def rpc(self, request: web.Request) -> web.StreamResponse:
        served = await self._serving(request)
        body = await request.read()  # held to the listener's size cap by aiohttp
        _check_envelope(body)
        return await call_asgi(served.app, request, state={CALLER_STATE_KEY: current_caller(request)}, body=body)

    async def post(self, caller: Caller, handle: str, where: dict[str, Any], text: str) -> str:
        thread, network = where.get("thread"), where.get("network")
        if not isinstance(thread, str) or not (network is None or isinstance(network, str)) or not text.strip():
            return ('say where: give the message text, and metadata {"network": NETWORK, "thread": THREAD} '
                    '(or {"thread": THREAD} for a private thread)')
        if network is None:
            private = await self._client.post(caller.principal, thread, text)
            return f"posted to {thread} as {private.value.id}; the agent answers there"
        target = f"agent:{handle}@{self._server}"
        shared = await self._shared.post(caller.principal, network, thread, text, mentions=[target])
        return f"posted to {network}/{thread} as {shared.value.id}, mentioning {target}; it answers there"

    async def _serving(self, request: web.Request) -> _Served:
        handle = request.match_info["handle"]
        async with self._storage.transaction() as tx:
            exposed = handle in (await node_policy(tx)).a2a_agents
            agent = await tx.principals.get("agent", handle) if exposed else None  # a deleted one: 404
        if agent is None or agent.disabled:
            raise NotFoundError(f"no agent {handle} is published here")
        base = f"{request.scheme}://{request.host}"
        key = (handle, base)
        served = self._served.get(key)
        if served is None or served.card.name != agent.display_name:
            served = self._served[key] = self._build(handle, agent.display_name, agent.profile, base)
        return served

    def _build(self, handle: str, name: str, profile: str, base: str) -> _Served:
        card = AgentCard(
            name=name, description=profile or f"{name}, an agent of {self._server}", version="1",
            supported_interfaces=[AgentInterface(url=f"{base}/a2a/{handle}", protocol_binding="JSONRPC",
                                                 protocol_version=PROTOCOL_VERSION_CURRENT)],
            capabilities=AgentCapabilities(streaming=False, push_notifications=False),
            security_schemes={"bearer": SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(
                scheme="bearer", description="a token this company's operator issued (scope post)"))},
            security_requirements=[SecurityRequirement(schemes={"bearer": StringList()})],
            default_input_modes=["text/plain"], default_output_modes=["text/plain"],
            skills=[AgentSkill(id="thread", name="Talk in a thread",
                               description="Posts your message into a thread of this company's network (metadata "
                                           "network and thread), addressed to this agent; it answers there.",
                               tags=["threads"])])
        handler = DefaultRequestHandler(agent_executor=_ThreadExecutor(self, handle), task_store=InMemoryTaskStore(),
                                        agent_card=card)
        app = Starlette(routes=create_jsonrpc_routes(handler, rpc_url=f"/a2a/{handle}",
                                                     context_builder=_CallerContextBuilder()))
        return _Served(card, app)


class JsonRpcRequest(BaseModel):
    """The envelope the node checks before the SDK reads the rest (A2A's JSON-RPC binding)."""

    jsonrpc: Literal["2.0"]
    method: str = Field(min_length=1, max_length=100)
    id: str | int | None = None
    params: dict[str, Any] | None = None


def _check_envelope(raw: bytes) -> None:
    validate_body(parse_json_body(raw), JsonRpcRequest)


def a2a_endpoints(gateway: A2AGateway, limiter: PostRateLimiter) -> list[Endpoint]:
    async def rpc(request: web.Request) -> web.StreamResponse:
        limiter.check(current_caller(request).token_id)
        return await gateway.rpc(request)

    return [
        Endpoint("GET", "/a2a/{handle}/.well-known/agent-card.json", gateway.card, "The A2A agent card of an agent "
                 "this company publishes (404 for any other)", public=True, operation_id="a2a_agent_card",
                 errors=(404,)),
        Endpoint("POST", "/a2a/{handle}", rpc, "A2A JSON-RPC (SendMessage): the message goes into the thread its "
                 "metadata names, as the caller, addressed to the agent", body=JsonRpcRequest, scope="post",
                 rate_limited=True, operation_id="a2a_rpc", errors=(404,)),
    ]
