"""Tables for what never leaves the node: the company, its people and agents, their tokens,
private threads, knowledge and the audit log.

These live on their own ``MetaData`` so the structural rule of the design is checkable: the
federation code path imports only ``storage.network.tables`` and cannot name these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "DEFAULT_TOKEN_SCOPES",
    "PRIVATE_METADATA",
    "admin_tokens",
    "app_agents",
    "audit_head",
    "audit_log",
    "client_feed",
    "company",
    "feed_state",
    "guard_flags",
    "idempotency_keys",
    "knowledge_items",
    "knowledge_readers",
    "principal_tokens",
    "principals",
    "private_messages",
    "private_thread_members",
    "private_threads",
    "sign_in_links",
    "web_reads",
    "web_sessions",
    "webhooks",
]

# Integer primary keys are BigInteger on PostgreSQL and INTEGER (rowid alias) on SQLite.
_Id = BigInteger().with_variant(Integer(), "sqlite")

PRIVATE_METADATA = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# One row: the company this node belongs to.
company = Table(
    "company",
    PRIVATE_METADATA,
    Column("id", Integer, primary_key=True),
    Column("server_name", String(255), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# People and agents of the company. `handle` is the local part of `kind:handle@server`.
principals = Table(
    "principals",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("handle", String(64), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("profile", Text, nullable=False, default=""),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("kind", "handle"),
)

# Scopes a token gets when the operator names none: everything a principal may do itself.
DEFAULT_TOKEN_SCOPES = "read post knowledge:read webhooks"

# Bearer tokens of principals: only a SHA-256 of the token is stored (tokens are 256-bit random,
# so a slow hash adds nothing); `prefix` lets an operator tell tokens apart in listings.
# `scopes` is a space-separated set; `expires_at` (ms) null means the token does not expire.
principal_tokens = Table(
    "principal_tokens",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("principal_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("scopes", String(200), nullable=False, server_default=DEFAULT_TOKEN_SCOPES),
    Column("expires_at", BigInteger, nullable=True),
    Index("ix_principal_tokens_principal", "principal_id"),
)

# The agents an application may act as (`app:handle`, a principal of kind "app"): one
# integration with one token and one feed for several of the company's agents.
app_agents = Table(
    "app_agents",
    PRIVATE_METADATA,
    Column("app_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Column("agent_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_app_agents_agent", "agent_id"),
)

# The web app's sign-in: a one-time link the operator makes for a person (its token hashed like
# every token, used once, short-lived), and the browser sessions it opens (the cookie's hash;
# `csrf` is the session's form token, not a secret beyond the session's own).
sign_in_links = Table(
    "sign_in_links",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("principal_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)

web_sessions = Table(
    "web_sessions",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("principal_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("user_agent", String(200), nullable=False, server_default=""),
    Index("ix_web_sessions_principal", "principal_id"),
)

# How far each person has read each shared thread in the web app (the host's seq of the newest
# message a thread page showed them): what the home page counts as unread.
web_reads = Table(
    "web_reads",
    PRIVATE_METADATA,
    Column("principal_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Column("network", String(64), primary_key=True),
    Column("thread", String(64), primary_key=True),
    Column("seen_seq", BigInteger, nullable=False),
)

admin_tokens = Table(
    "admin_tokens",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    # A named operator's token (`agentnet operator add`) has a name and a role
    # (`node.http.roles`); the tokens `init` and `admin-token` write have neither: owners.
    Column("name", String(64), nullable=True),
    Column("role", String(16), nullable=False, default="owner"),
)

private_threads = Table(
    "private_threads",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

private_thread_members = Table(
    "private_thread_members",
    PRIVATE_METADATA,
    Column(
        "thread_id", _Id, ForeignKey("private_threads.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("principal_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_private_thread_members_principal", "principal_id"),
)

private_messages = Table(
    "private_messages",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("thread_id", _Id, ForeignKey("private_threads.id", ondelete="CASCADE"), nullable=False),
    Column("sender_id", _Id, ForeignKey("principals.id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_private_messages_thread_id", "thread_id", "id"),
)

# Knowledge items. `restricted` false means every principal of the company may read it;
# true means only the principals listed in knowledge_readers.
knowledge_items = Table(
    "knowledge_items",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("restricted", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
)

knowledge_readers = Table(
    "knowledge_readers",
    PRIVATE_METADATA,
    Column("item_id", _Id, ForeignKey("knowledge_items.id", ondelete="CASCADE"), primary_key=True),
    Column("principal_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
)

# The audit log: append-only and hash-chained (storage.audit_writer). `seq` is the position in
# the chain; `network` and `partner` (another company's server) are what it is filtered by.
audit_log = Table(
    "audit_log",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=False),
    Column("network", String(64), nullable=True),
    Column("partner", String(255), nullable=True),
    Column("detail", Text, nullable=False, default="{}"),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_network", "network"),
    Index("ix_audit_log_partner", "partner"),
)

# Messages the outbound guard let through but flagged, for an operator to review. The message
# itself is the event (`event_id`) in this node's copy; `rules` is a JSON list of rule names.
guard_flags = Table(
    "guard_flags",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("author", String(330), nullable=False),
    Column("network", String(64), nullable=False),
    Column("thread", String(64), nullable=True),
    Column("event_id", String(44), nullable=False),
    Column("rules", Text, nullable=False),
    Column("reviewed_at", BigInteger, nullable=True),
    Column("reviewed_by", String(200), nullable=True),
    Column("verdict", String(16), nullable=True),
    Column("note", String(500), nullable=True),
    Index("ix_guard_flags_reviewed_at", "reviewed_at", "id"),
)

# One row (id 1): the last seq of the audit chain and its hash.
audit_head = Table(
    "audit_head",
    PRIVATE_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# The node's activity feed: one row per message or lifecycle event that a local client may be
# shown, in commit order. `position` is handed out under a lock on `feed_state` inside the
# writing transaction, so positions become visible in order and a cursor never skips a row
# that commits late (what a plain sequence cannot promise with several writers). A row points
# at either a network event (`event_row`, with its network and thread for visibility) or a
# private message; it holds no content itself.
client_feed = Table(
    "client_feed",
    PRIVATE_METADATA,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("network_id", _Id, nullable=True),
    Column("thread", String(64), nullable=True),
    Column("event_row", _Id, nullable=True),
    Column("private_thread_id", _Id, nullable=True),
    Column("private_message_id", _Id, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

# One row (id 1): the last position handed out, and the floor below which rows were pruned.
feed_state = Table(
    "feed_state",
    PRIVATE_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("head", BigInteger, nullable=False),
    Column("floor", BigInteger, nullable=False),
)

# Idempotency-Key of posts: a retried post with the same key returns the first answer.
idempotency_keys = Table(
    "idempotency_keys",
    PRIVATE_METADATA,
    Column("principal_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

# Webhook endpoints registered by principals. Delivery follows the feed: `cursor` is the last
# feed position delivered (or skipped as not visible), so nothing is lost across restarts.
# The signing secret must be kept in clear: the node signs with it (like its own key file).
webhooks = Table(
    "webhooks",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("principal_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("secret", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("cursor", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("first_failure_at", BigInteger, nullable=True),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_success_at", BigInteger, nullable=True),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("filter", Text, nullable=True),  # JSON (node.feed.filters.FeedFilter); null: every event
    Index("ix_webhooks_principal_id", "principal_id"),
)
