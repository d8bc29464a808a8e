"""trust scopes: vouched keys per network, halted networks, alerts, the host's time

Keys a host vouched for a co-member used to be pinned beside the keys learned from each
company itself, and counted everywhere. They move to `vouched_keys`, scoped to the network
whose `member.admitted` vouched for them, as `unconfirmed` (the node checks them against the
company's own document when it can). A key of a server that is not a peer (no endpoint) and
that no admission vouched for was learned through a host's relay: it goes to every network
where that server is a member, unconfirmed as well.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import json

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('head_ts', sa.BigInteger(), nullable=False, server_default='0'))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_at', sa.BigInteger(), nullable=True))
    op.create_table('vouched_keys',
    sa.Column('network_id', _Id, nullable=False),
    sa.Column('server', sa.String(length=255), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('endpoint', sa.String(length=510), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('pinned_at', sa.BigInteger(), nullable=False),
    sa.Column('checked_at', sa.BigInteger(), nullable=True),
    sa.Column('valid_until', sa.BigInteger(), nullable=True),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_vouched_keys_network_id_networks'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('network_id', 'server', 'key_id', name=op.f('pk_vouched_keys'))
    )
    with op.batch_alter_table('vouched_keys', schema=None) as batch_op:
        batch_op.create_index('ix_vouched_keys_server', ['server'], unique=False)
    op.create_table('network_halts',
    sa.Column('network_id', _Id, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=True),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('since', sa.BigInteger(), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('next_try_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], name=op.f('fk_network_halts_network_id_networks'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('network_id', name=op.f('pk_network_halts'))
    )
    op.create_table('node_alerts',
    sa.Column('id', _Id, autoincrement=True, nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('network', sa.String(length=64), nullable=True),
    sa.Column('server', sa.String(length=255), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('last_seen_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_node_alerts')),
    sa.UniqueConstraint('fingerprint', name=op.f('uq_node_alerts_fingerprint'))
    )
    _move_vouched_keys(op.get_bind())
    # Rows go out in order per destination now; only the destination's backoff delays them.
    op.execute("UPDATE outbox SET next_attempt_at = 0 WHERE state = 'pending'")


def _move_vouched_keys(conn) -> None:
    peers = {r.server for r in conn.execute(sa.text("SELECT server, endpoint FROM peers")) if r.endpoint}
    keys = [r for r in conn.execute(sa.text(
        "SELECT server, key_id, public_key, pinned_at, valid_until, revoked_at FROM peer_keys")) if r.server not in peers]
    if not keys:
        return
    admitted: dict[tuple[str, str], set[int]] = {}
    for row in conn.execute(sa.text("SELECT network_id, wire FROM network_events WHERE type = 'member.admitted'")):
        content = json.loads(bytes(row.wire))["event"]["content"]
        admitted.setdefault((content["server"], content["key_id"]), set()).add(row.network_id)
    members: dict[str, set[int]] = {}
    for row in conn.execute(sa.text("SELECT network_id, server FROM network_members WHERE status = 'member'")):
        members.setdefault(row.server, set()).add(row.network_id)
    for key in keys:
        for network_id in sorted(admitted.get((key.server, key.key_id)) or members.get(key.server, set())):
            conn.execute(sa.text(
                "INSERT INTO vouched_keys (network_id, server, key_id, public_key, status, pinned_at, valid_until, "
                "revoked_at) VALUES (:n, :s, :k, :p, 'unconfirmed', :at, :vu, :ra)"),
                {"n": network_id, "s": key.server, "k": key.key_id, "p": key.public_key, "at": key.pinned_at,
                 "vu": key.valid_until, "ra": key.revoked_at})
        conn.execute(sa.text("DELETE FROM peer_keys WHERE server = :s AND key_id = :k"),
                     {"s": key.server, "k": key.key_id})


def downgrade() -> None:
    op.drop_table('node_alerts')
    op.drop_table('network_halts')
    with op.batch_alter_table('vouched_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_vouched_keys_server')
    op.drop_table('vouched_keys')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('failed_at')
    with op.batch_alter_table('networks', schema=None) as batch_op:
        batch_op.drop_column('head_ts')
