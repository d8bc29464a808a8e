from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.canonical_json import parse_json
from federation.errors import (
    ClockSkew,
    InvalidSignature,
    ProtocolError,
    UnknownKey,
    WrongDestination,
)
from federation.keys import SigningKey, b64decode, b64encode
from federation.request_signing import (
    MAX_AUTHORIZATION_CHARS,
    MAX_SKEW_MS,
    REPLAY_WINDOW_MS,
    parse_authorization,
    sign_request,
    signing_bytes,
    verify_request,
)
from tests.federation.factories import KEYS, TS, lookup
from tests.federation.make_vectors import REQUEST_VECTORS_PATH, build_request_vectors, render

ORIGIN = "globex.example"
DEST = "acme.example"
PATH = "/federation/v1/send/txn-1?batch=2&x=%2F"
BODY = b'{"events":[]}'
NONCE = "AAECAwQFBgcICQoLDA0ODw"


def header(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "method": "PUT", "path": PATH, "origin": ORIGIN, "destination": DEST,
        "body": BODY, "now_ms": TS, "nonce": NONCE,
    }
    args.update(overrides)
    return sign_request(KEYS[ORIGIN], **args)


def verify(auth: str, **overrides: Any) -> None:
    args: dict[str, Any] = {
        "method": "PUT", "path": PATH, "body": BODY, "expected_destination": DEST,
        "now_ms": TS, "lookup": lookup,
    }
    args.update(overrides)
    verify_request(parse_authorization(auth), **args)


def replace_param(auth: str, name: str, value: str) -> str:
    return re.sub(rf'{name}="[^"]*"', f'{name}="{value}"', auth)


# --- the envelope -----------------------------------------------------------------------


def test_round_trip() -> None:
    auth = header()
    assert auth.startswith('AgentNet origin="globex.example",destination="acme.example",')
    verify(auth)
    sig = parse_authorization(auth)
    assert (sig.origin, sig.destination, sig.timestamp_ms, sig.nonce) == (ORIGIN, DEST, TS, NONCE)
    assert sig.key_id == KEYS[ORIGIN].key_id
    assert sig.to_authorization() == auth


def test_signing_bytes_are_canonical_json_of_the_documented_fields() -> None:
    data = signing_bytes(
        method="put", path=PATH, origin=ORIGIN, destination=DEST, timestamp_ms=TS,
        nonce=NONCE, body=b"",
    )
    assert parse_json(data) == {
        "body": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",  # SHA-256 of b""
        "destination": DEST, "method": "PUT", "nonce": NONCE, "origin": ORIGIN,
        "path": PATH, "ts": TS,
    }


def test_default_nonce_is_random_and_valid() -> None:
    first = parse_authorization(header(nonce=None))
    second = parse_authorization(header(nonce=None))
    assert first.nonce != second.nonce
    assert len(first.nonce) == 22
    verify(header(nonce=None))


def test_replay_window_covers_the_whole_acceptance_span() -> None:
    assert REPLAY_WINDOW_MS == 2 * MAX_SKEW_MS == 600_000


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": "POST"},
        {"path": "/federation/v1/send/txn-2?batch=2&x=%2F"},
        {"path": "/federation/v1/send/txn-1?batch=3&x=%2F"},
        {"path": "/federation/v1/send/txn-1?batch=2&x=/"},  # decoding the query is tampering
        {"path": "/federation/v1/send/txn-1"},
        {"body": b'{"events":[{}]}'},
        {"body": BODY[:-1] + b" "},
        {"body": b""},
    ],
    ids=["method", "path", "query", "query-decoded", "query-dropped", "body", "body-byte",
         "body-empty"],
)
def test_request_fields_are_covered(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidSignature):
        verify(header(), **overrides)


@pytest.mark.parametrize(
    "name,value",
    [
        ("origin", "initech.example"),
        ("ts", str(TS + 1)),
        ("nonce", "AAECAwQFBgcICQoLDA0ODx"),
        ("sig", b64encode(bytes(64))),
    ],
)
def test_header_fields_are_covered(name: str, value: str) -> None:
    # A lookup that ignores the server, so a changed origin reaches the signature check.
    def any_server(server: str, key_id: str) -> Any:
        return lookup(ORIGIN, key_id)

    verify(header(), lookup=any_server)
    with pytest.raises(InvalidSignature):
        verify(replace_param(header(), name, value), lookup=any_server)


def test_method_case_does_not_matter() -> None:
    verify(header(method="put"), method="PUT")


def test_origin_must_match_the_signing_key() -> None:
    # globex signs but claims to be initech: the lookup finds initech's key, which fails.
    auth = sign_request(
        KEYS[ORIGIN], method="PUT", path=PATH, origin="initech.example", destination=DEST,
        body=BODY, now_ms=TS, nonce=NONCE,
    )
    with pytest.raises((InvalidSignature, UnknownKey)):
        verify(auth)


def test_tampered_key_id_is_unknown() -> None:
    with pytest.raises(UnknownKey):
        verify(replace_param(header(), "key", "ed25519:AAAAAAAA"))


def test_tampered_destination_is_refused_before_anything_else() -> None:
    with pytest.raises(WrongDestination) as info:
        verify(replace_param(header(), "destination", "initech.example"))
    assert (info.value.code, info.value.status) == ("wrong_destination", 403)


def test_wrong_destination() -> None:
    with pytest.raises(WrongDestination):
        verify(header(destination="initech.example"))
    # Signed for initech and checked by initech: fine, so the check is not a constant.
    verify(header(destination="initech.example"), expected_destination="initech.example")


@pytest.mark.parametrize("offset", [-MAX_SKEW_MS, -1, 0, 1, MAX_SKEW_MS])
def test_clock_skew_within_bound_is_accepted(offset: int) -> None:
    verify(header(), now_ms=TS + offset)


@pytest.mark.parametrize("offset", [-MAX_SKEW_MS - 1, MAX_SKEW_MS + 1, 10 * MAX_SKEW_MS])
def test_clock_skew_beyond_bound_is_refused(offset: int) -> None:
    with pytest.raises(ClockSkew) as info:
        verify(header(), now_ms=TS + offset)
    assert (info.value.code, info.value.status) == ("clock_skew", 401)


def test_unknown_origin() -> None:
    with pytest.raises(UnknownKey):
        verify(header(), lookup=lambda server, key_id: None)


def test_lookup_returning_another_key_is_a_bad_signature() -> None:
    with pytest.raises(InvalidSignature):
        verify(header(), lookup=lambda server, key_id: KEYS[DEST].verify_key)


def test_a_rotated_key_signs_with_its_own_id() -> None:
    new_key = SigningKey.from_seed(bytes(32))
    auth = sign_request(
        new_key, method="GET", path="/keys", origin=ORIGIN, destination=DEST, body=b"",
        now_ms=TS,
    )
    assert parse_authorization(auth).key_id == new_key.key_id
    verify(auth, method="GET", path="/keys", body=b"",
           lookup=lambda server, key_id: new_key.verify_key)


@pytest.mark.parametrize(
    "kwargs",
    [{"method": "GE T"}, {"method": ""}, {"path": "relative"}, {"path": "/a b"},
     {"path": "/é"}, {"nonce": "short"}, {"now_ms": -1}, {"origin": "Bad.Example"}],
)
def test_signing_refuses_what_no_request_could_carry(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        header(**kwargs)


def test_verifying_an_impossible_path_is_a_bad_signature() -> None:
    with pytest.raises(InvalidSignature):
        verify(header(), path="no-slash")


# --- parsing ----------------------------------------------------------------------------


def test_whitespace_after_commas_and_any_order_are_accepted() -> None:
    auth = header()
    params = auth.removeprefix("AgentNet ").split(",")
    verify("AgentNet " + ", ".join(reversed(params)))


@pytest.mark.parametrize(
    "edit",
    [
        lambda a: a.replace("AgentNet ", "Bearer "),
        lambda a: a.replace("AgentNet ", "agentnet "),
        lambda a: a.replace("AgentNet ", "AgentNet"),
        lambda a: a + ",",
        lambda a: a + ' ,x="1"',
        lambda a: a + ',origin="acme.example"',  # repeated
        lambda a: a + ',extra="1"',
        lambda a: re.sub(r',nonce="[^"]*"', "", a),  # missing
        lambda a: a.replace('ts="', "ts="),
        lambda a: a.replace(",", ";"),
        lambda a: replace_param(a, "ts", "01700000000000"),
        lambda a: replace_param(a, "ts", "-1"),
        lambda a: replace_param(a, "ts", "9007199254740992"),
        lambda a: replace_param(a, "ts", "1e3"),
        lambda a: replace_param(a, "nonce", "A" * 15),
        lambda a: replace_param(a, "nonce", "A" * 65),
        lambda a: replace_param(a, "nonce", "A" * 15 + "="),
        lambda a: replace_param(a, "key", "rsa:AAAAAAAA"),
        lambda a: replace_param(a, "key", "ed25519:AAAAAAA"),
        lambda a: replace_param(a, "origin", "Globex.example"),
        lambda a: replace_param(a, "destination", "acme.example."),
        lambda a: replace_param(a, "sig", "A" * 85),
        lambda a: replace_param(a, "sig", "A" * 85 + "B"),  # non-zero padding bits
        lambda a: a.replace('origin="', 'origin="\\'),
        lambda a: a.replace('origin="', 'origin="é'),
    ],
)
def test_malformed_headers_are_invalid_signatures(edit: Any) -> None:
    with pytest.raises(InvalidSignature) as info:
        parse_authorization(edit(header()))
    assert str(info.value) == "invalid signature"
    assert info.value.detail


def test_header_length_is_bounded() -> None:
    auth = header()
    spare = MAX_AUTHORIZATION_CHARS - len(auth)
    # Whitespace after a comma is legal, so pad there up to and just past the limit.
    at_limit = auth.replace(",", "," + " " * spare, 1)
    assert len(at_limit) == MAX_AUTHORIZATION_CHARS
    parse_authorization(at_limit)
    with pytest.raises(InvalidSignature):
        parse_authorization(auth.replace(",", "," + " " * (spare + 1), 1))


def test_non_string_header() -> None:
    with pytest.raises(InvalidSignature):
        parse_authorization(b"AgentNet")


def test_request_signature_validates_when_built() -> None:
    sig = parse_authorization(header())
    for field, value in [("origin", "x y"), ("key_id", "k"), ("timestamp_ms", -1),
                         ("nonce", "n"), ("signature", b"\x00")]:
        with pytest.raises(InvalidSignature):
            dataclasses.replace(sig, **{field: value})


_PARAM_VALUES = st.one_of(
    st.sampled_from([ORIGIN, DEST, NONCE, str(TS), KEYS[ORIGIN].key_id, b64encode(bytes(64))]),
    st.text(max_size=100),
    st.text(alphabet="AZaz09-_=.:\"\\, ", max_size=100),
)


@given(st.text(max_size=3000))
def test_garbage_headers_only_ever_raise_invalid_signature(text: str) -> None:
    for candidate in (text, "AgentNet " + text):
        try:
            parse_authorization(candidate)
        except InvalidSignature:
            pass


@given(st.dictionaries(st.sampled_from(["origin", "destination", "key", "ts", "nonce", "sig",
                                        "other"]), _PARAM_VALUES, max_size=8),
       st.sampled_from([",", ", ", ";", ""]))
def test_near_miss_headers_only_ever_raise_invalid_signature(
    params: dict[str, str], separator: str
) -> None:
    text = "AgentNet " + separator.join(f'{k}="{v}"' for k, v in params.items())
    try:
        sig = parse_authorization(text)
    except InvalidSignature:
        return
    with pytest.raises(ProtocolError):  # parsed garbage still never verifies
        verify_request(sig, method="PUT", path=PATH, body=BODY, expected_destination=DEST,
                       now_ms=TS, lookup=lookup)


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=2**40))
def test_any_body_and_time_round_trip(body: bytes, now_ms: int) -> None:
    verify(header(body=body, now_ms=now_ms), body=body, now_ms=now_ms)


def test_signature_decodes_to_the_signed_bytes() -> None:
    sig = parse_authorization(header())
    message = signing_bytes(method="PUT", path=PATH, origin=ORIGIN, destination=DEST,
                            timestamp_ms=TS, nonce=NONCE, body=BODY)
    assert b64decode(b64encode(sig.signature)) == KEYS[ORIGIN].sign(message)


# --- known answers ----------------------------------------------------------------------

REQUEST_VECTORS = json.loads(REQUEST_VECTORS_PATH.read_text(encoding="utf-8"))


def test_request_vectors_are_reproduced_exactly() -> None:
    assert render(build_request_vectors()) == REQUEST_VECTORS_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize("vector", REQUEST_VECTORS["requests"], ids=lambda v: v["method"])
def test_request_vector(vector: dict[str, Any]) -> None:
    key = SigningKey.from_seed(bytes.fromhex(REQUEST_VECTORS["seed_hex"]))
    body = bytes.fromhex(vector["body_hex"])
    message = vector["signing_bytes"].encode("utf-8")
    assert signing_bytes(
        method=vector["method"], path=vector["path"], origin=vector["origin"],
        destination=vector["destination"], timestamp_ms=vector["timestamp_ms"],
        nonce=vector["nonce"], body=body,
    ) == message
    assert key.sign(message) == b64decode(vector["signature"])  # ed25519 is deterministic
    sig = parse_authorization(vector["authorization"])
    assert sig.signature == b64decode(vector["signature"])
    verify_request(
        sig, method=vector["method"], path=vector["path"], body=body,
        expected_destination=vector["destination"], now_ms=vector["timestamp_ms"],
        lookup=lambda server, key_id: key.verify_key,
    )
