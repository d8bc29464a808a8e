"""Admin routes for the web app's sign-in: a one-time link for a person, and the open sessions."""

from __future__ import annotations

from aiohttp import web

from node.http.auth import current_admin
from node.http.io import respond
from node.http.openapi import Endpoint
from node.web.sessions import SignInLink, WebSessionList, WebSessions
from node.workspace.models import Deleted

__all__ = ["web_admin_endpoints"]


def web_admin_endpoints(sessions: WebSessions) -> list[Endpoint]:
    async def make_link(request: web.Request) -> web.Response:
        link = await sessions.make_link(request.match_info["handle"], actor=current_admin(request))
        return respond(link, status=201)

    async def list_sessions(request: web.Request) -> web.Response:
        return respond(await sessions.sessions())

    async def revoke(request: web.Request) -> web.Response:
        session = request.match_info["session"]
        await sessions.revoke(int(session), actor=current_admin(request))
        return respond(Deleted(deleted=session))

    return [
        Endpoint("POST", "/v1/people/{handle}/sign-in-link", make_link,
                 "A one-time link that signs the person in to the web app (15 minutes); send it to them only",
                 response=SignInLink, status=201, errors=(403,)),
        Endpoint("GET", "/v1/web-sessions", list_sessions, "People signed in to the web app, newest first",
                 response=WebSessionList),
        Endpoint("POST", "/v1/web-sessions/{session}/revoke", revoke, "Sign a browser session out now",
                 response=Deleted),
    ]
