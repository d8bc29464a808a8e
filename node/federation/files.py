"""Files of messages in shared threads, between nodes (docs/protocol.md, "Files").

The chain carries what identifies each file (name, media type, size, SHA-256, signed by the
author's node); the bytes stay on the author's node and cross only when a member asks, over a
signed request. A node holds a file when it wrote the message, or once it fetched a copy and
checked it against the signed attachment, so a host or author that swaps a file is caught.

Who may have a file: a current member of the network whose company this node's policy lets
files cross with, that may see the message (not a stub of hidden history), while the message
is not deleted. Who is asked for it: the author's node when it is a peer of this one, then the
host (which fetches a copy itself, under its own policy, if it holds none): members of a network
need not peer with each other, but each peers with the host.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from federation.event_content import Attachment, MessagePosted
from federation.keys import b64encode
from node.basics.clock import Clock
from node.basics.errors import Forbidden, Gone, NotFoundError, PeerRefused, PeerUnreachable
from node.federation.chain_state import stored_content
from node.federation.hidden_history import admitted_at
from node.federation.peer_client import PeerClient
from node.federation.policy import PolicyRefused, file_refusal, partner_policy
from node.federation.standing import network_of_member
from storage.errors import AlreadyExists
from storage.network.events import StoredEvent
from storage.network.networks import NetworkRecord
from storage.network.transaction import NetworkStore, NetworkTransaction

__all__ = ["FileExchange", "FileRefused", "FileUnavailable", "SharedFile", "file_path", "new_file_id", "sha256_b64"]

log = logging.getLogger(__name__)


class FileRefused(Forbidden):
    """Every node that could hand the file over refused to (their company's policy, or this one
    is not a member any more): asking again will not help."""

    code = "file_refused"


class FileUnavailable(PeerUnreachable):
    """No node this one may ask would hand over a file that matches its signed attachment."""

    status = 503
    code = "file_unavailable"


@dataclass(frozen=True, slots=True)
class SharedFile:
    attachment: Attachment
    event: StoredEvent


def new_file_id() -> str:
    return "file_" + secrets.token_urlsafe(18)


def sha256_b64(data: bytes) -> str:
    return b64encode(hashlib.sha256(data).digest())


def file_path(network: str, event_id: str, position: int) -> str:
    """The federation path of a message's file (under `FEDERATION_PREFIX`)."""
    return f"/networks/{quote(network, safe='')}/files/{quote(event_id, safe='')}/{position}"


async def find_attachment(tx: NetworkTransaction, network: NetworkRecord, event_id: str,
                          position: int) -> SharedFile:
    """The signed attachment at `position` of message `event_id`, or NotFoundError; Gone once
    the message is deleted or its body expired here."""
    stored = await tx.events.find(event_id)
    if stored is None or stored.network_id != network.id or stored.thread is None:
        raise NotFoundError(f"no message {event_id} in {network.name}")
    if stored.type != "message.posted":  # a stub: hidden history, or a body retention removed
        raise Gone(f"message {event_id} is not held here in full")
    if await tx.events.is_deleted(network.id, stored.thread, event_id):
        raise Gone(f"message {event_id} was deleted, and its files with it")
    attachments = MessagePosted.model_validate(stored_content(stored.wire)).attachments or ()
    if not 0 <= position < len(attachments):
        raise NotFoundError(f"message {event_id} has no file {position}")
    return SharedFile(attachments[position], stored)


class FileExchange:
    def __init__(self, storage: NetworkStore, client: PeerClient, *, server: str, clock: Clock) -> None:
        self._storage = storage
        self._client = client
        self._server = server
        self._clock = clock

    async def serve(self, origin: str, network_name: str, event_id: str, position: int) -> tuple[Attachment, bytes]:
        """A file for another node, `origin`, after every check this company makes."""
        async with self._storage.network_transaction(read_only=True) as tx:
            network = await network_of_member(tx, network_name, origin)
            found = await find_attachment(tx, network, event_id, position)
            if not network.history_visible and (found.event.seq or 0) < await admitted_at(tx, network, origin):
                raise NotFoundError(f"no message {event_id} in {network_name}")  # hidden from it: as if none
            policy, _ = await partner_policy(tx, origin)
            if not policy.files:
                raise PolicyRefused("files_not_allowed", f"{self._server} does not exchange files with {origin}")
        return found.attachment, await self.bytes_of(network, found, position)

    async def bytes_of(self, network: NetworkRecord, found: SharedFile, position: int) -> bytes:
        """The file's bytes: this node's copy, or one fetched now and kept (checked against the
        signed attachment, under this company's policy for the author's company)."""
        event_id = found.event.event_id
        async with self._storage.network_transaction(read_only=True) as tx:
            held = await tx.files.of_event(event_id, position)
            data = await tx.files.data(held.id) if held is not None else None
            if held is not None and data is None:
                raise Gone(f"the file {found.attachment.name} was removed from this node")
            if data is None:
                policy, _ = await partner_policy(tx, found.event.origin)
                sources = await self._sources(tx, network, found.event.origin)
        if data is not None:
            return data
        if found.event.origin == self._server:
            raise Gone(f"the file {found.attachment.name} is no longer held here")
        refused = file_refusal(policy, found.attachment, found.event.origin)
        if refused is not None:
            raise PolicyRefused(*refused)
        return await self._fetch(network, found, position, sources)

    async def _sources(self, tx: NetworkTransaction, network: NetworkRecord, author: str) -> list[tuple[str, str]]:
        """(server, endpoint) to ask, in order: the author's node if it is a peer, then the host."""
        sources = []
        for server in dict.fromkeys((author, network.host)):
            if server == self._server:
                continue
            peer = await tx.peers.find(server)
            if peer is not None and peer.status == "accepted" and peer.endpoint:
                sources.append((server, peer.endpoint))
        return sources

    async def _fetch(self, network: NetworkRecord, found: SharedFile, position: int,
                     sources: list[tuple[str, str]]) -> bytes:
        attachment, event_id = found.attachment, found.event.event_id
        problems, refusals = [], 0
        for server, endpoint in sources:
            try:
                data, media_type = await self._client.fetch_file(
                    endpoint, server, file_path(network.name, event_id, position), max_bytes=attachment.size)
            except (PeerUnreachable, PeerRefused) as e:
                problems.append(str(e))
                refusals += isinstance(e, PeerRefused) and e.peer_status in (403, 404, 410)
                continue
            mismatch = _mismatch(attachment, data, media_type)
            if mismatch is not None:
                log.warning("file %s/%d from %s refused: %s", event_id, position, server, mismatch)
                problems.append(f"{server} sent a file that is not the one signed ({mismatch})")
                async with self._storage.network_transaction() as tx:
                    await tx.audit.record(actor=f"server:{server}", action="file.mismatch", target=event_id,
                                          now=self._clock.now_ms(), network=network.name, partner=server,
                                          detail={"position": position, "problem": mismatch})
                continue
            await self._keep(found, position, data)
            return data
        detail = "; ".join(problems) or "no node to ask (neither the author's node nor the host is a peer)"
        if problems and refusals == len(problems):
            raise FileRefused(f"the file {attachment.name} is not available to this company: {detail}")
        raise FileUnavailable(f"the file {attachment.name} could not be fetched: {detail}; try again later")

    async def _keep(self, found: SharedFile, position: int, data: bytes) -> None:
        attachment = found.attachment
        try:
            async with self._storage.network_transaction() as tx:
                await tx.files.add(id=new_file_id(), owner=None, name=attachment.name,
                                   content_type=attachment.content_type, sha256=attachment.sha256, data=data,
                                   now=self._clock.now_ms(), event_id=found.event.event_id, position=position)
        except AlreadyExists:
            pass  # a concurrent fetch kept the same checked bytes first


def _mismatch(attachment: Attachment, data: bytes, media_type: str) -> str | None:
    if len(data) != attachment.size:
        return f"{len(data)} bytes, signed {attachment.size}"
    if media_type != attachment.content_type:
        return f"type {media_type}, signed {attachment.content_type}"
    if sha256_b64(data) != attachment.sha256:
        return "its SHA-256 differs from the signed one"
    return None
