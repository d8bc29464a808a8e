"""The value types every API speaks in, shared by the rooms' request and response models and
by the path parameter table: names, titles, cursors, server names, message bodies, and the
strict base classes for request bodies and query strings.

A message body has one limit, the protocol's (`federation.event_content.MAX_BODY_CHARS`), for
private and shared messages alike, so a private message can be quoted into a shared thread.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, StringConstraints

from federation.event_content import MAX_BODY_CHARS
from federation.identifiers import MAX_SERVER_NAME_CHARS, ParticipantId, validate_server_name

__all__ = [
    "MAX_BODY_CHARS", "MAX_PAGE", "SERVER_PATTERN", "Cursor", "EventId", "Handle", "MessageBody", "ParticipantRef",
    "PrincipalRef", "QueryModel", "Request", "ServerName", "Slug", "Title", "form", "form_of", "formerly",
    "old_name",
]

# The naming convention of every response (docs/agents.md, "Conventions"): lists under `items`,
# instants as `*_at` in integer milliseconds. A field renamed to follow it still reads its old
# name (`formerly`: stored idempotent answers, older nodes' answers) and is still sent under it
# (`old_name`, a computed field marked deprecated in the OpenAPI document) until a release that
# the CHANGELOG names.


def formerly(new: str, old: str) -> AliasChoices:
    return AliasChoices(new, old)


def old_name(new: str) -> dict:
    """The computed field's settings: deprecated in the document, pointing to `new`."""
    return {"json_schema_extra": {"deprecated": True}, "description": f"deprecated: the same as `{new}`"}

MAX_PAGE = 200

# What each pattern means, in words: an error names the expected form, never the regular
# expression (`node.http.errors.validation_fields`). A pattern without an entry is reported as
# "does not have the expected form", so every pattern a caller can meet is given one here or
# where it is declared (`form`).
_FORMS: dict[str, str] = {}


def form(pattern: str, meaning: str) -> str:
    """Register what `pattern` means (a phrase that follows "must be"); returns the pattern."""
    _FORMS[pattern] = meaning
    return pattern


def form_of(pattern: str | None) -> str | None:
    return _FORMS.get(pattern) if pattern is not None else None


_HANDLE = form(r"^[a-z0-9][a-z0-9._-]{0,63}$",
               "a handle: 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit "
               "(e.g. ops)")
_SLUG = form(r"^[a-z0-9][a-z0-9-]{0,63}$",
             "a name: 1-64 lowercase letters, digits or '-', starting with a letter or digit (e.g. acme-rollout)")
_CURSOR = form(r"^[0-9]{1,18}$", "a number of at most 18 digits (a cursor or id the API gave)")
_NOT_BLANK = form(r"\S", "text that is not blank")
_EVENT_ID = form(r"^\$[A-Za-z0-9_-]{43}$", "an event id: $ and 43 base64url characters (a message's `id`)")
_PRINCIPAL = form(r"^(agent|person):[a-z0-9][a-z0-9._-]{0,63}(@[A-Za-z0-9.:\[\]-]{1,255})?$",
                  "agent:HANDLE or person:HANDLE, optionally with this node's @SERVER (e.g. agent:ops)")
_FILE_ID = form(r"^file_[A-Za-z0-9_-]{24}$", "a file id: file_ and 24 base64url characters (what an upload returned)")
# Patterns declared elsewhere (the protocol core, response headers) that a caller meets.
form(r"^[A-Za-z0-9_-]{16,64}$", "an invite id: 16-64 letters, digits, '_' or '-' (`agentnet invites` lists them)")
form(r"^https://[^\s?#]+$", "an https:// URL without a query or fragment (e.g. https://globex.example:8443)")
form(r"^[0-9]+$", "a number of seconds")
form(r"^true$", "true")

Handle = Annotated[str, StringConstraints(pattern=_HANDLE)]
Slug = Annotated[str, StringConstraints(pattern=_SLUG)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Cursor = Annotated[str, StringConstraints(pattern=_CURSOR)]
EventId = Annotated[str, StringConstraints(pattern=_EVENT_ID)]
FileId = Annotated[str, StringConstraints(pattern=_FILE_ID)]
MessageBody = Annotated[str, StringConstraints(min_length=1, max_length=MAX_BODY_CHARS, pattern=_NOT_BLANK)]
# `agent:ops` or `person:alex`, optionally with this node's `@server`.
PrincipalRef = Annotated[str, StringConstraints(pattern=_PRINCIPAL)]

# A lowercase DNS name or IPv4 address with an optional port. The pattern is what the OpenAPI
# document can say; the validator is the protocol's own rule (all-digit labels must make an
# IPv4 address, a port is 1-65535, a DNS name at most 253 characters), so a name that passes
# here is one `federation` accepts and no service meets a bad one.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
SERVER_PATTERN = form(rf"^{_LABEL}(?:\.{_LABEL})*(?::[1-9][0-9]{{0,4}})?$",
                      "a server name: a lowercase DNS name or IPv4 address, optionally with :PORT "
                      "(e.g. globex.example)")
ServerName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SERVER_NAME_CHARS, pattern=SERVER_PATTERN),
                       AfterValidator(validate_server_name)]
# Another company's participant, always with its server.
ParticipantRef = Annotated[
    str, StringConstraints(max_length=9 + 64 + 1 + MAX_SERVER_NAME_CHARS,
                           pattern=form(rf"^(agent|person):[a-z0-9][a-z0-9._-]{{0,63}}@{SERVER_PATTERN[1:-1]}$",
                                        "agent:HANDLE@SERVER or person:HANDLE@SERVER "
                                        "(e.g. agent:delivery@globex.example)")),
    AfterValidator(lambda ref: str(ParticipantId.parse(ref))),
]


class Request(BaseModel):
    """A request body: strict and closed, so a typo in a field name is an error, not a silently
    ignored setting."""

    model_config = ConfigDict(extra="forbid", strict=True)


class QueryModel(BaseModel):
    # Query strings are text: numbers are coerced, unknown parameters still refused.
    model_config = ConfigDict(extra="forbid")
