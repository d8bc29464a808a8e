"""The outbound guard's settings, and the rules that run on text without the database.

Rules are regular expressions (built-in ones for secrets, the operator's own for customer
identifiers and the like) and a list of private terms. Each finding says *which rule* matched,
never what it matched: that is what the author, the audit log and the review list are told.

Patterns are compiled with RE2 (`google-re2`): matching takes time linear in the text whatever
an operator writes, so no pattern can stall the node (Python's `re` backtracks exponentially on
some). Terms match on words, case and punctuation ignored ("Project  FALCON" matches the term
"project falcon"), on the NFKC form of the text, so look-alike compatibility characters such as
fullwidth letters do not slip past either.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from node.http.fields import form

__all__ = [
    "BUILT_IN_SECRETS",
    "Action",
    "CompiledRules",
    "Finding",
    "GuardPolicy",
    "JudgeSettings",
    "PatternRule",
    "compile_pattern",
]

Action = Literal["block", "redact", "flag"]
RuleName = Annotated[str, Field(pattern=form(r"^[a-z0-9][a-z0-9_.-]{0,59}$",
                                             "a rule name: 1-60 lowercase letters, digits, '.', '_' or '-' "
                                             "(e.g. customer-id)"))]
# RE2 needs memory for the program it compiles; patterns longer than this are not identifiers.
MAX_PATTERN_CHARS = 1_000
MAX_RULES = 100
MAX_TERMS = 2_000
MAX_TERM_CHARS = 200

# What leaks most often, in forms specific enough not to fire on ordinary prose.
BUILT_IN_SECRETS: dict[str, str] = {
    "secret.private_key": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----",
    "secret.aws_access_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "secret.github_token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b",
    "secret.slack_token": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    "secret.api_key": r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}|\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",
    "secret.jwt": r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    "secret.agentnet_token": r"\ban(?:adm|agt|per)_[A-Za-z0-9_-]{40,}",
}

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the operator's 422, not a line on stderr


def compile_pattern(pattern: str) -> Any:
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as e:
        detail = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        raise ValueError(f"not a pattern RE2 accepts ({detail}); back-references and look-arounds are not "
                         "supported") from None


class PatternRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: RuleName = Field(description="what the author and the audit log are told matched")
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN_CHARS, description="an RE2 regular expression")
    action: Action = "block"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        compile_pattern(value)
        return value


class JudgeSettings(BaseModel):
    """A decision the rules cannot make, asked of the company's own code or service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    python: str | None = Field(None, max_length=200, pattern=form(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
                                                     'a callable as "module:function" (e.g. acme_guard.judge:decide)'),
                               description='a callable as "module:function" (the syntax of a Python entry point), '
                                           "importable by the node")
    url: str | None = Field(None, max_length=500, pattern=form(r"^https?://[^\s]+$", "an http:// or https:// URL"),
                            description="an HTTP(S) endpoint the company runs: POSTed the text as JSON")
    timeout_ms: int = Field(2_000, ge=50, le=30_000)
    on_error: Literal["block", "allow"] = Field("block", description="when the judge fails or times out")

    @model_validator(mode="after")
    def _one_kind(self) -> JudgeSettings:
        if (self.python is None) == (self.url is None):
            raise ValueError("give exactly one of python and url")
        return self


class GuardPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    secrets: Action | Literal["off"] = Field("block", description="what the built-in secret patterns do")
    rules: list[PatternRule] = Field(default_factory=list, max_length=MAX_RULES)
    terms: list[Annotated[str, Field(min_length=1, max_length=MAX_TERM_CHARS)]] = Field(
        default_factory=list, max_length=MAX_TERMS, description="private terms, matched as words")
    terms_action: Action = "block"
    private_content: Literal["block", "flag", "off"] = Field(
        "flag", description="text of this node's knowledge items and private threads (flag by default: agents "
                            "answer partners from knowledge; block where nothing of it may be quoted)")
    min_shared: int = Field(4, ge=1, le=100, description="private content: three-word runs in common, at least")
    threshold: float = Field(0.5, gt=0, le=1, description="private content: share of the shorter text's runs")
    enough_shared: int = Field(8, ge=1, le=1_000, description="private content: runs in common that match "
                                                              "whatever the texts' lengths")
    judge: JudgeSettings | None = None

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: list[PatternRule]) -> list[PatternRule]:
        names = [r.name for r in value]
        if len(set(names)) != len(names) or set(names) & set(BUILT_IN_SECRETS) or "term" in names:
            raise ValueError("rule names must be unique and differ from the built-in ones")
        return value

    @field_validator("terms")
    @classmethod
    def _terms_have_words(cls, value: list[str]) -> list[str]:
        for term in value:
            if not _term_words(term):
                raise ValueError(f"term {term!r} has no letters or digits to match")
        return value


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    action: str
    source: str | None = None  # private content: which item, for the operator only


def _term_words(term: str) -> list[str]:
    return [w for w in re2.findall(r"\w+", unicodedata.normalize("NFKC", term).casefold())]


def _term_pattern(term: str) -> str:
    return r"\b" + r"\W+".join(re2.escape(w) for w in _term_words(term)) + r"\b"


class CompiledRules:
    """A policy's patterns, compiled once: secrets and the operator's rules, and the terms as
    one alternation (RE2 matches many alternatives in one pass)."""

    def __init__(self, policy: GuardPolicy) -> None:
        self._patterns: list[tuple[str, str, Any]] = []
        if policy.secrets != "off":
            self._patterns += [(name, policy.secrets, compile_pattern(p)) for name, p in BUILT_IN_SECRETS.items()]
        self._patterns += [(r.name, r.action, compile_pattern(r.pattern)) for r in policy.rules]
        if policy.terms:
            alternation = "|".join(_term_pattern(t) for t in policy.terms)
            self._patterns.append(("term", policy.terms_action, compile_pattern(f"(?i:{alternation})")))

    def apply(self, text: str) -> tuple[str, list[Finding]]:
        """What matched in `text` (in NFKC form), and the text to send: `text` itself, or its
        NFKC form with every `redact` match replaced by "[redacted: RULE]"."""
        normal = unicodedata.normalize("NFKC", text)
        findings: list[Finding] = []
        for name, action, compiled in self._patterns:
            if compiled.search(normal) is None:
                continue
            findings.append(Finding(name, action))
            if action == "redact":
                normal = compiled.sub(f"[redacted: {name}]", normal)
        redacted = any(f.action == "redact" for f in findings)
        return (normal if redacted else text), findings
