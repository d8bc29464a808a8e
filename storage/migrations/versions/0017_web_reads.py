"""the web app's read positions: how far each person has read each shared thread

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_reads',
        sa.Column('principal_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('network', sa.String(length=64), nullable=False),
        sa.Column('thread', sa.String(length=64), nullable=False),
        sa.Column('seen_seq', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['principal_id'], ['principals.id'],
                                name=op.f('fk_web_reads_principal_id_principals'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('principal_id', 'network', 'thread', name=op.f('pk_web_reads')),
    )


def downgrade() -> None:
    op.drop_table('web_reads')
