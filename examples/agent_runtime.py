"""What both example agents share: the command line, the event loop around `AgentClient`,
and the guards that keep two rule-based agents from talking forever.

An agent is three things (`AgentSpec`): when a message concerns it, what to look up in its
own company's knowledge, and how to phrase the answer from what it found. Everything else is
here:

- it answers only new messages in its one shared thread, never its own, each message once
  (a set of answered event ids, and an Idempotency-Key derived from the event id, so even a
  restarted agent's repeat is stored once);
- it gives at most `--max-replies` answers per run, then goes quiet and says so;
- it exits after `--exit-after-replies` answers if asked, and on SIGINT/SIGTERM, with 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from node.client import AgentClient, AgentNetError, EventOut, KnowledgeOut, PrincipalOut

__all__ = ["AgentSpec", "main", "open_items"]

TOKEN_ENV = "AGENTNET_TOKEN"
_OPEN_ITEM = re.compile(r"^\s*[-*]\s*\[ \]\s*(?P<text>\S.*?)\s*$", re.M)


@dataclass(frozen=True, slots=True)
class AgentSpec:
    name: str
    triggers: Callable[[str], bool]  # does this message ask something of this agent?
    query: str  # what to search in the agent's own knowledge
    compose: Callable[[list[KnowledgeOut], argparse.Namespace], str]  # the answer, from what was found


def open_items(body: str) -> list[str]:
    """Unchecked Markdown checklist items (`- [ ] ...`): how runbooks and plans mark what is open."""
    return [m.group("text") for m in _OPEN_ITEM.finditer(body)]


def parse_args(spec: AgentSpec, argv: Sequence[str] | None, defaults: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"{spec.name}: answers in one shared thread, by rules.")
    parser.add_argument("--url", default="http://127.0.0.1:8702", help="the node's client listener")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                        help=f"the agent's bearer token (default: ${TOKEN_ENV})")
    parser.add_argument("--network", default="acme-rollout")
    parser.add_argument("--thread", default="rollout-status")
    parser.add_argument("--company", default=defaults.get("company", ""), help="how the agent names its company")
    parser.add_argument("--max-replies", type=int, default=10, help="answers per run; then the agent goes quiet")
    parser.add_argument("--exit-after-replies", type=int, default=None, help="exit after this many answers")
    parser.add_argument("--state-file", type=Path, default=None,
                        help="keep the stream cursor here, to resume where the last run stopped")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error(f"a token is needed: --token or ${TOKEN_ENV}")
    return args


class Agent:
    def __init__(self, spec: AgentSpec, args: argparse.Namespace, client: AgentClient, me: PrincipalOut) -> None:
        self.spec = spec
        self.args = args
        self.client = client
        self.me = me
        self.replies = 0
        self._answered: set[str] = set()

    def concerns_me(self, event: EventOut) -> bool:
        return (event.scope == "shared" and event.type == "message.posted" and event.body is not None
                and event.network == self.args.network and event.thread == self.args.thread
                and event.sender != self.me.id and event.id not in self._answered
                and self.spec.triggers(event.body))

    async def handle(self, event: EventOut) -> None:
        if not self.concerns_me(event):
            return
        self._answered.add(event.id)
        if self.replies >= self.args.max_replies:
            say(f"reply budget of {self.args.max_replies} spent; not answering {event.id}")
            return
        try:
            found = await self.client.search_knowledge(self.spec.query, limit=5)
            reply = self.spec.compose(found.items, self.args)
            await self.client.post(self.args.thread, reply, network=self.args.network,
                                   idempotency_key=f"{self.me.handle}-reply-{event.id}")
        except AgentNetError as e:
            if e.status in (401, 403):
                raise  # the token no longer works: nothing this agent does will
            say(f"could not answer {event.id}: {e}")
            return
        self.replies += 1
        say(f"answered {event.id} from {event.sender}: {reply}")

    @property
    def done(self) -> bool:
        return self.args.exit_after_replies is not None and self.replies >= self.args.exit_after_replies


async def run(spec: AgentSpec, args: argparse.Namespace) -> int:
    async with AgentClient(args.url, args.token) as client:
        me = await client.whoami()
        agent = Agent(spec, args, client, me)
        cursor = await _start_cursor(client, args.state_file)
        say(f"ready: {me.display_name} ({me.id}) in {args.network}/{args.thread} from cursor {cursor}")
        async with client.stream(cursor) as events:
            async for event in events:
                await agent.handle(event)
                if args.state_file is not None and events.cursor is not None:
                    args.state_file.write_text(events.cursor)
                if agent.done:
                    say(f"exiting after {agent.replies} replies")
                    return 0
    return 0


async def _start_cursor(client: AgentClient, state_file: Path | None) -> str:
    """The saved cursor if there is one the node can still serve, else "now"."""
    if state_file is not None and state_file.exists():
        saved = state_file.read_text().strip()
        try:
            await client.events(saved, limit=1)
            return saved
        except AgentNetError as e:
            if e.status != 410:
                raise
            say(f"saved cursor {saved} cannot be served ({e.code}); starting from now")
    return (await client.events()).next_cursor


async def _until_signalled(spec: AgentSpec, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    work = asyncio.create_task(run(spec, args))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not work.done():
        say("stopping")
        work.cancel()
    try:
        return await work
    except asyncio.CancelledError:
        return 0


def main(spec: AgentSpec, argv: Sequence[str] | None = None, **defaults: str) -> int:
    args = parse_args(spec, argv, defaults)
    try:
        return asyncio.run(_until_signalled(spec, args))
    except AgentNetError as e:
        print(f"{spec.name}: {e}", file=sys.stderr)
        return 1


def say(line: str) -> None:
    print(line, flush=True)
