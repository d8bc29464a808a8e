"""Where a webhook may point: public receivers, never this node or the network around it.

A webhook URL is chosen by any principal with the `webhooks` scope, and the node POSTs to it
from inside the company's network. Left open, that lets an agent make the node call its own
admin listener, a cloud metadata service (`169.254.169.254`), a database port on loopback or
any internal host, and read the answer back in `last_error`. So, by default, an address a
webhook connects to must be public: not loopback, link-local, private (RFC 1918, fc00::/7),
unspecified, multicast, reserved or otherwise special-purpose (`ipaddress`'s registry). The
operator names internal receivers in `webhook_allowed_hosts` (host names, addresses, CIDR
blocks). The node's own listeners stay refused even then, on any address of this machine:
nothing a webhook could want is there, and they are what an attacker would aim at first.

This module is the rule, with no I/O: it judges one address (where the URL's host led) and
says why it is refused. Whether an address is this machine's own is asked of a function it is
given. `node.webhooks.resolver` applies the rule where the node resolves names: when a webhook
is registered, and again inside the resolver every delivery connects through, since a name
may point elsewhere by then (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["ALLOW_LIST_SETTING", "DestinationPolicy", "IPAddress", "Network", "parse_allowed_host", "special_kind"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_LIST_SETTING = "webhook_allowed_hosts"

# RFC 1123 labels; underscores too, since internal zones use them (`_hooks.corp`).
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


def parse_allowed_host(entry: str) -> Network | str:
    """One allow-list entry: an address or CIDR block (a network), or a host name (lowercase,
    no trailing dot). ValueError says what is wrong with it."""
    text = entry.strip().lower().rstrip(".")
    if not text:
        raise ValueError("an entry is empty")
    try:
        return ipaddress.ip_network(text)  # strict: 10.0.0.1/8 is a mistake, not 10.0.0.0/8
    except ValueError as e:
        if "/" in text or ":" in text or re.fullmatch(r"[0-9.]+", text):
            raise ValueError(f"{entry!r} is not an address or CIDR block: {e}") from None
    if not _HOST_NAME.fullmatch(text):
        raise ValueError(f"{entry!r} is neither a host name, an address nor a CIDR block")
    return text


def special_kind(ip: IPAddress) -> str | None:
    """What makes `ip` no public receiver's address, in words for an error; None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    for kind, test in (("an unspecified address", ip.is_unspecified), ("a loopback address", ip.is_loopback),
                       ("a link-local address", ip.is_link_local), ("a multicast address", ip.is_multicast),
                       ("a reserved address", ip.is_reserved), ("a private address", ip.is_private),
                       ("not a public address", not ip.is_global)):
        if test:
            return kind
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        inner = special_kind(ip.sixtofour)  # 2002:7f00:1:: wraps 127.0.0.1
        if inner is not None:
            return f"a 6to4 address wrapping {inner}"
    return None


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    is_local: Callable[[IPAddress], bool]  # is this address one of this machine's own?
    allowed_networks: tuple[Network, ...] = ()
    allowed_names: frozenset[str] = frozenset()
    own_listeners: tuple[tuple[str, int], ...] = ()  # (name, port) of the node's listeners

    @classmethod
    def build(cls, *, allowed_hosts: Iterable[str], own_listeners: Iterable[tuple[str, int]],
              is_local: Callable[[IPAddress], bool]) -> DestinationPolicy:
        entries = [parse_allowed_host(entry) for entry in allowed_hosts]
        return cls(is_local=is_local, allowed_networks=tuple(e for e in entries if not isinstance(e, str)),
                   allowed_names=frozenset(e for e in entries if isinstance(e, str)),
                   own_listeners=tuple(own_listeners))

    def refusal(self, host: str, address: str, port: int) -> str | None:
        """Why the node must not connect to `address`:`port`, where the URL's `host` led
        (the address itself for an IP literal); None if it may. The reason names what to do."""
        ip = ipaddress.ip_address(address)
        plain = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
        listener = next((name for name, own in self.own_listeners if own == port), None)
        if listener is not None and self.is_local(plain):
            return (f"{_led(host, address, port)} is this node's own {listener} listener; a webhook never "
                    "points at the node itself")
        if host.lower().rstrip(".") in self.allowed_names or any(plain in net for net in self.allowed_networks):
            return None
        kind = special_kind(ip)
        if kind is None:
            return None
        where = f"{address} is" if _same(host, address) else f"{host} resolves to {address},"
        return (f"{where} {kind}; webhooks go to public receivers: use one, or ask the operator to add the "
                f"host to {ALLOW_LIST_SETTING}")


def _same(host: str, address: str) -> bool:
    return host.strip("[]").lower() == address.lower()


def _led(host: str, address: str, port: int) -> str:
    if _same(host, address):
        return f"{address}:{port}"
    return f"{host}:{port} resolves to {address}, and port {port} there"
