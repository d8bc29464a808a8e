"""Canonical JSON: the one byte form that hashes and signatures are computed over.

Two nodes must turn the same value into the same bytes, so the encoding admits only what
every JSON implementation reads identically: sorted keys (by code point, as Matrix does),
no whitespace, UTF-8, integers only and within the range a double holds exactly. The parser
is the strict mirror image, so hostile input is refused before it reaches a model.
"""

from __future__ import annotations

import json
import re
from typing import Any

from federation.errors import CanonicalJsonError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_VALUES",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_STRING_CHARS",
    "encode_canonical",
    "encodes_to",
    "parse_json",
]

# Largest integer a JavaScript or other double-based peer reads exactly (Matrix uses the same).
MAX_INT = 2**53 - 1
# Events nest four or five levels; 32 leaves room for any future shape while keeping hostile
# "[[[[..." far from Python's recursion limit (1000).
MAX_DEPTH = 32
# 64 Ki characters: a message body is capped at 16 Ki (events.py), so this only bounds abuse.
MAX_STRING_CHARS = 65536
# 1 MiB: a generous bound for one request body; single events are capped at 64 KiB in events.py.
DEFAULT_MAX_BYTES = 1024 * 1024
# JSON values in one document. Parsing costs per value, not per byte: a megabyte of "1,1,1"
# is half a million of them and took seconds. 100,000 is four times a full transaction of
# 100 events that each list 256 thread participants; callers with smaller bodies pass less.
DEFAULT_MAX_VALUES = 100_000

# Longest decimal form of a value within ±MAX_INT ("-9007199254740991" is 17 characters);
# anything longer is refused before int() spends time on it.
_MAX_INT_DIGITS = 17
# "Unrolled loop" form: linear time, no backtracking blow-up on an unterminated string.
_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET_RE = re.compile(r"[\[\]{}]")


class _Rejected:
    """A placeholder the parser hooks leave in the tree, so the walk can report its path."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def encode_canonical(value: Any) -> bytes:
    """Return the canonical UTF-8 bytes of ``value`` or raise ``CanonicalJsonError``."""
    if not _valid(value, 1):
        _check(value, "$", 1)  # says where and why; also admits what the fast walk leaves to it
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def encodes_to(value: Any, expected: bytes) -> bool:
    """Whether ``value`` encodes to exactly ``expected``, which is canonical bytes already.

    No validity walk: bytes equal to canonical bytes are canonical, and a value that JSON
    cannot encode at all is simply not equal."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return text.encode("utf-8") == expected


def parse_json(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_values: int = DEFAULT_MAX_VALUES) -> Any:
    """Parse untrusted JSON under the same limits that ``encode_canonical`` enforces, and
    with at most ``max_values`` values, counted before any is built."""
    text = _decode(data, max_bytes)
    _check_value_count(text, max_values)
    _check_bracket_depth(text)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_float=lambda s: _Rejected(f"float {s[:20]!r} is not allowed"),
            parse_int=_parse_int,
            parse_constant=lambda s: _Rejected(f"{s} is not allowed"),
        )
    except json.JSONDecodeError as e:
        raise CanonicalJsonError(f"malformed JSON: {e.msg} at offset {e.pos}") from e
    except RecursionError as e:  # unreachable after the depth scan; kept as a last guard
        raise CanonicalJsonError("JSON nested too deeply") from e
    if not _valid(value, 1):
        _check(value, "$", 1)
    return value


def _decode(data: bytes | str, max_bytes: int) -> str:
    if isinstance(data, str):
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError as e:
            raise CanonicalJsonError("input contains a lone surrogate") from e
        text = data
    elif isinstance(data, (bytes, bytearray, memoryview)):
        size = len(data)
        text = ""
    else:
        raise CanonicalJsonError(f"cannot parse {type(data).__name__}, expected bytes or str")
    if size > max_bytes:
        raise CanonicalJsonError(f"JSON is {size} bytes, over the limit of {max_bytes}")
    if not isinstance(data, str):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CanonicalJsonError(f"invalid UTF-8 at byte {e.start}") from e
    return text


def _check_value_count(text: str, max_values: int) -> None:
    """Every value but the first follows a ``,`` or opens a container, so the count of those
    bounds the values. Counting characters runs at C speed; only when that rough bound is too
    high are strings blanked out (commas inside them are no values) and the count taken again."""
    if text.count(",") + text.count("[") + text.count("{") < max_values:
        return
    bare = _STRING_RE.sub('""', text)
    if bare.count(",") + bare.count("[") + bare.count("{") + 1 > max_values:
        raise CanonicalJsonError(f"JSON has more than {max_values} values")


def _check_bracket_depth(text: str) -> None:
    """Measure nesting without recursion, so "[[[[..." cannot exhaust the stack."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # too few brackets to nest too deeply, wherever they are
    depth = 0
    for match in _BRACKET_RE.finditer(_STRING_RE.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise CanonicalJsonError(f"JSON nested deeper than {MAX_DEPTH} levels")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Rejected:
    obj: dict[str, Any] = {}
    for key, item in pairs:
        if key in obj:
            return _Rejected(f"duplicate key {key[:64]!r}")
        obj[key] = item
    return obj


def _parse_int(digits: str) -> int | _Rejected:
    if len(digits) > _MAX_INT_DIGITS:
        return _Rejected(f"integer outside ±{MAX_INT}")
    return int(digits)


def _valid(value: Any, depth: int) -> bool:
    """True if ``value`` is canonical JSON of exactly the built-in types: the hot path, with no
    paths built. False means "ask ``_check``", which raises with the reason or accepts."""
    kind = type(value)
    if kind is str:
        return len(value) <= MAX_STRING_CHARS and (value.isascii() or _encodable(value))
    if kind is int:
        return -MAX_INT <= value <= MAX_INT
    if value is None or kind is bool:
        return True
    if depth > MAX_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or len(key) > MAX_STRING_CHARS or not (key.isascii() or _encodable(key)):
                return False
            if not _valid(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_valid(item, depth + 1) for item in value)
    return False


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check(value: Any, path: str, depth: int) -> None:
    """Walk ``value`` and reject anything outside canonical JSON, naming the path."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise CanonicalJsonError(f"integer at {path} is outside ±{MAX_INT}")
        return
    if isinstance(value, str):
        _check_string(value, path)
        return
    if isinstance(value, (dict, list, tuple)) and depth > MAX_DEPTH:
        raise CanonicalJsonError(f"value at {path} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError(f"key {key!r} at {path} is not a string")
            _check_string(key, f"{path} (key)")
            _check(item, f"{path}.{key[:64]}", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, _Rejected):
        raise CanonicalJsonError(f"{value.reason} at {path}")
    if isinstance(value, float):
        raise CanonicalJsonError(f"float {value!r} at {path} is not allowed")
    raise CanonicalJsonError(f"{type(value).__name__} at {path} is not a JSON value")


def _check_string(value: str, path: str) -> None:
    if len(value) > MAX_STRING_CHARS:
        raise CanonicalJsonError(
            f"string at {path} is {len(value)} characters, over {MAX_STRING_CHARS}"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CanonicalJsonError(f"string at {path} contains a lone surrogate") from e
