"""A batch's signature checks run up front (`federation.signature_batches`): what passed is
not run again, and nothing that did not pass, or was never run, gets through."""

from __future__ import annotations

from dataclasses import replace

import pytest

from federation.errors import InvalidSignature, UnknownKey
from federation.events import Signature, verify_event
from federation.keys import VerifyKey
from federation.sequencing import verify_sequenced
from federation.signature_batches import good_signatures, signature_checks
from tests.federation.factories import KEYS, event, lookup, sequence_chain


def _message(sender: str = "person:bob@globex.example"):
    return event("message.posted", sender, thread="rollout-status", body="hello")


def test_a_sequenced_event_has_two_checks_and_both_pass():
    (seqd,) = sequence_chain([_message()])
    checks = signature_checks(seqd, lookup)
    assert [key for key, _data, _sig in checks] == [KEYS["globex.example"].verify_key, KEYS["acme.example"].verify_key]
    assert good_signatures(checks) == set(checks)
    assert signature_checks(seqd.signed, lookup) == checks[:1]


def test_checks_that_passed_are_not_run_again(monkeypatch):
    (seqd,) = sequence_chain([_message()])
    good = good_signatures(signature_checks(seqd, lookup))

    def refuse(self, message, signature):
        raise RuntimeError("ran again")

    monkeypatch.setattr(VerifyKey, "verify", refuse)
    verify_sequenced(seqd, lookup, checked=good)
    with pytest.raises(RuntimeError, match="ran again"):
        verify_sequenced(seqd, lookup, checked=set(list(good)[:1]))


def test_a_forged_signature_is_left_out_and_still_refused():
    (seqd,) = sequence_chain([_message()])
    forged = replace(seqd, host_signature=Signature(seqd.host_signature.key_id, b"\0" * 64))
    checks = signature_checks(forged, lookup)
    good = good_signatures(checks)
    assert good == {checks[0]}
    with pytest.raises(InvalidSignature):
        verify_sequenced(forged, lookup, checked=good)


def test_a_check_under_another_key_lets_nothing_through():
    (seqd,) = sequence_chain([_message()])
    key, data, sig = signature_checks(seqd.signed, lookup)[0]
    tampered = replace(seqd.signed, signature=Signature(seqd.signed.signature.key_id, b"\1" * 64))
    claimed = {(KEYS["initech.example"].verify_key, data, tampered.signature.sig)}
    with pytest.raises(InvalidSignature):
        verify_event(tampered, lookup, checked=claimed)
    assert key == KEYS["globex.example"].verify_key and sig != tampered.signature.sig


def test_a_signer_without_a_pinned_key_has_no_check_and_is_reported_as_usual():
    (seqd,) = sequence_chain([_message()])

    def only_the_host(server, key_id):
        if server != "acme.example":
            raise UnknownKey(f"no key for {server}")
        return lookup(server, key_id)

    checks = signature_checks(seqd, only_the_host)
    assert [key for key, _data, _sig in checks] == [KEYS["acme.example"].verify_key]
    with pytest.raises(UnknownKey):
        verify_sequenced(seqd, only_the_host, checked=good_signatures(checks))
