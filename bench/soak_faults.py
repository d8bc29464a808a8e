"""The soak's faults: a plan drawn from a seed, and the runner that applies and heals them.

Each cycle breaks something for a few seconds, heals it, and leaves a short gap in which
nothing is broken. Its main fault's kind is dealt like a card from a shuffled deck, so
cycles 1-7, 8-14, ... each hold every kind once. In some cycles (`overlap`, 30% by default) a
second fault of the other family runs at the same time, with its own length: a link fault
beside a node fault, or the other way round, since real faults do not take turns (a clock
that jumps while the link is down is what delays and reorders a member's posts). Which node
or link, which direction, how long and how far are all drawn from one seeded generator, so a
seed names a run. Holds are 1-4 s and gaps 1-2 s unless told otherwise.

| kind | what |
|---|---|
| `drop` | one directed link, or both between the host and a member: every connection reset |
| `blackhole` | the same links: every connection held, nothing forwarded |
| `delay` | the same links: 50-800 ms added each way |
| `kill` | kill -9 of a node (the host too), restarted after the hold |
| `pause` | SIGSTOP of a node, SIGCONT after the hold |
| `clock` | a node's wall clock steps +157 s or -30 s, and back (a signed request may be 5 min off) |
| `skew` | a node's wall clock steps 6 min either way, and back: its peers answer 401 `clock_skew` |

`Conditions` is what is broken right now, kept by the runner and read by the monitor, which
needs to know when a link counts as healed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.fault_proxy import FaultProxy, Mode
from bench.nodes import BenchNode
from bench.stepped_node import write_offset
from federation.request_signing import MAX_SKEW_MS

__all__ = ["KINDS", "Conditions", "Cycle", "Fault", "FaultRunner", "Window", "plan"]

LINK_KINDS = ("drop", "blackhole", "delay")
NODE_KINDS = ("kill", "pause", "clock", "skew")
KINDS = LINK_KINDS + NODE_KINDS
# The example steps: far enough to matter, within what a signed request may be off.
CLOCK_STEPS_MS = (157_000, -30_000)
# A minute past what a receiver accepts (federation.request_signing.MAX_SKEW_MS).
SKEW_STEP_MS = MAX_SKEW_MS + 60_000

Link = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Fault:
    cycle: int
    kind: str
    hold_s: float
    nodes: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    delay_s: float = 0.0
    step_ms: int = 0

    def describe(self) -> str:
        where = ", ".join(self.nodes) or ", ".join(f"{a}->{b}" for a, b in self.links)
        extra = {"delay": f" {self.delay_s * 1000:.0f} ms", "clock": f" {self.step_ms / 1000:+.0f} s",
                 "skew": f" {self.step_ms / 1000:+.0f} s"}.get(self.kind, "")
        return f"{self.kind}{extra} {where} for {self.hold_s:.1f} s"


@dataclass(frozen=True, slots=True)
class Cycle:
    number: int
    faults: tuple[Fault, ...]  # run at the same time, each healed after its own hold
    gap_s: float

    def describe(self) -> str:
        return " + ".join(f.describe() for f in self.faults)


def plan(seed: int, cycles: int, *, host: str, members: tuple[str, ...], kinds: tuple[str, ...] = KINDS,
         hold_s: tuple[float, float] = (1.0, 4.0), gap_s: tuple[float, float] = (1.0, 2.0),
         overlap: float = 0.3) -> list[Cycle]:
    rng = random.Random(seed)
    deck: list[str] = []
    planned = []
    for number in range(cycles):
        if not deck:
            deck = list(kinds)
            rng.shuffle(deck)
        kind = deck.pop()
        faults = [_fault(rng, number, kind, host, members, hold_s)]
        others = [k for k in kinds if (k in LINK_KINDS) != (kind in LINK_KINDS)]
        if others and rng.random() < overlap:
            faults.append(_fault(rng, number, rng.choice(others), host, members, hold_s))
        planned.append(Cycle(number, tuple(faults), rng.uniform(*gap_s)))
    return planned


def _fault(rng: random.Random, cycle: int, kind: str, host: str, members: tuple[str, ...],
           hold_s: tuple[float, float]) -> Fault:
    hold = rng.uniform(*hold_s)
    if kind in LINK_KINDS:
        member = rng.choice(members)
        links = rng.choice([((host, member),), ((member, host),), ((host, member), (member, host))])
        delay = rng.uniform(0.05, 0.8) if kind == "delay" else 0.0
        return Fault(cycle, kind, hold, links=links, delay_s=delay)
    node = (rng.choice((host, *members)),)
    if kind in ("kill", "pause"):
        return Fault(cycle, kind, hold, nodes=node)
    if kind == "clock":
        return Fault(cycle, kind, hold, nodes=node, step_ms=rng.choice(CLOCK_STEPS_MS))
    if kind == "skew":
        return Fault(cycle, kind, hold, nodes=node, step_ms=rng.choice((1, -1)) * SKEW_STEP_MS)
    raise ValueError(f"unknown fault kind {kind!r}")


@dataclass(frozen=True, slots=True)
class Window:
    """One fault from the moment it was applied to the moment it was healed (monotonic)."""

    fault: Fault
    start: float
    end: float
    extra: dict = field(default_factory=dict)


@dataclass
class Conditions:
    offsets_ms: dict[str, int]
    proxies: dict[Link, FaultProxy]
    down: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)

    def node_up(self, server: str) -> bool:
        return server not in self.down and server not in self.paused

    def link_healed(self, a: str, b: str) -> bool:
        """A's requests to B get through and are answered at once: both run, the proxy passes
        (a delayed link is not healed: a batch in flight on it is slow, not stalled) and their
        clocks agree closely enough for a signed request."""
        return (self.node_up(a) and self.node_up(b) and self.proxies[(a, b)].mode is Mode.PASS
                and abs(self.offsets_ms[a] - self.offsets_ms[b]) <= MAX_SKEW_MS)


Snapshot = Callable[[], Awaitable[dict]]


class FaultRunner:
    def __init__(self, nodes: dict[str, BenchNode], conditions: Conditions, *, snapshot: Snapshot) -> None:
        """`snapshot()` is taken as a skew begins and ends (the receivers' error answers)."""
        self._nodes = nodes
        self._conditions = conditions
        self._snapshot = snapshot
        self.windows: list[Window] = []

    async def run_cycle(self, cycle: Cycle) -> float:
        """Every fault of the cycle at once; returns when the last was healed (monotonic). The
        gap is the caller's."""
        async with asyncio.TaskGroup() as group:  # one failing cancels the other; the caller heals
            runs = [group.create_task(self.run(f)) for f in cycle.faults]
        return max(run.result().end for run in runs)

    async def run(self, fault: Fault) -> Window:
        """Apply, hold, heal; returns once healed."""
        kind, c = fault.kind, self._conditions
        extra: dict = {}
        start = time.monotonic()
        if kind in ("drop", "blackhole", "delay"):
            for link in fault.links:
                c.proxies[link].set_mode(Mode(kind), delay_s=fault.delay_s)
            await asyncio.sleep(fault.hold_s)
            for link in fault.links:
                c.proxies[link].set_mode(Mode.PASS)
        elif kind == "kill":
            node = self._nodes[fault.nodes[0]]
            c.down.add(node.server)
            await node.kill()
            await asyncio.sleep(fault.hold_s)
            await node.start()
            c.down.discard(node.server)
        elif kind == "pause":
            node = self._nodes[fault.nodes[0]]
            c.paused.add(node.server)
            node.pause()
            await asyncio.sleep(fault.hold_s)
            node.resume()
            c.paused.discard(node.server)
        else:  # clock, skew
            server = fault.nodes[0]
            if kind == "skew":
                extra["before"] = await self._snapshot()
            self._step(server, fault.step_ms)
            await asyncio.sleep(fault.hold_s)
            self._step(server, 0)
            if kind == "skew":
                extra["after"] = await self._snapshot()
        window = Window(fault, start, time.monotonic(), extra)
        self.windows.append(window)
        return window

    def _step(self, server: str, offset_ms: int) -> None:
        offset_file = self._nodes[server].offset_file
        assert offset_file is not None
        write_offset(offset_file, offset_ms)
        self._conditions.offsets_ms[server] = offset_ms

    async def heal_everything(self) -> None:
        """Whatever a failed run left broken: proxies pass, clocks agree, every node runs."""
        for proxy in self._conditions.proxies.values():
            proxy.set_mode(Mode.PASS)
        for server, node in self._nodes.items():
            self._step(server, 0)
            if server in self._conditions.paused:
                node.resume()
                self._conditions.paused.discard(server)
            if node.proc is None or node.proc.poll() is not None:
                await node.start()
                self._conditions.down.discard(server)
