"""`agentnet demo`: the seed's acme-rollout story on real nodes, in one command.

Two companies (three with `--nodes 3`) each get a node: `agentnet init`, then `agentnet run`
as a separate process on loopback, with its own SQLite database and a certificate from a
throwaway CA (`node.ops.tls_ca`) that every node trusts through `tls_ca_file`. Everything after
`init` goes through the public APIs an operator and an agent use: the admin listener for
people, agents, private threads, knowledge, the network, the invite and the shared thread;
the client listener (`node.client.agent_client`) for posting and reading, as each principal itself.

The demo then prints every node's own copy of the shared thread side by side, what each side
holds privately, and a privacy check: each private item's text must be found in its own
node's files (so the search is shown to work) and in no other node's files (database, WAL,
log) nor in any node's copy of the shared thread. It exits 0 only if every check passes, and
always stops the node processes it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from node.client.agent_client import AgentClient, AgentNetError
from node.client.http import NO_RETRIES, NodeHttp
from node.ops.launcher import LaunchFailed, NodeProcess, free_ports

__all__ = ["run_demo"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
NETWORK, THREAD = "acme-rollout", "rollout-status"
# A node is up in about a second (imports, migrations); a slow CI machine gets thirty.
START_TIMEOUT_S = 30.0
# Federation on loopback settles in well under a second; this is only the give-up point.
SETTLE_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 30


@dataclass(frozen=True, slots=True)
class Company:
    name: str
    server: str
    agent: tuple[str, str]  # handle, display name
    lead: tuple[str, str] | None
    private_thread: str
    private_message: str
    knowledge_title: str
    knowledge_body: str

    @property
    def participants(self) -> list[str]:
        refs = [f"agent:{self.agent[0]}"]
        return refs + ([f"person:{self.lead[0]}"] if self.lead else [])


ACME = Company("Acme", "acme.example", ("ops", "Customer Ops Agent"), ("alex", "Alex Rivera"),
               "billing-escalations",
               "Acme internal: finance signs off the Thursday date only if the March invoices reconcile.",
               "Acme account notes",
               "Acme internal: the billing account renews in Q3; route disputes to finance first.")
GLOBEX = Company("Globex", "globex.example", ("delivery", "Delivery Agent"), ("sam", "Sam Chen"),
                 "internal-qa",
                 "Globex internal: QA traced the retry bug to build 4.2; the fix is not merged yet.",
                 "Globex rollout playbook",
                 "Globex internal: keep a two-hour rollback window after every customer cutover.")
INITECH = Company("Initech", "initech.example", ("payments", "Payments Agent"), None,
                  "vendor-risk",
                  "Initech internal: the webhook sandbox shares its rate limit with production.",
                  "Initech sandbox runbook",
                  "Initech internal: reset the sandbox signing keys after every partner test run.")

STORY = (
    (ACME, "alex", "We are ready to move the billing migration to production on Thursday."),
    (ACME, "ops", "I checked the customer-side launch checklist. The remaining blocker is webhook validation."),
    (GLOBEX, "sam", "We can run that validation tomorrow morning."),
    (GLOBEX, "delivery", "The Globex rollout plan still shows one unresolved webhook retry issue. "
                         "Recommend validating retries before the cutover window."),
)
INITECH_LINE = (INITECH, "payments",
                "Initech's webhook sandbox is open for that retry validation tomorrow morning.")


class DemoFailed(Exception):
    """The demo could not finish, or a check failed; the message says which."""


@dataclass(kw_only=True)
class DemoNode(NodeProcess):
    """One company's node process (`node.ops.launcher`, as the tests and the bench start them)."""

    company: Company
    key_fingerprint: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        tail = "\n".join("    " + line for line in super().log_tail(lines).splitlines())
        return f"  last lines of {self.log_path}:\n{tail or '    (empty)'}"


async def run_demo(args: argparse.Namespace) -> int:
    if args.keep is not None and args.keep.exists() and (not args.keep.is_dir() or any(args.keep.iterdir())):
        print(f"agentnet demo: --keep {args.keep}: not an empty directory", file=sys.stderr)
        return EXIT_USAGE
    say = (lambda *_: None) if args.quiet else _say
    companies = [ACME, GLOBEX, INITECH][:args.nodes]
    root = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="agentnet-demo-"))
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    nodes: list[DemoNode] = []
    started = getattr(args, "started", None) or time.monotonic()  # the command's own start
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            demo = _Demo(http, say)
            await demo.start(companies, root, nodes)
            await demo.story(nodes)
            failures = await demo.report(nodes)
        if failures:
            print(f"\nagentnet demo: FAILED: {failures} privacy check(s) failed", file=sys.stderr)
            return EXIT_FAILED
        print(f"\nDemo passed in {time.monotonic() - started:.1f} s: every node holds the same "
              f"{len(_story(nodes))} messages, and no private item crossed.", flush=True)
        if args.keep:
            _keep_instructions(nodes, root)
        return EXIT_OK
    except DemoFailed as e:
        print(f"\nagentnet demo: FAILED: {e}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except (TimeoutError, aiohttp.ClientError, AgentNetError) as e:
        logs = "\n".join(n.log_tail() for n in nodes)
        print(f"\nagentnet demo: FAILED: a node did not answer as expected: {e!r}\n{logs}",
              file=sys.stderr, flush=True)
        return EXIT_FAILED
    finally:
        try:
            _stop_all(nodes, say)
        finally:
            if args.keep is None:
                shutil.rmtree(root, ignore_errors=True)


class _Demo:
    def __init__(self, http: aiohttp.ClientSession, say: Callable[..., None]) -> None:
        self.http = http
        self.say = say

    # --- nodes -----------------------------------------------------------------------------

    async def start(self, companies: list[Company], root: Path, nodes: list[DemoNode]) -> None:
        """Fills `nodes` as it goes, so the caller can stop whatever started if this fails."""
        self.say(f"Agent Network demo: {', '.join(c.name for c in companies)} on loopback, in {root}")
        from node.ops import tls_ca  # cryptography: loaded by the commands that make certificates only

        now = datetime.now(UTC)
        ca = tls_ca.make_ca(root / "ca", name="Agent Network demo CA (throwaway)", now=now)
        self.say(f"  throwaway CA {ca.paths[0]} (SHA-256 {ca.fingerprint[:23]}...)")
        ports = free_ports(3 * len(companies))
        nodes += [DemoNode(server=c.server, company=c, data_dir=root / c.server, log_path=root / c.server / "node.log",
                           ports=dict(zip(("admin", "client", "federation"), ports[3 * i:3 * i + 3], strict=True)))
                  for i, c in enumerate(companies)]
        await asyncio.gather(*(self._init(n, root, now) for n in nodes))
        for n in nodes:
            self.say(f"  {n.company.name:8} {n.server:16} admin {n.admin_url}  client {n.client_url}  "
                     f"federation {n.endpoint}")
        for n in nodes:
            n.spawn()  # its log may quote what the node was told (at DEBUG): owner-only, like the rest
        for n in nodes:
            try:
                await n.wait_ready(self.http, timeout=START_TIMEOUT_S)
            except LaunchFailed as e:
                raise DemoFailed(f"{e}\n{n.log_tail()}") from None
            self.say(f"  {n.server} is running (pid {n.proc.pid if n.proc else '?'}, SQLite {n.data_dir / 'node.db'})")

    async def _init(self, n: DemoNode, root: Path, now: datetime) -> None:
        from node.ops import tls_ca

        try:
            output = await n.init(tls_ca_file=root / "ca" / tls_ca.CA_CERT, display_name=n.company.name)
        except LaunchFailed as e:
            raise DemoFailed(str(e)) from None
        lines = output.strip().splitlines()
        n.key_fingerprint = next((m.group(1) for line in lines
                                  if (m := re.match(r"Signing key \S+, fingerprint (.+)$", line))), "")
        # Replace init's self-signed certificate by one from the demo CA, which every node trusts.
        issued = tls_ca.issue(root / "ca", root / "certs" / n.server, server_name=n.server, now=now)
        for path in issued.paths[:2]:
            os.replace(path, n.data_dir / path.name)
        shutil.rmtree(root / "certs" / n.server)
        with contextlib.suppress(OSError):  # the last one out removes the parent
            (root / "certs").rmdir()
        with open(n.data_dir / "agentnet.toml", "a", encoding="utf-8") as f:
            f.write('federation_host = "127.0.0.1"  # the demo serves federation on loopback only\n')

    async def admin(self, n: DemoNode, method: str, path: str, body: Any = None) -> Any:
        api = NodeHttp(n.admin_url, n.admin_token, session=self.http, retry=NO_RETRIES)
        try:
            return await api.call(method, path, json_body=body)
        except AgentNetError as e:
            raise DemoFailed(f"{n.server}: {method} {path} answered {e}\n{n.log_tail()}") from None

    def client(self, n: DemoNode, handle: str) -> AgentClient:
        return AgentClient(n.client_url, n.tokens[handle], session=self.http)

    async def until(self, check: Callable[[], Awaitable[Any]], what: str, nodes: list[DemoNode]) -> Any:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not (result := await check()):
            if time.monotonic() > deadline:
                logs = "\n".join(n.log_tail() for n in nodes)
                raise DemoFailed(f"{what} did not happen within {SETTLE_TIMEOUT_S:.0f} s\n{logs}")
            await asyncio.sleep(0.05)
        return result

    # --- the story -------------------------------------------------------------------------

    async def story(self, nodes: list[DemoNode]) -> None:
        self.say("\nEach company sets up its own workspace (admin API), and its agent uses it (client API)")
        for n in nodes:
            await self._workspace(n)
        host, members = nodes[0], nodes[1:]
        await self.admin(host, "POST", "/v1/networks", {"name": NETWORK, "title": "Acme billing rollout"})
        self.say(f"\n{host.company.name} opens network {NETWORK} and invites "
                 f"{', '.join(m.company.name for m in members)}")
        for m in members:
            await self._join(host, m, nodes)
        for n in nodes:
            for ref in n.company.participants:
                await self.admin(n, "POST", f"/v1/networks/{NETWORK}/participants", {"participant": ref})
            self.say(f"  {n.company.name} attaches only {', '.join(n.company.participants)}")
        participants = [f"{ref}@{n.server}" for n in nodes for ref in n.company.participants]

        async def all_attached() -> bool:
            network = await self.admin(host, "GET", f"/v1/networks/{NETWORK}")
            return sum(p["attached"] for p in network["participants"]) == len(participants)

        await self.until(all_attached, "attaching every participant", nodes)
        await self.admin(host, "POST", f"/v1/networks/{NETWORK}/threads",
                         {"name": THREAD, "title": "Rollout status", "participants": participants})
        self.say(f"  {host.company.name} opens shared thread {THREAD} with {len(participants)} participants")
        for m in members:
            agent = self.client(m, m.company.agent[0])
            await self.until(lambda: _has_items(agent.shared_threads()),  # noqa: B023 - awaited in this turn
                             f"{THREAD} reaching {m.server}", nodes)

        self.say(f"\nThe conversation in {THREAD}, each post through its author's own node")
        by_company = {n.company: n for n in nodes}
        for company, handle, body in _story(nodes):
            n = by_company[company]
            posted = await self.client(n, handle).post(THREAD, body, network=NETWORK)

            # Keep the story's order: each post is sequenced before the next. The check is
            # awaited within this turn of the loop, so it sees this turn's variables.
            async def sequenced() -> bool:
                page = await self.client(n, handle).read(THREAD, network=NETWORK)  # noqa: B023
                return any(m.id == posted.id and m.status == "sequenced" for m in page.items)  # noqa: B023

            await self.until(sequenced, f"sequencing {handle}'s message", nodes)
            self.say(f"  {posted.sender} posted ({len(body)} characters) via {n.server}")

    async def _workspace(self, n: DemoNode) -> None:
        c = n.company
        principals = [("agents", c.agent)] + ([("people", c.lead)] if c.lead else [])
        for kind, (handle, display) in principals:
            made = await self.admin(n, "POST", f"/v1/{kind}", {"handle": handle, "display_name": display})
            n.tokens[handle] = made["token"]
        await self.admin(n, "POST", "/v1/threads", {"name": c.private_thread, "title": "Internal",
                                                   "members": c.participants})
        await self.client(n, c.agent[0]).post(c.private_thread, c.private_message)
        await self.admin(n, "POST", "/v1/knowledge", {"title": c.knowledge_title, "body": c.knowledge_body,
                                                     "readers": c.participants})
        self.say(f"  {c.name}: {', '.join(c.participants)}; private thread {c.private_thread}; "
                 f"knowledge \"{c.knowledge_title}\"")

    async def _join(self, host: DemoNode, m: DemoNode, nodes: list[DemoNode]) -> None:
        await self.admin(host, "POST", f"/v1/networks/{NETWORK}/invites", {"server": m.server, "endpoint": m.endpoint})

        async def pending() -> dict | None:
            items = (await self.admin(m, "GET", "/v1/invites"))["items"]
            return next((i for i in items if i["network"] == NETWORK and i["status"] == "pending"), None)

        invite = await self.until(pending, f"the invite reaching {m.server}", nodes)
        if invite["fingerprint"] != host.key_fingerprint:
            raise DemoFailed(f"{m.server} sees host key {invite['fingerprint']}, but {host.server}'s init "
                             f"printed {host.key_fingerprint}")
        await self.admin(m, "POST", f"/v1/invites/{invite['id']}/accept")

        async def member() -> bool:
            return (await self.admin(m, "GET", f"/v1/networks/{NETWORK}"))["members"].get(m.server) == "member"

        await self.until(member, f"{m.server} joining {NETWORK}", nodes)
        self.say(f"  {m.company.name} checks the host key fingerprint ({invite['fingerprint'][:23]}..., "
                 f"the one {host.server}'s init printed) and accepts")

    # --- what each side sees -----------------------------------------------------------------

    async def report(self, nodes: list[DemoNode]) -> int:
        expected = len(_story(nodes))

        async def read(n: DemoNode) -> list:
            return (await self.client(n, n.company.agent[0]).read(THREAD, network=NETWORK, limit=200)).items

        async def converged() -> bool:
            return all([sum(m.status == "sequenced" for m in await read(n)) == expected for n in nodes])

        await self.until(converged, "every node receiving every message", nodes)
        views = {}
        for n in nodes:
            network = await self.admin(n, "GET", f"/v1/networks/{NETWORK}")
            names = {p["id"]: p["display_name"] for p in network["participants"]}
            views[n.server] = [(m.seq, m.sender, names.get(m.sender, m.sender), m.body) for m in await read(n)]
        width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 220))
        print(f"\nShared thread {NETWORK}/{THREAD}, as each node stores it", flush=True)
        print("\n".join(_side_by_side(views, width)), flush=True)
        copies = {tuple((s, sender, body) for s, sender, _, body in view) for view in views.values()}
        if len(copies) != 1:
            raise DemoFailed("the nodes' copies of the shared thread differ")
        print(f"Identical on all {len(nodes)} nodes: {expected} messages, same seq, sender and body.", flush=True)
        await self._private(nodes)
        return _privacy_check(nodes, views)

    async def _private(self, nodes: list[DemoNode]) -> None:
        print("\nWhat each side holds privately (read by its own agent through its own node)", flush=True)
        for n in nodes:
            c = n.company
            agent = self.client(n, c.agent[0])
            thread = (await agent.read(c.private_thread)).items
            knowledge = (await agent.search_knowledge(c.knowledge_title)).items
            print(f"  {c.name} ({n.server})", flush=True)
            for m in thread:
                print(f"    private thread {c.private_thread}, {m.sender}: {m.body}")
            for k in knowledge:
                print(f"    knowledge \"{k.title}\": {k.body}")
            if not thread or not knowledge:
                raise DemoFailed(f"{c.name}'s agent cannot read its own private items")


def _privacy_check(nodes: list[DemoNode], views: dict[str, list[tuple]]) -> int:
    print("\nPrivacy check: each private item must be in its own node's files and nowhere else", flush=True)
    files = {n.server: _read_files(n.data_dir) for n in nodes}
    shared = "\n".join(body for view in views.values() for *_, body in view)
    failures = 0
    for n in nodes:
        c = n.company
        others = [o.server for o in nodes if o is not n]
        for what, text in (("private thread name", c.private_thread), ("private message", c.private_message),
                           ("knowledge title", c.knowledge_title), ("knowledge body", c.knowledge_body)):
            needle = text.encode()
            leaked = [s for s in others if needle in files[s]]
            problems = [f"found in {s}'s files" for s in leaked]
            problems += ["found in the shared thread"] if text in shared else []
            problems += [f"not found in {n.server}'s own files (the search would prove nothing)"] \
                if needle not in files[n.server] else []
            failures += bool(problems)
            verdict = "FAIL" if problems else "PASS"
            detail = "; ".join(problems) or f"only in {n.server}; absent from {', '.join(others)} and every shared copy"
            print(f"  {verdict}  {c.name} {what}: {detail}", flush=True)
    sizes = ", ".join(f"{s} {len(data) // 1024} KiB" for s, data in files.items())
    print(f"  (searched every file in each node's data directory, database, WAL and log: {sizes})", flush=True)
    return failures


def _read_files(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


def _side_by_side(views: dict[str, list[tuple]], width: int) -> list[str]:
    gap = " │ "
    col = (width - len(gap) * (len(views) - 1)) // len(views)
    columns = list(views.items())
    lines = [gap.join(f"{server}'s copy".ljust(col) for server, _ in columns).rstrip(),
             "─┼─".join("─" * col for _ in columns)]
    for i in range(max(len(view) for _, view in columns)):
        blocks: list[list[str]] = []
        for _, view in columns:
            if i >= len(view):
                blocks.append([])
                continue
            seq, sender, name, body = view[i]
            sender_line = sender if len(sender) <= col - 3 else sender[:col - 4] + "…"
            blocks.append([*textwrap.wrap(f"seq {seq}  {name}", col, subsequent_indent="   "), "   " + sender_line, *textwrap.wrap(body, col, initial_indent="   ", subsequent_indent="   ")])
        for row in range(max(len(b) for b in blocks)):
            lines.append(gap.join((b[row] if row < len(b) else "").ljust(col) for b in blocks).rstrip())
        lines.append(gap.join(" " * col for _ in blocks).rstrip())
    return lines


def _story(nodes: list[DemoNode]) -> tuple:
    return STORY + ((INITECH_LINE,) if len(nodes) > 2 else ())


async def _has_items(listing: Awaitable[Any]) -> bool:
    return bool((await listing).items)


def _stop_all(nodes: list[DemoNode], say: Callable[..., None]) -> None:
    """SIGTERM every node at once, then wait for each (SIGKILL after STOP_TIMEOUT_S)."""
    running = [(n, n.proc) for n in nodes if n.proc is not None]
    for _, proc in running:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for n, proc in running:
        try:
            code = proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        with contextlib.suppress(OSError):  # stdout may be gone (a closed pipe); stop the rest anyway
            say(f"Stopped {n.server} (pid {proc.pid}, exit {code})")


def _keep_instructions(nodes: list[DemoNode], root: Path) -> None:
    tokens = {n.server: {"admin_url": n.admin_url, "client_url": n.client_url, "admin_token": n.admin_token,
                         "tokens": n.tokens} for n in nodes}
    path = root / "tokens.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(tokens, f, indent=2)
    for n in nodes:  # where `agentnet status --data-dir DIR` and the other admin commands look
        fd = os.open(n.data_dir / "admin.token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(n.admin_token + "\n")
    print(f"\nThe nodes' data is kept in {root}. Start them again (one terminal each):")
    for n in nodes:
        print(f"  agentnet run --data-dir {n.data_dir}")
    print(f"Admin and agent tokens: {path} (mode 0600; each data dir also has admin.token).")
    print(f"Then, for example: agentnet network show {NETWORK} --data-dir {nodes[0].data_dir}")
    print(f"Node logs: {', '.join(str(n.log_path) for n in nodes)}")


def _say(*parts: Any) -> None:
    print(*parts, flush=True)
