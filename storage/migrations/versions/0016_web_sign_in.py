"""the web app's sign-in: one-time sign-in links and browser sessions

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'sign_in_links',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('principal_id', _ID, nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('used_at', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['principal_id'], ['principals.id'],
                                name=op.f('fk_sign_in_links_principal_id_principals'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_links')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_sign_in_links_token_hash')),
    )
    op.create_table(
        'web_sessions',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('principal_id', _ID, nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('revoked_at', sa.BigInteger(), nullable=True),
        sa.Column('user_agent', sa.String(length=200), server_default='', nullable=False),
        sa.ForeignKeyConstraint(['principal_id'], ['principals.id'],
                                name=op.f('fk_web_sessions_principal_id_principals'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_web_sessions')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_web_sessions_token_hash')),
    )
    op.create_index('ix_web_sessions_principal', 'web_sessions', ['principal_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_web_sessions_principal', table_name='web_sessions')
    op.drop_table('web_sessions')
    op.drop_table('sign_in_links')
