"""First-run setup of a node's database, and recovery of a lost admin token."""

from __future__ import annotations

from node.workspace.tokens import issue_token
from storage.storage import Storage

__all__ = ["bootstrap_company", "reset_admin_token"]


async def bootstrap_company(storage: Storage, *, server_name: str, display_name: str, now: int) -> str:
    """Record the company and issue the first admin token; returns the token, shown once."""
    token = issue_token("adm")
    async with storage.transaction() as tx:
        await tx.company.create(server_name=server_name, display_name=display_name, now=now)
        await tx.admin_tokens.add(token_hash=token.digest, prefix=token.prefix, now=now)
        await tx.audit.record(actor="agentnet init", action="node.init", target=server_name, now=now,
                              detail={"token_prefix": token.prefix})
    return token.secret


async def reset_admin_token(storage: Storage, *, now: int) -> str:
    """Revoke every admin token and issue a new one (needs access to the node's files)."""
    token = issue_token("adm")
    async with storage.transaction() as tx:
        await tx.company.get()
        revoked = await tx.admin_tokens.revoke_all(now=now)
        await tx.admin_tokens.add(token_hash=token.digest, prefix=token.prefix, now=now)
        await tx.audit.record(actor="agentnet admin-token", action="admin.token_reset", target="admin",
                              now=now, detail={"token_prefix": token.prefix, "revoked": revoked})
    return token.secret
