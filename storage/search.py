"""What both full-text searches share (knowledge, `storage.private.knowledge`; shared messages,
`storage.network.message_text`): queries reduced to words before they reach an engine, so query
syntax in user input is never interpreted, and the names of the indexes the migrations make by
hand, outside the declared metadata. Neither side imports the other through this module."""

from __future__ import annotations

import re

__all__ = ["is_search_object", "search_words", "sqlite_match"]

# More words than this adds nothing to a search and only costs the engine time.
_MAX_QUERY_WORDS = 16
_WORD = re.compile(r"\w+", re.UNICODE)


def search_words(query: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(query)][:_MAX_QUERY_WORDS]


def sqlite_match(words: list[str]) -> str:
    """An FTS5 MATCH expression: every word, each quoted as a literal."""
    return " ".join('"' + w.replace('"', '""') + '"' for w in words)


def is_search_object(name: str | None) -> bool:
    return name is not None and (name.startswith(("knowledge_fts", "shared_message_fts"))
                                 or name in ("ix_knowledge_items_search", "ix_shared_message_text_search"))
