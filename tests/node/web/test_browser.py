"""The web app in a real browser (Debian's Chromium through Playwright), between two real nodes:
people sign in with their one-time links, read and write the shared thread, see the partner's
messages arrive live, and sign out. Another company's text stays text: hostile markup shows as
written and runs nothing, whether the page was rendered with it or received it live. Every page
answers with its CSP, shows no console error and no CSP violation, and passes axe-core's
serious and critical accessibility checks. Screenshots for the docs are saved on the way."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from playwright.async_api import Page, Response, expect

from tests.browser import PageProblems, chromium, watch  # noqa: F401
from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import ACME, CANARIES, GLOBEX, NETWORK, THREAD, open_rollout
from tests.node_tools import exclusive, require_node

ROOT = Path(__file__).resolve().parents[3]
# The README's screenshots: written there with AGENTNET_SCREENSHOTS=1 (docs/web.md), else to the
# test's own directory, so a test run leaves the checkout as it was.
README_SCREENSHOTS = ROOT / "docs" / "screenshots"
AXE_DIR = Path(__file__).parent / "axe"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
THREAD_PATH = f"/app/networks/{NETWORK}/threads/{THREAD}"
TITLE = "Rollout status"  # the thread's title, as open_rollout creates it
LIVE_S = 15  # a message posted anywhere shows on an open thread page within this, without reload
MESSAGES_API = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"
HOSTILE = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=2">',
    '<a href="javascript:window.__pwned=3">click</a>',
    '<svg onload="window.__pwned=4"></svg>',
    "[x](javascript:window.__pwned=5)",
    '"><iframe src=javascript:window.__pwned=6>',
]


def _base(node: ClusterNode) -> str:
    return f"http://127.0.0.1:{node.ports['client']}"


def _assert_secured(response: Response) -> None:
    """Every /app page: scripts only from the app itself, never inside a frame."""
    policy = response.headers.get("content-security-policy", "")
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in policy.split(";") if d.strip()}
    assert directives.get("script-src") == "script-src 'self'", (response.url, policy)
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", (response.url, policy)


async def _open(page: Page, url: str, status: int = 200) -> Response:
    response = await page.goto(url)
    assert response is not None, url
    assert response.status == status, f"GET {url} -> {response.status}:\n{(await page.content())[:2000]}"
    _assert_secured(response)
    return response


async def _submit(page: Page, button, status: int = 200) -> Response:
    """Press a form's button and wait for the page it leads to (after any redirect)."""
    async with page.expect_navigation() as navigation:
        await button.click()
    response = await navigation.value
    assert response is not None
    assert response.status == status, f"{response.url} -> {response.status}:\n{(await page.content())[:2000]}"
    _assert_secured(response)
    return response


async def _context(browser, **options):
    context = await browser.new_context(**{"viewport": DESKTOP, **options})
    context.set_default_timeout(15_000)
    context.set_default_navigation_timeout(15_000)
    return context


async def _sign_in(browser, node: ClusterNode, handle: str, problems: PageProblems | None = None, *,
                   screenshot: Path | None = None, **options):
    """A fresh browser context signed in as `handle` with the link the operator made for them;
    answers (context, page), the page on /app/."""
    link = await node.admin("POST", f"/v1/people/{handle}/sign-in-link", {})
    assert link["url"].startswith(f"{_base(node)}/app/sign-in?token="), link
    assert link["expires_at"] > time.time() * 1000, link
    # Both nodes serve on 127.0.0.1 and cookies ignore the port: one context per person.
    context = await _context(browser, **options)
    page = await context.new_page()
    if problems is not None:
        await watch(page, problems)
    await _open(page, link["url"])
    if screenshot is not None:
        await page.screenshot(path=str(screenshot), full_page=True)
    await _submit(page, page.get_by_role("button", name="Sign in", exact=True))
    assert page.url == f"{_base(node)}/app/", page.url
    (cookie,) = [c for c in await context.cookies() if c["name"] == "agentnet_session"]
    assert cookie["httpOnly"], cookie
    return context, page


async def _refused(page: Page, url: str) -> None:
    """A used or expired link is refused with 400 and a page saying so: when opened, or at the
    latest when its button is pressed (a page that only shows the button need not spend it)."""
    response = await page.goto(url)
    assert response is not None
    button = page.get_by_role("button", name="Sign in", exact=True)
    if response.status == 200 and await button.count():
        response = await _submit(page, button, status=400)
    assert response.status == 400, f"{response.url} -> {response.status}:\n{(await page.content())[:2000]}"
    _assert_secured(response)
    await expect(page.locator("body")).to_contain_text("This sign-in link")
    assert "/app/sign-in" in page.url, page.url  # not signed in after all


def _message(page: Page, body: str):
    """The thread page's message whose body has this text."""
    return page.locator("#messages li.message").filter(has=page.locator(".body", has_text=body))


async def _message_id(node: ClusterNode, token: str, body: str) -> str:
    async def posted():
        found = [m["id"] for m in (await node.client(token, "GET", f"{MESSAGES_API}?limit=200"))["items"]
                 if m["body"] == body]
        return found[0] if found else None

    return await eventually(posted)


async def test_a_person_signs_in_posts_and_the_partner_sees_it_live(pair, chromium, tmp_path):  # noqa: F811
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    screenshots = README_SCREENSHOTS if os.environ.get("AGENTNET_SCREENSHOTS") == "1" else tmp_path
    screenshots.mkdir(parents=True, exist_ok=True)
    problems = PageProblems()
    alex_context, alex = await _sign_in(chromium, acme, "alex", problems, screenshot=screenshots / "sign-in.png")
    sam_context, sam = await _sign_in(chromium, globex, "sam", problems)

    # Alex's home: the shared thread, which companies see it, and the private threads apart.
    await expect(alex.locator("h1")).to_have_text("Alex Rivera")
    shared = alex.locator("#shared-threads li").filter(has=alex.locator(f'a[href="{THREAD_PATH}"]'))
    await expect(shared).to_have_count(1)
    await expect(shared.locator("a")).to_have_text(TITLE)
    await expect(shared.locator(".visible-to")).to_contain_text(ACME)
    await expect(shared.locator(".visible-to")).to_contain_text(GLOBEX)
    await expect(alex.locator("#private-threads")).to_contain_text("Private")  # billing-escalations' title
    home = await alex.content()
    assert not [c for c in CANARIES[GLOBEX] if c in home]
    await alex.screenshot(path=str(screenshots / "home.png"), full_page=True)

    # Both open the thread from their own node; the link on the home page leads there.
    await _submit(alex, shared.locator("a"))
    assert alex.url == f"{_base(acme)}{THREAD_PATH}"
    await _open(sam, f"{_base(globex)}{THREAD_PATH}")
    for page in (alex, sam):
        await expect(page.locator("h1")).to_have_text(TITLE)
        await expect(page.locator(".visible-to").first).to_contain_text(ACME)
        await expect(page.locator(".visible-to").first).to_contain_text(GLOBEX)
    await alex.evaluate("window.__stillTheSamePage = true")

    # Sam writes; Alex's open page shows it live.
    body = "Validation passed on our side — ready for Thursday."
    await sam.get_by_label("Message").fill(body)
    await _submit(sam, sam.get_by_role("button", name="Send", exact=True))
    own = _message(sam, body)
    await expect(own).to_have_count(1, timeout=LIVE_S * 1000)
    await expect(own.locator(".delivery")).to_have_text(re.compile(r"delivered to|waiting for"))
    seen = _message(alex, body)
    await expect(seen).to_have_count(1, timeout=LIVE_S * 1000)
    assert await alex.evaluate("window.__stillTheSamePage") is True  # no reload brought it
    await expect(seen.locator(".body")).to_have_text(body)
    await expect(seen.locator(".sender")).to_have_text("Sam Chen")
    await expect(seen.locator(".company")).to_have_text(GLOBEX)
    await expect(seen.locator(".badge")).to_have_text("person")
    await expect(seen.locator("time")).to_have_count(1)
    assert await seen.get_attribute("data-id") == await _message_id(acme, tokens["alex"], body)

    # An agent's message arrives live the same way, marked as an agent's.
    agent_body = "Webhook retries validated; no open issue left."
    await acme.client(tokens["ops"], "POST", MESSAGES_API, {"body": agent_body}, expect=201)
    for page, company in ((alex, ACME), (sam, ACME)):
        from_agent = _message(page, agent_body)
        await expect(from_agent).to_have_count(1, timeout=LIVE_S * 1000)
        await expect(from_agent.locator(".company")).to_have_text(company)
        await expect(from_agent.locator(".badge")).to_have_text("agent")
    assert not [c for c in CANARIES[GLOBEX] if c in await alex.content()]
    await alex.screenshot(path=str(screenshots / "thread.png"), full_page=True)

    # At phone size (as a phone lays it out): readable without scrolling sideways.
    phone_context = await _context(chromium, viewport=PHONE, is_mobile=True, has_touch=True)
    phone = await phone_context.new_page()
    await phone_context.add_cookies(await alex_context.cookies())
    await watch(phone, problems)
    await _open(phone, f"{_base(acme)}{THREAD_PATH}")
    await expect(_message(phone, body)).to_have_count(1)
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the thread page is {width} px wide on a {PHONE['width']} px phone"
    await phone.screenshot(path=str(screenshots / "thread-phone.png"), full_page=True)

    assert not problems, str(problems)
    for context in (phone_context, sam_context, alex_context):
        await context.close()


async def _shows_as_text(page: Page) -> None:
    """Each hostile body is on the page as its exact text, and none of it became markup or ran."""
    bodies = page.locator("#messages li.message .body")
    await expect(bodies).to_have_count(len(HOSTILE), timeout=LIVE_S * 1000)
    assert [t.strip() for t in await bodies.all_text_contents()] == HOSTILE
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    assert await page.locator("#messages script, #messages img, #messages iframe, #messages svg").count() == 0
    handlers = await page.evaluate("""() => [...document.querySelectorAll('#messages *')].flatMap(
        (e) => [...e.attributes].filter((a) => a.name.toLowerCase().startsWith('on')).map((a) => a.name))""")
    assert handlers == []
    assert await page.evaluate("document.querySelectorAll('a[href^=\"javascript:\" i]').length") == 0
    url = page.url
    for written in (HOSTILE[2], HOSTILE[4]):  # where a link would be, a click does nothing
        await _message(page, written).locator(".body").click()
        await page.wait_for_timeout(300)
        assert page.url == url
        assert await page.evaluate("typeof window.__pwned") == "undefined"


async def test_hostile_messages_render_as_text_and_run_nothing(pair, chromium):  # noqa: F811
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    problems = PageProblems()
    context, before = await _sign_in(chromium, globex, "sam", problems)
    await _open(before, f"{_base(globex)}{THREAD_PATH}")
    await expect(before.locator("#messages li.message")).to_have_count(0)
    for body in HOSTILE:  # from Acme's agent, through the API, federated to Globex
        await acme.client(tokens["ops"], "POST", MESSAGES_API, {"body": body}, expect=201)
    await _shows_as_text(before)  # inserted live by the page's script
    after = await context.new_page()
    await watch(after, problems)
    await _open(after, f"{_base(globex)}{THREAD_PATH}")
    await _shows_as_text(after)  # rendered by the server
    assert not problems, str(problems)
    await context.close()


async def test_a_used_link_is_refused_and_signing_out_ends_the_session(pair, chromium):  # noqa: F811
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    link = await acme.admin("POST", "/v1/people/alex/sign-in-link", {})
    context = await _context(chromium)
    page = await context.new_page()
    await _open(page, link["url"])
    await _submit(page, page.get_by_role("button", name="Sign in", exact=True))
    await expect(page.locator("#shared-threads li")).to_have_count(1)

    # The same link again, in another browser: refused when opened, or at the latest when its
    # button is pressed (a page that only shows the button may not spend the link), with 400.
    again = await (await _context(chromium)).new_page()
    await _refused(again, link["url"])
    assert not [c for c in await again.context.cookies() if c["name"] == "agentnet_session"]
    await again.context.close()

    # Forms carry their CSRF token; the same form without it is refused and posts nothing.
    await _open(page, f"{_base(acme)}{THREAD_PATH}")
    token_field = page.locator("#post-form input[name=csrf]")
    assert await token_field.get_attribute("type") == "hidden" and await token_field.get_attribute("value")
    assert await page.locator("form:has(button:text-is('Sign out')) input[type=hidden][name=csrf]").count() == 1
    await token_field.evaluate("(field) => field.remove()")
    await page.get_by_label("Message").fill("Posted without the form's token.")
    await _submit(page, page.get_by_role("button", name="Send", exact=True), status=403)
    await asyncio.sleep(0.5)
    messages = (await acme.client(tokens["alex"], "GET", f"{MESSAGES_API}?limit=200"))["items"]
    assert "Posted without the form's token." not in [m["body"] for m in messages]

    # The session's cookie works in another browser until its owner signs out (the control),
    # then neither there nor here.
    (cookie,) = [c for c in await context.cookies() if c["name"] == "agentnet_session"]
    elsewhere = await (await _context(chromium)).new_page()
    await elsewhere.context.add_cookies([cookie])
    await _open(elsewhere, f"{_base(acme)}/app/")
    await expect(elsewhere.locator("#shared-threads li")).to_have_count(1)
    await elsewhere.context.close()

    await _open(page, f"{_base(acme)}/app/")
    await _submit(page, page.get_by_role("button", name="Sign out", exact=True))
    response = await _open(page, f"{_base(acme)}/app/")
    assert page.url != f"{_base(acme)}/app/" and response.request.redirected_from is not None, page.url
    await expect(page.locator("#shared-threads")).to_have_count(0)
    await expect(page.locator("body")).not_to_contain_text(TITLE)

    stolen = await (await _context(chromium)).new_page()
    await stolen.context.add_cookies([cookie])
    await stolen.goto(f"{_base(acme)}/app/")
    await expect(stolen.locator("#shared-threads")).to_have_count(0)
    await expect(stolen.locator("body")).not_to_contain_text(TITLE)
    await stolen.context.close()
    await context.close()


@pytest.fixture(scope="module")
def axe_script() -> Path:
    """axe-core from the committed lock file (`npm ci`, once); a machine without Node skips,
    unless CI says it must not."""
    require_node()
    with exclusive(AXE_DIR):
        if not (AXE_DIR / "node_modules" / "axe-core" / "axe.min.js").is_file():
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=AXE_DIR, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-2000:]
    return AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"


async def _serious_violations(page: Page) -> str:
    """axe-core's serious and critical findings on the page as it is now, one per line."""
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    found = []
    for violation in result["violations"]:
        if violation["impact"] in ("serious", "critical"):
            found.append(f"{page.url}: {violation['id']} ({violation['impact']}): {violation['help']} "
                         f"{violation['helpUrl']}")
            found += [f"    {n['target']}: {n.get('failureSummary', '')}" for n in violation["nodes"]]
    return "\n".join(found)


async def test_every_page_passes_an_accessibility_check(pair, chromium, axe_script):  # noqa: F811
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    await acme.client(tokens["ops"], "POST", MESSAGES_API, {"body": "Checklist done; webhooks next."}, expect=201)
    await globex.client(tokens["sam"], "POST", MESSAGES_API, {"body": "We validate tomorrow morning."}, expect=201)
    # axe-core goes in as an init script, which the browser injects itself: the pages' CSP
    # (script-src 'self', rightly) forbids the inline <script> that add_script_tag would make,
    # and bypass_csp would check pages laid out without the policy a person's browser applies.
    context = await _context(chromium)
    await context.add_init_script(path=str(axe_script))
    page = await context.new_page()
    found: list[str] = []

    link = await acme.admin("POST", "/v1/people/alex/sign-in-link", {})
    await _open(page, link["url"])
    found.append(await _serious_violations(page))  # the sign-in page
    await _submit(page, page.get_by_role("button", name="Sign in", exact=True))
    found.append(await _serious_violations(page))  # home
    await _open(page, f"{_base(acme)}{THREAD_PATH}")
    await expect(page.locator("#messages li.message")).to_have_count(2, timeout=LIVE_S * 1000)
    found.append(await _serious_violations(page))  # the thread, with an agent's and a person's message
    await page.get_by_role("link", name=f"(who is in {NETWORK})").click()
    found.append(await _serious_violations(page))  # who is in the network
    await page.get_by_label("Search your shared threads").fill("webhooks")
    await page.get_by_label("Search your shared threads").press("Enter")
    await expect(page.locator("#results")).to_contain_text("Checklist done; webhooks next.")
    found.append(await _serious_violations(page))  # search (by keyboard: Enter submits)
    refused = await (await _context(chromium)).new_page()
    await refused.context.add_init_script(path=str(axe_script))
    await _refused(refused, link["url"])  # spent a moment ago
    found.append(await _serious_violations(refused))  # a refused link
    await _submit(page, page.get_by_role("button", name="Sign out", exact=True))
    found.append(await _serious_violations(page))  # signed out

    problems = "\n".join(f for f in found if f)
    assert not problems, "axe-core found serious or critical accessibility problems:\n" + problems
    await refused.context.close()
    await context.close()


async def test_a_reply_an_edit_and_a_reaction_show_on_both_sides(pair, chromium):  # noqa: F811
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    problems = PageProblems()
    alex_context, alex = await _sign_in(chromium, acme, "alex", problems)
    sam_context, sam = await _sign_in(chromium, globex, "sam", problems)
    try:
        question = "Is the retry fix in production?"
        await acme.client(tokens["alex"], "POST", MESSAGES_API, {"body": question}, expect=201)
        question_id = await _message_id(globex, tokens["sam"], question)
        await _open(sam, f"{_base(globex)}{THREAD_PATH}")
        await _open(alex, f"{_base(acme)}{THREAD_PATH}")  # open while Sam answers: it arrives live
        asked = _message(sam, question)
        await asked.get_by_text("Reply", exact=True).click()
        await asked.get_by_label("Reply to Alex Rivera").fill("Yes, since this morning.")
        await _submit(sam, asked.get_by_role("button", name="Send reply"))
        await _submit(sam, _message(sam, question).get_by_role("button", name="Mark seen"))
        live = _message(alex, "Yes, since this morning.")
        await expect(live.locator(".reply-to")).to_have_text("In reply to Alex Rivera", timeout=LIVE_S * 1000)
        # A live message has the served one's actions at once: Alex marks it seen without a reload.
        assert await live.get_by_text("Edit", exact=True).count() == 0  # not Alex's to edit
        await _submit(alex, live.get_by_role("button", name="Mark seen"))
        answer_id = await _message_id(acme, tokens["alex"], "Yes, since this morning.")
        assert answer_id != question_id
        # Sam corrects his answer: only his own message offers Edit and Delete.
        await _open(sam, f"{_base(globex)}{THREAD_PATH}")
        assert await _message(sam, question).get_by_text("Edit", exact=True).count() == 0
        mine = _message(sam, "Yes, since this morning.")
        await mine.get_by_text("Edit", exact=True).click()
        await mine.get_by_label("New text").fill("Yes, since 09:30 UTC.")
        await _submit(sam, mine.get_by_role("button", name="Save edit"))

        async def alex_sees_it_all() -> bool:
            await _open(alex, f"{_base(acme)}{THREAD_PATH}")
            answer = _message(alex, "Yes, since 09:30 UTC.")
            if not await answer.count():
                return False
            reply = await answer.locator(".reply-to").inner_text()
            reactions = await _message(alex, question).locator(".reactions").all_inner_texts()
            answer_seen = await answer.locator(".reactions").all_inner_texts()
            return "In reply to Alex Rivera" in reply and reactions == ["seen: Sam Chen"] and \
                answer_seen == ["seen: Alex Rivera"] and \
                await answer.locator(".edited").count() == 1

        assert await eventually(alex_sees_it_all, timeout=20)
        # Alex cannot edit Sam's message; the page says who is in the network.
        assert await _message(alex, "Yes, since 09:30 UTC.").get_by_text("Edit", exact=True).count() == 0
        await alex.get_by_role("link", name=f"(who is in {NETWORK})").click()
        await expect(alex.locator("h1")).to_have_text(f"Who is in {NETWORK}")
        await expect(alex.locator("body")).to_contain_text("Sam Chen")
        await expect(alex.locator("body")).to_contain_text("Customer Ops Agent")
        assert not problems, str(problems)
    finally:
        await alex_context.close()
        await sam_context.close()


async def test_an_operator_accepts_an_invite_in_the_console_by_its_fingerprint(
        pair, chromium, axe_script):  # noqa: F811
    acme, globex = pair
    await acme.admin("POST", "/v1/networks", {"name": "incident-42", "title": "Incident 42"}, expect=201)
    await acme.admin("POST", "/v1/networks/incident-42/invites", {"server": GLOBEX, "endpoint": globex.endpoint},
                     expect=201)
    context = await _context(chromium)
    await context.add_init_script(path=str(axe_script))
    page = await context.new_page()
    problems = PageProblems()
    await watch(page, problems)
    found: list[str] = []
    try:
        link = await globex.admin("POST", "/v1/console/sign-in-link", {})
        assert link["url"].startswith(f"http://127.0.0.1:{globex.ports['admin']}/console/sign-in?token=")
        await _open(page, link["url"])
        await _submit(page, page.get_by_role("button", name="Sign in", exact=True))
        await expect(page.locator("h1")).to_contain_text(GLOBEX)
        await expect(page.locator("#ready")).to_contain_text("yes")
        shoot = os.environ.get("AGENTNET_SCREENSHOTS") == "1"
        if shoot:
            await page.screenshot(path=str(README_SCREENSHOTS / "console-status.png"), full_page=True)
        found.append(await _serious_violations(page))  # status
        await page.get_by_role("link", name="Invites", exact=True).click()
        invite = page.locator("#incoming-invites li.invite")
        await expect(invite).to_have_count(1)
        # What the operator compares with what Acme's operator reads out.
        assert await invite.locator(".fingerprint").inner_text() == acme.key.verify_key.fingerprint
        if shoot:
            await page.screenshot(path=str(README_SCREENSHOTS / "console-invites.png"), full_page=True)
        found.append(await _serious_violations(page))  # invites
        await _submit(page, invite.get_by_role("button", name="Accept"))

        async def member() -> bool:
            network = await globex.admin("GET", "/v1/networks/incident-42")
            return network["members"].get(GLOBEX) == "member"

        assert await eventually(member)
        audit = await globex.admin("GET", "/v1/audit?action=invite.accept")
        assert next(e["actor"] for e in audit["items"]).startswith("admin:")  # the operator, by name or token
        # A person signed in to the web app is signed out from the console.
        await globex.create("person", "sam", "Sam Chen")
        sam_context, _sam = await _sign_in(chromium, globex, "sam")
        await sam_context.close()
        await page.get_by_role("link", name="People and agents", exact=True).click()
        (listed,) = (await globex.admin("GET", "/v1/web-sessions"))["items"]
        await _submit(page, page.get_by_role("button", name=f"Sign out session {listed['id']}"))
        assert (await globex.admin("GET", "/v1/web-sessions"))["items"] == []
        await page.get_by_label("Handle", exact=True).fill("dana")
        await page.get_by_label("Display name", exact=True).fill("Dana <b>Ops</b>")
        await _submit(page, page.get_by_role("button", name="Add a person"))
        made = await page.locator(".made .link").inner_text()
        assert made.startswith(f"{_base(globex)}/app/sign-in?token=")
        await expect(page.locator("body")).to_contain_text("Dana <b>Ops</b>")  # shown as text
        found.append(await _serious_violations(page))  # people
        await page.get_by_label("Agent handle").fill("triage")
        await page.get_by_label("Agent display name").fill("Triage Agent")
        await _submit(page, page.get_by_role("button", name="Add an agent"))
        assert (await page.locator(".made .token").inner_text()).startswith("anagt_")  # shown once
        await page.get_by_role("link", name="Networks", exact=True).click()
        await page.locator("section.network-card").filter(has_text="incident-42").get_by_label(
            "Attach one of this company's people or agents").select_option("agent:triage")
        await _submit(page, page.locator("section.network-card").filter(has_text="incident-42").get_by_role(
            "button", name="Attach"))

        async def attached() -> bool:
            network = await acme.admin("GET", "/v1/networks/incident-42")
            return any(p["id"] == f"agent:triage@{GLOBEX}" and p["attached"] for p in network["participants"])

        assert await eventually(attached)  # the host sequenced it
        found.append(await _serious_violations(page))  # networks
        for name, empty in (("Consent", "None waiting."), ("Flagged", "Nothing to review.")):
            await page.get_by_role("link", name=name, exact=True).click()
            await expect(page.locator("main")).to_contain_text(empty)
            found.append(await _serious_violations(page))
        # Policy for a partner, an export, a token rotated, an invite sent and withdrawn.
        await page.get_by_role("link", name="Policy", exact=True).click()
        await page.get_by_label("Files may cross").select_option("no")
        await _submit(page, page.get_by_role("button", name=f"Save for {ACME}"))
        assert (await globex.admin("GET", f"/v1/policy/partners/{ACME}"))["policy"]["files"] is False
        found.append(await _serious_violations(page))  # policy
        await page.get_by_role("link", name="Networks", exact=True).click()
        async with page.expect_download() as download:
            await page.locator("section.network-card").filter(has_text="incident-42").get_by_role(
                "link", name="Export its history").click()
        exported = json.loads(Path(await (await download.value).path()).read_text())
        assert exported["network"] == "incident-42" and exported["events"]
        await page.get_by_role("link", name="People and agents", exact=True).click()
        await _submit(page, page.get_by_role("button", name="New token for triage"))
        assert (await page.locator(".made .token").inner_text()).startswith("anagt_")
        await globex.admin("POST", "/v1/networks", {"name": "globex-net", "title": "Globex net"}, expect=201)
        await page.get_by_role("link", name="Invites", exact=True).click()
        await page.get_by_label("Network (hosted here)").fill("globex-net")
        await page.get_by_label("Company's server name").fill(ACME)
        await page.get_by_label("Its federation address (https://..., optional)").fill(acme.endpoint)
        await _submit(page, page.get_by_role("button", name="Invite", exact=True))
        await _submit(page, page.locator("#outgoing-invites li").filter(has_text="globex-net").get_by_role(
            "button", name="Withdraw"))
        await expect(page.locator("#outgoing-invites")).to_contain_text("globex-net to acme.example: withdrawn")
        await page.get_by_role("link", name="Audit log", exact=True).click()
        await expect(page.locator("#audit")).to_contain_text("person.create")
        found.append(await _serious_violations(page))  # audit
        # Without the console cookie nothing is shown, and a form from elsewhere is refused.
        other = await (await _context(chromium)).new_page()
        response = await other.goto(f"http://127.0.0.1:{globex.ports['admin']}/console/invites")
        assert response is not None and response.status == 401
        await other.context.close()
    finally:
        await context.close()
    problems_text = "\n".join(f for f in found if f)
    assert not problems_text, "axe-core found serious or critical accessibility problems:\n" + problems_text
    assert not problems, str(problems)


# Records what the page would notify, with the permission granted (headless Chromium shows no
# notifications): the page's own script runs unchanged.
_RECORD_NOTIFICATIONS = """
window.__notified = [];
class RecordedNotification {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__notified.push({title, body: options && options.body}); }
}
window.Notification = RecordedNotification;
"""


async def test_unread_counts_and_a_notification_when_mentioned(pair, chromium):  # noqa: F811
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    sam_context, sam = await _sign_in(chromium, globex, "sam")
    try:
        await _open(sam, f"{_base(globex)}{THREAD_PATH}")  # read up to now
        await sam_context.add_init_script(_RECORD_NOTIFICATIONS)
        await _open(sam, f"{_base(globex)}/app/")
        await sam.get_by_role("button", name="Notify me when mentioned").click()
        await expect(sam.get_by_role("button", name="Notify me when mentioned")).to_be_hidden()
        await acme.client(tokens["alex"], "POST", MESSAGES_API, {"body": "Cutover moved to Friday."}, expect=201)
        await acme.client(tokens["alex"], "POST", MESSAGES_API,
                          {"body": "Sam, can you confirm?", "mentions": [f"person:sam@{GLOBEX}"]}, expect=201)

        async def notified() -> list:
            return await sam.evaluate("window.__notified")

        assert await eventually(notified, timeout=LIVE_S) == [
            {"title": "Alex Rivera mentioned you", "body": "Sam, can you confirm?"}]

        async def counted() -> str:
            await _open(sam, f"{_base(globex)}/app/")
            found = sam.locator("#shared-threads li .unread")
            return await found.inner_text() if await found.count() else ""

        assert await eventually(counted) == "2 unread, 1 mentioning you"
        await _open(sam, f"{_base(globex)}{THREAD_PATH}")
        await expect(_message(sam, "Sam, can you confirm?")).to_have_class(re.compile("mentions-me"))
        await _open(sam, f"{_base(globex)}/app/")
        assert await sam.locator("#shared-threads li .unread").count() == 0  # read now
    finally:
        await sam_context.close()
