"""Request and response bodies for networks, invites, peers and shared threads (admin and
client APIs). Requests are strict and closed, like `node.workspace.models`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field, field_validator, model_validator

from federation.event_content import MAX_ATTACHMENTS, MAX_DATA_BYTES, MAX_REACTION_CHARS, check_data
from node.http.fields import (
    MAX_PAGE,
    Cursor,
    EventId,
    FileId,
    MessageBody,
    ParticipantRef,
    PrincipalRef,
    QueryModel,
    Request,
    ServerName,
    Slug,
    Title,
    form,
    formerly,
    old_name,
)

__all__ = [
    "ActivityList",
    "ActivityOut",
    "AddParticipants",
    "AlertList",
    "AlertOut",
    "AttachParticipant",
    "AttachmentOut",
    "CreateNetwork",
    "EditOut",
    "EditSharedMessage",
    "FileOut",
    "HaltOut",
    "InviteCompany",
    "InviteList",
    "InviteOut",
    "NetworkList",
    "NetworkListQuery",
    "NetworkOut",
    "NetworkParticipants",
    "OpenSharedThread",
    "OpenThreadAsParticipant",
    "ParticipantInfo",
    "ParticipantOut",
    "PeerList",
    "PeerOut",
    "PostSharedMessage",
    "React",
    "ReactionOut",
    "RefusalOut",
    "SeqPageQuery",
    "SetActivity",
    "SharedMessageOut",
    "SharedMessagePage",
    "SharedPageQuery",
    "SharedSearchQuery",
    "SharedSearchResults",
    "SharedThreadList",
    "SharedThreadOut",
    "SilenceAgents",
    "ThreadChangeOut",
    "VouchedKeyOut",
]

class CreateNetwork(Request):
    name: Slug
    title: Title
    history_visible: bool = Field(True, description="whether a company admitted later sees earlier events")


class InviteCompany(Request):
    server: ServerName
    # Bounded by max_length rather than `{1,400}` in the pattern (see federation.peering_messages).
    endpoint: Annotated[str, StringConstraints(max_length=8 + 400, pattern=r"^https://[^\s?#]+$")] | None = Field(
        None, description="where to reach the company; default https://SERVER"
    )


class AttachParticipant(Request):
    participant: PrincipalRef


class SilenceAgents(Request):
    agents: bool = Field(True, description="true: only people may write in the thread; false: agents may again")


class OpenSharedThread(Request):
    name: Slug
    title: Title
    participants: list[ParticipantRef] = Field(min_length=1, max_length=256)


class PostSharedMessage(Request):
    # The plain case first: a message with no reply and no mentions (clients and fuzzers start here).
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"body": "Ready for Thursday."},
                     {"body": "Can you confirm?", "mentions": ["agent:delivery@globex.example"]}]})

    body: MessageBody
    reply_to: EventId | None = Field(
        None, description="the id of a message in the same thread this one answers")
    mentions: Annotated[list[ParticipantRef], Field(min_length=1, max_length=32)] | None = Field(
        None, description="participants of the thread this message addresses (they can wait for mentions of "
                          "themselves only)")
    attachments: Annotated[list[FileId], Field(min_length=1, max_length=MAX_ATTACHMENTS)] | None = Field(
        None, description="files uploaded with POST /v1/files, in the order they are shown")
    data: dict[str, Any] | None = Field(
        None, description=f"structured content beside the text, for agent-to-agent hand-offs: a JSON object of at "
                          f"most {MAX_DATA_BYTES} bytes, integers only (no fractions)")

    @field_validator("data")
    @classmethod
    def _canonical(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_data(value)


class React(Request):
    removed: bool = Field(False, description="true: take the reaction back")
    reaction: Annotated[str, StringConstraints(min_length=1, max_length=MAX_REACTION_CHARS,
                                               pattern=form(r"^[^\s\x00-\x1f\x7f]+$",
                                                            "one word or emoji, without spaces (e.g. seen)"))]


class EditSharedMessage(Request):
    body: MessageBody


class SeqPageQuery(QueryModel):
    after: Cursor | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE)


class SharedPageQuery(SeqPageQuery):
    before: Cursor | Literal["latest"] | None = Field(
        None, description="read backwards: the messages before this seq (a `prev_cursor`), or `latest` for the "
                          "newest; not with `after`")

    @model_validator(mode="after")
    def _one_direction(self) -> SharedPageQuery:
        if self.after is not None and self.before is not None:
            raise ValueError("give after (forwards) or before (backwards), not both")
        return self


class ParticipantInfo(BaseModel):
    id: str
    display_name: str
    kind: Literal["agent", "person"]
    company: str = Field(description="the server of the participant's company")
    attached: bool = Field(description="false: detached (it took part before; it cannot write now)")


class NetworkParticipants(BaseModel):
    network: str
    host: str
    companies: dict[str, str] = Field(description="member companies by server: member, left or removed")
    items: list[ParticipantInfo]


class OpenThreadAsParticipant(Request):
    name: Slug
    title: Title
    participants: list[ParticipantRef] = Field(
        min_length=1, max_length=255, description="the others (the caller takes part too); attached to the network")


class AddParticipants(Request):
    participants: list[ParticipantRef] = Field(min_length=1, max_length=255,
                                               description="attached to the network, not yet in the thread")


class ThreadChangeOut(BaseModel):
    id: str = Field(description="the event's id")
    network: str
    thread: str
    status: str = Field(description="pending (waiting for the host) or sequenced")
    participants: list[str] = Field(description="the participants it opened the thread with, or added")


class SetActivity(Request):
    state: Literal["typing", "working", "idle"] = Field(description="idle clears it")
    ttl_s: int = Field(30, ge=1, le=60, description="seconds it lasts unless set again")


class ActivityOut(BaseModel):
    participant: str
    state: Literal["typing", "working"]
    expires_in_s: float


class ActivityList(BaseModel):
    items: list[ActivityOut] = Field(description="who is typing or working in the thread now (not in the history)")


class SharedSearchQuery(QueryModel):
    q: str = Field(min_length=1, max_length=500, description="words that must all appear (any order)")
    network: Slug | None = Field(None, description="search one network's threads only")
    limit: int = Field(20, ge=1, le=100)


class SharedSearchResults(BaseModel):
    items: list[SharedMessageOut] = Field(description="the latest first (as this node received them); each with "
                                                      "its latest text (edits applied)")


class ParticipantOut(BaseModel):
    id: str
    display_name: str
    attached: bool


class SharedThreadOut(BaseModel):
    network: str
    name: str
    title: str
    closed: bool
    participants: list[str]
    agents_silenced: bool = Field(False, description="the host silenced agents here: only people may write")


class HaltOut(BaseModel):
    seq: int = Field(description="the host's event this node refused, which it cannot follow the network past")
    event_id: str | None
    code: str
    reason: str
    halted_at: int = Field(validation_alias=formerly("halted_at", "since"))
    tries: int
    next_try_at: int = Field(description="when it is tried again by itself; `resume` tries at once")

    @computed_field(**old_name("halted_at"))  # type: ignore[prop-decorator]
    @property
    def since(self) -> int:
        return self.halted_at


class RefusalOut(BaseModel):
    member: str
    event_id: str
    seq: int | None
    type: str
    error: str = Field(description="the member's answer: status, code and message")
    created_at: int | None = Field(validation_alias=formerly("created_at", "at"))

    @computed_field(**old_name("created_at"))  # type: ignore[prop-decorator]
    @property
    def at(self) -> int | None:
        return self.created_at


class VouchedKeyOut(BaseModel):
    server: str
    key_id: str
    fingerprint: str
    status: str = Field(description="confirmed (the company publishes it), unconfirmed (it could not be asked), "
                                    "or disputed (it publishes other keys: this key verifies nothing)")


class NetworkOut(BaseModel):
    name: str
    host: str
    title: str
    hosted_here: bool
    closed: bool
    frozen_at: int | None = Field(None, description="when this company's operators froze it (its people and agents "
                                                    "cannot act in it); None when not frozen")
    archived_at: int | None = Field(None, description="when this company archived it (closed, out of the lists)")
    head_seq: int
    members: dict[str, str]
    participants: list[ParticipantOut]
    threads: list[SharedThreadOut]
    pending_events: int = Field(description="events authored here that the host has not sequenced yet")
    halted: HaltOut | None = Field(None, description="set while this member cannot follow the network")
    refusals: list[RefusalOut] = Field(default_factory=list,
                                       description="the latest events a member refused for good (as host; "
                                                   "as member, events the host refused)")
    vouched_keys: list[VouchedKeyOut] = Field(default_factory=list,
                                              description="co-members' keys as the host vouched for them here")


class NetworkList(BaseModel):
    items: list[NetworkOut]


class NetworkListQuery(QueryModel):
    archived: bool = Field(False, description="true: the archived networks instead of those in use")


class InviteOut(BaseModel):
    id: str
    direction: str
    network: str
    host: str
    title: str
    server: str
    status: str
    fingerprint: str | None = Field(description="the other company's key fingerprint, to compare out of band")
    created_at: int
    expires_at: int
    history_visible: bool = Field(True, description="whether a company that joins sees what was said before it "
                                                    "joined (false: those messages reach it as stubs)")


class InviteList(BaseModel):
    items: list[InviteOut]


class PeerOut(BaseModel):
    server: str
    status: str
    endpoint: str
    fingerprints: list[str]
    queue_depth: int
    last_success_at: int | None
    last_error: str | None
    last_error_at: int | None
    next_attempt_at: int | None = Field(description="when delivery to this peer is tried again (wall clock)")
    retry_in_ms: int | None = Field(None, description="how long until the next try, by this process's monotonic "
                                                      "clock (unaffected by a step of the wall clock); null when "
                                                      "this process is not holding the peer back")


class PeerList(BaseModel):
    items: list[PeerOut]


class AlertOut(BaseModel):
    id: int
    kind: str = Field(description="key_conflict or network_halted")
    network: str | None
    server: str | None
    message: str
    detail: dict
    count: int = Field(description="times it was seen")
    created_at: int
    last_seen_at: int


class AlertList(BaseModel):
    items: list[AlertOut]


class SharedThreadList(BaseModel):
    items: list[SharedThreadOut]


class EditOut(BaseModel):
    body: str = Field(description="what the message said before this edit")
    replaced_at: int = Field(description="when the edit replaced it (the author's node's clock)")


class AttachmentOut(BaseModel):
    position: int = Field(description="where it is in the message: GET .../messages/{id}/files/{position}")
    name: str
    content_type: str
    size: int
    sha256: str = Field(description="SHA-256 of the bytes, unpadded base64url, as the author's node signed it")


class FileOut(BaseModel):
    id: str = Field(description="attach it to a post with `attachments`; unposted uploads are removed after a day")
    name: str
    content_type: str
    size: int
    sha256: str


class SharedMessageOut(BaseModel):
    id: str
    network: str
    thread: str
    seq: int | None
    status: str = Field(description="pending (waiting for the host) or sequenced")
    sender: str
    body: str
    created_at: int = Field(validation_alias=formerly("created_at", "origin_ts"),
                            description="when the author's node says it was sent (its own clock)")
    sequenced_at: int | None = Field(None, description="when the network's host placed it in the network's order "
                                                       "(the host's clock); None while pending")
    delivery: dict[str, str] | None = Field(None, description="for the author: state per destination")
    reply_to: str | None = Field(None, description="the message this one answers")
    mentions: list[str] = Field(default_factory=list, description="participants it addresses")
    attachments: list[AttachmentOut] = Field(default_factory=list, description="files of the message")
    data: dict[str, Any] | None = Field(None, description="structured content beside the text")
    reactions: dict[str, list[str]] = Field(default_factory=dict,
                                            description="participants who reacted, by reaction (e.g. seen)")
    edited: bool = Field(False, description="the body is the latest edit of what was first posted")
    history: list[EditOut] | None = Field(None, description="for the author's company only: each body an edit "
                                                           "replaced, oldest first (the chain holds them all)")
    deleted: bool = Field(False, description="deleted by its author's company: `body` is empty (a tombstone)")
    redacted: list[str] | None = Field(None, description="for the author, when posting: the outbound guard's rules "
                                                         "that redacted part of the body (`body` is what was sent)")

    @computed_field(**old_name("created_at"))  # type: ignore[prop-decorator]
    @property
    def origin_ts(self) -> int:
        return self.created_at


class ReactionOut(BaseModel):
    id: str = Field(description="the reaction's own event id")
    message: str = Field(description="the message reacted to")
    reaction: str
    participant: str
    removed: bool = Field(description="true: the reaction was taken back")


class SharedMessagePage(BaseModel):
    items: list[SharedMessageOut] = Field(validation_alias=formerly("items", "messages"))
    next_cursor: str | None
    prev_cursor: str | None = Field(None, description="reading backwards (`before`): pass as `before` for the "
                                                      "page before this one; null at the start of the thread")

    @computed_field(**old_name("items"))  # type: ignore[prop-decorator]
    @property
    def messages(self) -> list[SharedMessageOut]:
        return self.items
