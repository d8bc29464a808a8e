"""A batch's ed25519 checks, gathered up front so they can run side by side.

Verifying is about a fifth of what a member does per event when it catches up, and
libsodium releases the GIL, so a batch's checks can run on one thread per CPU. The checks
that pass are handed to ``verify_event`` / ``verify_sequenced`` as ``checked`` and are not run
again there; everything else those functions check (content hash, sender, key lookup) still
runs for every event, and a check that failed here or could not be made (a key not pinned
yet) simply runs there, in order, and reports as usual.
"""

from __future__ import annotations

from collections.abc import Iterable

from federation.errors import InvalidSignature, UnknownKey
from federation.events import KeyLookup, SignatureCheck, SignedEvent
from federation.sequencing import SequencedEvent

__all__ = ["good_signatures", "signature_checks"]


def signature_checks(event: SignedEvent | SequencedEvent, lookup: KeyLookup,
                     host_lookup: KeyLookup | None = None) -> list[SignatureCheck]:
    """The checks verifying ``event`` makes whose keys the lookups hold (``lookup`` for the
    origin, ``host_lookup``, by default the same, for the host)."""
    signed = event.signed if isinstance(event, SequencedEvent) else event
    wanted = [(lookup, signed.event.origin, signed.signature.key_id, signed.event.canonical_bytes(),
               signed.signature.sig)]
    if isinstance(event, SequencedEvent):
        wanted.append((host_lookup or lookup, event.host, event.host_signature.key_id, event.sequence_bytes(),
                       event.host_signature.sig))
    checks = []
    for find, server, key_id, data, sig in wanted:
        try:
            key = find(server, key_id)
        except UnknownKey:
            continue
        if key is not None and key.key_id == key_id:
            checks.append((key, data, sig))
    return checks


def good_signatures(checks: Iterable[SignatureCheck]) -> set[SignatureCheck]:
    """The checks that pass."""
    good = set()
    for check in checks:
        key, data, sig = check
        try:
            key.verify(data, sig)
        except InvalidSignature:
            continue
        good.add(check)
    return good
