"""Files in shared threads, for this node's people and agents: upload, attach to a post, download.

An upload is kept for its uploader until a post attaches it (a day at most: housekeeping removes
the rest). Posting runs each file through the outbound guard before anything is signed, and the
post signs what identifies it (`federation.event_content.Attachment`). A download shows the
caller a file of a message it may read: this node's own, or a copy fetched from the author's
node or the host and checked against the signed attachment (`node.federation.files`).
"""

from __future__ import annotations

from dataclasses import dataclass

from federation.event_content import CONTENT_TYPE_RE, FILE_NAME_RE, MAX_FILE_NAME_CHARS, Attachment
from node.basics.clock import Clock
from node.basics.errors import Conflict, InvalidRequest, NotFoundError
from node.federation.files import FileExchange, find_attachment, new_file_id, sha256_b64
from node.guard.outbound import OutboundGuard, Verdict
from node.networks.models import FileOut
from storage.network.transaction import NetworkTransaction
from storage.storage import Storage

__all__ = ["UPLOAD_TTL_MS", "PreparedFile", "SharedFileService", "thread_network_id"]

# How long an upload waits for a post to attach it, and how many may wait per uploader: a
# message takes 8, so 32 is room for a few posts in preparation, and bounds what one token can
# make the node keep (32 x 25 MiB) without posting anything.
UPLOAD_TTL_MS = 24 * 3600 * 1000
MAX_WAITING_UPLOADS = 32


@dataclass(frozen=True, slots=True)
class PreparedFile:
    id: str
    attachment: Attachment
    verdict: Verdict


async def thread_network_id(tx: NetworkTransaction, me: str, network: str, thread: str) -> int:
    """The network's row id, if `me` takes part in the thread; otherwise it does not exist."""
    network_id = await tx.networks.network_id_if_participant(network, thread, me)  # None: also held back
    if network_id is None:
        raise NotFoundError(f"shared thread {network}/{thread} not found")
    return network_id


def check_upload(name: str, media_type: str) -> None:
    """422 for what the protocol would refuse to sign, before the bytes are kept."""
    problems = []
    if not (0 < len(name) <= MAX_FILE_NAME_CHARS and FILE_NAME_RE.fullmatch(name)) or name in (".", ".."):
        problems.append({"field": "name", "location": "query", "message": f"a file name of 1-{MAX_FILE_NAME_CHARS} "
                         "characters without slash, backslash or control characters (e.g. plan.pdf)"})
    if not CONTENT_TYPE_RE.fullmatch(media_type):
        problems.append({"field": "Content-Type", "location": "header",
                         "message": "a media type such as application/pdf or text/plain"})
    if problems:
        raise InvalidRequest("the file needs a plain name (?name=) and a Content-Type", problems)


class SharedFileService:
    def __init__(self, storage: Storage, exchange: FileExchange, guard: OutboundGuard, clock: Clock) -> None:
        self._storage = storage
        self._exchange = exchange
        self._guard = guard
        self._clock = clock

    async def upload(self, me: str, *, name: str, content_type: str, data: bytes) -> FileOut:
        media_type = content_type.split(";")[0].strip().lower()
        check_upload(name, media_type)
        if not data:
            raise InvalidRequest("the file is empty: send its bytes as the request body", [
                {"field": "body", "location": "body", "message": "at least one byte"}])
        file_id, digest = new_file_id(), sha256_b64(data)
        async with self._storage.network_transaction() as tx:
            if await tx.files.waiting(me) >= MAX_WAITING_UPLOADS:
                raise Conflict(f"{MAX_WAITING_UPLOADS} uploads of yours wait for a post already: attach them to a "
                               "post, or wait a day for them to go")
            await tx.files.add(id=file_id, owner=me, name=name, content_type=media_type, sha256=digest, data=data,
                               now=self._clock.now_ms())
        return FileOut(id=file_id, name=name, content_type=media_type, size=len(data), sha256=digest)

    async def prepare(self, me: str, network: str, thread: str, ids: list[str]) -> list[PreparedFile]:
        """The caller's uploads `ids`, checked by the outbound guard (OutboundBlocked), in order."""
        if len(set(ids)) != len(ids):
            raise InvalidRequest("a file is attached once per message", [
                {"field": "attachments", "location": "body", "message": "repeats a file id"}])
        prepared = []
        for file_id in ids:
            async with self._storage.network_transaction(read_only=True) as tx:
                record = await tx.files.find(file_id)
                if record is None or record.owner != me or record.removed:
                    raise NotFoundError(f"no upload {file_id} of yours (uploads wait a day for a post; upload the "
                                        "file again)")
                if record.event_id is not None:
                    raise Conflict(f"{file_id} is already attached to message {record.event_id}; upload the file "
                                   "again to post it again")
                data = await tx.files.data(file_id) or b""
            verdict = await self._guard.check_file(author=me, network=network, thread=thread, name=record.name,
                                                   data=data)
            prepared.append(PreparedFile(file_id, Attachment(name=record.name, content_type=record.content_type,
                                                             size=record.size, sha256=record.sha256), verdict))
        return prepared

    async def attach(self, tx: NetworkTransaction, files: list[PreparedFile], *, event_id: str) -> None:
        """In the post's transaction: the uploads now belong to the message."""
        for position, prepared in enumerate(files):
            if not await tx.files.attach(prepared.id, event_id=event_id, position=position):
                raise Conflict(f"{prepared.id} was attached to another message meanwhile; upload the file again")

    async def download(self, me: str, network: str, thread: str, event_id: str,
                       position: int) -> tuple[Attachment, bytes]:
        async with self._storage.network_transaction(read_only=True) as tx:
            network_id = await thread_network_id(tx, me, network, thread)
            record = await tx.networks.find(network)
            assert record is not None and record.id == network_id
            found = await find_attachment(tx, record, event_id, position)
            if found.event.thread != thread:
                raise NotFoundError(f"no message {event_id} in {network}/{thread}")
        return found.attachment, await self._exchange.bytes_of(record, found, position)
