"""audit chain: the audit log becomes append-only and hash-chained, filterable by network and partner

Existing rows get their seqs in id order and their hashes computed here, so the chain
verifies from the first row. On both databases a trigger refuses UPDATE and DELETE of a row:
changing the log takes dropping the trigger first, and the chain shows it either way.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa

from storage.audit_writer import GENESIS_HASH, entry_hash


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('network', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('partner', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    seq, previous = _chain_existing(op.get_bind())
    op.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :seq, :hash)").bindparams(
        seq=seq, hash=previous))
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(op.f('uq_audit_log_seq'), ['seq'])
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_log_network', ['network'], unique=False)
        batch_op.create_index('ix_audit_log_partner', ['partner'], unique=False)
    _refuse_changes(op.get_bind().dialect.name)


def _chain_existing(conn) -> tuple[int, str]:
    previous, seq = GENESIS_HASH, 0
    rows = conn.execute(sa.text("SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id")).all()
    for row in rows:
        seq += 1
        values = {"seq": seq, "at": row.at, "actor": row.actor, "action": row.action, "target": row.target,
                  "network": None, "partner": None, "detail": row.detail, "prev_hash": previous}
        values["hash"] = previous = entry_hash(values)
        conn.execute(sa.text("UPDATE audit_log SET seq = :seq, prev_hash = :prev_hash, hash = :hash WHERE id = :id"),
                     {**values, "id": row.id})
    return seq, previous


def _refuse_changes(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute("""
            CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'audit_log is append-only'; END;
            $$ LANGUAGE plpgsql""")
        op.execute("""CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
                      FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log
                           BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER audit_log_no_update")
        op.execute("DROP TRIGGER audit_log_no_delete")
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_partner')
        batch_op.drop_index('ix_audit_log_network')
        batch_op.drop_index('ix_audit_log_at')
        batch_op.drop_constraint(op.f('uq_audit_log_seq'), type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('partner')
        batch_op.drop_column('network')
        batch_op.drop_column('seq')
    op.drop_table('audit_head')
