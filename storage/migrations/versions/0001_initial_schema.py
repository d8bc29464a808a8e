"""initial schema: private tables, network tables, knowledge full-text search

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_admin_tokens_token_hash'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_table('company',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('server_name', sa.String(length=255), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_company'))
    )
    op.create_table('knowledge_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('restricted', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_items'))
    )
    op.create_table('principals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('handle', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('profile', sa.Text(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_principals')),
    sa.UniqueConstraint('kind', 'handle', name=op.f('uq_principals_kind'))
    )
    op.create_table('private_threads',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_private_threads')),
    sa.UniqueConstraint('name', name=op.f('uq_private_threads_name'))
    )
    op.create_table('knowledge_readers',
    sa.Column('item_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('principal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['knowledge_items.id'], name=op.f('fk_knowledge_readers_item_id_knowledge_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['principal_id'], ['principals.id'], name=op.f('fk_knowledge_readers_principal_id_principals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('item_id', 'principal_id', name=op.f('pk_knowledge_readers'))
    )
    op.create_table('principal_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('principal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['principal_id'], ['principals.id'], name=op.f('fk_principal_tokens_principal_id_principals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_principal_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_principal_tokens_token_hash'))
    )
    with op.batch_alter_table('principal_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_principal_tokens_principal', ['principal_id'], unique=False)

    op.create_table('private_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('thread_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sender_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['sender_id'], ['principals.id'], name=op.f('fk_private_messages_sender_id_principals')),
    sa.ForeignKeyConstraint(['thread_id'], ['private_threads.id'], name=op.f('fk_private_messages_thread_id_private_threads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_private_messages'))
    )
    with op.batch_alter_table('private_messages', schema=None) as batch_op:
        batch_op.create_index('ix_private_messages_thread_id', ['thread_id', 'id'], unique=False)

    op.create_table('private_thread_members',
    sa.Column('thread_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('principal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['principal_id'], ['principals.id'], name=op.f('fk_private_thread_members_principal_id_principals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['thread_id'], ['private_threads.id'], name=op.f('fk_private_thread_members_thread_id_private_threads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('thread_id', 'principal_id', name=op.f('pk_private_thread_members'))
    )
    with op.batch_alter_table('private_thread_members', schema=None) as batch_op:
        batch_op.create_index('ix_private_thread_members_principal', ['principal_id'], unique=False)

    op.create_table('networks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('history_visible', sa.Boolean(), nullable=False),
    sa.Column('head_seq', sa.BigInteger(), nullable=False),
    sa.Column('head_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_networks')),
    sa.UniqueConstraint('host', 'name', name=op.f('uq_networks_host'))
    )
    op.create_table('peer_keys',
    sa.Column('server', sa.String(length=255), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('pinned_at', sa.BigInteger(), nullable=False),
    sa.Column('valid_until', sa.BigInteger(), nullable=True),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('server', 'key_id', name=op.f('pk_peer_keys'))
    )
    op.create_table('peers',
    sa.Column('server', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('endpoint', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('server', name=op.f('pk_peers'))
    )
    op.create_table('network_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('network_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('thread', sa.String(length=64), nullable=True),
    sa.Column('sender', sa.String(length=340), nullable=False),
    sa.Column('origin', sa.String(length=255), nullable=False),
    sa.Column('origin_ts', sa.BigInteger(), nullable=False),
    sa.Column('wire', sa.LargeBinary(), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_network_events_network_id_networks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_network_events_event_id')),
    sa.UniqueConstraint('network_id', 'seq', name=op.f('uq_network_events_network_id'))
    )
    with op.batch_alter_table('network_events', schema=None) as batch_op:
        batch_op.create_index('ix_network_events_thread', ['network_id', 'thread', 'seq'], unique=False)

    op.create_table('network_members',
    sa.Column('network_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('server', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_network_members_network_id_networks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('network_id', 'server', name=op.f('pk_network_members'))
    )
    op.create_table('network_participants',
    sa.Column('network_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('participant', sa.String(length=340), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('attached', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_network_participants_network_id_networks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('network_id', 'participant', name=op.f('pk_network_participants'))
    )
    op.create_table('shared_threads',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('network_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_shared_threads_network_id_networks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shared_threads')),
    sa.UniqueConstraint('network_id', 'name', name=op.f('uq_shared_threads_network_id'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('destination', sa.String(length=255), nullable=False),
    sa.Column('event_row_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.BigInteger(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('delivered_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['event_row_id'], ['network_events.id'], name=op.f('fk_outbox_event_row_id_network_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_destination_state', ['destination', 'state', 'next_attempt_at'], unique=False)

    op.create_table('shared_thread_participants',
    sa.Column('thread_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('participant', sa.String(length=340), nullable=False),
    sa.ForeignKeyConstraint(['thread_id'], ['shared_threads.id'], name=op.f('fk_shared_thread_participants_thread_id_shared_threads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('thread_id', 'participant', name=op.f('pk_shared_thread_participants'))
    )
    _create_knowledge_search()


def downgrade() -> None:
    _drop_knowledge_search()
    op.drop_table('shared_thread_participants')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_destination_state')

    op.drop_table('outbox')
    op.drop_table('shared_threads')
    op.drop_table('network_participants')
    op.drop_table('network_members')
    with op.batch_alter_table('network_events', schema=None) as batch_op:
        batch_op.drop_index('ix_network_events_thread')

    op.drop_table('network_events')
    op.drop_table('peers')
    op.drop_table('peer_keys')
    op.drop_table('networks')
    with op.batch_alter_table('private_thread_members', schema=None) as batch_op:
        batch_op.drop_index('ix_private_thread_members_principal')

    op.drop_table('private_thread_members')
    with op.batch_alter_table('private_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_private_messages_thread_id')

    op.drop_table('private_messages')
    with op.batch_alter_table('principal_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_principal_tokens_principal')

    op.drop_table('principal_tokens')
    op.drop_table('knowledge_readers')
    op.drop_table('private_threads')
    op.drop_table('principals')
    op.drop_table('knowledge_items')
    op.drop_table('company')
    op.drop_table('audit_log')
    op.drop_table('admin_tokens')


# Knowledge search. SQLite: an external-content FTS5 table kept in step by triggers.
# PostgreSQL: a GIN index over the same tsvector expression the repository queries.
_KNOWLEDGE_TSVECTOR = "to_tsvector('simple', title || ' ' || body)"


def _create_knowledge_search() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE knowledge_fts USING fts5("
            "title, body, content='knowledge_items', content_rowid='id', tokenize='unicode61')"
        )
        op.execute(
            "CREATE TRIGGER knowledge_fts_ai AFTER INSERT ON knowledge_items BEGIN "
            "INSERT INTO knowledge_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END"
        )
        op.execute(
            "CREATE TRIGGER knowledge_fts_ad AFTER DELETE ON knowledge_items BEGIN "
            "INSERT INTO knowledge_fts(knowledge_fts, rowid, title, body) "
            "VALUES ('delete', old.id, old.title, old.body); END"
        )
        op.execute(
            "CREATE TRIGGER knowledge_fts_au AFTER UPDATE ON knowledge_items BEGIN "
            "INSERT INTO knowledge_fts(knowledge_fts, rowid, title, body) "
            "VALUES ('delete', old.id, old.title, old.body); "
            "INSERT INTO knowledge_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END"
        )
    else:
        op.execute(f"CREATE INDEX ix_knowledge_items_search ON knowledge_items USING GIN ({_KNOWLEDGE_TSVECTOR})")


def _drop_knowledge_search() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("knowledge_fts_ai", "knowledge_fts_ad", "knowledge_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS knowledge_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_knowledge_items_search")
