"""Logs never carry a secret, and carry no message body at INFO or above.

Two nodes exchange messages (REST and MCP), a webhook is created and fails before it succeeds
(its receiver echoes what it got), requests with a wrong token or a bad body are refused, a
token is rotated, and a peer goes away and comes back. Every record at DEBUG is captured, and
the node's own JSON output at INFO: no admin token, agent token or webhook secret appears in
any of them, no body appears at INFO or above, and every JSON line parses.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web

from node.basics.log_setup import configure_logging
from tests.cluster import eventually, start_node
from tests.node.mcp.test_mcp import call, mcp
from tests.node.networks.test_seed_scenario import (  # noqa: F401
    ACME,
    CANARIES,
    NETWORK,
    THREAD,
    acme_and_globex,
    open_rollout,
)
from tests.tls_fixtures import TestCertificateAuthority

MESSAGES = f"/v1/networks/{NETWORK}/threads/{THREAD}/messages"
BODIES = ["BODY-CANARY-shared-1d9e", "BODY-CANARY-shared-after-outage-5c0b", "BODY-CANARY-shared-later-a417",
          "BODY-CANARY-private-mcp-3f62", "BODY-CANARY-refused-8b21"]
# The test's own HTTP clients log on their side of the wire; only the node's logs are judged.
_CLIENT_LOGGERS = ("httpx", "httpcore", "mcp.client", "tests.")  # httpx2 and httpcore2 too


@pytest.fixture
def json_logs(caplog) -> Iterator[io.StringIO]:
    """The node's logging configured at DEBUG: JSON lines from INFO up on stderr, every record in caplog."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level,
             {name: logging.getLogger(name).level for name in ("aiohttp.access", "alembic", "aiosqlite")})
    configure_logging("DEBUG", as_json=True)  # what an operator gets at DEBUG...
    output = io.StringIO()  # the handler's stderr, caught here: capsys swaps its stream between test phases
    root.handlers[0].setStream(output)
    root.handlers[0].setLevel(logging.INFO)  # ...shown on stderr from INFO up, and all of it in caplog
    root.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    yield output
    root.handlers[:], level, levels = saved
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


@pytest.fixture
async def echoing_receiver(aiohttp_server):
    """A webhook receiver that fails twice, quoting the message it got, then accepts."""
    seen: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append(await request.read())
        if len(seen) <= 2:
            return web.json_response({"refused": json.loads(seen[-1])["data"]["body"]}, status=500)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}/hook", seen


async def test_no_secret_in_any_log_and_no_body_at_info(acme_and_globex, echoing_receiver, json_logs,  # noqa: F811
                                                        caplog):
    acme, globex = acme_and_globex
    hook_url, received = echoing_receiver
    tokens = await open_rollout(acme, globex)
    hook = await acme.client(tokens["ops"], "POST", "/v1/webhooks", {"url": hook_url}, expect=201)
    await acme.client(tokens["ops"], "POST", MESSAGES, {"body": BODIES[0]}, expect=201)
    await eventually(lambda: _received(received, BODIES[0], at_least=3))

    await globex.stop()
    await acme.client(tokens["ops"], "POST", MESSAGES, {"body": BODIES[1]}, expect=201)
    await globex.start()
    async with mcp(acme, tokens["alex"]) as alex:
        await call(alex, "post_message", thread="billing-escalations", body=BODIES[3])
    await acme.client(tokens["ops"], "POST", MESSAGES, {"body": BODIES[2]}, expect=201)
    await acme.client(tokens["ops"], "POST", MESSAGES, {"body": BODIES[4], "extra": 1}, expect=422)
    await acme.client(tokens["ops"] + "x", "POST", MESSAGES, {"body": BODIES[4]}, expect=401)
    await acme.admin("GET", "/v1/agents")

    async def everything_arrived() -> bool:
        page = await globex.client(tokens["delivery"], "GET", f"{MESSAGES}?limit=200")
        return {BODIES[0], BODIES[1], BODIES[2]} <= {m["body"] for m in page["messages"]}

    await eventually(everything_arrived, timeout=30)

    secrets = {"admin token": acme.admin_token, "globex admin token": globex.admin_token,
               "webhook secret": hook["secret"], **{f"token of {h}": t for h, t in tokens.items()}}
    bodies = [*BODIES, *CANARIES[acme.server], *CANARIES[globex.server]]
    records = [r for r in caplog.records if not r.name.startswith(_CLIENT_LOGGERS)]
    assert any(r.levelno == logging.DEBUG for r in records)  # DEBUG really was captured
    for record in records:
        text = _text(record)
        for what, secret in secrets.items():
            assert secret not in text, f"{what} logged by {record.name} at {record.levelname}: {text[:300]}"
        if record.levelno >= logging.INFO:
            for body in bodies:
                assert body not in text, f"a body logged by {record.name} at {record.levelname}: {text[:300]}"

    lines = [line for line in json_logs.getvalue().splitlines() if line.strip()]
    assert lines, "the node logged nothing at INFO"
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON line: {line[:300]}") from None
        assert {"ts", "level", "logger", "message"} <= entry.keys()
        assert logging.getLevelName(entry["level"]) >= logging.INFO
        assert not any(s in line for s in secrets.values()) and not any(b in line for b in bodies), line
    # What an operator follows at INFO: federation actions, named but without bodies or secrets.
    messages = [json.loads(line)["message"] for line in lines]
    for expected in ("invited globex.example to acme-rollout (invite ",
                     "invite from acme.example to acme-rollout waits for an operator",
                     "accepted the invite of acme.example to acme-rollout and pinned its key",
                     "globex.example accepted the invite to acme-rollout: admitted with key",
                     "event(s) to globex.example (0 refused)", "event(s) to acme.example (0 refused)"):
        assert any(expected in m for m in messages), (expected, messages)


async def _received(received: list[bytes], body: str, *, at_least: int) -> bool:
    return sum(body.encode() in r for r in received) >= at_least


def _text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    parts.extend(repr(v) for k, v in vars(record).items() if k not in _STANDARD)
    return "\n".join(parts)


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}


def test_every_json_line_parses(json_logs) -> None:
    logging.getLogger("node.test").debug("not at INFO")
    logging.getLogger("node.test").info("quote \" newline \n unicode é %s", "arg")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("node.test").exception("failed")
    lines = json_logs.getvalue().splitlines()
    assert [json.loads(line)["level"] for line in lines] == ["INFO", "ERROR"]
    assert "ValueError: boom" in json.loads(lines[1])["exception"]


@pytest.mark.parametrize("header", [b"Authorization: Bearer %s\x01", b"Authorization : Bearer %s"],
                         ids=["control-character", "space-before-colon"])
async def test_a_token_in_a_malformed_request_line_is_blanked(tmp_path, json_logs, header):
    """aiohttp logs the offending header line of a request it cannot parse, at ERROR."""
    node = await start_node(tmp_path, ACME, TestCertificateAuthority())
    try:
        token = await node.create("agent", "ops", "Ops")
        reader, writer = await asyncio.open_connection("127.0.0.1", node.ports["client"])
        writer.write(b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\n" + header % token.encode() + b"\r\n\r\n")
        assert (await reader.read(12)).startswith(b"HTTP/1.")
        writer.close()
        await writer.wait_closed()
    finally:
        await node.stop()
    output = json_logs.getvalue()
    assert "Bearer [redacted]" in output  # the line was logged, without the token
    assert token not in output and token[10:] not in output
