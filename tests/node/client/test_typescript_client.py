"""The TypeScript client (`node/client/typescript`) against two real federated nodes over TLS.

It is installed with `npm ci` from its committed lock file (once; again only when the pinned
versions change) and compiled with `tsc`. Its own tests run against fake listeners; then a script
(`test/live.ts`) acts as Acme's agent and Globex's agent in a shared thread and prints what it saw,
and this test asserts on that and on what the nodes hold: a post with a mention and data reaches
the other company's agent, the reply and the edit converge, the feed and the stream (cut by a proxy
once) deliver each message once with its cursor, refusals come as AgentNetError with the node's
status and code, a post whose answer was lost is stored once, and a revoked token ends the stream.

Without Node.js and npm the tests are skipped, unless AGENTNET_REQUIRE_NODE is set (then they fail).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.cluster import ClusterNode, eventually
from tests.node.networks.test_seed_scenario import ACME, GLOBEX, NETWORK, THREAD, open_rollout
from tests.node_tools import exclusive, require_node

CLIENT_DIR = Path(__file__).resolve().parents[3] / "node" / "client" / "typescript"
MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"
OPS, DELIVERY = f"agent:ops@{ACME}", f"agent:delivery@{GLOBEX}"
OUTSIDER = f"agent:helper@{GLOBEX}"  # no such participant in the thread
ONCE = ("Stored once (explicit key).", "Stored once (retried).", "Stored once (client gave up).",
        "Posted after a 429.")


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=CLIENT_DIR, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def _installed_as_pinned() -> bool:
    pinned = json.loads((CLIENT_DIR / "package.json").read_text())["devDependencies"]
    for name, version in pinned.items():
        manifest = CLIENT_DIR / "node_modules" / name / "package.json"
        if not manifest.is_file() or json.loads(manifest.read_text())["version"] != version:
            return False
    return True


@pytest.fixture(scope="session")
def typescript_client() -> Path:
    """`npm ci` of the committed lock file (when what is installed is not what is pinned), then
    `tsc` for the client and its tests; a machine without Node skips, unless CI says it must not."""
    require_node()
    with exclusive(CLIENT_DIR):
        if not _installed_as_pinned():
            _run(["npm", "ci", "--no-audit", "--no-fund"], 600)
        if not _built():
            shutil.rmtree(CLIENT_DIR / "dist", ignore_errors=True)
            _run(["npx", "--no-install", "tsc", "-p", "."], 120)
            _run(["npx", "--no-install", "tsc", "-p", "test"], 120)
            (CLIENT_DIR / "dist" / ".built").touch()
    return CLIENT_DIR


def _built() -> bool:
    """dist/ is newer than every source and test file (another test process may have built it)."""
    marker = CLIENT_DIR / "dist" / ".built"
    if not marker.is_file():
        return False
    sources = [*CLIENT_DIR.glob("src/*.ts"), *CLIENT_DIR.glob("test/*.ts"), *CLIENT_DIR.glob("**/tsconfig.json")]
    return all(s.stat().st_mtime <= marker.stat().st_mtime for s in sources if "node_modules" not in s.parts)


def test_the_client_passes_its_own_tests(typescript_client):
    done = _run(["node", "--test", "--test-reporter=tap", "dist/test/client.test.js"], 60)
    summary = dict(line[2:].split(" ", 1) for line in done.stdout.splitlines() if line.startswith("# "))
    assert int(summary["pass"]) >= 10 and summary["fail"] == "0", done.stdout[-2000:]


def _url(node: ClusterNode) -> str:
    return f"http://127.0.0.1:{node.ports['client']}"


async def _live(env: dict[str, str], on_revoke) -> dict:
    """Run test/live.ts; call `on_revoke` when it asks; its report."""
    process = await asyncio.create_subprocess_exec(
        "node", str(CLIENT_DIR / "dist" / "test" / "live.js"), cwd=CLIENT_DIR, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    errors = asyncio.create_task(process.stderr.read())
    report = None
    try:
        async with asyncio.timeout(90):
            while line := await process.stdout.readline():
                said = json.loads(line)
                if said.get("signal") == "revoke":
                    await on_revoke()
                else:
                    report = said["report"]
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = (await errors).decode()
    assert process.returncode == 0 and report is not None, stderr[-3000:]
    return report


async def _bodies(node: ClusterNode, token: str) -> list[dict]:
    return (await node.client(token, "GET", f"{MESSAGES}?limit=200"))["messages"]


async def test_two_agents_talk_through_the_typescript_client(typescript_client, pair):
    acme, globex = pair
    tokens = await open_rollout(acme, globex)
    revocable = await globex.admin("POST", "/v1/agents/delivery/tokens", {"scopes": ["read"]}, expect=201)
    env = {**os.environ, "AGENTNET_ACME_URL": _url(acme), "AGENTNET_GLOBEX_URL": _url(globex),
           "AGENTNET_OPS_TOKEN": tokens["ops"], "AGENTNET_DELIVERY_TOKEN": tokens["delivery"],
           "AGENTNET_REVOCABLE_TOKEN": revocable["token"], "AGENTNET_NETWORK": NETWORK, "AGENTNET_THREAD": THREAD,
           "AGENTNET_PRIVATE_THREAD": "billing-escalations", "AGENTNET_OUTSIDER": OUTSIDER}

    async def revoke() -> None:
        await globex.admin("POST", f"/v1/agents/delivery/tokens/{revocable['id']}/revoke")

    started = time.monotonic()
    report = await _live(env, revoke)
    assert time.monotonic() - started < 30

    assert report["whoami"] == {"acme": OPS, "globex": DELIVERY, "kinds": ["agent", "agent"]}
    assert report["sharedThreads"] == {"acme": [[NETWORK, THREAD]], "globex": [[NETWORK, THREAD]]}
    assert report["participants"] == {"host": ACME, "ids": sorted([OPS, f"person:alex@{ACME}", DELIVERY,
                                                                   f"person:sam@{GLOBEX}"])}

    # Acme's post, with a mention and data, reached Globex's agent (read there with the TS client).
    question = report["posted"]["id"]
    assert report["posted"]["sender"] == OPS
    assert report["received"] == {"id": question, "sender": OPS, "body": "Is the retry fix deployed?",
                                  "mentions": [DELIVERY], "data": {"ticket": 4012}}
    # The reply is shown at Acme as a reply; the edit converged (only the author's company sees history).
    answer = report["reply"]["id"]
    assert report["reply"] == {"id": answer, "reply_to": question,
                               "atAcme": {"reply_to": question, "sender": DELIVERY, "body": "Deploying it now."}}
    edited = "Is the retry fix deployed to production?"
    assert report["edit"] == {"answer": {"body": edited, "edited": True},
                              "atGlobex": {"body": edited, "edited": True, "history": None},
                              "atAcme": {"body": edited, "history": ["Is the retry fix deployed?"]}}
    assert report["reaction"] == {"message": question, "participant": DELIVERY, "atAcme": {"seen": [DELIVERY]}}

    # The feed: mentions of Globex's agent only; the network's posts with cursors; a long poll woken.
    events = report["events"]
    assert events["mentions"] == [question]
    assert [(e[0], e[2], e[3], e[4], e[5]) for e in events["posts"]] == [
        (question, "shared", NETWORK, THREAD, OPS), (answer, "shared", NETWORK, THREAD, DELIVERY)]
    posted_cursors = [int(e[1]) for e in events["posts"]]
    assert int(events["start"]) < posted_cursors[0] < posted_cursors[1] <= int(events["postsNextCursor"])
    (third,) = events["longPoll"]["ids"]
    assert events["longPoll"]["ms"] < 5000

    # The stream: cut by the proxy after the first post, resumed from its cursor, each post once.
    stream = report["stream"]
    assert stream["ids"] == [question, answer, third]
    assert [int(c) for c in stream["cursors"][:2]] == posted_cursors  # the same positions as the feed's
    assert stream["cursor"] == stream["cursors"][-1] == events["longPoll"]["next"]
    assert stream["reconnects"] == 1
    assert stream["lastEventIds"] == [events["start"], stream["cursors"][0]]

    pages = report["pages"]
    assert (pages["latest"], pages["before"]) == ([third], [answer]) and pages["prevCursor"]
    assert pages["walked"] == pages["whole"] == [question, answer, third]
    assert pages["cursors"][-1] is None and pages["wholeNext"] is None
    assert report["search"] == [[question, edited]]
    assert report["private"] == {"threads": ["billing-escalations"], "note": ["billing-escalations", OPS],
                                 "bodies": ["internal only: CANARY-acme-billing-7f3a",
                                            "Asked Globex about the retry fix."]}
    assert report["delete"]["answer"] is True and report["delete"]["atGlobex"] == [True, ""]

    # Idempotency: one key per post, reused on its retries; a lost answer, a 503 and a 429 cost nothing.
    once = report["idempotency"]
    assert once["explicit"]["ids"][0] == once["explicit"]["ids"][1]
    assert len(once["retried"]["keys"]) == 3 and len(set(once["retried"]["keys"])) == 1
    assert once["retried"]["replayed"] == ["true"]  # the retry that got through was given the stored answer
    assert (once["bounded"]["status"], once["bounded"]["code"]) == (0, "connection_failed")
    assert len(once["bounded"]["keys"]) == 3 and len(set(once["bounded"]["keys"])) == 1
    assert len(set(once["rateLimited"]["keys"])) == 1 and once["rateLimited"]["waitedMs"] >= 1000
    assert len({*once["retried"]["keys"], *once["bounded"]["keys"], *once["rateLimited"]["keys"]}) == 3

    errors = {name: (e["status"], e["code"]) for name, e in report["errors"].items()}
    assert errors == {"invalidToken": (401, "unauthorized"), "invalidTokenStream": (401, "unauthorized"),
                      "unknownThread": (404, "not_found"), "tooLarge": (413, "message_too_large"),
                      "notParticipant": (403, "forbidden"), "badMention": (422, "invalid_request"),
                      "unknownCursor": (410, "cursor_unknown"), "badWebhook": (422, "invalid_request")}
    assert report["errors"]["invalidTokenStream"]["reconnects"] == 0
    assert report["errors"]["notParticipant"]["reason"] == "mention_not_participant"
    assert report["errors"]["badMention"]["fields"] == ["mentions.0"]
    assert report["webhooks"] == {"secret": "whsec_", "status": "active",
                                  "filter": {"network": NETWORK, "thread": None, "types": None, "mentions": True},
                                  "listed": True, "deleted": True, "after": []}
    assert {k: report["revoked"][k] for k in ("status", "code", "reconnects")} == {
        "status": 401, "code": "token_revoked", "reconnects": 0}

    # What the nodes hold: the same messages in the same order on both, each post above once.
    async def converged() -> bool:
        held = [[(m["id"], m["body"], m["reply_to"]) for m in await _bodies(node, token)]
                for node, token in ((acme, tokens["ops"]), (globex, tokens["delivery"]))]
        counts = Counter(body for _, body, _ in held[0])
        return held[0] == held[1] and all(counts[body] == 1 for body in ONCE)

    await eventually(converged)
    at_globex = {m["id"]: m for m in await _bodies(globex, tokens["delivery"])}
    assert (at_globex[question]["body"], at_globex[question]["edited"]) == (edited, True)
    assert at_globex[answer]["reply_to"] == question
    assert at_globex[once["retried"]["id"]]["body"] == "Stored once (retried)."
    await globex.client(revocable["token"], "GET", "/v1/whoami", expect=401)
