"""operator roles: admin tokens of named operators, each with a role

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('admin_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('role', sa.String(length=16), nullable=False, server_default='owner'))


def downgrade() -> None:
    with op.batch_alter_table('admin_tokens', schema=None) as batch_op:
        batch_op.drop_column('role')
        batch_op.drop_column('name')
