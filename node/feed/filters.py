"""Subscribing to less than everything: the same filter for the event feed, the stream, MCP
waits and webhooks.

A filter narrows what the caller may see already (it never widens it): by network, by thread
(by name; with `network`, that network's thread), by event type, and to messages
that mention the caller. The feed is read in order and the filter applied after, so a cursor
still moves past what it leaves out: a subscriber resumes exactly where it was, and a filtered
long poll or webhook steps over a busy thread it does not follow.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from node.feed.models import EventOut, FilterQuery
from node.http.fields import Slug, form

__all__ = ["EVENT_TYPE", "FeedFilter", "parse_types"]

# "message.posted", "thread.opened"... (federation.event_content's types, as the feed names them).
EVENT_TYPE = form(r"^[a-z]+\.[a-z]+$", "an event type such as message.posted")
# A feed type list is short: every event type there is fits in well under this.
MAX_TYPES = 20


def parse_types(raw: str | None) -> list[str] | None:
    """`message.posted,message.reacted` (a query parameter) as a list; None when absent."""
    if raw is None:
        return None
    return [t.strip() for t in raw.split(",") if t.strip()]


class FeedFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Slug | None = Field(None, description="only events of this network")
    thread: Slug | None = Field(None, description="only events of threads of this name (with `network`: that "
                                                  "network's thread only)")
    types: Annotated[list[Annotated[str, StringConstraints(pattern=EVENT_TYPE)]],
                     Field(min_length=1, max_length=MAX_TYPES)] | None = Field(
        None, description="only these event types, e.g. [\"message.posted\", \"message.reacted\"]")
    mentions: bool = Field(False, description="only messages that mention the subscriber")

    @field_validator("types")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(value))

    @property
    def active(self) -> bool:
        return bool(self.network or self.thread or self.types or self.mentions)

    def matches(self, event: EventOut, me: str) -> bool:
        """`me`: the subscriber's participant id (an application's: any of its agents')."""
        if self.mentions and me not in event.mentions and not set(event.audience or ()) & set(event.mentions):
            return False
        if self.network is not None and event.network != self.network:
            return False
        if self.thread is not None and event.thread != self.thread:
            return False
        return self.types is None or event.type in self.types

    def stored(self) -> str | None:
        """The filter as a webhook keeps it (JSON); None for no filter."""
        return self.model_dump_json(exclude_defaults=True) if self.active else None

    @classmethod
    def from_stored(cls, raw: str | None) -> FeedFilter | None:
        return None if raw is None else cls.model_validate_json(raw)

    @classmethod
    def of(cls, **given: Any) -> FeedFilter:
        return cls.model_validate({k: v for k, v in given.items() if v is not None})

    @classmethod
    def from_query(cls, query: FilterQuery) -> FeedFilter:
        return cls.of(network=query.network, thread=query.thread, types=parse_types(query.types),
                      mentions=query.mentions == "me")
