"""Admin routes for networks, invites and peers."""

from __future__ import annotations

from aiohttp import web

from federation.keys import VerifyKey
from node.http.auth import current_admin
from node.http.io import read_body, read_query, respond
from node.http.openapi import Endpoint
from node.networks.models import (
    AddParticipants,
    AlertList,
    AttachParticipant,
    CreateNetwork,
    InviteCompany,
    InviteList,
    InviteOut,
    NetworkList,
    NetworkListQuery,
    NetworkOut,
    OpenSharedThread,
    PeerList,
    SilenceAgents,
)
from node.networks.partners import PartnerService
from node.networks.service import NetworkService
from storage.network.peers import Invite

__all__ = ["invite_out", "network_admin_endpoints"]


def invite_out(invite: Invite) -> InviteOut:
    return InviteOut(
        id=invite.id, direction=invite.direction, network=invite.network, host=invite.host, title=invite.title,
        server=invite.server, status=invite.status, created_at=invite.created_at, expires_at=invite.expires_at,
        fingerprint=VerifyKey(invite.public_key).fingerprint if invite.public_key else None,
        history_visible=invite.history_visible,
    )


def network_admin_endpoints(networks: NetworkService, partners: PartnerService) -> list[Endpoint]:
    def name(request: web.Request) -> str:
        return request.match_info["network"]

    async def create(request: web.Request) -> web.Response:
        req = await read_body(request, CreateNetwork)
        return respond(await networks.create(req, actor=current_admin(request)), status=201)

    async def list_(request: web.Request) -> web.Response:
        return respond(await networks.list(archived=read_query(request, NetworkListQuery).archived))

    def archiving(archived: bool):
        async def handler(request: web.Request) -> web.Response:
            return respond(await networks.set_archived(name(request), archived, actor=current_admin(request)))

        return handler

    async def show(request: web.Request) -> web.Response:
        return respond(await networks.get(name(request)))

    async def invite(request: web.Request) -> web.Response:
        req = await read_body(request, InviteCompany)
        sent = await partners.invite(name(request), req.server, req.endpoint, actor=current_admin(request))
        return respond(invite_out(sent), status=201)

    async def invites(request: web.Request) -> web.Response:
        return respond(InviteList(items=[invite_out(i) for i in await partners.invites()]))

    async def accept(request: web.Request) -> web.Response:
        return respond(invite_out(await partners.accept(request.match_info["invite"], actor=current_admin(request))))

    async def decline(request: web.Request) -> web.Response:
        return respond(invite_out(await partners.decline(request.match_info["invite"], actor=current_admin(request))))

    async def withdraw(request: web.Request) -> web.Response:
        return respond(invite_out(await partners.withdraw(request.match_info["invite"], actor=current_admin(request))))

    async def attach(request: web.Request) -> web.Response:
        req = await read_body(request, AttachParticipant)
        return respond(await networks.attach(name(request), req.participant, actor=current_admin(request)))

    async def detach(request: web.Request) -> web.Response:
        req = await read_body(request, AttachParticipant)
        return respond(await networks.detach(name(request), req.participant, actor=current_admin(request)))

    async def open_thread(request: web.Request) -> web.Response:
        req = await read_body(request, OpenSharedThread)
        return respond(await networks.open_thread(name(request), req, actor=current_admin(request)), status=201)

    async def add_to_thread(request: web.Request) -> web.Response:
        req = await read_body(request, AddParticipants)
        return respond(await networks.add_to_thread(name(request), request.match_info["thread"], req.participants,
                                                    actor=current_admin(request)))

    async def close_thread(request: web.Request) -> web.Response:
        thread = request.match_info["thread"]
        return respond(await networks.close_thread(name(request), thread, actor=current_admin(request)))

    async def silence(request: web.Request) -> web.Response:
        req = await read_body(request, SilenceAgents)
        return respond(await networks.silence_agents(name(request), request.match_info["thread"], req.agents,
                                                     actor=current_admin(request)))

    def freezing(frozen: bool):
        async def handler(request: web.Request) -> web.Response:
            return respond(await networks.set_frozen(name(request), frozen, actor=current_admin(request)))

        return handler

    async def close(request: web.Request) -> web.Response:
        return respond(await networks.close(name(request), actor=current_admin(request)))

    async def leave(request: web.Request) -> web.Response:
        return respond(await networks.leave(name(request), actor=current_admin(request)))

    async def remove(request: web.Request) -> web.Response:
        server = request.match_info["server"]
        return respond(await networks.remove_member(name(request), server, actor=current_admin(request)))

    async def resume(request: web.Request) -> web.Response:
        return respond(await networks.resume(name(request), actor=current_admin(request)))

    async def alerts(request: web.Request) -> web.Response:
        return respond(await networks.alerts())

    async def peers(request: web.Request) -> web.Response:
        return respond(await networks.peers())

    def blocking(blocked: bool):
        async def handler(request: web.Request) -> web.Response:
            await partners.set_blocked(request.match_info["server"], blocked, actor=current_admin(request))
            return respond(await networks.peers())

        return handler

    n = "/v1/networks/{network}"
    return [
        Endpoint("POST", "/v1/networks", create, "Create a network hosted by this node",
                 body=CreateNetwork, response=NetworkOut, status=201, errors=(409,)),
        Endpoint("GET", "/v1/networks", list_, "Networks this node hosts or is a member of (archived ones apart)",
                 query=NetworkListQuery, response=NetworkList),
        Endpoint("POST", n + "/archive", archiving(True), "Archive a closed network here: out of the lists, kept whole",
                 response=NetworkOut, errors=(409,)),
        Endpoint("POST", n + "/unarchive", archiving(False), "Bring an archived network back into the lists",
                 response=NetworkOut, errors=(409,)),
        Endpoint("GET", n, show, "A network: members, participants, threads", response=NetworkOut),
        Endpoint("POST", n + "/invites", invite, "Invite a company (sent to its node at once)",
                 body=InviteCompany, response=InviteOut, status=201, errors=(403, 409, 502)),
        Endpoint("POST", n + "/participants", attach, "Attach one of this company's people or agents",
                 body=AttachParticipant, response=NetworkOut, errors=(403,)),
        Endpoint("POST", n + "/participants/detach", detach, "Detach one of this company's people or agents",
                 body=AttachParticipant, response=NetworkOut, errors=(403,)),
        Endpoint("POST", n + "/threads", open_thread, "Open a shared thread with named participants",
                 body=OpenSharedThread, response=NetworkOut, status=201, errors=(403,)),
        Endpoint("POST", n + "/threads/{thread}/participants", add_to_thread, "Add participants to a shared thread "
                 "(the host's operators, or those of the company that opened it)", body=AddParticipants,
                 response=NetworkOut, errors=(403,)),
        Endpoint("POST", n + "/threads/{thread}/close", close_thread, "Close a shared thread (read-only)",
                 response=NetworkOut, errors=(403,)),
        Endpoint("POST", n + "/threads/{thread}/silence", silence,
                 "Host only: let only people write in a shared thread (agents: false lifts it)",
                 body=SilenceAgents, response=NetworkOut, errors=(403,)),
        Endpoint("POST", n + "/freeze", freezing(True),
                 "Freeze a network here: this company's people and agents cannot act in it", response=NetworkOut,
                 errors=(409,)),
        Endpoint("POST", n + "/unfreeze", freezing(False), "Unfreeze a network this company froze",
                 response=NetworkOut, errors=(409,)),
        Endpoint("POST", n + "/close", close, "Close the network (host only; read-only for all)", response=NetworkOut,
                 errors=(403,)),
        Endpoint("POST", n + "/leave", leave, "Leave the network (members)", response=NetworkOut, errors=(403,)),
        Endpoint("POST", n + "/members/{server}/remove", remove, "Remove a company (host only)", response=NetworkOut,
                 errors=(403,)),
        Endpoint("POST", n + "/resume", resume, "Try a halted network again now (after fixing why it halted)",
                 response=NetworkOut, errors=(409,)),
        Endpoint("GET", "/v1/alerts", alerts, "What the operator must look at: key conflicts, halted networks",
                 response=AlertList),
        Endpoint("GET", "/v1/invites", invites, "Invites sent and received, with key fingerprints",
                 response=InviteList),
        Endpoint("POST", "/v1/invites/{invite}/accept", accept, "Accept an invite: pins the host's key",
                 response=InviteOut, errors=(403, 409, 410, 502)),
        Endpoint("POST", "/v1/invites/{invite}/withdraw", withdraw,
                 "Withdraw an invite this node sent that is not answered yet", response=InviteOut, errors=(409,)),
        Endpoint("POST", "/v1/invites/{invite}/decline", decline, "Decline an invite", response=InviteOut,
                 errors=(409,)),
        Endpoint("GET", "/v1/peers", peers, "Peers: keys, queue depth, last success and error, next retry",
                 response=PeerList),
        Endpoint("POST", "/v1/peers/{server}/block", blocking(True), "Block a server: nothing in, nothing out",
                 response=PeerList),
        Endpoint("POST", "/v1/peers/{server}/unblock", blocking(False), "Unblock a server", response=PeerList),
    ]
