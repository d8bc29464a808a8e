"""The operators' policy, as this node enforces it on what other companies send.

Node-wide: whether invites are accepted at all, and which servers' invites are accepted
without asking. Per partner (a row for one server, else the `partner:*` row, else the
defaults): whether its participants may be agents, the longest message it may send, whether
files cross (and how large, of which types), and
whether the threads it opens naming this company's participants need an operator's consent
(`node.federation.consent`).

Where it runs: as host, on every event a partner submits, before the event is sequenced (the
partner is refused with 403 `policy_refused` and a reason, and nothing is stored); and on
every invite that arrives. It never runs on a host's sequenced copy of an event: a member
that refused one would halt the network (`node.federation.halting`) over a rule the host never
agreed to. Files are the exception that proves it: they are not in the chain, so a member
applies its file rules when it would fetch a partner's file (`node.federation.files`), and
never serves its own files to a partner whose policy says no files.
"""

from __future__ import annotations

from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from federation.errors import RuleViolation
from federation.event_content import (
    MAX_BODY_CHARS,
    MAX_FILE_BYTES,
    Attachment,
    MessageEdited,
    MessagePosted,
    ParticipantAttached,
    ServerName,
)
from federation.events import Event
from node.http.fields import form
from storage.network.transaction import NetworkTransaction

__all__ = [
    "DEFAULT_PARTNER_SCOPE",
    "NODE_SCOPE",
    "NodePolicy",
    "PartnerPolicy",
    "PolicyRefused",
    "check_partner_event",
    "file_refusal",
    "node_policy",
    "partner_policy",
    "partner_scope",
]

NODE_SCOPE = "node"
_HANDLE = r"^[a-z0-9][a-z0-9._-]{0,63}$"  # node.http.fields.Handle
# "type/subtype" or "type/*", as the protocol writes media types (federation.event_content).
_MEDIA_RANGE = form(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/(\*|[a-z0-9][a-z0-9!#$&^_.+-]{0,62})$",
                    "a media type in lower case, or a type with /* (e.g. application/pdf or image/*)")
DEFAULT_PARTNER_SCOPE = "partner:*"
# More servers than one company works with at once; each is checked on every invite.
MAX_AUTO_ACCEPT = 200


class PolicyRefused(RuleViolation):
    """A rule of this company's own, not of the protocol: 403 `policy_refused` with a `reason`."""

    code = "policy_refused"


def partner_scope(server: str) -> str:
    return f"partner:{server}"


class NodePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    accept_invites: bool = Field(True, description="false: every invite is refused, except from auto_accept")
    auto_accept: list[ServerName] = Field(
        default_factory=list, max_length=MAX_AUTO_ACCEPT,
        description="servers whose invites are accepted at once, without an operator (their key is pinned as "
                    "the invite carries it: list only partners whose server name TLS already proves)")
    refuse_invites_from: list[ServerName] = Field(
        default_factory=list, max_length=MAX_AUTO_ACCEPT,
        description="servers whose invites are always refused (other traffic is not blocked: `agentnet block` does "
                    "that)")
    a2a_agents: list[Annotated[str, Field(pattern=_HANDLE)]] = Field(
        default_factory=list, max_length=100,
        description="this company's agents published to A2A clients: an agent card each, and A2A messages into "
                    "threads (node.a2a.gateway)")
    retain_days_after_close: int | None = Field(
        None, ge=0, le=36_500,
        description="message bodies in this node's copy of a closed network are removed this many days after it "
                    "closed (kept as stubs: the chain still verifies); null keeps them for ever")


    @model_validator(mode="after")
    def _lists_apart(self) -> NodePolicy:
        both = sorted(set(self.auto_accept) & set(self.refuse_invites_from))
        if both:
            raise ValueError(f"{both[0]} is both accepted automatically and refused")
        return self


class PartnerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: bool = Field(True, description="false: the partner may not attach agents, nor may its agents open "
                                           "threads or post, in networks this node hosts")
    max_message_chars: int = Field(MAX_BODY_CHARS, ge=1, le=MAX_BODY_CHARS,
                                   description="the longest message (or edit) the partner may send")
    max_events_per_minute: int | None = Field(
        None, ge=1, le=100_000, description="events the partner may submit to networks hosted here, a minute (bursts "
                                            "of as many); more are answered 429 and its node retries later")
    files: bool = Field(True, description="false: no file crosses between this node and the partner: its messages "
                                          "with files are refused in networks hosted here, its files are not "
                                          "fetched, and this node's files are not served to it")
    max_file_bytes: int = Field(MAX_FILE_BYTES, ge=0, le=MAX_FILE_BYTES,
                                description="the largest file the partner may send")
    file_types: list[Annotated[str, Field(pattern=_MEDIA_RANGE)]] | None = Field(
        None, max_length=100, description='media types the partner may send files of, such as "application/pdf" or '
                                          '"image/*"; null: any')
    threads: Literal["auto", "ask"] = Field(
        "auto", description="ask: a thread the partner opens naming this company's participants reaches them only "
                            "once an operator accepts it (`agentnet consent`); auto: at once")


async def node_policy(tx: NetworkTransaction) -> NodePolicy:
    found = (await tx.policies.find(NODE_SCOPE)).get(NODE_SCOPE)
    return NodePolicy.model_validate(found.settings) if found else NodePolicy()


async def partner_policy(tx: NetworkTransaction, server: str) -> tuple[PartnerPolicy, str | None]:
    """The policy that applies to `server`, and the scope it came from (None: the defaults).
    Read once per transaction and partner: a batch of a partner's events reads it once."""
    key = ("partner_policy", server)
    if key in tx.memo:
        return cast(tuple[PartnerPolicy, str | None], tx.memo[key])
    scope = partner_scope(server)
    found = await tx.policies.find(scope, DEFAULT_PARTNER_SCOPE)
    name = next((n for n in (scope, DEFAULT_PARTNER_SCOPE) if n in found), None)
    result = (PartnerPolicy.model_validate(found[name].settings), name) if name else (PartnerPolicy(), None)
    tx.memo[key] = result
    return result


def check_partner_event(policy: PartnerPolicy, event: Event) -> None:
    """Raise `PolicyRefused` if `policy` (the origin's) forbids `event`."""
    content = event.content
    if not policy.agents:
        if event.sender.kind == "agent":
            raise PolicyRefused("agents_not_allowed", f"{event.origin}'s agents may not act in networks hosted here")
        if isinstance(content, ParticipantAttached) and content.participant.kind == "agent":
            raise PolicyRefused("agents_not_allowed", f"{event.origin} may not attach agents to networks hosted here")
    if isinstance(content, MessagePosted | MessageEdited):
        length = len(content.body)
        if length > policy.max_message_chars:
            raise PolicyRefused("message_too_long", f"messages from {event.origin} may be at most "
                                f"{policy.max_message_chars} characters here; this one has {length}")
    if isinstance(content, MessagePosted):
        for attachment in content.attachments or ():
            refused = file_refusal(policy, attachment, event.origin)
            if refused is not None:
                raise PolicyRefused(*refused)


def file_refusal(policy: PartnerPolicy, attachment: Attachment, origin: str) -> tuple[str, str] | None:
    """Why `policy` (the origin's) keeps `attachment` out, as (reason, message); None if it may cross."""
    if not policy.files:
        return "files_not_allowed", f"files from {origin} are not accepted here"
    if attachment.size > policy.max_file_bytes:
        return "file_too_large", (f"files from {origin} may be at most {policy.max_file_bytes} bytes here; "
                                  f"{attachment.name} has {attachment.size}")
    if policy.file_types is not None:
        kind = attachment.content_type.split("/")[0] + "/*"
        if attachment.content_type not in policy.file_types and kind not in policy.file_types:
            return "file_type_not_allowed", (f"files of type {attachment.content_type} from {origin} are not "
                                             f"accepted here (allowed: {', '.join(policy.file_types) or 'none'})")
    return None
