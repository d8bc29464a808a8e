from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.canonical_json import (
    MAX_DEPTH,
    MAX_INT,
    MAX_STRING_CHARS,
    encode_canonical,
    encodes_to,
    parse_json,
)
from federation.errors import CanonicalJsonError, ProtocolError
from tests.federation.factories import json_leaves, json_values


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# --- encoding ---------------------------------------------------------------------------


def test_encoding_sorts_keys_and_drops_whitespace() -> None:
    value = {"b": 1, "a": [True, False, None], "é": "ü"}
    assert encode_canonical(value) == '{"a":[true,false,null],"b":1,"é":"ü"}'.encode()


def test_encoding_sorts_by_code_point_and_keeps_utf8() -> None:
    expected = '{"B":0,"a":0,"b":0,"é":0}'.encode()
    assert encode_canonical({"b": 0, "B": 0, "\u00e9": 0, "a": 0}) == expected
    assert encode_canonical("👋\n\"\\") == '"👋\\n\\"\\\\"'.encode()


def test_tuples_encode_as_lists() -> None:
    assert encode_canonical((1, (2, "x"))) == b'[1,[2,"x"]]'


def test_int_bounds_are_inclusive() -> None:
    assert encode_canonical([MAX_INT, -MAX_INT]) == b"[9007199254740991,-9007199254740991]"


@pytest.mark.parametrize("value", [MAX_INT + 1, -MAX_INT - 1, 10**100])
def test_rejects_ints_a_double_cannot_hold(value: int) -> None:
    with pytest.raises(CanonicalJsonError, match=r"\$\.n"):
        encode_canonical({"n": value})


@pytest.mark.parametrize("value", [1.0, 0.5, math.nan, math.inf, -math.inf])
def test_rejects_floats(value: float) -> None:
    with pytest.raises(CanonicalJsonError, match=r"at \$\.a\[1\]"):
        encode_canonical({"a": [0, value]})


@pytest.mark.parametrize("value", [b"x", {1, 2}, object(), 1j])
def test_rejects_non_json_types(value: object) -> None:
    with pytest.raises(CanonicalJsonError, match=r"\$\.x"):
        encode_canonical({"x": value})


def test_rejects_non_string_keys() -> None:
    with pytest.raises(CanonicalJsonError, match="not a string"):
        encode_canonical({1: "a"})


def test_depth_limit_is_exact() -> None:
    assert encode_canonical(nested(MAX_DEPTH))
    with pytest.raises(CanonicalJsonError, match="deeper"):
        encode_canonical(nested(MAX_DEPTH + 1))


def test_self_reference_is_rejected_not_recursed() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(CanonicalJsonError):
        encode_canonical(loop)


def test_string_length_limit_applies_to_values_and_keys() -> None:
    assert encode_canonical("x" * MAX_STRING_CHARS)
    with pytest.raises(CanonicalJsonError, match=r"\$\.k"):
        encode_canonical({"k": "x" * (MAX_STRING_CHARS + 1)})
    with pytest.raises(CanonicalJsonError, match="key"):
        encode_canonical({"x" * (MAX_STRING_CHARS + 1): 1})


def test_rejects_lone_surrogates() -> None:
    with pytest.raises(CanonicalJsonError, match="surrogate"):
        encode_canonical({"s": "\ud800"})


def test_errors_are_protocol_errors_with_a_code() -> None:
    with pytest.raises(ProtocolError) as info:
        encode_canonical(1.5)
    assert info.value.code == "bad_json"


# --- parsing ----------------------------------------------------------------------------


def test_parses_bytes_and_str() -> None:
    assert parse_json(b'{"a":[1,"\xc3\xa9",true,null]}') == {"a": [1, "é", True, None]}
    assert parse_json(' { "a" : 1 } ') == {"a": 1}


@pytest.mark.parametrize(
    "text,match",
    [
        ('{"a":1,"a":2}', r"duplicate key 'a' at \$"),
        ('{"x":{"a":1,"a":1}}', r"duplicate key 'a' at \$\.x"),
        ("[1.0]", r"float '1.0' is not allowed at \$\[0\]"),
        ("1e3", "float"),
        ("-0.0", "float"),
        ("[NaN]", "NaN"),
        ("[Infinity]", "Infinity"),
        ("[-Infinity]", "-Infinity"),
        ("9007199254740992", "outside"),
        ("-9007199254740992", "outside"),
        ("1" * 5000, "outside"),
        ("[1,]", "malformed"),
        ("[1] x", "malformed"),
        ("", "malformed"),
        ("\ufeff[1]", "malformed"),
        ('"\\ud800"', "surrogate"),
    ],
)
def test_parse_rejects(text: str, match: str) -> None:
    with pytest.raises(CanonicalJsonError, match=match):
        parse_json(text)


def test_parse_rejects_invalid_utf8() -> None:
    with pytest.raises(CanonicalJsonError, match="UTF-8"):
        parse_json(b'["\xff"]')


def test_parse_rejects_oversized_input() -> None:
    assert parse_json(b"[" + b"1," * 48 + b"1]", max_bytes=100)  # exactly 99 bytes
    with pytest.raises(CanonicalJsonError, match="over the limit"):
        parse_json(b"[" + b"1," * 60 + b"1]", max_bytes=100)
    with pytest.raises(CanonicalJsonError, match="over the limit"):
        parse_json('"' + "é" * 60 + '"', max_bytes=100)  # counted in bytes, not characters


@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")])
def test_parse_survives_hostile_nesting(opener: str, closer: str) -> None:
    with pytest.raises(CanonicalJsonError, match="deeper"):
        parse_json(opener * 10_000 + "0" + closer * 10_000)
    with pytest.raises(CanonicalJsonError):
        parse_json(opener * 100_000)  # never closed


def test_parse_depth_limit_is_exact() -> None:
    assert parse_json(encode_canonical(nested(MAX_DEPTH))) == nested(MAX_DEPTH)
    with pytest.raises(CanonicalJsonError, match="deeper"):
        parse_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = '["' + "[" * 1000 + '\\"' + "{" * 1000 + '"]'
    assert parse_json(text) == ["[" * 1000 + '"' + "{" * 1000]


def test_parse_rejects_long_strings_with_path() -> None:
    with pytest.raises(CanonicalJsonError, match=r"\$\.a\[0\]"):
        parse_json('{"a":["' + "x" * (MAX_STRING_CHARS + 1) + '"]}')


def test_parse_rejects_non_bytes_input() -> None:
    with pytest.raises(CanonicalJsonError):
        parse_json(123)  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------------

def normalize(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return value


@given(json_values)
def test_encoding_is_stable_and_round_trips(value: Any) -> None:
    encoded = encode_canonical(value)
    parsed = parse_json(encoded)
    assert parsed == normalize(value)
    assert encode_canonical(parsed) == encoded


@given(st.dictionaries(st.text(max_size=10), json_leaves, max_size=8))
def test_encoding_ignores_insertion_order(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert encode_canonical(reordered) == encode_canonical(value)


@given(st.binary(max_size=200))
def test_parse_never_raises_anything_but_our_error(data: bytes) -> None:
    try:
        parse_json(data)
    except CanonicalJsonError:
        pass


def test_encodes_to_compares_with_canonical_bytes() -> None:
    value = {"b": [1, "é"], "a": None}
    assert encodes_to(value, encode_canonical(value))
    assert not encodes_to({"b": [1, "é"]}, encode_canonical(value))
    assert not encodes_to({"a": float("nan")}, b'{"a":NaN}')
    assert not encodes_to({"a": object()}, b"{}")
