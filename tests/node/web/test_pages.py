"""The web app over plain HTTP on two real nodes (the browser tests are test_browser.py): signing
in with a one-time link, the session cookie, pages that escape what other companies write, and
every refusal (a used link, a form without its token or from another site, no session)."""

from __future__ import annotations

import re

import aiohttp

from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, open_rollout

THREAD_PAGE = f"/app/networks/{NETWORK}/threads/{THREAD}"
MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"


def _base(node: ClusterNode) -> str:
    return f"http://127.0.0.1:{node.ports['client']}"


async def _signed_in(node: ClusterNode, handle: str) -> tuple[aiohttp.ClientSession, str]:
    """A browser-like session signed in with a fresh link, and the link."""
    link = (await node.admin("POST", f"/v1/people/{handle}/sign-in-link", {}))["url"]
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.get(link) as page:
        assert page.status == 200 and "Sign in" in await page.text()
        token = re.search(r'name="token" value="([^"]+)"', await page.text()).group(1)
    async with http.post(f"{_base(node)}/app/sign-in", data={"token": token}) as home:
        assert home.status == 200 and str(home.url).endswith("/app/")
    return http, link


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def test_a_person_signs_in_with_a_link_reads_and_posts(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    await acme.client(tokens["ops"], "POST", MESSAGES, {"body": hostile}, expect=201)
    sam, link = await _signed_in(globex, "sam")
    async with sam:
        cookie = next(c for c in sam.cookie_jar if c.key == "agentnet_session")
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/app"
        async with sam.get(f"{_base(globex)}/app/") as home:
            html = await home.text()
            csp = home.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert home.headers["X-Frame-Options"] == "DENY"
            assert "Rollout status" in html and f"Visible to {ACME}, {GLOBEX}" in html

        async def arrived() -> str:
            async with sam.get(f"{_base(globex)}{THREAD_PAGE}") as page:
                text = await page.text()
            return text if "&lt;script&gt;" in text else ""

        html = await eventually(arrived)
        assert "<script>alert" not in html and "<img src=x" not in html  # text, escaped
        assert 'class="badge">agent<' in html and "Customer Ops Agent" in html

        # A form without its token, or from another site, is refused and posts nothing.
        url = f"{_base(globex)}{THREAD_PAGE}"
        async with sam.post(url, data={"body": "no token"}) as refused:
            assert refused.status == 403
        async with sam.post(url, data={"body": "cross-site", "csrf": _csrf(html)},
                            headers={"Sec-Fetch-Site": "cross-site"}) as refused:
            assert refused.status == 403
        async with sam.post(url, data={"body": "Sam here, from the web app.", "csrf": _csrf(html)}) as posted:
            assert posted.status == 200 and "Sam here, from the web app." in await posted.text()

        async def on_acme() -> list[str]:
            page = await acme.client(tokens["alex"], "GET", MESSAGES)
            return [m["sender"] for m in page["items"] if m["body"] == "Sam here, from the web app."]

        assert await eventually(on_acme) == [f"person:sam@{GLOBEX}"]
        bodies = [m["body"] for m in (await acme.client(tokens["alex"], "GET", MESSAGES))["items"]]
        assert "no token" not in bodies and "cross-site" not in bodies

        # Search finds it in Globex's own copy; a word of nothing finds nothing.
        async with sam.get(f"{_base(globex)}/app/search", params={"q": "web app"}) as found:
            text = await found.text()
            assert "Sam here, from the web app." in text and f"/app/networks/{NETWORK}/threads/{THREAD}" in text
        async with sam.get(f"{_base(globex)}/app/search", params={"q": "internal-qa canary"}) as none:
            assert "Nothing found." in await none.text()

        # The link worked once.
        async with aiohttp.ClientSession() as other, other.post(
                f"{_base(globex)}/app/sign-in", data={"token": link.partition("token=")[2]}) as again:
            assert again.status == 400 and "This sign-in link" in await again.text()
        sessions = (await globex.admin("GET", "/v1/web-sessions"))["items"]
        assert [s["person"] for s in sessions] == [f"person:sam@{GLOBEX}"]

        # The operator revokes it: the next page is the signed-out one.
        await globex.admin("POST", f"/v1/web-sessions/{sessions[0]['id']}/revoke", {})
        async with sam.get(f"{_base(globex)}/app/") as gone:
            assert str(gone.url).endswith("/app/signed-out") and "Rollout status" not in await gone.text()


async def test_without_a_session_nothing_is_shown_and_agents_get_no_link(pair):
    acme, globex = pair
    await open_rollout(acme, globex)
    async with aiohttp.ClientSession() as http:
        for path in ("/app/", THREAD_PAGE, f"/app/events?network={NETWORK}&thread={THREAD}"):
            async with http.get(f"{_base(acme)}{path}") as page:
                assert str(page.url).endswith("/app/signed-out"), path
        async with http.post(f"{_base(acme)}/app/sign-in", data={"token": "made-up"}) as refused:
            assert refused.status == 400
        async with http.get(f"{_base(acme)}/app/static/../pages.py") as sneaky:
            assert sneaky.status == 404
    await acme.admin("POST", "/v1/agents/ops/sign-in-link", {}, expect=404)  # no such route: people only
    await acme.admin("POST", "/v1/people/nobody/sign-in-link", {}, expect=404)
    await acme.admin("POST", "/v1/people/alex/disable")
    await acme.admin("POST", "/v1/people/alex/sign-in-link", {}, expect=403)


async def test_a_file_posted_from_the_web_app_reaches_the_partner_s_web_app(pair):
    acme, globex = pair
    await open_rollout(acme, globex)
    sam, _link = await _signed_in(globex, "sam")
    alex, _ = await _signed_in(acme, "alex")
    async with sam, alex:
        async with sam.get(f"{_base(globex)}{THREAD_PAGE}") as page:
            csrf = _csrf(await page.text())
        form = aiohttp.FormData()
        form.add_field("csrf", csrf)
        form.add_field("body", "The runbook, attached.")
        form.add_field("mentions", f"person:alex@{ACME}")
        form.add_field("mentions", f"agent:ops@{ACME}")
        form.add_field("file", b"step 1: validate retries\n", filename="runbook.txt", content_type="text/plain")
        async with sam.post(f"{_base(globex)}{THREAD_PAGE}", data=form) as posted:
            assert posted.status == 200 and "runbook.txt" in await posted.text()

        async def link_on_acme() -> str:
            async with alex.get(f"{_base(acme)}{THREAD_PAGE}") as page:
                found = re.search(r'href="([^"]+/files/0)" download>runbook.txt<', await page.text())
            return found.group(1) if found else ""

        path = await eventually(link_on_acme)
        async with alex.get(f"{_base(acme)}{THREAD_PAGE}") as page:
            html = await page.text()
        assert "Mentions Alex Rivera, Customer Ops Agent" in html and "mentions-me" in html
        async with alex.get(f"{_base(acme)}{path}") as file:  # fetched from Globex over federation
            assert file.status == 200 and await file.read() == b"step 1: validate retries\n"
            assert file.headers["Content-Security-Policy"].startswith("sandbox")
            assert "attachment" in file.headers["Content-Disposition"]


def test_delivery_is_said_in_words_with_since_when():
    from node.networks.models import SharedMessageOut
    from node.web.pages import _shown

    sent = 1_764_758_520_000  # 2025-12-03 10:42 UTC
    message = SharedMessageOut(id="$x", network="n", thread="t", seq=None, status="sequenced", sender="person:sam@g",
                               body="hi", created_at=sent,
                               delivery={"acme.example": "delivered", "initech.example": "queued"})
    assert _shown(message, {})["delivery"] == "delivered to acme.example, waiting for initech.example since 10:42 UTC"
    pending = message.model_copy(update={"delivery": None, "status": "pending"})
    assert _shown(pending, {})["delivery"] == "waiting for the network's host since 10:42 UTC"


async def test_a_closed_thread_is_read_only_and_says_so(pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await acme.client(tokens["ops"], "POST", MESSAGES, {"body": "Last word before closing."}, expect=201)
    await acme.admin("POST", f"/v1/networks/{NETWORK}/threads/{THREAD}/close", {})
    sam, _link = await _signed_in(globex, "sam")
    async with sam:
        async def closed() -> str:
            async with sam.get(f"{_base(globex)}{THREAD_PAGE}") as page:
                text = await page.text()
            return text if "This thread is closed" in text else ""

        html = await eventually(closed)
        assert "Last word before closing." in html and 'id="post-form"' not in html and "Send reply" not in html
        async with sam.post(f"{_base(globex)}{THREAD_PAGE}", data={"body": "still?", "csrf": _csrf(html)}) as refused:
            assert refused.status in (403, 409)  # the thread's rule refuses it; nothing is posted
    bodies = [m["body"] for m in (await acme.client(tokens["alex"], "GET", MESSAGES))["items"]]
    assert "still?" not in bodies


async def test_the_identity_provider_seam_opens_the_same_session_for_enabled_people_only(pair):
    acme, _globex = pair
    await acme.create("person", "alex", "Alex Rivera")
    await acme.create("agent", "ops", "Ops")
    sessions = acme.parts.web_sessions
    opened = await sessions.open_for("alex", user_agent="test", via="oidc")
    assert opened is not None and opened[1].handle == "alex"
    assert (await sessions.session(opened[0].token)) is not None
    assert await sessions.open_for("ops", user_agent="test", via="oidc") is None  # agents do not sign in
    assert await sessions.open_for("nobody", user_agent="test", via="oidc") is None
    await acme.admin("POST", "/v1/people/alex/disable")
    assert await sessions.open_for("alex", user_agent="test", via="oidc") is None
    audit = await acme.admin("GET", "/v1/audit?action=person.sign_in")
    assert [e["detail"]["via"] for e in audit["items"]] == ["oidc"]
