"""Bodies of the webhook routes (client: a principal's own endpoints; admin: all of them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from node.feed.filters import FeedFilter
from node.http.fields import Request

__all__ = [
    "MAX_URL_CHARS",
    "MAX_WEBHOOKS_PER_PRINCIPAL",
    "AdminWebhookList",
    "AdminWebhookOut",
    "CreateWebhook",
    "WebhookCreated",
    "WebhookList",
    "WebhookOut",
]

# The `webhooks.url` column; also well under what common servers accept on a request line.
MAX_URL_CHARS = 2000
# An agent needs one or two (a primary and a standby receiver); ten leaves room for moving
# between receivers without letting one token multiply the node's outbound traffic.
MAX_WEBHOOKS_PER_PRINCIPAL = 10


class CreateWebhook(Request):
    url: str = Field(min_length=1, max_length=MAX_URL_CHARS,
                     description="https URL that receives each event as a signed POST; it must lead to a "
                                 "public address, or to a host on the operator's webhook_allowed_hosts")
    filter: FeedFilter | None = Field(None, description="deliver only what this keeps (network, thread, types, "
                                                        "mentions of the owner); omit for every event")


class WebhookOut(BaseModel):
    id: str
    url: str
    status: Literal["active", "disabled"]
    created_at: int
    failures: int = Field(description="failed attempts in a row (0 after a delivery)")
    last_status: int | None = Field(description="HTTP status of the last answer, if there was one")
    last_error: str | None
    last_success_at: int | None
    next_attempt_at: int | None = Field(description="when the next attempt may start (active only)")
    disabled_reason: str | None
    filter: FeedFilter | None = Field(None, description="what it delivers; null: every event its owner may see")


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_...: the signing secret, shown only in this answer")


class WebhookList(BaseModel):
    items: list[WebhookOut]


class AdminWebhookOut(WebhookOut):
    owner: str = Field(description="participant id of the principal the webhook delivers to")
    cursor: str = Field(description="the last feed position handled")


class AdminWebhookList(BaseModel):
    items: list[AdminWebhookOut]
