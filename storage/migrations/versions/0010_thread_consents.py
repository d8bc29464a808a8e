"""thread consents: threads another company opened naming this company's participants, held
back until an operator accepts them (where the partner policy says "ask")

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('thread_consents',
    sa.Column('network_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('thread', sa.String(length=64), nullable=False),
    sa.Column('opened_by', sa.String(length=330), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_at', sa.BigInteger(), nullable=False),
    sa.Column('decided_at', sa.BigInteger(), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_thread_consents_network_id_networks'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('network_id', 'thread', name=op.f('pk_thread_consents'))
    )
    op.create_index('ix_thread_consents_status', 'thread_consents', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_thread_consents_status', table_name='thread_consents')
    op.drop_table('thread_consents')
