"""The soak's three node processes: host H and members M1, M2 in one network hosted by H
(members only talk to the host), each directed federation link through its own fault proxy.

The network is set up through the admin APIs over direct links, as `bench.network` does for
every benchmark. Then the nodes are stopped, each node's `peers` row for the other end of
each link is pointed at that link's proxy (`bench.soak_db.repoint_peers`, an operator-level
change made with the node stopped), and the nodes are started again under
`bench.stepped_node`, whose wall clock the soak can step. A node still checks its peer's
certificate against the peer's server name, so the proxies stay out of TLS.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.fault_proxy import FaultProxy
from bench.network import BenchNetwork, eventually, open_network
from bench.nodes import BenchCluster, BenchNode, NodeFailed
from bench.soak_db import repoint_peers
from bench.stepped_node import write_offset

__all__ = ["HOST", "MEMBERS", "SoakTopology", "soak_topology"]

HOST, MEMBERS = "h.soak", ("m1.soak", "m2.soak")

Link = tuple[str, str]


@dataclass(frozen=True)
class SoakTopology:
    cluster: BenchCluster
    nodes: dict[str, BenchNode]
    network: BenchNetwork
    proxies: dict[Link, FaultProxy]
    authors: dict[str, list[str]]  # server -> agent handles

    @property
    def host(self) -> str:
        return HOST

    @property
    def members(self) -> tuple[str, ...]:
        return MEMBERS

    @property
    def links(self) -> list[Link]:
        return list(self.proxies)


@contextlib.asynccontextmanager
async def soak_topology(root: Path, backend: str, *, agents_per_node: int = 2) -> AsyncIterator[SoakTopology]:
    """Nodes running behind their proxies; on leaving, the nodes stop (PostgreSQL databases are
    dropped) and then the proxies close."""
    links = [(HOST, m) for m in MEMBERS] + [(m, HOST) for m in MEMBERS]
    async with contextlib.AsyncExitStack() as stack:
        cluster = await stack.enter_async_context(BenchCluster(root, backend))
        nodes = {n.server: n for n in await cluster.init_nodes(HOST, *MEMBERS)}
        proxies: dict[Link, FaultProxy] = {}
        for a, b in links:
            proxy = proxies[(a, b)] = FaultProxy(f"{a}->{b}", nodes[b].ports["federation"])
            await proxy.start()
            stack.push_async_callback(proxy.close)
        stack.push_async_callback(cluster.close)  # nodes stop before the proxies close
        for node in nodes.values():
            node.offset_file = root / f"{node.server}.offset"
            write_offset(node.offset_file, 0)
        authors = {server: [f"a{i}" for i in range(1, agents_per_node + 1)] for server in nodes}
        await cluster.start(*nodes.values())
        network = await open_network(nodes[HOST], [nodes[m] for m in MEMBERS], authors, name="soak-net",
                                     thread="soak-thread")
        for node in nodes.values():
            await node.stop()
        for server, node in nodes.items():
            await repoint_peers(node, {b: f"https://127.0.0.1:{proxies[(a, b)].port}" for a, b in links if a == server})
        await cluster.start(*nodes.values())
        for (a, b), proxy in proxies.items():
            endpoint = f"https://127.0.0.1:{proxy.port}"
            await eventually(functools.partial(_peer_endpoint_is, nodes[a], b, endpoint),
                             f"{a} names its proxy as {b}'s endpoint", timeout=30)

            async def used(proxy: FaultProxy = proxy) -> bool:  # each node pings its peers as it starts
                return sum(proxy.stats().connections.values()) > 0

            await eventually(used, f"{a} reached {b} through its proxy", timeout=30)
        yield SoakTopology(cluster, nodes, network, proxies, authors)


async def _peer_endpoint_is(node: BenchNode, server: str, endpoint: str) -> bool:
    try:
        peers = (await node.admin("GET", "/v1/peers"))["items"]
    except (aiohttp.ClientError, NodeFailed):
        return False
    return any(p["server"] == server and p["endpoint"] == endpoint and p["status"] == "accepted" for p in peers)
