"""Errors say what was wrong in words: the expected form of a value, never the regular
expression behind it nor an internal class name; and every pattern a caller can meet in either
listener's document has those words."""

from __future__ import annotations

import io

import aiohttp
import pytest

from node.http.fields import form_of
from tests.cluster import start_node
from tests.tls_fixtures import TestCertificateAuthority


@pytest.fixture
async def acme(tmp_path):
    node = await start_node(tmp_path, "acme.example", TestCertificateAuthority())
    yield node
    await node.stop()


def _patterns(value) -> set[str]:
    if isinstance(value, dict):
        found = {value["pattern"]} if isinstance(value.get("pattern"), str) else set()
        return found.union(*(_patterns(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_patterns(v) for v in value))
    return set()


async def _call(method: str, url: str, token: str, **kwargs) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs) as resp:
        return resp.status, await resp.json()


async def test_every_pattern_in_the_documents_has_words(acme):
    patterns: set[str] = set()
    for listener in ("admin", "client"):
        _, document = await _call("GET", f"http://127.0.0.1:{acme.ports[listener]}/openapi.json", "")
        patterns |= _patterns(document)
    assert len(patterns) >= 6
    assert not sorted(p for p in patterns if form_of(p) is None)


@pytest.mark.parametrize(("path", "body", "field", "words"), [
    ("/v1/agents", {"handle": "Bad Handle", "display_name": "x"}, "handle", "must be a handle: 1-64 lowercase"),
    ("/v1/threads", {"name": "Billing!", "title": "B", "members": []}, "name", "must be a name: 1-64 lowercase"),
    ("/v1/agents", [1], "body", "must be a JSON object"),
])
async def test_a_bad_value_is_named_with_its_expected_form(acme, path, body, field, words):
    status, answer = await _call("POST", f"http://127.0.0.1:{acme.ports['admin']}{path}", acme.admin_token,
                                 json=body)
    assert status == 422
    error = answer["error"]
    assert error["fields"][0]["field"] == field and words in error["fields"][0]["message"]
    assert words in error["message"]
    text = str(answer)
    assert "^" not in text and "[a-z" not in text and "instance of" not in text


@pytest.mark.parametrize(("listener", "prefix", "words"), [
    ("admin", "anagt_", "this is an agent's token; the admin listener takes the admin token"),
    ("admin", "anper_", "this is a person's token; the admin listener takes the admin token"),
    ("client", "anadm_", "this is the admin token; the client listener takes an agent's, person's or application's"),
])
async def test_a_token_of_the_other_kind_is_named_as_such(acme, listener, prefix, words):
    path = "/v1/status" if listener == "admin" else "/v1/whoami"
    status, answer = await _call("GET", f"http://127.0.0.1:{acme.ports[listener]}{path}", prefix + "x" * 43)
    assert status == 401 and answer["error"]["code"] == "wrong_token_kind"
    assert words in answer["error"]["message"]
    status, answer = await _call("GET", f"http://127.0.0.1:{acme.ports[listener]}{path}", "nonsense")
    assert status == 401 and answer["error"]["code"] == "unauthorized"  # no known prefix: just not valid


async def test_a_body_over_the_limit_names_the_limit_and_bad_json_says_what_to_send(acme):
    url = f"http://127.0.0.1:{acme.ports['admin']}/v1/agents"
    status, answer = await _call("POST", url, acme.admin_token, data=io.BytesIO(b"x" * (2 * 1024 * 1024)))
    assert status == 413 and "its limit of 262,144 bytes" in answer["error"]["message"]
    status, answer = await _call("POST", url, acme.admin_token, data=b'{"handle": ')
    assert status == 400
    assert answer["error"]["message"] == ("the request body is not valid JSON: Expecting value at offset 11; "
                                          "send a JSON object")
