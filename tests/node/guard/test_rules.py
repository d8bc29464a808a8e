"""The guard's rules without the database: built-in secrets, the operator's patterns, terms,
redaction, and settings refused before they are stored."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from node.guard.rules import CompiledRules, GuardPolicy

AWS = "AKIAIOSFODNN7EXAMPLE"


@pytest.mark.parametrize("secret", [
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
    f"use {AWS} for the bucket",
    "token ghp_" + "a1" * 20,
    "xoxb-1234567890-abcdefghij",
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "anagt_" + "Q" * 43,
])
def test_built_in_secrets_block(secret):
    _, findings = CompiledRules(GuardPolicy()).apply(f"here: {secret}")
    assert [f.action for f in findings] == ["block"] and findings[0].rule.startswith("secret.")


def test_prose_passes():
    assert CompiledRules(GuardPolicy()).apply("Deploy wave 2 on Monday; skip the key rotation.")[1] == []


def test_redact_replaces_only_what_matched():
    rules = CompiledRules(GuardPolicy(secrets="redact", rules=[
        {"name": "customer-id", "pattern": r"\bCUST-[0-9]{6}\b", "action": "redact"}]))
    text, findings = rules.apply(f"key {AWS} for CUST-123456, ticket 42")
    assert text == "key [redacted: secret.aws_access_key] for [redacted: customer-id], ticket 42"
    assert {f.rule for f in findings} == {"secret.aws_access_key", "customer-id"}


def test_flag_sends_the_text_unchanged():
    text = "Ｒｅｖｉｅｗ CUST-123456 please"
    sent, findings = CompiledRules(GuardPolicy(rules=[
        {"name": "customer-id", "pattern": r"CUST-[0-9]+", "action": "flag"}])).apply(text)
    assert sent == text and [(f.rule, f.action) for f in findings] == [("customer-id", "flag")]


def test_terms_match_words_whatever_the_case_punctuation_or_width():
    rules = CompiledRules(GuardPolicy(terms=["Project Falcon", "Zephyr"], terms_action="redact"))
    text, findings = rules.apply("About project-FALCON and ｚｅｐｈｙｒ, not zephyrs or falcon projects.")
    assert text == "About [redacted: term] and [redacted: term], not zephyrs or falcon projects."
    assert [f.rule for f in findings] == ["term"]


@pytest.mark.parametrize("settings, message", [
    ({"rules": [{"name": "x", "pattern": r"(a)\1"}]}, "RE2"),
    ({"rules": [{"name": "x", "pattern": "(?<=a)b"}]}, "look-arounds"),
    ({"rules": [{"name": "secret.jwt", "pattern": "x"}]}, "built-in"),
    ({"rules": [{"name": "Bad Name", "pattern": "x"}]}, "pattern"),
    ({"terms": ["--"]}, "no letters"),
    ({"judge": {"timeout_ms": 100}}, "exactly one"),
    ({"judge": {"python": "os:system", "url": "https://judge.example/"}}, "exactly one"),
    ({"private_content": "redact"}, "private_content"),
])
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValidationError) as refused:
        GuardPolicy.model_validate(settings)
    assert message in str(refused.value)


def test_a_pattern_that_would_backtrack_for_ever_in_re_is_linear_in_re2():
    rules = CompiledRules(GuardPolicy(rules=[{"name": "evil", "pattern": "(a+)+$"}]))
    assert rules.apply("a" * 16_000 + "!")[1] == []  # Python's re takes longer than the universe here
