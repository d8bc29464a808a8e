"""Bodies of the client API's event feed: "events since" pages and the stream's events."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, computed_field

from node.http.fields import Cursor, QueryModel, Slug, form, formerly, old_name

__all__ = ["EventOut", "EventPage", "EventsQuery", "FilterQuery", "StreamQuery"]

_TYPES = form(r"^[a-z]+\.[a-z]+(,[a-z]+\.[a-z]+)*$",
              "event types separated by commas, e.g. message.posted,message.reacted")
# A long poll holds a connection and a little memory; a minute is what proxies commonly allow.
MAX_WAIT_S = 60


class EventOut(BaseModel):
    cursor: str = Field(description="position in this node's feed; resume after it")
    scope: Literal["private", "shared"]
    type: str = Field(description="message.posted, thread.opened, participant.attached, ...")
    network: str | None
    thread: str | None
    id: str = Field(description="event id (shared) or message id (private)")
    seq: int | None = Field(description="the host's sequence number (shared events)")
    sender: str
    body: str | None = Field(description="the text, for messages")
    mentions: list[str] = Field(default_factory=list, description="participants a message addresses")
    content: dict[str, Any]
    created_at: int = Field(validation_alias=formerly("created_at", "at"),
                            description="milliseconds since the epoch, as the author's node stamped it")
    sequenced_at: int | None = Field(None, description="milliseconds since the epoch on the network host's clock "
                                                       "when it placed the event in the network's order (shared "
                                                       "events; the author's own clock may be wrong, this one "
                                                       "orders the network)")
    audience: list[str] | None = Field(None, description="for an application's feed: which of its agents the event "
                                                         "concerns (act as one of them with the Act-As header)")

    @computed_field(**old_name("created_at"))  # type: ignore[prop-decorator]
    @property
    def at(self) -> int:
        return self.created_at


class EventPage(BaseModel):
    items: list[EventOut] = Field(validation_alias=formerly("items", "events"))
    next_cursor: str = Field(description="pass as `after` next time, also when `items` is empty")

    @computed_field(**old_name("items"))  # type: ignore[prop-decorator]
    @property
    def events(self) -> list[EventOut]:
        return self.items


class FilterQuery(QueryModel):
    """What a subscriber follows (node.feed.filters): narrower than all it may see, never wider."""

    mentions: Literal["me"] | None = Field(None, description="me: only messages that mention the caller")
    network: Slug | None = Field(None, description="only events of this network")
    thread: Slug | None = Field(None, description="only events of threads of this name (with `network`: that "
                                                  "network's)")
    types: Annotated[str, StringConstraints(max_length=400, pattern=_TYPES)] | None = Field(
        None, description="only these event types, comma-separated: message.posted,message.reacted")


class EventsQuery(FilterQuery):
    after: Cursor | None = Field(None, description="omit to start from now")
    limit: int = Field(100, ge=1, le=200)
    wait: int = Field(0, ge=0, le=MAX_WAIT_S, description="seconds to wait for an event before answering")


class StreamQuery(FilterQuery):
    after: Cursor | None = Field(None, description="like Last-Event-ID; the header wins when both are sent")
