"""Naming the node's people and agents: `kind:handle@server`, and back from a reference."""

from __future__ import annotations

from collections.abc import Iterable

from node.basics.errors import InvalidRequest
from node.workspace.models import PrincipalOut
from storage.private.principals import Principal
from storage.storage import Transaction

__all__ = ["Directory"]


class Directory:
    def __init__(self, server_name: str) -> None:
        self.server_name = server_name

    def participant_id(self, principal: Principal) -> str:
        return f"{principal.kind}:{principal.handle}@{self.server_name}"

    def describe(self, principal: Principal) -> PrincipalOut:
        return PrincipalOut(
            id=self.participant_id(principal),
            kind=principal.kind,
            handle=principal.handle,
            display_name=principal.display_name,
            disabled=principal.disabled,
            created_at=principal.created_at,
        )

    async def resolve(self, tx: Transaction, refs: Iterable[str], *, field: str) -> list[Principal]:
        """Look up `agent:ops` / `person:alex@this.server` references; all must exist here."""
        found = []
        for ref in dict.fromkeys(refs):
            local, _, server = ref.partition("@")
            if server and server != self.server_name:
                raise InvalidRequest(
                    f"{ref} does not belong to this node ({self.server_name})",
                    [{"field": field, "location": "body", "message": "not a principal of this node"}],
                )
            kind, _, handle = local.partition(":")
            if kind not in ("agent", "person"):  # an application is never a participant or member
                raise InvalidRequest(f"{ref} is not an agent or a person",
                                     [{"field": field, "location": "body", "message": "agent:HANDLE or person:HANDLE"}])
            found.append(await tx.principals.get(kind, handle))
        return found

    async def ids_to_names(self, tx: Transaction, ids: Iterable[int]) -> dict[int, str]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        return {p.id: self.participant_id(p) for p in await tx.principals.by_ids(wanted)}
