"""One shared network for a benchmark, set up through the admin APIs the way operators do it:
agents on every node, the network on the host, an invite per member accepted on the member's
side, every agent attached, and one thread whose participants are all of them."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.nodes import BenchNode, NodeFailed

__all__ = ["BenchNetwork", "eventually", "open_network"]

NETWORK, THREAD = "bench-net", "bench-thread"


@dataclass(frozen=True, slots=True)
class BenchNetwork:
    name: str
    thread: str
    tokens: dict[tuple[str, str], str]  # (server, handle) -> agent token

    @property
    def messages_path(self) -> str:
        return f"/v1/networks/{self.name}/threads/{self.thread}/messages"


async def eventually(check: Callable[[], Awaitable[object]], what: str, *, timeout: float = 60.0,
                     interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise NodeFailed(f"timed out after {timeout}s waiting for: {what}")
        await asyncio.sleep(interval)


async def open_network(host: BenchNode, members: list[BenchNode], agents: dict[str, list[str]], *,
                       name: str = NETWORK, thread: str = THREAD) -> BenchNetwork:
    """`agents` maps a server to the agent handles to make there and attach."""
    nodes = [host, *members]
    tokens = {}
    for node in nodes:
        for handle in agents.get(node.server, []):
            tokens[(node.server, handle)] = await node.create_agent(handle)
    await host.admin("POST", "/v1/networks", {"name": name, "title": "Benchmark"})
    for member in members:
        await host.admin("POST", f"/v1/networks/{name}/invites", {"server": member.server, "endpoint": member.endpoint})

    async def invite_of(member: BenchNode) -> str | None:
        items = (await member.admin("GET", "/v1/invites"))["items"]
        found = [i["id"] for i in items if i["direction"] == "incoming" and i["network"] == name]
        return found[0] if found else None

    for member in members:
        invite = await eventually(functools.partial(invite_of, member), f"{member.server} received the invite")
        await member.admin("POST", f"/v1/invites/{invite}/accept")

    async def all_members() -> bool:
        network = await host.admin("GET", f"/v1/networks/{name}")
        return all(network["members"].get(m.server) == "member" for m in members)

    async def holds_its_admission(member: BenchNode) -> bool:
        """The member's own copy has caught up to its admission (it may attach agents now)."""
        network = await member.admin("GET", f"/v1/networks/{name}")
        return network["members"].get(member.server) == "member"

    await eventually(all_members, "every member admitted")
    for member in members:
        await eventually(functools.partial(holds_its_admission, member), f"{member.server} caught up to its admission")
    for node in nodes:
        for handle in agents.get(node.server, []):
            await node.admin("POST", f"/v1/networks/{name}/participants", {"participant": f"agent:{handle}"})
    expected = sum(len(v) for v in agents.values())

    async def all_attached() -> bool:
        network = await host.admin("GET", f"/v1/networks/{name}")
        return sum(p["attached"] for p in network["participants"]) == expected

    await eventually(all_attached, "every agent attached at the host")
    participants = [f"agent:{handle}@{server}" for (server, handle) in tokens]
    await host.admin("POST", f"/v1/networks/{name}/threads",
                     {"name": thread, "title": "Benchmark", "participants": participants})

    async def thread_everywhere() -> bool:
        for node in nodes:
            network = await node.admin("GET", f"/v1/networks/{name}")
            if network["head_seq"] != (await host.admin("GET", f"/v1/networks/{name}"))["head_seq"]:
                return False
        return True

    await eventually(thread_everywhere, "the thread reached every member")
    return BenchNetwork(name, thread, tokens)
