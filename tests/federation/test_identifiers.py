from __future__ import annotations

import pytest

from federation.errors import InvalidIdentifier
from federation.identifiers import (
    ParticipantId,
    validate_network_name,
    validate_server_name,
    validate_thread_name,
)


@pytest.mark.parametrize(
    "name",
    [
        "acme.example",
        "localhost",
        "127.0.0.1:8801",
        "10.0.0.1",
        "acme.example:443",
        "x-1.example:65535",
        "a" * 63 + ".example",
    ],
)
def test_valid_server_names(name: str) -> None:
    assert validate_server_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "ACME.example",  # one spelling per server: lowercase only
        "acme.example.",
        "-acme.example",
        "acme-.example",
        "a..b",
        "a" * 64 + ".example",
        "acme.example:0",
        "acme.example:65536",
        "acme.example:08443",
        "acme.example:",
        "acme.example:80:80",
        "256.0.0.1",
        "1.2.3",
        "01.2.3.4",
        "[::1]:8443",
        "acme_corp.example",
        "acme.example/path",
        ("a" * 62 + ".") * 4 + "ab",  # 254: over the 253-character DNS limit
        "a" * 300,
        7,
        None,
    ],
)
def test_invalid_server_names(name: object) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        validate_server_name(name)
    assert info.value.code == "invalid_identifier"
    assert isinstance(info.value, ValueError)


def test_participant_id_round_trips() -> None:
    pid = ParticipantId.parse("agent:delivery@globex.example")
    assert pid == ParticipantId("agent", "delivery", "globex.example")
    assert str(pid) == "agent:delivery@globex.example"
    with_port = ParticipantId.parse("person:j.doe_1-x@127.0.0.1:8801")
    assert with_port.server == "127.0.0.1:8801"
    assert str(with_port) == "person:j.doe_1-x@127.0.0.1:8801"


@pytest.mark.parametrize(
    "text",
    [
        "bot:x@acme.example",
        "agent:X@acme.example",
        "agent:@acme.example",
        "agent:" + "a" * 65 + "@acme.example",
        "agent:a b@acme.example",
        "agent:a@b@acme.example",
        "agent:delivery",
        "delivery@acme.example",
        "agent:delivery@ACME.example",
        "",
        None,
    ],
)
def test_invalid_participant_ids(text: object) -> None:
    with pytest.raises(InvalidIdentifier):
        ParticipantId.parse(text)


@pytest.mark.parametrize("validate", [validate_network_name, validate_thread_name])
def test_slugs(validate) -> None:  # type: ignore[no-untyped-def]
    for good in ("acme-rollout", "a", "0", "a" * 64, "q3-2024"):
        assert validate(good) == good
    for bad in ("", "-a", "A", "a_b", "a" * 65, "a b", "a\n", "é", None):
        with pytest.raises(InvalidIdentifier):
            validate(bad)
