"""Tables for what never leaves the node: the company, its people and agents, their tokens,
private threads, knowledge and the audit log.

These live on their own ``MetaData`` so the structural rule of the design is checkable: the
federation code path imports only ``storage.network_tables`` and cannot name these tables.
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
    "PRIVATE_METADATA",
    "admin_tokens",
    "audit_log",
    "company",
    "knowledge_items",
    "knowledge_readers",
    "principal_tokens",
    "principals",
    "private_messages",
    "private_thread_members",
    "private_threads",
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

# Bearer tokens of principals: only a SHA-256 of the token is stored (tokens are 256-bit random,
# so a slow hash adds nothing); `prefix` lets an operator tell tokens apart in listings.
principal_tokens = Table(
    "principal_tokens",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("principal_id", _Id, ForeignKey("principals.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_principal_tokens_principal", "principal_id"),
)

admin_tokens = Table(
    "admin_tokens",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
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

audit_log = Table(
    "audit_log",
    PRIVATE_METADATA,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=False),
    Column("detail", Text, nullable=False, default="{}"),
)
