"""Bodies of the node-to-node requests other than events themselves: invites and their
answers, transactions, and catch-up pages.

Unknown fields are ignored (a newer peer may send more); every known field is bounded.
Events inside a transaction stay raw dicts here: `federation.events` parses each on its own,
so one malformed event is refused alone instead of failing the whole batch.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from federation.identifiers import validate_network_name, validate_server_name
from federation.keys import VerifyKey

__all__ = [
    "MAX_TRANSACTION_EVENTS",
    "AcceptMessage",
    "DeclineMessage",
    "EventsPage",
    "InviteMessage",
    "KeyRef",
    "TransactionMessage",
    "TransactionResult",
]

# Matrix's limit of PDUs per transaction: enough to batch, small enough to answer quickly.
MAX_TRANSACTION_EVENTS = 100

InviteId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
# The length is bounded by max_length, not by counted repetitions in the pattern: pydantic's
# regex engine unrolls `[^\s...]{1,300}` over all of Unicode, which cost 3 MB of memory.
Endpoint = Annotated[str, StringConstraints(max_length=8 + 300 + 201, pattern=r"^https://[^\s/?#]+(/[^\s?#]*)?$")]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class KeyRef(_Wire):
    key_id: Annotated[str, StringConstraints(pattern=r"^ed25519:[A-Za-z0-9_-]{8}$")]
    public_key: Annotated[str, StringConstraints(min_length=43, max_length=43)]

    def verify_key(self) -> VerifyKey:
        """The key, checked against its id so a body cannot pair one id with another key."""
        key = VerifyKey.from_base64(self.public_key)
        if key.key_id != self.key_id:
            raise ValueError(f"public key does not match key id {self.key_id}")
        return key


class InviteMessage(_Wire):
    """Host → invitee: join this network. Signed with the key it carries."""

    invite_id: InviteId
    network: str
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    host: str
    endpoint: Endpoint
    key: KeyRef
    expires_at: int = Field(ge=0)
    # Whether this company will see what was said before it joins (the network's
    # `history_visible_to_new_members`); shown before accepting, and held to the chain's word.
    history_visible: bool = True

    @field_validator("network")
    @classmethod
    def _network(cls, value: str) -> str:
        return validate_network_name(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return validate_server_name(value)


class AcceptMessage(_Wire):
    """Invitee → host: yes; pin this key and reach me here."""

    endpoint: Endpoint
    key: KeyRef


class DeclineMessage(_Wire):
    key: KeyRef


class TransactionMessage(_Wire):
    events: list[Any] = Field(max_length=MAX_TRANSACTION_EVENTS)


class TransactionResult(_Wire):
    event_id: str | None = None
    status: int
    code: str | None = None
    reason: str | None = None  # for code "forbidden": which rule refused the event
    message: str | None = None
    seq: int | None = None


class EventsPage(_Wire):
    events: list[Any]
    head: int
