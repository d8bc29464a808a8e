"""The bodies the client parses, as the client reads them.

These are the client's own models, not the node's (the client installs without the server).
They follow the node's response bodies field for field (`tests/node/client/test_client_models.py`
checks each against the node's OpenAPI document), with three differences that let a client
read nodes older and newer than itself:

- every model accepts fields it does not know (`extra="allow"`: they are kept, in
  `model_extra`), so a node that adds a field breaks no client;
- values the node lists (a principal's `kind`, an event's `scope`, a webhook's `status`) are
  plain strings here, so a node that adds a kind (as `app` was added) breaks no client either.
  The values known today are in the comments;
- a field the node renamed (lists under `items`, instants as `*_at`) is read under either
  name (`renamed`), and its old name stays a read-only property of the model.

Times are milliseconds since the epoch.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AttachmentOut",
    "EditOut",
    "EventOut",
    "EventPage",
    "FeedFilter",
    "FileOut",
    "KnowledgeOut",
    "KnowledgeResults",
    "MessageOut",
    "MessagePage",
    "PrincipalOut",
    "ReactionOut",
    "SharedMessageOut",
    "SharedMessagePage",
    "SharedSearchResults",
    "SharedThreadList",
    "SharedThreadOut",
    "ThreadList",
    "ThreadOut",
    "WebhookCreated",
    "WebhookList",
    "WebhookOut",
]


class Body(BaseModel):
    """A body from the node: unknown fields are kept, not refused."""

    model_config = ConfigDict(extra="allow")
    # Fields the node renamed, new name: old name. A node sends both names for a while, an
    # older one only the old: either way the value is read into the new field once.
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _read_old_names(cls, data: Any) -> Any:
        if not cls.renamed or not isinstance(data, dict):
            return data
        data = dict(data)
        for new, old in cls.renamed.items():
            if old in data:
                value = data.pop(old)
                data.setdefault(new, value)
        return data


# --- who and where --------------------------------------------------------------------------


class PrincipalOut(Body):
    id: str  # participant id, kind:handle@server
    kind: str  # agent, person or app
    handle: str
    display_name: str
    disabled: bool
    created_at: int


class ThreadOut(Body):
    """A private thread of the caller's company."""

    name: str
    title: str
    members: list[str]
    created_at: int


class ThreadList(Body):
    items: list[ThreadOut]


class SharedThreadOut(Body):
    network: str
    name: str
    title: str
    closed: bool
    participants: list[str]
    agents_silenced: bool = False  # the host silenced agents here: only people may write


class SharedThreadList(Body):
    items: list[SharedThreadOut]


# --- private messages and knowledge --------------------------------------------------------


class MessageOut(Body):
    id: str
    thread: str
    sender: str
    body: str
    created_at: int


class MessagePage(Body):
    renamed = {"items": "messages"}
    items: list[MessageOut]
    next_cursor: str | None  # pass as `after` for the next page; None at the end

    @property
    def messages(self) -> list[MessageOut]:
        """The former name of `items`."""
        return self.items


class KnowledgeOut(Body):
    id: str
    title: str
    body: str
    readers: list[str] | None  # None: every person and agent may read it
    created_at: int


class KnowledgeResults(Body):
    items: list[KnowledgeOut]


# --- shared threads ------------------------------------------------------------------------


class EditOut(Body):
    body: str  # what the message said before this edit
    replaced_at: int  # when the edit replaced it (the author's node's clock)


class AttachmentOut(Body):
    position: int  # download(network, thread, message_id, position)
    name: str
    content_type: str
    size: int
    sha256: str  # of the bytes, unpadded base64url, as the author's node signed it


class SharedMessageOut(Body):
    id: str
    network: str
    thread: str
    seq: int | None  # the host's order; None while pending
    status: str  # pending (waiting for the host) or sequenced
    sender: str
    body: str
    created_at: int  # when the author's node says it was sent (its own clock)
    sequenced_at: int | None = None  # when the host placed it (the host's clock)
    delivery: dict[str, str] | None = None  # for the author: state per destination
    reply_to: str | None = None  # the message this one answers
    mentions: list[str] = Field(default_factory=list)  # participants it addresses
    attachments: list[AttachmentOut] = Field(default_factory=list)
    data: dict[str, Any] | None = None  # structured content beside the text
    reactions: dict[str, list[str]] = Field(default_factory=dict)  # participants, by reaction
    edited: bool = False  # `body` is the latest edit
    history: list[EditOut] | None = None  # for the author's company: each body an edit replaced
    deleted: bool = False  # a tombstone: `body` is empty
    redacted: list[str] | None = None  # for the author, when posting: outbound-guard rules that redacted
    renamed = {"created_at": "origin_ts"}

    @property
    def origin_ts(self) -> int:
        """The former name of `created_at`."""
        return self.created_at


class SharedMessagePage(Body):
    renamed = {"items": "messages"}
    items: list[SharedMessageOut]
    next_cursor: str | None
    prev_cursor: str | None = None  # reading backwards: pass as `before`; None at the start

    @property
    def messages(self) -> list[SharedMessageOut]:
        """The former name of `items`."""
        return self.items


class SharedSearchResults(Body):
    items: list[SharedMessageOut]  # the latest first


class ReactionOut(Body):
    id: str  # the reaction's own event id
    message: str  # the message reacted to
    reaction: str
    participant: str
    removed: bool  # the reaction was taken back


class FileOut(Body):
    id: str  # attach it with post(..., attachments=[id]); unposted uploads are removed after a day
    name: str
    content_type: str
    size: int
    sha256: str


# --- events --------------------------------------------------------------------------------


class EventOut(Body):
    cursor: str  # position in the caller's node's feed; resume after it
    scope: str  # private or shared
    type: str  # message.posted, message.reacted, thread.opened, participant.attached, ...
    network: str | None
    thread: str | None
    id: str  # event id (shared) or message id (private)
    seq: int | None  # the host's sequence number (shared events)
    sender: str
    body: str | None  # the text, for messages
    mentions: list[str] = Field(default_factory=list)  # participants a message addresses
    content: dict[str, Any]
    created_at: int  # as the author's node stamped it
    sequenced_at: int | None = None  # on the network host's clock (shared events)
    audience: list[str] | None = None  # an application's feed: which of its agents it concerns
    renamed = {"created_at": "at"}

    @property
    def at(self) -> int:
        """The former name of `created_at`."""
        return self.created_at


class EventPage(Body):
    renamed = {"items": "events"}
    items: list[EventOut]
    next_cursor: str  # pass as `after` next time, also when `items` is empty

    @property
    def events(self) -> list[EventOut]:
        """The former name of `items`."""
        return self.items


# --- webhooks ------------------------------------------------------------------------------


class FeedFilter(Body):
    """What a webhook delivers (`create_webhook(url, only={...})` takes the same keys)."""

    network: str | None = None
    thread: str | None = None
    types: list[str] | None = None
    mentions: bool = False


class WebhookOut(Body):
    id: str
    url: str
    status: str  # active or disabled
    created_at: int
    failures: int  # failed attempts in a row (0 after a delivery)
    last_status: int | None  # HTTP status of the last answer
    last_error: str | None
    last_success_at: int | None
    next_attempt_at: int | None  # when the next attempt may start (active only)
    disabled_reason: str | None
    filter: FeedFilter | None = None  # None: every event its owner may see


class WebhookCreated(WebhookOut):
    secret: str  # whsec_...: the signing secret, shown only in this answer


class WebhookList(Body):
    items: list[WebhookOut]
