"""Schemathesis against the admin and client listeners, driven by their own `/openapi.json`.

A real node (`tests.cluster`: its listeners on loopback, its workers running, SQLite) holds
some state: people and agents, a private thread, knowledge, a hosted network with a shared
thread, a webhook, and an invite from a company whose node has gone away. Every operation of
each document then gets `EXAMPLES` cases from Hypothesis (a fixed seed: the same cases on every
run), positive and negative, half of them with generated path parameters and half with the
names that exist, so both "no such thing" and the real code paths are reached.

Each answer must:
- not be a 5xx. The one exception is a 502 from an operation that talks to another node and
  says so in its document (an invite to a company whose node is not there);
- match the document: status, content type, headers and body (a 422 names its fields);
- be a 4xx for a request the document says is invalid (schemathesis' negative cases);
- change nothing when it is a refusal (any non-2xx): every column of every table of the node's
  database is the same before and after, except the delivery progress of webhooks, which the
  webhook worker moves on its own after accepted posts (`_MOVED_BY_WORKERS`), and any known
  partial write listed in `_KNOWN_PARTIAL_WRITES` (none today). The database is
  read directly (SQLite, read-only), not through the API, so a row written by a refused request
  shows even where no listing would show it (a pinned key, an audit row, an idempotency answer).

Three things are bent, each so the run stays bounded and on loopback: a valid long-poll `wait`
is sent as 0 (a valid wait holds the answer that long; `test_event_feed.py` tests waiting), an
invite that passes validation goes to a closed port on 127.0.0.1 instead of its generated
endpoint, and the event stream's 200 is checked by its headers and first frame, then closed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.cluster import ClusterNode, start_node
from tests.tls_fixtures import TestCertificateAuthority

ACME, GLOBEX = "acme.example", "globex.example"
# Cases per operation, 64 operations in all: about 1,200 cases and 100 s for both listeners on
# a loaded 2-core machine. Most of the time goes to generating the cases, the rest to an HTTP
# request and a read of the whole database each.
EXAMPLES = 20
# A post in a shared thread has four optional fields that each refer to something that must
# exist (a reply's message, a mention's participant, an upload, canonical data): few generated
# cases leave all four out, so it takes more cases to reach the 201 as well as the refusals.
_MORE_EXAMPLES = {"POST /v1/networks/{network}/threads/{thread}/messages": 60}
CLOSED_ENDPOINT = "https://127.0.0.1:9"  # the discard port: nothing listens there
_MOVED_BY_WORKERS = {"webhooks": {"cursor", "failures", "last_status", "last_error", "last_success_at",
                                  "next_attempt_at", "updated_at"}}
_KNOWN_PARTIAL_WRITES: dict[str, set[str]] = {}
_PEER_ERRORS = {"peer_unreachable", "peer_refused"}
# Not worth showing in a report (and the first is a secret).
_TRANSPORT_HEADERS = {"authorization", "user-agent", "accept", "accept-encoding", "connection", "content-length",
                      "content-type", "x-schemathesis-testcaseid"}
_CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
           response_schema_conformance, negative_data_rejection]
_CONFIG = schemathesis.Config.from_dict({
    # What counts as refusing a request the document calls invalid: 413 too, and never a 5xx.
    "checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 409, 413, 415, 422,
                                                                 429]}},
})


class DatabaseSnapshot:
    """Every row of every table of a node's SQLite database, read with a connection of its own."""

    def __init__(self, database_url: str) -> None:
        self._uri = f"file:{database_url.removeprefix('sqlite:///')}?mode=ro"

    def take(self) -> dict[str, list[tuple]]:
        conn = sqlite3.connect(self._uri, uri=True)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            snapshot = {}
            for table in tables:
                moved = _MOVED_BY_WORKERS.get(table, set())
                columns = [f'"{r[1]}"' for r in conn.execute(f'PRAGMA table_info("{table}")') if r[1] not in moved]
                rows = conn.execute(f'SELECT {", ".join(columns)} FROM "{table}"').fetchall()
                snapshot[table] = sorted(rows, key=repr)
            return snapshot
        finally:
            conn.close()


def _without(snapshot: dict, tables: set[str]) -> dict:
    return {table: rows for table, rows in snapshot.items() if table not in tables}


def _difference(before: dict, after: dict) -> str:
    changed = []
    for table in sorted(set(before) | set(after)):
        old, new = set(before.get(table, [])), set(after.get(table, []))
        if old != new:
            changed.append(f"{table}: -{sorted(old - new, key=repr)[:3]} +{sorted(new - old, key=repr)[:3]}")
    return "; ".join(changed)


@dataclass
class World:
    acme: ClusterNode
    agent_token: str  # every scope; the client listener's caller
    real: dict[str, list[str]]  # path parameter -> names that exist on the node


async def _receiver() -> tuple[web.AppRunner, str]:
    async def accept(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"


@pytest.fixture
async def world(tmp_path) -> AsyncIterator[World]:
    ca = TestCertificateAuthority()
    receiver, hook_url = await _receiver()
    acme = await start_node(tmp_path, ACME, ca, display_name="Acme")
    globex = await start_node(tmp_path, GLOBEX, ca, display_name="Globex")
    try:
        agent = await acme.create("agent", "fuzzer", "Fuzzer")
        await acme.create("agent", "ops", "Ops")
        await acme.create("person", "alex", "Alex")
        await acme.admin("POST", "/v1/threads", {"name": "billing", "title": "Billing",
                                                 "members": ["agent:fuzzer", "agent:ops", "person:alex"]})
        await acme.admin("POST", "/v1/knowledge", {"title": "Runbook", "body": "Retry webhooks before cutover."})
        await acme.admin("PUT", "/v1/policy/node", {"a2a_agents": ["ops"]})  # its card and A2A endpoint answer
        await acme.admin("POST", "/v1/networks", {"name": "rollout", "title": "Rollout"})
        for participant in ("agent:fuzzer", "agent:ops", "person:alex"):
            await acme.admin("POST", "/v1/networks/rollout/participants", {"participant": participant})
        await acme.admin("POST", "/v1/networks/rollout/threads", {
            "name": "launch", "title": "Launch", "participants": [f"agent:fuzzer@{ACME}", f"person:alex@{ACME}"]})
        await acme.client(agent, "POST", "/v1/threads/billing/messages", {"body": "hello"})
        upload = await acme.upload(agent, "notes.txt", b"cutover at 10:00")
        posted = await acme.client(agent, "POST", "/v1/networks/rollout/threads/launch/messages",
                                   {"body": "hello", "attachments": [upload["id"]]})
        hook = await acme.client(agent, "POST", "/v1/webhooks", {"url": hook_url})
        await globex.admin("POST", "/v1/networks", {"name": "merger", "title": "Merger"})
        invite = await globex.admin("POST", "/v1/networks/merger/invites", {"server": ACME, "endpoint": acme.endpoint})
        await globex.stop()  # its invite stays pending at acme; accepting it cannot reach globex
        token = (await acme.admin("GET", "/v1/agents/ops/tokens"))["items"][0]
        real = {"handle": ["ops", "alex"], "name": ["billing"], "network": ["rollout"], "thread": ["launch"],
                "server": [GLOBEX], "invite": [invite["id"]], "token_id": [token["id"]], "webhook": [hook["id"]],
                "event": [posted["id"]], "position": ["0"]}
        yield World(acme, agent, real)
    finally:
        await globex.stop()
        await acme.stop()
        await receiver.cleanup()


@dataclass
class Fuzz:
    """Runs every operation of one document against one listener; collects what went wrong."""

    document: dict
    base_url: str
    token: str
    snapshot: DatabaseSnapshot
    real: dict[str, list[str]]
    statuses: Counter = field(default_factory=Counter)
    problems: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def run(self) -> None:
        schema = schemathesis.openapi.from_dict(self.document, config=_CONFIG)
        with requests.Session() as session:
            for result in schema.get_all_operations():
                self._operation(result.ok(), session)

    def _operation(self, operation, session: requests.Session) -> None:
        unchanged: list[dict | None] = [None]  # the last snapshot known to still hold

        @settings(max_examples=_MORE_EXAMPLES.get(operation.label, EXAMPLES), derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=_cases(operation, self.real))
        def one(case) -> None:
            before = unchanged[0] or self.snapshot.take()
            response, streamed = self._call(operation, case, session)
            status = response.status_code
            self.statuses[(operation.label, status)] += 1
            failed = []
            if status >= 500 and not _declared_peer_error(operation, response):
                failed.append(("server error", f"{status} {response.text[:300]}"))
            if status >= 300:
                after = self.snapshot.take()
                known = _KNOWN_PARTIAL_WRITES.get(operation.label, set())
                if _without(after, known) != _without(before, known):
                    failed.append(("state changed on refusal", _difference(before, after)))
                unchanged[0] = after
            else:
                unchanged[0] = None
            if not streamed:
                try:
                    case.validate_response(response, checks=_CHECKS, headers=self._headers)
                except FailureGroup as group:
                    failed.extend((f"document: {e.title}", " ".join(str(e).split())[:300]) for e in group.exceptions)
            for kind, detail in failed:
                self.problems.setdefault((operation.label, kind), []).append(
                    f"{_request_line(response)} -> {status}: {detail}")

        one()

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _call(self, operation, case, session: requests.Session):
        if isinstance(case.query, dict) and _valid_wait(case.query.get("wait")):
            case.query["wait"] = 0
        if operation.path.endswith("/invites") and case.meta.generation.mode.is_positive \
                and isinstance(case.body, dict):
            case.body["endpoint"] = CLOSED_ENDPOINT
        if operation.path == "/v1/events/stream":
            kwargs = case.as_transport_kwargs(base_url=self.base_url, headers=self._headers)
            raw = session.request(**kwargs, stream=True, timeout=30)
            if raw.status_code == 200:
                first = next(raw.iter_lines())
                raw.close()
                assert raw.headers["Content-Type"].startswith("text/event-stream"), raw.headers
                assert first == b"retry: 2000", first
                return raw, True
            _ = raw.content  # an error answer: read it whole and check it like any other
            return raw, False
        return case.call(base_url=self.base_url, headers=self._headers, session=session, timeout=30), False


def _cases(operation, real: dict[str, list[str]]):
    """Positive and negative cases; where every path parameter has names that exist, as many
    again with those names."""
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(mode) for mode in modes]
    names = [p.name for p in operation.path_parameters]
    if names and all(n in real for n in names):
        existing = st.fixed_dictionaries({n: st.sampled_from(real[n]) for n in names})
        strategies += [existing.flatmap(lambda p, m=mode: operation.as_strategy(m, path_parameters=p))
                       for mode in modes]
    return st.one_of(strategies)


def _valid_wait(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 60


def _declared_peer_error(operation, response) -> bool:
    if response.status_code != 502 or "502" not in operation.definition.raw.get("responses", {}):
        return False
    try:
        return response.json()["error"]["code"] in _PEER_ERRORS
    except (ValueError, KeyError, TypeError):
        return False


def _request_line(response) -> str:
    request = response.request
    body = request.body.decode(errors="replace") if isinstance(request.body, bytes) else request.body
    generated = {k: v for k, v in request.headers.items() if k.lower() not in _TRANSPORT_HEADERS}
    return f"{request.method} {request.url} {generated or ''} {(body or '')[:200]}"


def _report(fuzz: Fuzz) -> str:
    lines = [f"{sum(fuzz.statuses.values())} cases"]
    for (label, kind), found in sorted(fuzz.problems.items()):
        lines.append(f"\n{label}: {kind} ({len(found)} cases), e.g.")
        lines.extend(f"    {example}" for example in found[:3])
    return "\n".join(lines)


async def _fuzz(world: World, listener: str, token: str) -> Fuzz:
    base_url = f"http://127.0.0.1:{world.acme.ports[listener]}"
    async with world.acme.http.get(base_url + "/openapi.json") as resp:
        document = await resp.json()
    if listener == "client":
        _without_act_as(document)
    fuzz = Fuzz(document, base_url, token, DatabaseSnapshot(world.acme.database_url), world.real)
    await asyncio.to_thread(fuzz.run)  # schemathesis calls are blocking; the node serves on this loop
    return fuzz


def _without_act_as(document: dict) -> None:
    """The fuzz calls with an agent's token, for which any Act-As is refused 400 before the rest
    of the request is read (`node.workspace.apps`; tests/node/workspace/test_apps.py covers it):
    left in, it would keep most cases from the checks this fuzz is for."""
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["parameters"] = [p for p in operation.get("parameters", []) if p["name"] != "Act-As"]


async def test_admin_api_answers_every_case_as_documented_and_refusals_change_nothing(world):
    fuzz = await _fuzz(world, "admin", world.acme.admin_token)
    assert not fuzz.problems, _report(fuzz)
    _assert_reached(fuzz, {"POST /v1/networks/{network}/members/{server}/remove": {403, 404, 422},
                           "POST /v1/peers/{server}/block": {200, 422}, "POST /v1/invites/{invite}/accept": {502}})


async def test_client_api_answers_every_case_as_documented_and_refusals_change_nothing(world):
    fuzz = await _fuzz(world, "client", world.agent_token)
    assert not fuzz.problems, _report(fuzz)
    _assert_reached(fuzz, {"POST /v1/threads/{name}/messages": {201, 404, 422},
                           "POST /v1/networks/{network}/threads/{thread}/messages": {201, 404, 422},
                           "GET /v1/events/stream": {200, 422}})
    await asyncio.to_thread(_burst_past_the_rate_limit, fuzz)


def _burst_past_the_rate_limit(fuzz: Fuzz) -> None:
    """The fuzz posts too slowly to meet the limit (30 at once, then 10/s); a burst does, and
    its 429 must match the document (Retry-After) and store nothing."""
    schema = schemathesis.openapi.from_dict(fuzz.document, config=_CONFIG)
    operation = schema["/v1/threads/{name}/messages"]["POST"]
    with requests.Session() as session:
        for n in range(200):
            case = operation.Case(path_parameters={"name": "billing"}, body={"body": f"burst {n}"},
                                  headers={"Idempotency-Key": f"burst-{n}"}, media_type="application/json")
            before = fuzz.snapshot.take()
            response = case.call(base_url=fuzz.base_url, headers=fuzz._headers, session=session, timeout=30)
            if response.status_code == 429:
                break
            assert response.status_code == 201, response.text
        assert response.status_code == 429, "the rate limit was never met"
        case.validate_response(response, checks=_CHECKS, headers=fuzz._headers)
        assert int(response.headers["retry-after"][0]) >= 1  # schemathesis keeps headers lowercased, as lists
        assert response.json()["error"]["code"] == "too_many_requests"
        assert fuzz.snapshot.take() == before


def _assert_reached(fuzz: Fuzz, expected: dict[str, set[int]]) -> None:
    """The run reached the paths it is meant to cover, not only the 401s and 422s."""
    for label, statuses in expected.items():
        seen = {status for (op, status) in fuzz.statuses if op == label}
        assert statuses <= seen, (label, sorted(seen))
    operations = {op for op, _status in fuzz.statuses}
    assert operations == {f"{m.upper()} {p}" for p, ops in fuzz.document["paths"].items() for m in ops}
    ok = {op for (op, status), _n in fuzz.statuses.items() if status < 300}
    assert len(ok) >= len(operations) * 3 // 4, sorted(operations - ok)  # most operations also succeeded


async def test_an_accept_the_host_never_heard_pins_nothing(world):
    """Accepting pins the host before asking it (so its first fan-out finds its key); when the
    host cannot be reached, the pin is undone with the rest."""
    snapshot = DatabaseSnapshot(world.acme.database_url)
    before = snapshot.take()
    refused = await world.acme.admin("POST", f"/v1/invites/{world.real['invite'][0]}/accept", expect=502)
    assert refused["error"]["code"] == "peer_unreachable"
    assert _difference(before, snapshot.take()) == ""
