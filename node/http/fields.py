"""The value types every API speaks in, shared by the rooms' request and response models and
by the path parameter table: names, titles, cursors, server names, message bodies, and the
strict base classes for request bodies and query strings.

A message body has one limit, the protocol's (`federation.event_content.MAX_BODY_CHARS`), for
private and shared messages alike, so a private message can be quoted into a shared thread.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from federation.event_content import MAX_BODY_CHARS
from federation.identifiers import MAX_SERVER_NAME_CHARS, ParticipantId, validate_server_name

__all__ = [
    "MAX_BODY_CHARS", "MAX_PAGE", "SERVER_PATTERN", "Cursor", "Handle", "MessageBody", "ParticipantRef",
    "PrincipalRef", "QueryModel", "Request", "ServerName", "Slug", "Title",
]

MAX_PAGE = 200

Handle = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Cursor = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,18}$")]
MessageBody = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY_CHARS, pattern=r"\S")]
# `agent:ops` or `person:alex`, optionally with this node's `@server`.
PrincipalRef = Annotated[
    str,
    StringConstraints(
        pattern=r"^(agent|person):[a-z0-9][a-z0-9._-]{0,63}(@[A-Za-z0-9.:\[\]-]{1,255})?$"
    ),
]

# A lowercase DNS name or IPv4 address with an optional port. The pattern is what the OpenAPI
# document can say; the validator is the protocol's own rule (all-digit labels must make an
# IPv4 address, a port is 1-65535, a DNS name at most 253 characters), so a name that passes
# here is one `federation` accepts and no service meets a bad one.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
SERVER_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*(?::[1-9][0-9]{{0,4}})?$"
ServerName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SERVER_NAME_CHARS, pattern=SERVER_PATTERN),
                       AfterValidator(validate_server_name)]
# Another company's participant, always with its server.
ParticipantRef = Annotated[
    str, StringConstraints(max_length=9 + 64 + 1 + MAX_SERVER_NAME_CHARS,
                           pattern=rf"^(agent|person):[a-z0-9][a-z0-9._-]{{0,63}}@{SERVER_PATTERN[1:-1]}$"),
    AfterValidator(lambda ref: str(ParticipantId.parse(ref))),
]


class Request(BaseModel):
    """A request body: strict and closed, so a typo in a field name is an error, not a silently
    ignored setting."""

    model_config = ConfigDict(extra="forbid", strict=True)


class QueryModel(BaseModel):
    # Query strings are text: numbers are coerced, unknown parameters still refused.
    model_config = ConfigDict(extra="forbid")
