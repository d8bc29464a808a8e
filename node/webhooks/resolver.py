"""Applying `node.webhooks.destinations` where names become addresses.

At registration the URL's host is resolved once and every address it gives is judged, for a
clear 422 early. That alone would not hold: a name can answer a public address then and
127.0.0.1 a second later (DNS rebinding). So deliveries go through a connector whose resolver
judges every address before aiohttp may connect to it: the addresses checked are the ones
connected to, with no second lookup in between. aiohttp connects to an IP literal without
asking the resolver, so the worker checks literals itself (`check_literal`) before each request.

A name that does not resolve at registration is accepted (a receiver may be set up after its
webhook); its deliveries fail, and are judged, when it does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from node.basics.limits import WebhookLimits
from node.webhooks.destinations import DestinationPolicy, IPAddress

__all__ = ["DestinationRefused", "Destinations", "GuardedResolver", "is_local_address"]

# glibc's resolver gives up after 5 s per try by default; registration waits no longer.
RESOLVE_TIMEOUT_S = 5.0


class DestinationRefused(OSError):
    """An address the policy refuses; an OSError so that aiohttp reports it as a failed
    connection (`ClientConnectorError.os_error`), never having connected."""


def is_local_address(ip: IPAddress) -> bool:
    """Whether `ip` is one of this machine's addresses: loopback and unspecified always are;
    otherwise the kernel lets a socket bind to an address only if it is local."""
    if ip.is_loopback or ip.is_unspecified:
        return True
    with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError:
            return False
    return True


class GuardedResolver(AbstractResolver):
    """Resolves through `inner`, then refuses the whole answer if any address in it is refused."""

    def __init__(self, inner: AbstractResolver, policy: DestinationPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if (reason := self._policy.refusal(host, result["host"], port)) is not None:
                raise DestinationRefused(reason)
        return results

    async def close(self) -> None:
        pass  # `inner` belongs to the Destinations that made this


class Destinations:
    """The policy and the resolver it is applied through, shared by registration and delivery."""

    def __init__(self, policy: DestinationPolicy, resolver: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._resolver = resolver  # None: the system's (getaddrinfo), made when first needed

    @classmethod
    def from_limits(cls, limits: WebhookLimits, resolver: AbstractResolver | None = None) -> Destinations:
        policy = DestinationPolicy.build(allowed_hosts=limits.allowed_hosts, own_listeners=limits.own_listeners,
                                         is_local=is_local_address)
        return cls(policy, resolver)

    async def check(self, host: str, port: int) -> None:
        """For registration: raise DestinationRefused if `host` is, or now resolves to, a
        refused address. A name that does not resolve (now, or within the timeout) passes."""
        if _literal(host):
            self.check_literal(host, port)
            return
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                results = await self._inner().resolve(host, port, socket.AF_UNSPEC)
        except OSError:  # no such name (yet), no answer in time (TimeoutError is an OSError)
            return
        for result in results:
            if (reason := self.policy.refusal(host, result["host"], port)) is not None:
                raise DestinationRefused(reason)

    def check_literal(self, host: str, port: int) -> None:
        """Raise DestinationRefused if `host` is an IP literal the policy refuses (aiohttp
        connects to literals without resolving them, so the resolver never sees them)."""
        if _literal(host) and (reason := self.policy.refusal(host, host.strip("[]"), port)) is not None:
            raise DestinationRefused(reason)

    def connector(self, **options) -> aiohttp.TCPConnector:
        """A connector that judges every address a name resolves to before connecting to it."""
        return aiohttp.TCPConnector(resolver=GuardedResolver(self._inner(), self.policy), **options)

    def _inner(self) -> AbstractResolver:
        if self._resolver is None:
            self._resolver = aiohttp.ThreadedResolver()  # needs the running loop, so made here
        return self._resolver


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
