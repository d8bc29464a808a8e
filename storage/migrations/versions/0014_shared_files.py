"""shared files (uploads of this node's participants, copies of partners' attachments), webhook filters,
and the searchable text of shared messages

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

import json

from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'shared_files',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('owner', sa.String(length=340), nullable=True),
        sa.Column('event_id', sa.String(length=64), nullable=True),
        sa.Column('position', sa.Integer(), nullable=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('content_type', sa.String(length=127), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('sha256', sa.String(length=43), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_shared_files')),
        sa.UniqueConstraint('event_id', 'position', name=op.f('uq_shared_files_event_id')),
    )
    with op.batch_alter_table('shared_files', schema=None) as batch_op:
        batch_op.create_index('ix_shared_files_owner', ['owner', 'created_at'], unique=False)
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('filter', sa.Text(), nullable=True))
    op.create_table(
        'shared_message_text',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('network_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('thread', sa.String(length=64), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['network_id'], ['networks.id'],
                                name=op.f('fk_shared_message_text_network_id_networks'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_shared_message_text')),
        sa.UniqueConstraint('event_id', name=op.f('uq_shared_message_text_event_id')),
    )
    op.create_index('ix_shared_message_text_thread', 'shared_message_text', ['network_id', 'thread'], unique=False)
    _create_message_search()
    _fill_message_text()


# As for knowledge (0001): SQLite keeps an external-content FTS5 table in step with triggers,
# PostgreSQL a GIN index over the expression the repository queries.
def _create_message_search() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE shared_message_fts USING fts5("
                   "body, content='shared_message_text', content_rowid='id', tokenize='unicode61')")
        op.execute("CREATE TRIGGER shared_message_fts_ai AFTER INSERT ON shared_message_text BEGIN "
                   "INSERT INTO shared_message_fts(rowid, body) VALUES (new.id, new.body); END")
        op.execute("CREATE TRIGGER shared_message_fts_ad AFTER DELETE ON shared_message_text BEGIN "
                   "INSERT INTO shared_message_fts(shared_message_fts, rowid, body) VALUES ('delete', old.id, old.body); "
                   "END")
        op.execute("CREATE TRIGGER shared_message_fts_au AFTER UPDATE ON shared_message_text BEGIN "
                   "INSERT INTO shared_message_fts(shared_message_fts, rowid, body) VALUES ('delete', old.id, old.body); "
                   "INSERT INTO shared_message_fts(rowid, body) VALUES (new.id, new.body); END")
    else:
        op.execute("CREATE INDEX ix_shared_message_text_search ON shared_message_text "
                   "USING GIN (to_tsvector('simple', body))")


def _fill_message_text() -> None:
    """The text of every message already held here, with edits and deletes applied in order."""
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT network_id, event_id, type, thread, wire FROM network_events "
        "WHERE type IN ('message.posted', 'message.edited', 'message.deleted') AND seq IS NOT NULL "
        "ORDER BY network_id, seq"))
    texts: dict[str, tuple[int, str, str]] = {}
    for network_id, event_id, type_, thread, wire in rows:
        content = json.loads(bytes(wire))["event"]["content"]
        if type_ == "message.posted":
            texts[event_id] = (network_id, thread, content["body"])
        elif type_ == "message.edited" and content["event_id"] in texts:
            network, where, _ = texts[content["event_id"]]
            texts[content["event_id"]] = (network, where, content["body"])
        else:
            texts.pop(content["event_id"], None)
    table = sa.table('shared_message_text', sa.column('network_id'), sa.column('event_id'), sa.column('thread'),
                     sa.column('body'))
    if texts:
        op.bulk_insert(table, [{"network_id": n, "event_id": e, "thread": t, "body": b}
                               for e, (n, t, b) in texts.items()])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("shared_message_fts_ai", "shared_message_fts_ad", "shared_message_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS shared_message_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_shared_message_text_search")
    op.drop_index('ix_shared_message_text_thread', table_name='shared_message_text')
    op.drop_table('shared_message_text')
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_column('filter')
    with op.batch_alter_table('shared_files', schema=None) as batch_op:
        batch_op.drop_index('ix_shared_files_owner')
    op.drop_table('shared_files')
