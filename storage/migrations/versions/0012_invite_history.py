"""invite history: what an invite said of the network's earlier history (shown before accepting)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('network_invites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('history_visible', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('network_invites', schema=None) as batch_op:
        batch_op.drop_column('history_visible')
