"""The web app for people, on the client listener under /app: server-rendered pages (Jinja2,
escaped everywhere), one small script for live updates, no build step (docs/web.md says why).

Every page is answered with a strict Content-Security-Policy (no inline script, nothing from
elsewhere, no framing), so text from another company is only ever text: the templates escape
it, and the script inserts live messages with `textContent`. Every POST carries the session's
form token and must come from this origin (Origin or Sec-Fetch-Site), or it is refused 403.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from federation.event_content import MAX_FILE_BYTES
from node.basics.errors import NodeError
from node.basics.rate_limit import PostRateLimiter
from node.feed.filters import FeedFilter
from node.feed.service import FeedService
from node.networks.models import SharedMessageOut
from node.networks.thread_api import FILE_HEADERS
from node.networks.threads import SharedThreadService
from node.web.sessions import WebSessions, csrf_matches
from node.workspace.client_service import ClientService
from node.workspace.directory import Directory
from storage.errors import NotFound
from storage.private.principals import Principal
from storage.private.web import WebSession

__all__ = ["COOKIE", "SECURITY_HEADERS", "static_file", "template_env", "web_routes"]

COOKIE = "agentnet_session"
_HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a sign-in link's token never leaves in a Referer
    "Cache-Control": "no-store",
}
_FORM = web.RequestKey("agentnet.web.form", dict)
_UPLOAD = web.RequestKey("agentnet.web.upload", tuple)  # (name, content type, bytes) of a form's file
_MAX_FIELD_CHARS = 64 * 1024
_MAX_PARTS = 8
_STATIC = {"app.css": "text/css", "thread.js": "text/javascript", "notify.js": "text/javascript",
           "favicon.svg": "image/svg+xml"}
_PAGE = 50  # messages a thread page shows; older ones are a page back
_REACTIONS = ("seen", "working", "done")
_UNREAD_PAGE = 200
_MAX_FORM_BYTES = 64 * 1024


def template_env() -> Environment:
    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(default=True))
    env.filters["when"] = lambda ms: _utc(ms, "%Y-%m-%d %H:%M UTC")
    env.filters["iso"] = lambda ms: _utc(ms, "%Y-%m-%dT%H:%M:%SZ")
    return env


@web.middleware
async def security_headers(request: web.Request, handler) -> web.StreamResponse:
    response = await handler(request)
    if request.path.startswith(("/app/", "/console/")) or request.path in ("/app", "/console"):
        for name, value in SECURITY_HEADERS.items():  # a file keeps its stricter sandbox policy
            response.headers.setdefault(name, value)
    return response


def web_routes(app: web.Application, *, sessions: WebSessions, shared: SharedThreadService, client: ClientService,
               feed: FeedService, directory: Directory, limiter: PostRateLimiter) -> None:
    env = template_env()
    app.middlewares.append(security_headers)

    def page(name: str, status: int = 200, **values: Any) -> web.Response:
        return web.Response(text=env.get_template(name).render(static="/app/static", **values), status=status,
                            content_type="text/html")

    def problem(status: int, title: str, message: str) -> web.Response:
        return page("problem.html", status, title=title, message=message, home="/app/")

    async def signed_in(request: web.Request) -> tuple[WebSession, Principal] | None:
        return await sessions.session(request.cookies.get(COOKIE))

    def same_origin(request: web.Request) -> bool:
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None:
            return site in ("same-origin", "none")
        origin = request.headers.get("Origin")
        return origin is None or origin == f"{request.scheme}://{request.host}"

    async def form(request: web.Request) -> dict[str, str]:
        """A form's fields; a file in a multipart form is read (at most the protocol's largest
        file) into `request[_UPLOAD]`."""
        if request.content_type == "multipart/form-data":
            return await _multipart(request)
        if request.content_length is not None and request.content_length > _MAX_FORM_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=_MAX_FORM_BYTES, actual_size=request.content_length)
        return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}

    def person_only(handler: Callable[[web.Request, WebSession, Principal], Awaitable[web.StreamResponse]]):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            found = await signed_in(request)
            if found is None:
                raise web.HTTPSeeOther("/app/signed-out")
            if request.method == "POST":
                fields = await form(request)
                if not same_origin(request) or not csrf_matches(found[0].csrf, fields.get("csrf")):
                    return problem(403, "Refused", "This form is out of date or came from another site. "
                                                   "Go back, reload the page and try again.")
                request[_FORM] = fields
            try:
                return await handler(request, *found)
            except (NotFound, NodeError) as e:
                status = getattr(e, "status", 404)
                return problem(status if 400 <= status < 600 else 400, "Not possible",
                               getattr(e, "message", None) or "That is not there, or not yours to see.")
        return wrapped

    # --- signing in and out ---------------------------------------------------------------

    async def sign_in_page(request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        if not token or len(token) > 100:
            return problem(400, "Sign in", "This sign-in link is incomplete. Ask your operator for a new one.")
        if not await sessions.link_usable(token):
            return problem(400, "Sign in", "This sign-in link was used already or has expired. "
                                           "Ask your operator for a new one.")
        return page("sign_in.html", token=token, action="/app/sign-in")

    async def sign_in(request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            return problem(403, "Refused", "Sign in from the link your operator sent you.")
        token = (await form(request)).get("token", "")
        opened = await sessions.sign_in(token, user_agent=request.headers.get("User-Agent", "")) if token else None
        if opened is None:
            return problem(400, "Sign in", "This sign-in link was used already or has expired. "
                                           "Ask your operator for a new one.")
        response = web.HTTPSeeOther("/app/")
        response.set_cookie(COOKIE, opened[0].token, httponly=True, samesite="Strict", secure=request.secure,
                            path="/app", max_age=7 * 24 * 3600)
        raise response

    async def signed_out(request: web.Request) -> web.Response:
        return page("signed_out.html")

    async def sign_out(request: web.Request, session: WebSession, person: Principal) -> web.StreamResponse:
        await sessions.sign_out(session)
        response = web.HTTPSeeOther("/app/signed-out")
        response.del_cookie(COOKIE, path="/app")
        raise response

    # --- reading and writing --------------------------------------------------------------

    async def visible_to(person: Principal, network: str, participants: list[str]) -> list[str]:
        """The companies that can see a thread: its participants' and the network's host (which
        holds every event it orders)."""
        host = (await shared.network_participants(person, network)).host
        return sorted({p.rpartition("@")[2] for p in participants} | {host})

    async def unread(person: Principal, network: str, thread: str, seen: int) -> dict[str, Any]:
        """Messages of others after what the person was last shown, and how many mention them
        (read in one bounded page: past it, "200+")."""
        me = directory.participant_id(person)
        found = [m for m in (await shared.read(person, network, thread, after=seen, limit=_UNREAD_PAGE)).items
                 if m.sender != me and not m.deleted]
        return {"count": len(found), "more": len(found) >= _UNREAD_PAGE,
                "mentions": sum(me in m.mentions for m in found)}

    async def home(request: web.Request, session: WebSession, person: Principal) -> web.Response:
        threads = (await shared.threads(person)).items
        seen = await sessions.seen(person)
        rows = [(t, await visible_to(person, t.network, t.participants),
                 await unread(person, t.network, t.name, seen.get((t.network, t.name), 0))) for t in threads]
        private = (await client.threads(person)).items
        return page("home.html", me=directory.describe(person), shared=rows, private=private, csrf=session.csrf)

    async def thread_page(request: web.Request, session: WebSession, person: Principal) -> web.Response:
        network, name = request.match_info["network"], request.match_info["thread"]
        thread = next((t for t in (await shared.threads(person)).items if t.network == network and t.name == name),
                      None)
        if thread is None:
            return problem(404, "Not found", "There is no such shared thread that you take part in.")
        people = {p.id: p for p in (await shared.network_participants(person, network)).items}
        messages = (await shared.read_back(person, network, name, before=None, limit=_PAGE)).items
        by_id = {m.id: m for m in messages}
        me = directory.participant_id(person)
        newest = max((m.seq for m in messages if m.seq is not None), default=None)
        if newest is not None:
            await sessions.mark_seen(person, network, name, newest)
        others = [people[p] for p in thread.participants if p in people and p != me]
        return page("thread.html", me=directory.describe(person), thread=thread, csrf=session.csrf, others=others,
                    visible=await visible_to(person, network, thread.participants),
                    messages=[_shown(m, people, me=me, earlier=by_id) for m in messages],
                    cursor=(await feed.read(person, None, limit=1)).next_cursor,
                    base=f"/app/networks/{network}/threads/{name}")

    async def download(request: web.Request, session: WebSession, person: Principal) -> web.Response:
        m = request.match_info
        attachment, data = await shared.files.download(directory.participant_id(person), m["network"], m["thread"],
                                                       m["event"], int(m["position"]))
        return web.Response(body=data, content_type=attachment.content_type, headers={
            **FILE_HEADERS, "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.name)}"})

    async def search(request: web.Request, session: WebSession, person: Principal) -> web.Response:
        query = request.query.get("q", "").strip()[:200]
        found = (await shared.search(person, query, network=None, limit=50)).items if query else []
        return page("search.html", me=directory.describe(person), csrf=session.csrf, query=query,
                    found=[(m, _shown(m, {}, me=directory.participant_id(person))) for m in found])

    async def participants(request: web.Request, session: WebSession, person: Principal) -> web.Response:
        found = await shared.network_participants(person, request.match_info["network"])
        companies = sorted(found.companies.items())
        members = {server: [p for p in found.items if p.company == server] for server, _ in companies}
        return page("network.html", me=directory.describe(person), csrf=session.csrf, network=found,
                    companies=companies, members=members)

    async def change(request: web.Request, session: WebSession, person: Principal) -> web.StreamResponse:
        network, name, event = (request.match_info[k] for k in ("network", "thread", "event"))
        fields, action = request[_FORM], request.match_info["action"]
        if action == "edit" and fields.get("body", "").strip():
            await shared.change(person, network, name, event, body=fields["body"].strip())
        elif action == "delete":
            await shared.change(person, network, name, event, body=None)
        elif action == "react" and fields.get("reaction") in _REACTIONS:
            await shared.react(person, network, name, event, fields["reaction"], removed=fields.get("removed") == "1")
        raise web.HTTPSeeOther(f"/app/networks/{network}/threads/{name}")

    async def post(request: web.Request, session: WebSession, person: Principal) -> web.StreamResponse:
        network, name = request.match_info["network"], request.match_info["thread"]
        body, reply_to = request[_FORM].get("body", "").strip(), request[_FORM].get("reply_to") or None
        upload = request.get(_UPLOAD)
        if body:
            limiter.check(-session.id)  # a session's own post budget (token ids are positive)
            attachments = None
            if upload is not None:
                made = await shared.files.upload(directory.participant_id(person), name=upload[0],
                                                 content_type=upload[1], data=upload[2])
                attachments = [made.id]
            mentions = [m for m in request[_FORM].get("mentions", "").split("\n") if m] or None
            await shared.post(person, network, name, body, reply_to=reply_to, attachments=attachments,
                              mentions=mentions)
        raise web.HTTPSeeOther(f"/app/networks/{network}/threads/{name}")

    async def events(request: web.Request, session: WebSession, person: Principal) -> web.StreamResponse:
        """New messages of one thread as Server-Sent Events, for the thread page's script. Ends
        when the session does (checked every 5 s), the node stops, or the page goes away."""
        network, name = request.query.get("network") or None, request.query.get("thread") or None
        after = request.query.get("after") or None
        mentions = request.query.get("mentions") == "me"  # every thread's messages that mention the person
        if not mentions and (network is None or name is None):
            return problem(400, "Not possible", "name a network and a thread, or mentions=me")
        only = FeedFilter.of(network=network, thread=name, types=["message.posted"], mentions=mentions)
        people_of: dict[str, dict] = {}  # network -> its participants by id, read when first needed
        me = directory.participant_id(person)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **SECURITY_HEADERS})
        await response.prepare(request)
        checked = time.monotonic()
        try:
            while not feed.hub.closed and request.transport is not None and not request.transport.is_closing():
                found = await feed.wait(person, after, limit=50, timeout_s=15, only=only)
                after = found.next_cursor
                for event in found.items:
                    where = event.network or ""
                    if where not in people_of:
                        try:
                            people_of[where] = {
                                p.id: p for p in (await shared.network_participants(person, where)).items}
                        except (NotFound, NodeError):
                            people_of[where] = {}  # no longer attached there: ids instead of names
                    shown = _shown_event(event.content, event.sender, event.id, event.created_at, people_of[where])
                    shown |= {"network": event.network, "thread": event.thread, "mine": event.sender == me,
                              "reply_to": event.content.get("reply_to"),
                              "files": [{"position": i, "name": str(a.get("name", ""))}
                                        for i, a in enumerate(event.content.get("attachments") or [])]}
                    await response.write(f"id: {event.cursor}\ndata: {json.dumps(shown)}\n\n".encode())
                if not found.items:
                    await response.write(b": keepalive\n\n")
                if time.monotonic() - checked > 5:
                    checked = time.monotonic()
                    if await signed_in(request) is None:
                        break
                await asyncio.sleep(0)
        except ConnectionResetError:
            pass  # the page was closed or left: nothing to report
        return response


    async def root(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/app/")

    app.router.add_get("/app", root)
    app.router.add_get("/app/", person_only(home))
    app.router.add_get("/app/sign-in", sign_in_page)
    app.router.add_post("/app/sign-in", sign_in)
    app.router.add_get("/app/signed-out", signed_out)
    app.router.add_post("/app/sign-out", person_only(sign_out))
    app.router.add_get("/app/events", person_only(events))
    app.router.add_get("/app/networks/{network}/threads/{thread}", person_only(thread_page))
    app.router.add_post("/app/networks/{network}/threads/{thread}", person_only(post))
    app.router.add_get("/app/static/{name}", static_file)
    app.router.add_get("/app/networks/{network}", person_only(participants))
    app.router.add_get("/app/search", person_only(search))
    app.router.add_get("/app/networks/{network}/threads/{thread}/messages/{event}/files/{position:[0-7]}",
                       person_only(download))
    app.router.add_post("/app/networks/{network}/threads/{thread}/messages/{event}/{action:edit|delete|react}",
                        person_only(change))


async def _multipart(request: web.Request) -> dict[str, str]:
    fields: dict[str, str] = {}
    reader = await request.multipart()
    parts = 0
    while (part := await reader.next()) is not None:
        parts += 1
        if parts > _MAX_PARTS:
            raise web.HTTPBadRequest(text=f"a form of at most {_MAX_PARTS} fields")
        if not isinstance(part, BodyPartReader) or part.name is None:
            raise web.HTTPBadRequest(text="a form of fields and at most one file")
        limit = MAX_FILE_BYTES if part.filename else _MAX_FIELD_CHARS
        data = bytearray()
        while chunk := await part.read_chunk(64 * 1024):
            data += chunk
            if len(data) > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data))
        if part.filename:
            if data:  # a file input left empty sends a part with no name and no bytes
                if _UPLOAD in request:
                    raise web.HTTPBadRequest(text="one file per message from the web app")
                request[_UPLOAD] = (part.filename[:200], part.headers.get("Content-Type", "application/octet-stream"),
                                    bytes(data))
        elif part.name == "mentions":  # a multiple choice: one part per participant chosen
            fields["mentions"] = "\n".join(filter(None, (fields.get("mentions", ""), data.decode("utf-8", "replace"))))
        else:
            fields[part.name] = data.decode("utf-8", "replace")
    return fields


async def static_file(request: web.Request) -> web.StreamResponse:
    """The stylesheet, the script and the icon, for the people's pages and the console."""
    name = request.match_info["name"]
    if name not in _STATIC:
        raise web.HTTPNotFound()
    return web.FileResponse(_HERE / "static" / name, headers={"Content-Type": _STATIC[name], **SECURITY_HEADERS})


def _company(participant: str) -> str:
    return participant.rpartition("@")[2]


def _shown(message: SharedMessageOut, people: dict, *, me: str = "",
           earlier: dict[str, SharedMessageOut] | None = None) -> dict[str, Any]:
    shown = _shown_event({"body": message.body}, message.sender, message.id, message.created_at, people)
    shown["mine"] = message.sender == me
    shown["attachments"] = [a.model_dump() for a in message.attachments]
    shown["edited"] = message.edited
    shown["mentions"] = [people[p].display_name if p in people else p for p in message.mentions]
    shown["mentions_me"] = me in message.mentions
    shown["reactions"] = {r: [people[p].display_name if p in people else p for p in who]
                          for r, who in sorted(message.reactions.items()) if who}
    shown["my_reactions"] = {r for r, who in message.reactions.items() if me in who}
    target = (earlier or {}).get(message.reply_to) if message.reply_to else None
    shown["reply_to"] = None if message.reply_to is None else {
        "id": message.reply_to,
        "sender": (people[target.sender].display_name if target and target.sender in people else
                   target.sender if target else "an earlier message"),
        "excerpt": "" if target is None else target.body[:80]}
    since = _utc(message.created_at, "%H:%M UTC")  # a message waits since it was sent
    if message.delivery:
        shown["delivery"] = ", ".join(
            f"delivered to {server}" if state == "delivered" else f"waiting for {server} since {since}"
            for server, state in sorted(message.delivery.items()))
    elif message.status == "pending":
        shown["delivery"] = f"waiting for the network's host since {since}"
    shown["deleted"] = message.deleted
    return shown


def _shown_event(content: dict, sender: str, event_id: str, created_at: int, people: dict) -> dict[str, Any]:
    who = people.get(sender)
    return {"id": event_id, "body": str(content.get("body", "")), "sender": who.display_name if who else sender,
            "company": _company(sender), "badge": sender.partition(":")[0], "created_at": created_at,
            "when": _utc(created_at, "%Y-%m-%d %H:%M UTC")}


def _utc(ms: int, layout: str) -> str:
    return time.strftime(layout, time.gmtime(ms / 1000))
