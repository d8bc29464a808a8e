"""applications: the agents each application (a principal of kind "app") may act as

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'app_agents',
        sa.Column('app_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('agent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.ForeignKeyConstraint(['agent_id'], ['principals.id'], name=op.f('fk_app_agents_agent_id_principals'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['app_id'], ['principals.id'], name=op.f('fk_app_agents_app_id_principals'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('app_id', 'agent_id', name=op.f('pk_app_agents')),
    )
    op.create_index('ix_app_agents_agent', 'app_agents', ['agent_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_app_agents_agent', table_name='app_agents')
    op.drop_table('app_agents')
