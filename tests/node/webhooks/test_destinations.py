"""The rule for where a webhook may point, with plain calls: which addresses are refused and
in what words, what the allow list lets through, and that the node's own listeners are refused
whatever the allow list says."""

from __future__ import annotations

import ipaddress

import pytest

from node.webhooks.destinations import DestinationPolicy, parse_allowed_host, special_kind

OWN = (("admin", 8701), ("client", 8702), ("federation", 8443))


def policy(*allowed: str, local: tuple[str, ...] = ()) -> DestinationPolicy:
    """The rule with `local` (and loopback) as this machine's addresses."""
    return DestinationPolicy.build(
        allowed_hosts=allowed, own_listeners=OWN,
        is_local=lambda ip: ip.is_loopback or ip.is_unspecified or str(ip) in local)


REFUSED = [
    ("127.0.0.1", "a loopback address"), ("127.8.9.10", "a loopback address"), ("::1", "a loopback address"),
    ("::ffff:127.0.0.1", "a loopback address"),
    ("169.254.169.254", "a link-local address"), ("fe80::1", "a link-local address"),
    ("10.1.2.3", "a private address"), ("172.16.0.1", "a private address"), ("192.168.1.10", "a private address"),
    ("fd00::1", "a private address"), ("fc00::1", "a private address"),
    ("0.0.0.0", "an unspecified address"), ("::", "an unspecified address"),
    ("224.0.0.1", "a multicast address"), ("239.1.2.3", "a multicast address"), ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"), ("255.255.255.255", "a reserved address"),
    ("100.64.0.1", "not a public address"),  # carrier-grade NAT, RFC 6598
    ("2002:7f00:1::", "a 6to4 address wrapping a loopback address"),
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_each_kind_of_non_public_address_is_refused_with_its_kind_and_what_to_do(address, kind):
    assert special_kind(ipaddress.ip_address(address)) == kind
    reason = policy().refusal(address, address, 443)
    assert reason == (f"{address} is {kind}; webhooks go to public receivers: use one, or ask the operator to "
                      "add the host to webhook_allowed_hosts")
    named = policy().refusal("hooks.example", address, 443)
    assert named.startswith(f"hooks.example resolves to {address}, {kind};")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert special_kind(ipaddress.ip_address(address)) is None
    assert policy().refusal("hooks.example", address, 443) is None


def test_the_allow_list_lets_named_hosts_addresses_and_blocks_through_and_nothing_else():
    rule = policy("hooks.corp.example.", "127.0.0.1", "10.20.0.0/16", "fd00:1::/32")
    assert rule.refusal("HOOKS.corp.example", "10.9.9.9", 443) is None  # a name: any address it gives
    assert rule.refusal("127.0.0.1", "127.0.0.1", 9000) is None
    assert rule.refusal("::ffff:127.0.0.1", "::ffff:127.0.0.1", 9000) is None  # the same address
    assert rule.refusal("other.corp.example", "10.20.3.4", 443) is None
    assert rule.refusal("v6.corp.example", "fd00:1::5", 443) is None
    assert "a loopback address" in rule.refusal("127.0.0.2", "127.0.0.2", 9000)
    assert "a private address" in rule.refusal("other.corp.example", "10.21.0.1", 443)
    assert "a private address" in rule.refusal("v6.corp.example", "fd00:2::5", 443)
    assert "link-local" in rule.refusal("metadata.example", "169.254.169.254", 80)


@pytest.mark.parametrize(("name", "port"), OWN)
def test_the_nodes_own_listeners_are_refused_on_its_own_addresses_even_when_allowed(name, port):
    rule = policy("127.0.0.1", "localhost", "203.0.113.0/24", local=("203.0.113.7",))
    assert rule.refusal("127.0.0.1", "127.0.0.1", port) == (
        f"127.0.0.1:{port} is this node's own {name} listener; a webhook never points at the node itself")
    assert rule.refusal("localhost", "127.0.0.1", port) == (
        f"localhost:{port} resolves to 127.0.0.1, and port {port} there is this node's own {name} listener; "
        "a webhook never points at the node itself")
    assert "own" in rule.refusal("0.0.0.0", "0.0.0.0", port)
    assert "own" in rule.refusal("node.example", "203.0.113.7", port)  # the machine's public address
    assert rule.refusal("peer.example", "203.0.113.8", port) is None  # another machine, same port number
    assert rule.refusal("127.0.0.1", "127.0.0.1", port + 1000) is None


@pytest.mark.parametrize(("entry", "parsed"), [
    ("10.0.0.0/8", ipaddress.ip_network("10.0.0.0/8")), ("127.0.0.1", ipaddress.ip_network("127.0.0.1/32")),
    ("FD00::/8", ipaddress.ip_network("fd00::/8")), ("Hooks.Corp.example.", "hooks.corp.example"),
    ("receiver", "receiver"), ("_hooks.corp", "_hooks.corp"),
])
def test_allow_list_entries(entry, parsed):
    assert parse_allowed_host(entry) == parsed


@pytest.mark.parametrize(("entry", "says"), [
    ("10.0.0.1/8", "has host bits set"), ("10.0.0.0/33", "not an address or CIDR block"),
    ("300.1.2.3", "not an address or CIDR block"), ("", "empty"), ("hooks corp", "neither"),
    ("https://hooks.example", "not an address or CIDR block"), ("a" * 64 + ".example", "neither"),
])
def test_bad_allow_list_entries_say_what_is_wrong(entry, says):
    with pytest.raises(ValueError, match=says):
        parse_allowed_host(entry)
