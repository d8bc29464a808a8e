"""Tables for what a node shares with other companies: networks, their member companies and
attached participants, shared threads, the events of each network, outbound delivery rows and
the keys pinned for peers.

This is the only schema the federation code path may read. Nothing here references a private
table: a participant is named by its public id (``agent:ops@acme.example``), never by a
foreign key into ``principals``, so no join can pull private rows into a federation query.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "NETWORK_METADATA",
    "delivery_status",
    "inbound_transactions",
    "network_events",
    "network_halts",
    "network_invites",
    "network_members",
    "network_participants",
    "networks",
    "node_alerts",
    "node_keys",
    "outbox",
    "peer_key_documents",
    "peer_keys",
    "peers",
    "policies",
    "request_nonces",
    "shared_files",
    "shared_message_text",
    "shared_thread_participants",
    "shared_threads",
    "thread_consents",
    "vouched_keys",
]

_Id = BigInteger().with_variant(Integer(), "sqlite")

NETWORK_METADATA = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# A network is named by its host and a slug; two hosts may both run an `acme-rollout`.
networks = Table(
    "networks",
    NETWORK_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("host", String(255), nullable=False),
    Column("name", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("closed", Boolean, nullable=False, default=False),
    Column("history_visible", Boolean, nullable=False, default=True),
    Column("head_seq", BigInteger, nullable=False, default=0),
    Column("head_hash", LargeBinary(32), nullable=True),
    Column("head_ts", BigInteger, nullable=False, default=0),  # the host's time of the head event
    Column("created_at", BigInteger, nullable=False),
    # This company's kill switch, local only: while set, its people and agents cannot act in it.
    Column("frozen_at", BigInteger, nullable=True),
    # This company put a closed network away: out of the lists, kept whole (local only).
    Column("archived_at", BigInteger, nullable=True),
    UniqueConstraint("host", "name"),
)

# Member companies of a network: invited, member, declined, left or removed.
network_members = Table(
    "network_members",
    NETWORK_METADATA,
    Column("network_id", _Id, ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True),
    Column("server", String(255), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

network_participants = Table(
    "network_participants",
    NETWORK_METADATA,
    Column("network_id", _Id, ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True),
    Column("participant", String(340), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("attached", Boolean, nullable=False, default=True),
)

shared_threads = Table(
    "shared_threads",
    NETWORK_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("network_id", _Id, ForeignKey("networks.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("closed", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    Column("agents_silenced", Boolean, nullable=False, default=False),  # thread.silenced
    UniqueConstraint("network_id", "name"),
)

shared_thread_participants = Table(
    "shared_thread_participants",
    NETWORK_METADATA,
    Column("thread_id", _Id, ForeignKey("shared_threads.id", ondelete="CASCADE"), primary_key=True),
    Column("participant", String(340), primary_key=True),
)

# Every event of a network this node holds. `seq` is null while an event authored here waits
# for the host to sequence it (shown as pending); `wire` is the canonical signed form.
network_events = Table(
    "network_events",
    NETWORK_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("network_id", _Id, ForeignKey("networks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("seq", BigInteger, nullable=True),
    Column("type", String(40), nullable=False),
    Column("thread", String(64), nullable=True),
    Column("sender", String(340), nullable=False),
    Column("origin", String(255), nullable=False),
    Column("origin_ts", BigInteger, nullable=False),
    Column("wire", LargeBinary, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    UniqueConstraint("network_id", "seq"),
    Index("ix_network_events_thread", "network_id", "thread", "seq"),
)

# One row per (event, destination) to deliver; written in the same transaction as the event.
outbox = Table(
    "outbox",
    NETWORK_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("destination", String(255), nullable=False),
    Column("event_row_id", _Id, ForeignKey("network_events.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(16), nullable=False, default="pending"),
    Column("tries", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    Column("failed_at", BigInteger, nullable=True),
    Index("ix_outbox_destination_state", "destination", "state", "next_attempt_at"),
)

# Peering is default-deny: a server is a peer only after an admin invited or accepted it.
peers = Table(
    "peers",
    NETWORK_METADATA,
    Column("server", String(255), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("endpoint", String(500), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Keys learned from each company itself: pinned at peering, or from its own key document
# (fetched from it over TLS, or relayed but signed by a key it gave us). Only these
# authenticate requests and verify a host's signature. Old keys stay with their expiry.
peer_keys = Table(
    "peer_keys",
    NETWORK_METADATA,
    Column("server", String(255), primary_key=True),
    Column("key_id", String(64), primary_key=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("pinned_at", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
)


# Invitations to a network, both those this node sent (as host) and those it received.
# `token_hash` binds an accept or decline to the invite it answers.
network_invites = Table(
    "network_invites",
    NETWORK_METADATA,
    Column("id", String(64), primary_key=True),
    Column("direction", String(8), nullable=False),  # "outgoing" | "incoming"
    Column("network", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("title", String(200), nullable=False),
    Column("server", String(255), nullable=False),  # the other party
    Column("endpoint", String(500), nullable=False),  # the other party's endpoint
    Column("key_id", String(64), nullable=False),  # the other party's key, pinned on accept
    Column("public_key", LargeBinary(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("history_visible", Boolean, nullable=False, default=True),  # as the invite said
    Index("ix_network_invites_direction_status", "direction", "status"),
)

# Answers to inbound transactions, so a retried transaction gets the same answer.
inbound_transactions = Table(
    "inbound_transactions",
    NETWORK_METADATA,
    Column("origin", String(255), primary_key=True),
    Column("txn_id", String(64), primary_key=True),
    Column("response", LargeBinary, nullable=False),
    Column("received_at", BigInteger, nullable=False),
)

# Request nonces seen within the replay window; a second use of one is a replay.
request_nonces = Table(
    "request_nonces",
    NETWORK_METADATA,
    Column("origin", String(255), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_request_nonces_expires_at", "expires_at"),
)

# This node's own public keys, current and past, with the notices that link them.
node_keys = Table(
    "node_keys",
    NETWORK_METADATA,
    Column("key_id", String(64), primary_key=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("rotation_notice", LargeBinary, nullable=True),  # signed by the previous key
)

# How delivery to each peer is going, for operators and for the backoff of its sender.
delivery_status = Table(
    "delivery_status",
    NETWORK_METADATA,
    Column("server", String(255), primary_key=True),
    Column("failures", Integer, nullable=False, default=0),
    Column("last_success_at", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", BigInteger, nullable=True),
    Column("next_attempt_at", BigInteger, nullable=True),
)

# The latest key document accepted from each server, kept to relay to members that never
# peered with it (the document is self-signed, so the relaying host cannot alter it).
peer_key_documents = Table(
    "peer_key_documents",
    NETWORK_METADATA,
    Column("server", String(255), primary_key=True),
    Column("document", LargeBinary, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("fetched_at", BigInteger, nullable=False),
)


# Keys a network's host vouched for a co-member in `member.admitted`. They verify that
# company's events in that one network and nothing else. `status`: `confirmed` (the company
# itself publishes the key), `unconfirmed` (it could not be reached to ask) or `disputed` (it
# publishes other keys: the key verifies nothing, and an alert was raised).
vouched_keys = Table(
    "vouched_keys",
    NETWORK_METADATA,
    Column("network_id", _Id, ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True),
    Column("server", String(255), primary_key=True),
    Column("key_id", String(64), primary_key=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("endpoint", String(510), nullable=True),  # where the host says the company is
    Column("status", String(16), nullable=False),
    Column("pinned_at", BigInteger, nullable=False),
    Column("checked_at", BigInteger, nullable=True),
    Column("valid_until", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_vouched_keys_server", "server"),
)

# A network this member cannot follow: the host's next event was refused here. Retried with
# backoff (and at once on an operator's resume); the row goes when the event is accepted.
network_halts = Table(
    "network_halts",
    NETWORK_METADATA,
    Column("network_id", _Id, ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=True),
    Column("code", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("since", BigInteger, nullable=False),
    Column("tries", Integer, nullable=False),
    Column("next_try_at", BigInteger, nullable=False),
)

# What an operator must see: a key a host vouched for that the company itself contradicts, a
# halted network. One row per distinct alert; a repeat bumps `count` and `last_seen_at`.
node_alerts = Table(
    "node_alerts",
    NETWORK_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("network", String(64), nullable=True),
    Column("server", String(255), nullable=True),
    Column("message", Text, nullable=False),
    Column("detail", Text, nullable=False),  # canonical JSON
    Column("count", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
)

# The operators' policy, one row per scope: `node` (this node as a whole) or `partner:SERVER`
# (one other company; `partner:*` is every partner without a row of its own). `settings` is
# JSON that `node.federation.policy` validates; the network side reads it to enforce it on
# what partners send.
policies = Table(
    "policies",
    NETWORK_METADATA,
    Column("scope", String(300), primary_key=True),
    Column("settings", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(200), nullable=False),
)

# Threads another company opened naming this company's participants, when this company's policy
# for that partner says "ask": nothing of the thread reaches its participants until an operator
# accepts. `status`: pending, accepted or declined.
thread_consents = Table(
    "thread_consents",
    NETWORK_METADATA,
    Column("network_id", _Id, ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True),
    Column("thread", String(64), primary_key=True),
    Column("opened_by", String(330), nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    Column("decided_by", String(200), nullable=True),
    Index("ix_thread_consents_status", "status"),
)


# Files of messages in shared threads. An upload is this node's participant's (`owner`) until a
# post attaches it (`event_id`, `position`); a file of another company's message is a copy
# fetched from its node, checked against the signed attachment. `data` is null once the message
# is deleted or its body removed for retention: the row says the file existed, not what it held.
shared_files = Table(
    "shared_files",
    NETWORK_METADATA,
    Column("id", String(40), primary_key=True),
    Column("owner", String(340), nullable=True),
    Column("event_id", String(64), nullable=True),
    Column("position", Integer, nullable=True),
    Column("name", String(200), nullable=False),
    Column("content_type", String(127), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(43), nullable=False),
    Column("data", LargeBinary, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("event_id", "position"),
    Index("ix_shared_files_owner", "owner", "created_at"),
)

# The latest text of each message of a shared thread in this node's copy, for search: written
# when a message is sequenced here, replaced by an edit, removed by a delete or by retention.
# Full-text search runs over it (`storage.network.message_text`): SQLite FTS5, PostgreSQL GIN.
shared_message_text = Table(
    "shared_message_text",
    NETWORK_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("network_id", _Id, ForeignKey("networks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("thread", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_shared_message_text_thread", "network_id", "thread"),
)
