"""Whether another node may ask about a network at all: it is the network's host or a current
member in this node's copy. Checked first by every route that serves a network's content
beyond the chain itself (files, activity indicators)."""

from __future__ import annotations

from node.basics.errors import NotAPeer, UnknownNetwork
from storage.network.networks import NetworkRecord
from storage.network.transaction import NetworkTransaction

__all__ = ["network_of_member"]


async def network_of_member(tx: NetworkTransaction, name: str, origin: str) -> NetworkRecord:
    """The network `name`, if `origin` is its host or a current member; else 404 or 403."""
    network = await tx.networks.find(name)
    if network is None:
        raise UnknownNetwork(f"this node holds no network {name!r}")
    if origin != network.host and (await tx.networks.members(network.id)).get(origin) != "member":
        raise NotAPeer(f"{origin} is not a member of {name}")
    return network
