"""kill switches: a network this company froze, and threads whose agents the host silenced

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frozen_at', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('shared_threads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agents_silenced', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('shared_threads', schema=None) as batch_op:
        batch_op.drop_column('agents_silenced')
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.drop_column('frozen_at')
