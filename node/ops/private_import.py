"""`agentnet import FILE`: restore a private export (`node.ops.private_file`) into a fresh node.

Like `agentnet restore`, it runs beside the node, not through it: the node must not be running,
and the command writes straight into the database its settings name. An admin API call on a
running node was the alternative; it is not taken because a running node has already started
what the import replaces underneath it (the guard's index of private content, the webhook
worker's cursors, live token checks and streams), and because a file of up to 128 MiB would
have to be raised past the admin listener's body limit. Offline, there is nothing to race.

Order, so that a refusal writes nothing: read the file (at most `MAX_PRIVATE_FILE_BYTES`),
validate all of it, check its server name against the node's settings, then in one
transaction check the database is fresh, write every row, and audit the import (`node.import`)
as the entry after the file's head. Any failure rolls the whole transaction back.

Fresh means what `agentnet init` leaves (`storage.transfer.PrivateTransfer.leftovers`): an
empty database, or one holding at most this company's row, admin tokens, the audit entries of
`init` and `admin-token`, and the node's own public keys, with every other table empty. The
file's company row replaces init's; init's admin tokens are kept beside the file's (so both
the old and the new `admin.token` work); init's audit entries give way to the file's chain,
and the import's own entry lists their hashes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from node.basics.config import NodeSettings
from node.basics.errors import ConfigError, NodeError
from node.ops.arguments import read_at_most
from node.ops.private_file import MAX_PRIVATE_FILE_BYTES, PrivateFile, describe_errors, to_rows
from storage.storage import Storage

__all__ = ["ImportResult", "NotFresh", "import_private", "read_private_file"]


class NotFresh(NodeError):
    """The target database holds more than `agentnet init` made: importing would mix two nodes."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    server_name: str
    counts: dict[str, int]
    audit_head: tuple[int, str]  # the file's head, now an entry of this node's chain
    replaced: int  # the fresh node's own audit entries the file's chain replaced


def read_private_file(path: Path) -> tuple[PrivateFile, str]:
    """The validated file and its SHA-256; ConfigError saying why it cannot be imported."""
    try:
        data = read_at_most(path, MAX_PRIVATE_FILE_BYTES)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
    if data is None:
        raise ConfigError(f"{path} is over {MAX_PRIVATE_FILE_BYTES} bytes: too large to be a private export")
    try:
        document = PrivateFile.model_validate_json(data)
    except ValidationError as e:
        raise ConfigError(f"{path} is not a private export this agentnet can import: {describe_errors(e)}") from None
    return document, hashlib.sha256(data).hexdigest()


async def import_private(document: PrivateFile, settings: NodeSettings, *, file_sha256: str,
                         now: int) -> ImportResult:
    server = document.company.server_name
    if server != settings.server_name:
        raise ConfigError(f"the file holds {server}'s private side; the node in {settings.data_dir} is "
                          f"{settings.server_name}")
    rows = to_rows(document)
    storage = await Storage.open(settings.resolved_database_url, auto_migrate=settings.auto_migrate)
    try:
        async with storage.transaction() as tx:
            leftovers = await tx.transfer.leftovers(server)
            if leftovers:
                raise NotFresh("the database is not a fresh node's (it holds " + "; ".join(leftovers) +
                               "); import only into a node just made by `agentnet init`, or an empty database")
            replaced = await tx.transfer.load(rows, now=now)
            await tx.audit.record(
                actor="agentnet import", action="node.import", target=server, now=now,
                detail={"file_sha256": file_sha256, "exported_at": document.exported_at,
                        "exported_by": document.exported_by,
                        "audit_head": f"{document.audit.head.seq}:{document.audit.head.hash}",
                        "replaced": [f"{r['seq']}:{r['action']}:{r['hash']}" for r in replaced]})
    finally:
        await storage.close()
    counts = {name: len(table) for name, table in rows.tables.items()}
    return ImportResult(server, counts, (document.audit.head.seq, document.audit.head.hash), len(replaced))
