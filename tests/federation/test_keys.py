from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.errors import InvalidEncoding, InvalidSignature, KeyFileError
from federation.keys import SigningKey, VerifyKey, b64decode, b64encode

SEED = bytes(range(32))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- base64 -----------------------------------------------------------------------------


@given(st.binary(max_size=100))
def test_b64_round_trips_without_padding(data: bytes) -> None:
    text = b64encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64decode(text) == data


@pytest.mark.parametrize(
    "text",
    ["AA==", "AA=", "a+b/", "A", "AAAAA", "A A", "AB", "AAB", "é", "AA\n"],
)
def test_b64_decode_is_strict(text: str) -> None:
    # "AB" and "AAB" have non-zero padding bits: a second spelling of some bytes.
    with pytest.raises(InvalidEncoding):
        b64decode(text)


def test_b64_decode_rejects_non_strings() -> None:
    with pytest.raises(InvalidEncoding):
        b64decode(b"AA")  # type: ignore[arg-type]


# --- signing and verifying --------------------------------------------------------------


def test_sign_and_verify() -> None:
    key = SigningKey.from_seed(SEED)
    signature = key.sign(b"hello")
    assert len(signature) == 64
    key.verify_key.verify(b"hello", signature)


def test_signing_is_deterministic_per_seed() -> None:
    assert SigningKey.from_seed(SEED).sign(b"m") == SigningKey.from_seed(SEED).sign(b"m")
    assert SigningKey.generate().verify_key != SigningKey.generate().verify_key


@pytest.mark.parametrize(
    "message,signature_edit",
    [
        (b"hellO", lambda s: s),
        (b"hello", lambda s: s[:-1] + bytes([s[-1] ^ 1])),
        (b"hello", lambda s: s[:63]),
        (b"hello", lambda s: s + b"\x00"),
        (b"hello", lambda s: bytes(64)),
    ],
)
def test_verify_rejects_tampering(
    message: bytes, signature_edit: Callable[[bytes], bytes]
) -> None:
    key = SigningKey.from_seed(SEED)
    with pytest.raises(InvalidSignature) as info:
        key.verify_key.verify(message, signature_edit(key.sign(b"hello")))
    assert str(info.value) == "invalid signature"
    assert info.value.detail


def test_verify_rejects_another_key() -> None:
    signature = SigningKey.from_seed(SEED).sign(b"m")
    with pytest.raises(InvalidSignature):
        SigningKey.from_seed(bytes(32)).verify_key.verify(b"m", signature)


def test_verify_key_accepts_only_32_bytes() -> None:
    with pytest.raises(InvalidEncoding):
        VerifyKey(bytes(31))
    with pytest.raises(InvalidEncoding):
        VerifyKey.from_base64(b64encode(bytes(33)))


def test_seed_must_be_32_bytes() -> None:
    with pytest.raises(InvalidEncoding):
        SigningKey.from_seed(bytes(16))


def test_verify_key_base64_round_trip() -> None:
    vk = SigningKey.from_seed(SEED).verify_key
    assert VerifyKey.from_base64(vk.to_base64()) == vk


def test_key_id_and_fingerprint_shapes() -> None:
    key = SigningKey.from_seed(SEED)
    assert re.fullmatch(r"ed25519:[A-Za-z0-9_-]{8}", key.key_id)
    assert key.key_id == key.verify_key.key_id
    assert re.fullmatch(r"([0-9A-F]{4} ){7}[0-9A-F]{4}", key.verify_key.fingerprint)


def test_repr_does_not_reveal_the_seed() -> None:
    key = SigningKey.from_seed(SEED)
    assert b64encode(SEED) not in repr(key) and SEED.hex() not in repr(key)
    assert key.key_id in repr(key)


# --- key files --------------------------------------------------------------------------


def test_save_writes_mode_0600_and_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    key = SigningKey.from_seed(SEED)
    key.save(path)
    assert mode_of(path) == 0o600
    assert path.read_text() == b64encode(SEED) + "\n"
    assert SigningKey.load(path).verify_key == key.verify_key
    assert [p.name for p in tmp_path.iterdir()] == ["node.key"]  # no temp file left behind


def test_save_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        SigningKey.generate().save(tmp_path / "k")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "k") == 0o600


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first = SigningKey.generate()
    first.save(path)
    with pytest.raises(KeyFileError, match="already exists"):
        SigningKey.generate().save(path)
    assert SigningKey.load(path).key_id == first.key_id
    second = SigningKey.generate()
    second.save(path, overwrite=True)
    assert SigningKey.load(path).key_id == second.key_id
    assert mode_of(path) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_load_refuses_a_key_others_can_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k"
    SigningKey.generate().save(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=f"mode {mode:04o}.*chmod 600"):
        SigningKey.load(path)


def test_load_reports_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot open"):
        SigningKey.load(tmp_path / "missing")
    for content in (b"not base64!", b"\xff\xfe", b64encode(bytes(16)).encode(), b"A" * 1000):
        path = tmp_path / "bad"
        path.write_bytes(content)
        path.chmod(0o600)
        with pytest.raises(KeyFileError):
            SigningKey.load(path)
