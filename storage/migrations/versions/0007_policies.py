"""policies: the operators' node-wide and per-partner policy

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('policies',
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('settings', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('scope', name=op.f('pk_policies'))
    )


def downgrade() -> None:
    op.drop_table('policies')
