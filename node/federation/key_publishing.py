"""This node's keys as peers see them: the self-signed key document, and rotation.

Rotation writes the new key beside the old one, records the handover (a notice signed by the
old key) and the old key's end of validity in the database, and only then swaps the key file,
so a crash at any point leaves either the old key in force or the new one fully recorded.
Events signed with the old key keep verifying: it stays listed with `valid_until` = the moment
of rotation. The running node picks up the new key when it restarts.
"""

from __future__ import annotations

import os
from pathlib import Path

from federation.canonical_json import encode_canonical, parse_json
from federation.key_documents import PastKey, RotationNotice, build_key_document, make_rotation_notice
from federation.keys import SigningKey, VerifyKey, b64decode
from storage.network.transaction import NetworkStore, NetworkTransaction

__all__ = ["own_key_document", "rotate_node_key"]


async def own_key_document(tx: NetworkTransaction, current: SigningKey, *, server: str, now: int) -> dict:
    records = await tx.node_keys.all()
    past = [PastKey(VerifyKey(r.public_key), r.valid_until) for r in records
            if r.key_id != current.key_id and r.valid_until is not None and r.revoked_at is None]
    rotations = [_notice(r.rotation_notice) for r in records if r.rotation_notice is not None]
    return build_key_document(server, current, past, rotations, [], now_ms=now)


def _notice(stored: bytes) -> RotationNotice:
    data = parse_json(stored)  # written by rotate_node_key below: our own, trusted bytes
    return RotationNotice(data["server"], data["old_key_id"], VerifyKey.from_base64(data["new_public_key"]),
                          data["ts"], b64decode(data["signature"]["sig"]))


async def rotate_node_key(storage: NetworkStore, key_path: Path, *, server: str, now: int) -> tuple[SigningKey, SigningKey]:
    old = SigningKey.load(key_path)
    new = SigningKey.generate()
    notice = make_rotation_notice(old, new.verify_key, server=server, now_ms=now)
    staged = key_path.with_name(key_path.name + ".new")
    staged.unlink(missing_ok=True)
    new.save(staged)
    try:
        async with storage.network_transaction() as tx:
            known = {r.key_id for r in await tx.node_keys.all()}
            if old.key_id not in known:
                await tx.node_keys.add(key_id=old.key_id, public_key=old.verify_key.raw, now=now)
            await tx.node_keys.retire(old.key_id, valid_until=now)
            await tx.node_keys.add(key_id=new.key_id, public_key=new.verify_key.raw, now=now,
                                   rotation_notice=encode_canonical(notice.to_wire()))
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, key_path)
    return old, new
