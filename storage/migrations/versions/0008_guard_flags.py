"""guard flags: messages the outbound guard flagged, for operators to review

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('guard_flags',
    sa.Column('id', _Id, autoincrement=True, nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('author', sa.String(length=330), nullable=False),
    sa.Column('network', sa.String(length=64), nullable=False),
    sa.Column('thread', sa.String(length=64), nullable=True),
    sa.Column('event_id', sa.String(length=44), nullable=False),
    sa.Column('rules', sa.Text(), nullable=False),
    sa.Column('reviewed_at', sa.BigInteger(), nullable=True),
    sa.Column('reviewed_by', sa.String(length=200), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_guard_flags'))
    )
    op.create_index('ix_guard_flags_reviewed_at', 'guard_flags', ['reviewed_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_guard_flags_reviewed_at', table_name='guard_flags')
    op.drop_table('guard_flags')
