"""`GET /v1/export/private`: the company's private side as one portable file
(`node.ops.private_file`), for `agentnet export --private`.

Everything is read in one snapshot, so the file is consistent: no message names a thread it
lacks. The export is then audited (`node.export_private`) in a transaction of its own, so the
file's audit log ends just before the entry that records it.

Not in the file: networks and their shared history (`agentnet export NETWORK`, and the
partners' copies), the signing key and TLS files (the data dir: `agentnet backup`), the
outbound guard's flags (they point at shared events), idempotency keys and the client feed
(short-lived), and each webhook's delivery record (it restarts on the new node).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from node.basics.clock import Clock
from node.basics.errors import Conflict, PayloadTooLarge
from node.http.auth import current_admin
from node.http.openapi import Endpoint
from node.ops import private_file as pf
from storage.storage import Storage

__all__ = ["PrivateExporter", "private_export_endpoints"]

# What each table may hold to fit the file (the same caps the import applies).
_CAPS = {"principals": pf.MAX_PRINCIPALS, "principal_tokens": pf.MAX_TOKENS, "admin_tokens": pf.MAX_TOKENS,
         "private_threads": pf.MAX_THREADS, "private_messages": pf.MAX_MESSAGES, "knowledge_items": pf.MAX_KNOWLEDGE,
         "webhooks": pf.MAX_WEBHOOKS, "policies": pf.MAX_POLICIES, "audit_log": pf.MAX_AUDIT_ENTRIES}


class PrivateExporter:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    async def export(self, *, actor: str) -> bytes:
        """The file as JSON: made once, to measure it and to send it."""
        now = self._clock.now_ms()
        async with self._storage.read_transaction() as tx:
            await tx.transfer.hold_snapshot()
            counts = await tx.transfer.counts()
            over = [f"{name} ({counts[name]} rows, at most {cap})" for name, cap in _CAPS.items() if counts[name] > cap]
            if over:
                raise PayloadTooLarge(f"too much for one private export: {', '.join(over)}")
            rows = await tx.transfer.read()
        try:
            document = pf.from_rows(rows, exported_at=now, exported_by=actor)
        except ValidationError as e:  # the data is not what the node writes: say where, export nothing
            raise Conflict(f"this node's private data does not fit the export format: {pf.describe_errors(e)}") \
                from None
        body = document.model_dump_json().encode()
        size = len(body)
        if size > pf.MAX_PRIVATE_FILE_BYTES:
            raise PayloadTooLarge(f"the private export would be {size} bytes; a file holds at most "
                                  f"{pf.MAX_PRIVATE_FILE_BYTES} (move this node with agentnet backup and restore)")
        async with self._storage.transaction() as tx:
            await tx.audit.record(actor=actor, action="node.export_private", target=document.company.server_name,
                                  now=now, detail={"audit_head": f"{rows.audit_head[0]}:{rows.audit_head[1]}",
                                                   "bytes": size, **{k: v for k, v in counts.items() if v}})
        return body


def private_export_endpoints(exporter: PrivateExporter) -> list[Endpoint]:
    async def export(request: web.Request) -> web.Response:
        return web.Response(body=await exporter.export(actor=current_admin(request)), content_type="application/json")

    return [
        Endpoint("GET", "/v1/export/private", export,
                 "The company's private side as one portable file (agentnet-private/1), for `agentnet import`; "
                 "audited as node.export_private",
                 response=pf.PrivateFile, errors=(409, 413)),
    ]
