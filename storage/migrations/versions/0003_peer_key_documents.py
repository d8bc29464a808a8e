"""peer key documents

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('peer_key_documents',
    sa.Column('server', sa.String(length=255), nullable=False),
    sa.Column('document', sa.LargeBinary(), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('fetched_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('server', name=op.f('pk_peer_key_documents'))
    )


def downgrade() -> None:
    op.drop_table('peer_key_documents')
