"""One strict content model per event type, collected in a registry.

Adding an event type means adding one class here and one rule in ``rules.py``; nothing
switches over every type. Content is part of what the origin signs, so models forbid extra
fields (an ignored field would be signed but never checked) and every field is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    field_validator,
)

from federation.canonical_json import encode_canonical
from federation.errors import CanonicalJsonError
from federation.identifiers import ParticipantId, validate_server_name

__all__ = [
    "CONTENT_TYPES",
    "CONTENT_TYPE_RE",
    "EVENT_ID_RE",
    "FILE_NAME_RE",
    "MAX_ATTACHMENTS",
    "MAX_BODY_CHARS",
    "MAX_DATA_BYTES",
    "MAX_DISPLAY_NAME_CHARS",
    "MAX_FILE_BYTES",
    "MAX_FILE_NAME_CHARS",
    "MAX_MENTIONS",
    "MAX_REACTION_CHARS",
    "MAX_THREAD_PARTICIPANTS",
    "MAX_TITLE_CHARS",
    "Attachment",
    "Content",
    "MemberAdmitted",
    "MemberLeft",
    "MemberRemoved",
    "MessageDeleted",
    "MessageEdited",
    "MessagePosted",
    "MessageReacted",
    "NetworkClosed",
    "NetworkCreated",
    "ParticipantAttached",
    "ParticipantDetached",
    "ThreadClosed",
    "ThreadJoined",
    "ThreadOpened",
    "ThreadSilenced",
    "check_data",
]

# 16 Ki characters: a long agent answer or a page of text. Longer material belongs in an
# attachment; even at 4 UTF-8 bytes per character it stays within the 64 KiB event cap.
MAX_BODY_CHARS = 16 * 1024
# Titles show in one line of a list; 200 characters is generous for that.
MAX_TITLE_CHARS = 200
# Display names show next to every message; 100 characters is as long as any UI will render.
MAX_DISPLAY_NAME_CHARS = 100
# A thread is a working group; 256 ids of up to ~330 characters stay under the event cap.
MAX_THREAD_PARTICIPANTS = 256
# "$" + unpadded base64url of a 32-byte SHA-256 is 43 characters (see events.event_id).
EVENT_ID_RE = re.compile(r"\$[A-Za-z0-9_-]{43}")


def _parse_participant(value: Any) -> ParticipantId:
    if isinstance(value, ParticipantId):
        return value
    return ParticipantId.parse(value)  # InvalidIdentifier is a ValueError: pydantic reports it


def _check_event_id(value: Any) -> str:
    if not isinstance(value, str) or not EVENT_ID_RE.fullmatch(value):
        raise ValueError("not an event id ($ + 43 base64url characters)")
    return value


def _list_to_tuple(value: Any) -> Any:
    # Wire JSON has lists; strict mode would refuse them for an (immutable) tuple field.
    return tuple(value) if isinstance(value, list) else value


Participant = Annotated[
    ParticipantId, PlainValidator(_parse_participant), PlainSerializer(str, return_type=str)
]
ServerName = Annotated[str, PlainValidator(validate_server_name)]
EventId = Annotated[str, PlainValidator(_check_event_id)]
KeyId = Annotated[str, Field(pattern=r"^ed25519:[A-Za-z0-9_-]{8}$")]
PublicKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")]  # 32 bytes, unpadded base64url
Title = Annotated[str, Field(min_length=1, max_length=MAX_TITLE_CHARS)]
# As in federation.peering_messages: an https URL, bounded by length rather than repetitions.
Endpoint = Annotated[str, Field(max_length=8 + 300 + 201, pattern=r"^https://[^\s/?#]+(/[^\s?#]*)?$")]
Body = Annotated[str, Field(min_length=1, max_length=MAX_BODY_CHARS)]


def _unique_participants(value: tuple[ParticipantId, ...]) -> tuple[ParticipantId, ...]:
    if len(set(value)) != len(value):
        raise ValueError("participants must not repeat")
    return value


# A thread's participants, as opened or added: 1-256 ids, no repeats, in the order sent.
Participants = Annotated[
    tuple[Participant, ...],
    BeforeValidator(_list_to_tuple),
    Field(min_length=1, max_length=MAX_THREAD_PARTICIPANTS),
    AfterValidator(_unique_participants),
]


class Content(BaseModel):
    """Base of all content models; ``event_type`` is the registry key and wire ``type``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    event_type: ClassVar[str]
    # Thread events must name a thread; network events must not.
    in_thread: ClassVar[bool] = False

    def to_wire(self) -> dict[str, Any]:
        # Absent optional fields are omitted, never null: one wire form per value.
        return self.model_dump(mode="json", exclude_none=True)


_registry: dict[str, type[Content]] = {}


def _register(event_type: str, *, in_thread: bool = False) -> Callable[[type[Content]], type[Content]]:
    def decorate(cls: type[Content]) -> type[Content]:
        cls.event_type = event_type
        cls.in_thread = in_thread
        _registry[event_type] = cls
        return cls

    return decorate


@_register("network.created")
class NetworkCreated(Content):
    title: Title
    history_visible_to_new_members: bool


@_register("member.admitted")
class MemberAdmitted(Content):
    """The host vouches, in the signed chain, for the admitted company's key: members can
    verify that company's events in this network even if the two never peered directly. The
    key counts for nothing else, and a member checks it against what the company itself
    publishes when it can reach it, at ``endpoint`` (where the host reaches it; TLS still has
    to prove the company's server name there, so a wrong address can only fail)."""

    server: ServerName
    key_id: KeyId
    public_key: PublicKey
    endpoint: Endpoint | None = None


@_register("member.removed")
class MemberRemoved(Content):
    server: ServerName


@_register("member.left")
class MemberLeft(Content):
    server: ServerName


@_register("network.closed")
class NetworkClosed(Content):
    pass


@_register("participant.attached")
class ParticipantAttached(Content):
    participant: Participant
    display_name: Annotated[str, Field(min_length=1, max_length=MAX_DISPLAY_NAME_CHARS)]


@_register("participant.detached")
class ParticipantDetached(Content):
    participant: Participant


@_register("thread.opened", in_thread=True)
class ThreadOpened(Content):
    title: Title
    participants: Participants


@_register("thread.joined", in_thread=True)
class ThreadJoined(Content):
    """Participants added to an open thread by one of its participants (or an operator of the
    host, or of the company that opened it): they read and write in it from here on."""

    participants: Participants


@_register("thread.closed", in_thread=True)
class ThreadClosed(Content):
    pass


@_register("thread.silenced", in_thread=True)
class ThreadSilenced(Content):
    """The host's operators let only people write in the thread (`agents` true), or agents again
    (false): a kill switch kept in the chain, so every member enforces it."""

    agents: bool


# A message names a handful of participants, not a crowd: 32 ids stay far inside the event cap.
MAX_MENTIONS = 32
# Files ride beside a message, not inside it: the event carries what identifies each one (name,
# type, size, SHA-256) and the bytes stay on the author's node until a member fetches them
# (docs/protocol.md, "Files"). 8 per message and 25 MiB each: a report, a log, a few screenshots.
MAX_ATTACHMENTS = 8
MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_FILE_NAME_CHARS = 200
# A media type without parameters, lower case: "application/pdf", "text/plain".
CONTENT_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")
# Structured content for agent-to-agent hand-offs: a JSON object of at most 8 KiB (canonical
# bytes), so a message with its body and data still fits the 64 KiB event cap.
MAX_DATA_BYTES = 8 * 1024
# A reaction is a word or an emoji sequence ("seen", "working", "\U0001f44d").
MAX_REACTION_CHARS = 32
FILE_NAME_RE = re.compile(r"[^\x00-\x1f\x7f/\\]+")
_REACTION_RE = re.compile(r"[^\s\x00-\x1f\x7f]+")


class Attachment(BaseModel):
    """One file of a message, as the author's node signs it: a member that fetches the bytes
    checks their size, type and SHA-256 against this, so a swapped file is refused."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=MAX_FILE_NAME_CHARS)]
    content_type: Annotated[str, Field(max_length=127)]
    size: Annotated[int, Field(ge=0, le=MAX_FILE_BYTES)]
    sha256: PublicKey  # 32 bytes, unpadded base64url, like every hash of the protocol

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not FILE_NAME_RE.fullmatch(value) or value in (".", ".."):
            raise ValueError("a file name has no slash, backslash or control character")
        return value

    @field_validator("content_type")
    @classmethod
    def _media_type(cls, value: str) -> str:
        if not CONTENT_TYPE_RE.fullmatch(value):
            raise ValueError("a media type in lower case without parameters, like application/pdf")
        return value


def check_data(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("data is a JSON object")
    try:
        size = len(encode_canonical(value))
    except CanonicalJsonError as e:
        raise ValueError(f"data is not canonical JSON: {e.message}") from None
    if size > MAX_DATA_BYTES:
        raise ValueError(f"data is at most {MAX_DATA_BYTES} bytes of canonical JSON; this is {size}")
    return value


@_register("message.posted", in_thread=True)
class MessagePosted(Content):
    body: Body
    reply_to: EventId | None = None
    # Participants the message addresses, so an agent knows it is asked without parsing text.
    mentions: Annotated[
        tuple[Participant, ...],
        BeforeValidator(_list_to_tuple),
        Field(min_length=1, max_length=MAX_MENTIONS),
    ] | None = None
    attachments: Annotated[
        tuple[Attachment, ...],
        BeforeValidator(_list_to_tuple),
        Field(min_length=1, max_length=MAX_ATTACHMENTS),
    ] | None = None
    data: Annotated[dict[str, Any], PlainValidator(check_data)] | None = None

    @field_validator("mentions")
    @classmethod
    def _unique_mentions(cls, value: tuple[ParticipantId, ...] | None) -> tuple[ParticipantId, ...] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("mentions must not repeat")
        return value


@_register("message.edited", in_thread=True)
class MessageEdited(Content):
    event_id: EventId
    body: Body


@_register("message.deleted", in_thread=True)
class MessageDeleted(Content):
    event_id: EventId


@_register("message.reacted", in_thread=True)
class MessageReacted(Content):
    """A participant's acknowledgement of a message ("seen", "working"); `removed` takes it back."""

    event_id: EventId
    reaction: Annotated[str, Field(min_length=1, max_length=MAX_REACTION_CHARS)]
    removed: bool | None = None

    @field_validator("reaction")
    @classmethod
    def _one_word(cls, value: str) -> str:
        if not _REACTION_RE.fullmatch(value):
            raise ValueError("a reaction is one word or emoji, without spaces or control characters")
        return value

    @field_validator("removed")
    @classmethod
    def _only_true(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError("leave removed out unless it is true (one wire form per value)")
        return value


CONTENT_TYPES: Mapping[str, type[Content]] = MappingProxyType(_registry)
