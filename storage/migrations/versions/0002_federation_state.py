"""federation: invites, transactions, nonces, node keys, delivery status

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delivery_status',
    sa.Column('server', sa.String(length=255), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_success_at', sa.BigInteger(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.BigInteger(), nullable=True),
    sa.Column('next_attempt_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('server', name=op.f('pk_delivery_status'))
    )
    op.create_table('inbound_transactions',
    sa.Column('origin', sa.String(length=255), nullable=False),
    sa.Column('txn_id', sa.String(length=64), nullable=False),
    sa.Column('response', sa.LargeBinary(), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('origin', 'txn_id', name=op.f('pk_inbound_transactions'))
    )
    op.create_table('network_invites',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('network', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('server', sa.String(length=255), nullable=False),
    sa.Column('endpoint', sa.String(length=500), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_invites'))
    )
    with op.batch_alter_table('network_invites', schema=None) as batch_op:
        batch_op.create_index('ix_network_invites_direction_status', ['direction', 'status'], unique=False)

    op.create_table('node_keys',
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('valid_until', sa.BigInteger(), nullable=True),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.Column('rotation_notice', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_node_keys'))
    )
    op.create_table('request_nonces',
    sa.Column('origin', sa.String(length=255), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('origin', 'nonce', name=op.f('pk_request_nonces'))
    )
    with op.batch_alter_table('request_nonces', schema=None) as batch_op:
        batch_op.create_index('ix_request_nonces_expires_at', ['expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('request_nonces', schema=None) as batch_op:
        batch_op.drop_index('ix_request_nonces_expires_at')

    op.drop_table('request_nonces')
    op.drop_table('node_keys')
    with op.batch_alter_table('network_invites', schema=None) as batch_op:
        batch_op.drop_index('ix_network_invites_direction_status')

    op.drop_table('network_invites')
    op.drop_table('inbound_transactions')
    op.drop_table('delivery_status')
