from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Any

import pytest

from federation.canonical_json import encode_canonical, parse_json
from federation.errors import InvalidKeyDocument, InvalidSignature, UnknownKey
from federation.events import sign_event, verify_event
from federation.key_documents import (
    MAX_DOCUMENT_KEYS,
    MAX_DOCUMENT_NOTICES,
    KeyInfo,
    PastKey,
    RevocationNotice,
    RotationNotice,
    VerifiedKeys,
    build_key_document,
    key_valid_at,
    make_revocation_notice,
    make_rotation_notice,
    verify_key_document,
)
from federation.keys import SigningKey, VerifyKey, b64decode, b64encode
from tests.federation.factories import TS, event
from tests.federation.make_vectors import (
    KEY_DOCUMENT_VECTORS_PATH,
    build_key_document_vectors,
    render,
)

SERVER = "acme.example"


def key(name: str) -> SigningKey:
    return SigningKey.from_seed(hashlib.sha256(f"key-{name}".encode()).digest())


A, B, C, X = key("a"), key("b"), key("c"), key("x")
# A served until TS + 1000, B until TS + 2000, C is current.
A_UNTIL, B_UNTIL = TS + 1000, TS + 2000


def pins(*keys: SigningKey) -> dict[str, VerifyKey]:
    return {k.key_id: k.verify_key for k in keys}


def chain_document(**overrides: Any) -> dict[str, Any]:
    """C is current; A→B→C rotations; A and B listed as past keys."""
    args: dict[str, Any] = {
        "server": SERVER,
        "current": C,
        "past": [PastKey(A.verify_key, A_UNTIL), PastKey(B.verify_key, B_UNTIL)],
        "rotations": [
            make_rotation_notice(A, B.verify_key, server=SERVER, now_ms=A_UNTIL),
            make_rotation_notice(B, C.verify_key, server=SERVER, now_ms=B_UNTIL),
        ],
        "revocations": [],
    }
    args.update(overrides)
    return build_key_document(now_ms=TS + 3000, **args)


def resign(wire: dict[str, Any], signer: SigningKey) -> dict[str, Any]:
    """Re-sign an edited document, as a holder of ``signer`` could."""
    body = {k: v for k, v in wire.items() if k != "signature"}
    sig = signer.sign(encode_canonical(body))
    return {**body, "signature": {"key_id": signer.key_id, "sig": b64encode(sig)}}


# --- trust ------------------------------------------------------------------------------


def test_document_signed_by_a_pinned_key() -> None:
    wire = build_key_document(SERVER, C, [], [], [], now_ms=TS)
    keys = verify_key_document(wire, server=SERVER, pinned=pins(C))
    assert keys == VerifiedKeys(
        SERVER, TS, C.key_id, (KeyInfo(C.key_id, C.verify_key, None),), frozenset()
    )


def test_wire_shape() -> None:
    wire = chain_document()
    assert set(wire) == {"server", "ts", "keys", "rotations", "revocations", "signature"}
    assert wire["keys"][0] == {
        "key_id": C.key_id, "public_key": C.verify_key.to_base64(), "valid_until": None
    }
    assert set(wire["rotations"][0]) == {
        "server", "old_key_id", "new_key_id", "new_public_key", "ts", "signature"
    }
    assert wire["rotations"][0]["signature"]["key_id"] == A.key_id
    # It survives a trip through the strict parser, as it will over HTTP.
    assert parse_json(encode_canonical(wire)) == wire


def test_unknown_signer_is_refused() -> None:
    wire = build_key_document(SERVER, X, [], [], [], now_ms=TS)
    with pytest.raises(UnknownKey):
        verify_key_document(wire, server=SERVER, pinned=pins(A))
    with pytest.raises(UnknownKey):
        verify_key_document(wire, server=SERVER, pinned={})


def test_first_contact_trusts_the_document_s_own_signer_only() -> None:
    keys = verify_key_document(chain_document(), server=SERVER, pinned={}, first_contact=True)
    assert keys.current_key_id == C.key_id
    assert {info.key_id for info in keys.keys} == {A.key_id, B.key_id, C.key_id}
    # Still signed by its own current key: a document whose signature is not C's is refused.
    forged = resign(chain_document(), X)
    forged["signature"]["key_id"] = C.key_id
    with pytest.raises(InvalidSignature):
        verify_key_document(forged, server=SERVER, pinned={}, first_contact=True)
    # And never when something of the server is pinned: then the chain from it decides.
    with pytest.raises(InvalidKeyDocument, match="first contact"):
        verify_key_document(chain_document(), server=SERVER, pinned=pins(A), first_contact=True)
    with pytest.raises(InvalidKeyDocument):
        verify_key_document(chain_document(), server="globex.example", pinned={}, first_contact=True)


def test_rotation_chain_is_followed_from_the_only_pinned_key() -> None:
    keys = verify_key_document(chain_document(), server=SERVER, pinned=pins(A))
    assert keys.current_key_id == C.key_id
    assert {info.key_id: info.valid_until for info in keys.keys} == {
        C.key_id: None, A.key_id: A_UNTIL, B.key_id: B_UNTIL
    }
    # Any key along the chain is as good a starting point.
    for start in (B, C):
        assert verify_key_document(chain_document(), server=SERVER, pinned=pins(start)) == keys


def test_broken_chain_is_refused() -> None:
    wire = chain_document(rotations=[
        make_rotation_notice(B, C.verify_key, server=SERVER, now_ms=B_UNTIL)
    ])
    with pytest.raises(UnknownKey):
        verify_key_document(wire, server=SERVER, pinned=pins(A))


def test_forged_rotation_is_refused() -> None:
    # X claims to succeed A with a notice it signed itself, under A's name.
    unsigned = RotationNotice(SERVER, A.key_id, X.verify_key, TS, b"")
    forged = dataclasses.replace(unsigned, signature=X.sign(unsigned.signing_bytes()))
    wire = build_key_document(SERVER, X, [], [forged], [], now_ms=TS)
    with pytest.raises(InvalidSignature):
        verify_key_document(wire, server=SERVER, pinned=pins(A))
    # The same notice, honestly signed by A, is what makes X trusted.
    honest = make_rotation_notice(A, X.verify_key, server=SERVER, now_ms=TS)
    wire = build_key_document(SERVER, X, [], [honest], [], now_ms=TS)
    assert verify_key_document(wire, server=SERVER, pinned=pins(A)).current_key_id == X.key_id


def test_rotation_to_a_substituted_key_is_refused() -> None:
    wire = chain_document()
    wire["rotations"][1]["new_public_key"] = X.verify_key.to_base64()
    wire["rotations"][1]["new_key_id"] = X.key_id
    with pytest.raises(InvalidSignature):
        verify_key_document(resign(wire, C), server=SERVER, pinned=pins(A))


def test_document_for_another_server_is_refused() -> None:
    wire = build_key_document("globex.example", C, [], [], [], now_ms=TS)
    with pytest.raises(InvalidKeyDocument):
        verify_key_document(wire, server=SERVER, pinned=pins(C))


def test_notice_for_another_server_is_refused() -> None:
    elsewhere = make_rotation_notice(A, B.verify_key, server="globex.example", now_ms=TS)
    with pytest.raises(InvalidKeyDocument):
        chain_document(rotations=[elsewhere])


@pytest.mark.parametrize(
    "edit",
    [
        lambda w: w.update(ts=w["ts"] + 1),
        lambda w: w["keys"][1].update(valid_until=w["keys"][1]["valid_until"] + 1),
        lambda w: w["keys"].pop(),
        lambda w: w["rotations"].pop(),
        lambda w: w["rotations"][0].update(ts=1),
    ],
)
def test_tampered_document_fails(edit: Any) -> None:
    wire = chain_document()
    edit(wire)
    with pytest.raises(InvalidSignature):
        verify_key_document(wire, server=SERVER, pinned=pins(C))


def test_listed_key_id_must_match_its_public_key() -> None:
    # Even signed by a trusted key: A's id cannot be given to X's public key.
    wire = chain_document()
    wire["keys"][1]["public_key"] = X.verify_key.to_base64()
    with pytest.raises(InvalidKeyDocument):
        verify_key_document(resign(wire, C), server=SERVER, pinned=pins(C))


def test_pinned_key_under_the_wrong_id_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        verify_key_document(chain_document(), server=SERVER, pinned={A.key_id: X.verify_key})


# --- revocation -------------------------------------------------------------------------


def test_revocation_by_another_key() -> None:
    revoke_a = make_revocation_notice(C, A.key_id, server=SERVER, now_ms=TS + 2500)
    keys = verify_key_document(chain_document(revocations=[revoke_a]), server=SERVER,
                               pinned=pins(A))
    info = keys.get(A.key_id)
    assert info is not None and info.revoked
    assert keys.revoked_key_ids == {A.key_id}
    assert not key_valid_at(info, TS)  # even inside its validity window
    assert not any(i.revoked for i in keys.keys if i.key_id != A.key_id)
    with pytest.raises(UnknownKey):
        keys.key_for(A.key_id, at_ms=TS)


def test_self_signed_revocation_is_not_counted() -> None:
    unsigned = RevocationNotice(SERVER, B.key_id, TS, B.key_id, b"")
    own = dataclasses.replace(unsigned, signature=B.sign(unsigned.signing_bytes()))
    wire = chain_document()
    wire["revocations"] = [own.to_wire()]  # the builder would refuse it
    keys = verify_key_document(resign(wire, C), server=SERVER, pinned=pins(C))
    assert keys.revoked_key_ids == frozenset()
    assert not keys.get(B.key_id).revoked  # type: ignore[union-attr]


def test_builders_refuse_self_revocation_and_revoked_signers() -> None:
    with pytest.raises(InvalidKeyDocument):
        make_revocation_notice(B, B.key_id, server=SERVER, now_ms=TS)
    with pytest.raises(InvalidKeyDocument):
        chain_document(revocations=[make_revocation_notice(A, C.key_id, server=SERVER,
                                                           now_ms=TS)])
    with pytest.raises(InvalidKeyDocument):
        chain_document(revocations=[
            make_revocation_notice(C, B.key_id, server=SERVER, now_ms=TS),
            make_revocation_notice(B, A.key_id, server=SERVER, now_ms=TS),
        ])


def test_document_signed_by_a_revoked_key_is_refused() -> None:
    wire = chain_document()
    wire["revocations"] = [
        make_revocation_notice(A, C.key_id, server=SERVER, now_ms=TS).to_wire()
    ]
    with pytest.raises(InvalidKeyDocument):
        verify_key_document(resign(wire, C), server=SERVER, pinned=pins(A))


def test_forged_revocation_is_refused() -> None:
    wire = chain_document(revocations=[
        make_revocation_notice(C, A.key_id, server=SERVER, now_ms=TS)
    ])
    wire["revocations"][0]["key_id"] = B.key_id
    with pytest.raises(InvalidSignature):
        verify_key_document(resign(wire, C), server=SERVER, pinned=pins(C))


def test_revocation_by_an_unlisted_key_is_refused() -> None:
    wire = chain_document(revocations=[
        make_revocation_notice(X, A.key_id, server=SERVER, now_ms=TS)
    ])
    with pytest.raises(InvalidKeyDocument):
        verify_key_document(wire, server=SERVER, pinned=pins(C))


# --- old events -------------------------------------------------------------------------


def test_events_signed_by_old_keys_still_verify() -> None:
    keys = verify_key_document(chain_document(), server=SERVER, pinned=pins(A))
    for signer, ts in ((A, A_UNTIL), (B, A_UNTIL + 1), (B, B_UNTIL), (C, TS + 10**9)):
        signed = sign_event(event("message.posted", thread="launch", ts=ts, body="hi"), signer)
        at = signed.event.origin_ts
        verify_event(signed, lambda server, key_id, at=at: keys.key_for(key_id, at_ms=at))


def test_old_keys_do_not_verify_after_their_validity() -> None:
    keys = verify_key_document(chain_document(), server=SERVER, pinned=pins(A))
    signed = sign_event(event("message.posted", thread="launch", ts=A_UNTIL + 1, body="x"), A)
    with pytest.raises(UnknownKey):
        verify_event(signed, lambda server, key_id: keys.key_for(key_id, at_ms=A_UNTIL + 1))


def test_key_valid_at() -> None:
    past = KeyInfo(A.key_id, A.verify_key, A_UNTIL)
    assert key_valid_at(past, A_UNTIL) and not key_valid_at(past, A_UNTIL + 1)
    assert key_valid_at(KeyInfo(C.key_id, C.verify_key, None), 2**53 - 1)
    assert not key_valid_at(KeyInfo(C.key_id, C.verify_key, None, revoked=True), 0)


# --- shape and bounds -------------------------------------------------------------------


def test_size_bounds() -> None:
    past = [PastKey(key(str(i)).verify_key, TS) for i in range(MAX_DOCUMENT_KEYS - 1)]
    wire = build_key_document(SERVER, C, past, [], [], now_ms=TS)
    verify_key_document(wire, server=SERVER, pinned=pins(C))
    with pytest.raises(InvalidKeyDocument):
        build_key_document(SERVER, C, [*past, PastKey(A.verify_key, TS)], [], [], now_ms=TS)
    notices = [make_rotation_notice(A, B.verify_key, server=SERVER, now_ms=TS + i)
               for i in range(MAX_DOCUMENT_NOTICES + 1)]
    with pytest.raises(InvalidKeyDocument):
        chain_document(rotations=notices)
    big = copy.deepcopy(wire)
    big["revocations"] = [big["keys"][0]] * 10_000
    with pytest.raises(InvalidKeyDocument):
        verify_key_document(big, server=SERVER, pinned=pins(C))


@pytest.mark.parametrize(
    "edit",
    [
        lambda w: w.pop("rotations"),
        lambda w: w.update(extra=1),
        lambda w: w.update(ts="1"),
        lambda w: w.update(server="Acme.example"),
        lambda w: w["keys"].append(dict(w["keys"][1])),  # listed twice
        lambda w: w["keys"][1].update(valid_until=None),  # two current keys
        lambda w: w["keys"][0].update(valid_until=1),  # no current key
        lambda w: w["keys"][0].update(key_id="ed25519:AAAAAAAA"),
        lambda w: w["rotations"][0].update(new_key_id=w["rotations"][0]["old_key_id"]),
        lambda w: w["rotations"][0]["signature"].update(key_id=w["keys"][0]["key_id"]),
        lambda w: w["signature"].update(sig="A" * 85 + "B"),
        lambda w: w.update(keys=[]),
    ],
)
def test_malformed_documents_are_invalid_key_documents(edit: Any) -> None:
    wire = chain_document()
    edit(wire)
    with pytest.raises(InvalidKeyDocument) as info:
        verify_key_document(wire, server=SERVER, pinned=pins(C))
    assert (info.value.code, info.value.status) == ("invalid_key_document", 400)


@pytest.mark.parametrize("wire", [None, [], "doc", {"server": SERVER}])
def test_non_documents_are_invalid(wire: Any) -> None:
    with pytest.raises(InvalidKeyDocument):
        verify_key_document(wire, server=SERVER, pinned=pins(C))


def test_rotation_to_itself_is_refused() -> None:
    with pytest.raises(InvalidKeyDocument):
        make_rotation_notice(A, A.verify_key, server=SERVER, now_ms=TS)


# --- known answers ----------------------------------------------------------------------

KEY_VECTORS = json.loads(KEY_DOCUMENT_VECTORS_PATH.read_text(encoding="utf-8"))


def test_key_document_vectors_are_reproduced_exactly() -> None:
    stored = KEY_DOCUMENT_VECTORS_PATH.read_text(encoding="utf-8")
    assert render(build_key_document_vectors()) == stored


def test_key_document_vector() -> None:
    first, second, third = (SigningKey.from_seed(bytes.fromhex(s))
                            for s in KEY_VECTORS["seeds_hex"])
    document = KEY_VECTORS["document"]
    assert [k.key_id for k in (first, second, third)] == KEY_VECTORS["key_ids"]
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    assert encode_canonical(unsigned).decode() == KEY_VECTORS["document_signing_bytes"]
    assert third.sign(encode_canonical(unsigned)) == b64decode(document["signature"]["sig"])
    for notice, expected in zip(document["rotations"], KEY_VECTORS["rotation_signing_bytes"],
                                strict=True):
        body = {k: v for k, v in notice.items() if k != "signature"}
        assert encode_canonical(body).decode() == expected
    # Only the first key is pinned: the chain leads to the third, which revoked the first.
    keys = verify_key_document(document, server=document["server"], pinned=pins(first))
    assert keys.current_key_id == third.key_id
    assert keys.revoked_key_ids == {first.key_id}
