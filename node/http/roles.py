"""Who may do what on the admin listener: roles of named operators.

The tokens `agentnet init` and `agentnet admin-token` write are the owner's: they may do
everything, including naming operators (`agentnet operator add NAME --role ROLE`), each with a
token of their own, so the audit log says which operator did what (`admin:NAME`). Every admin
route belongs to one area, decided here from its method and path in one table; a role may
read everything (except the owner's area) and change its own areas:

| role | may change |
|---|---|
| owner | everything, and operators |
| networks | networks, invites, consent, threads, attachments, network exports |
| workspace | people, agents, applications and their tokens, private threads, knowledge, webhooks |
| security | policy, the outbound guard and its flags, blocking peers, retention |
| auditor | nothing: reads only |
"""

from __future__ import annotations

from node.basics.errors import Forbidden

__all__ = ["ROLES", "NotPermitted", "area_of", "permits"]

ROLES: dict[str, frozenset[str]] = {
    "owner": frozenset({"owner", "networks", "workspace", "security", "read"}),
    "networks": frozenset({"networks", "read"}),
    "workspace": frozenset({"workspace", "read"}),
    "security": frozenset({"security", "read"}),
    "auditor": frozenset({"read"}),
}

# Path prefix -> area, the first that matches; a path in none is the owner's (safe by default).
_AREAS: tuple[tuple[str, str], ...] = (
    ("/v1/operators", "owner"),
    ("/v1/console", "read"),  # a console link for oneself: the console checks the role per action
    ("/v1/export/private", "owner"),
    ("/v1/networks", "networks"),
    ("/v1/invites", "networks"),
    ("/v1/consents", "networks"),
    ("/v1/agents", "workspace"),
    ("/v1/people", "workspace"),
    ("/v1/apps", "workspace"),
    ("/v1/web-sessions", "workspace"),
    ("/v1/threads", "workspace"),
    ("/v1/knowledge", "workspace"),
    ("/v1/webhooks", "workspace"),
    ("/v1/policy", "security"),
    ("/v1/guard", "security"),
    ("/v1/peers", "security"),
    ("/v1/retention", "security"),
)
# Read-only routes anyone may call (health probes, status, the audit log, alerts, lists).
_READ_METHODS = {"GET", "HEAD"}


class NotPermitted(Forbidden):
    code = "not_permitted"


def area_of(method: str, path: str) -> str:
    """The area of an admin route (`path` as declared, e.g. /v1/networks/{network})."""
    area = next((a for prefix, a in _AREAS if path == prefix or path.startswith(prefix + "/")), "owner")
    if area != "owner" and method in _READ_METHODS:
        return "read"
    if area == "owner" and method in _READ_METHODS and not any(path.startswith(p) for p, a in _AREAS if a == "owner"):
        return "read"  # /v1/status, /v1/audit, /v1/alerts, /v1/overview...
    return area


def permits(role: str, area: str) -> None:
    """Raise NotPermitted unless `role` may act in `area`."""
    if area not in ROLES.get(role, frozenset()):
        raise NotPermitted(f"an operator with the role {role} may not do this ({area}); ask an owner, or an operator "
                           f"whose role covers it")
