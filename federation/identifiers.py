"""Names that appear inside signed events: servers, participants, networks, threads.

Each name has exactly one accepted spelling (lowercase, no leading zeros, no trailing dot),
because the same server written two ways would hash and sign differently and split one
company into two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from federation.errors import InvalidIdentifier

__all__ = [
    "ATTACHABLE_KINDS",
    "MAX_SERVER_NAME_CHARS",
    "PARTICIPANT_KINDS",
    "ParticipantId",
    "validate_network_name",
    "validate_server_name",
    "validate_thread_name",
]

# RFC 1035 caps a full DNS name at 253 characters; 255 leaves room for nothing more than a
# short ":port", which is checked separately.
MAX_SERVER_NAME_CHARS = 255
_MAX_DNS_NAME_CHARS = 253  # RFC 1035 section 2.3.4
# `operator` stands for a company's operators acting through the admin API: they create,
# invite, attach and close, but are never attached and never post.
PARTICIPANT_KINDS = frozenset({"agent", "person", "operator"})
ATTACHABLE_KINDS = frozenset({"agent", "person"})

_DNS_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # RFC 1123 labels, 1-63
_DECIMAL_RE = re.compile(r"0|[1-9][0-9]*")
# 64 characters fits any reasonable login or agent name and keeps ids short in every row.
_LOCAL_RE = re.compile(r"[a-z0-9._-]{1,64}")
# A slug up to 64 characters: readable in URLs and logs, same rule for networks and threads.
_SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def validate_server_name(name: object) -> str:
    """Return ``name`` if it is ``host[:port]`` with a DNS name or IPv4 host."""
    if not isinstance(name, str) or not name:
        raise InvalidIdentifier("server name must be a non-empty string")
    if len(name) > MAX_SERVER_NAME_CHARS:
        raise InvalidIdentifier(f"server name longer than {MAX_SERVER_NAME_CHARS} characters")
    host, sep, port = name.partition(":")
    if sep:
        if not _DECIMAL_RE.fullmatch(port) or not 1 <= int(port) <= 65535:
            raise InvalidIdentifier(f"invalid port in server name {name!r}")
    labels = host.split(".")
    if all(label.isdigit() for label in labels if label):
        _check_ipv4(host, name)
    elif len(host) > _MAX_DNS_NAME_CHARS or not all(_DNS_LABEL_RE.fullmatch(x) for x in labels):
        raise InvalidIdentifier(f"invalid server name {name!r} (lowercase DNS name or IPv4)")
    return name


def _check_ipv4(host: str, name: str) -> None:
    octets = host.split(".")
    if len(octets) != 4 or not all(
        _DECIMAL_RE.fullmatch(o) and int(o) <= 255 for o in octets
    ):
        raise InvalidIdentifier(f"invalid IPv4 address in server name {name!r}")


def validate_network_name(name: object) -> str:
    return _validate_slug(name, "network")


def validate_thread_name(name: object) -> str:
    return _validate_slug(name, "thread")


def _validate_slug(name: object, what: str) -> str:
    if not isinstance(name, str) or not _SLUG_RE.fullmatch(name):
        raise InvalidIdentifier(f"invalid {what} name (lowercase letters, digits, '-', max 64)")
    return name


@dataclass(frozen=True, slots=True)
class ParticipantId:
    """``kind:local@server``: the home node is part of the name, so it cannot be spoofed."""

    kind: str
    local: str
    server: str

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in PARTICIPANT_KINDS:
            raise InvalidIdentifier(f"participant kind must be one of {sorted(PARTICIPANT_KINDS)}")
        if not isinstance(self.local, str) or not _LOCAL_RE.fullmatch(self.local):
            raise InvalidIdentifier("participant local part must match [a-z0-9._-]{1,64}")
        validate_server_name(self.server)

    @classmethod
    def parse(cls, text: object) -> ParticipantId:
        if not isinstance(text, str):
            raise InvalidIdentifier("participant id must be a string")
        kind, colon, rest = text.partition(":")
        local, at, server = rest.partition("@")
        if not colon or not at:
            raise InvalidIdentifier(f"participant id {text[:80]!r} is not kind:local@server")
        return cls(kind, local, server)

    def __str__(self) -> str:
        return f"{self.kind}:{self.local}@{self.server}"

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"
