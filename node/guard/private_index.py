"""Find the node's private content in outgoing text, also when it was reworded a little.

Nobody writes a rule for each knowledge item: the guard indexes every private text (knowledge
items, private threads' titles and messages) and asks, of each outgoing message, whether it
shares enough of one of them. Text is compared on a normal form (Unicode NFKC, case folded,
punctuation dropped, common words dropped, a plural "s" dropped), as overlapping runs of three
words ("shingles"), so changed punctuation, case, spacing, a few swapped or inserted words
still leave most runs intact.

A message matches a private text when they share at least `min_shared` runs and those make up
at least `threshold` of the smaller of the two (a short item pasted whole, a short message drawn
from a long item), or when they share `enough_shared` runs whatever their lengths (a sentence
of a long item inside a long answer: eight runs are ten content words in a row). A common
three-word phrase matches neither way.
Titles are matched as phrases instead, when they have at least `_PHRASE_WORDS` content words:
shorter ones ("Launch checklist") are labels, not secrets, and an agent answering from an item
names it.

Pure and in memory (`PrivateIndex` says how it is laid out). A run held by more than
`_MAX_HOLDERS` texts says nothing about any one of them and is not counted.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["PrivateHit", "PrivateIndex", "build_index", "content_words"]

SHINGLE_WORDS = 3
_PHRASE_WORDS = 4
# A run in more texts than this is boilerplate, not anyone's private content.
_MAX_HOLDERS = 16
_WORD = re.compile(r"\w+", re.UNICODE)
# Words that carry no content: dropping them lets "the budget of Falcon" match "Falcon's budget".
_MASK = 0xFFFF_FFFF
# Runs waiting in the dict before one sort merges them: bounds that dict's memory.
_MERGE_AT = 200_000
_STOP_WORDS = frozenset("""
a an and are as at be been but by can could did do does for from had has have he her his i if in into is it
its me my no not of on or our s she so than that the their them then there these they this to too us was we
were what when where which who will with would you your
""".split())


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def content_words(text: str) -> list[str]:
    """`text` in normal form: the words that carry its content, in order."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [_stem(w) for w in _WORD.findall(folded) if w not in _STOP_WORDS and w != "_"]


def _shingles(words: list[str]) -> set[int]:
    if len(words) < SHINGLE_WORDS:
        return set()
    # Python's own hash, cut to 32 bits: the index lives in this process only, so its per-process
    # seed is fine; a chance collision adds one run in common, far below `min_shared`.
    return {hash(tuple(words[i:i + SHINGLE_WORDS])) & _MASK for i in range(len(words) - SHINGLE_WORDS + 1)}


@dataclass(frozen=True, slots=True)
class PrivateHit:
    source: str  # what matched, e.g. "knowledge:12"; never its text
    shared: int  # runs of words in common (0 for a phrase)
    share: float  # of the smaller text's runs (1.0 for a phrase)


class PrivateIndex:
    """Runs are kept as one sorted array of 64-bit entries, `hash << 32 | text number`: 8 bytes
    a run (10,000 items of 60-200 words are about a million runs), found by binary search. New
    runs wait in a small dict until there are enough of them to merge in one sort."""

    def __init__(self, *, min_shared: int = 4, threshold: float = 0.5, enough_shared: int = 8) -> None:
        self.min_shared = min_shared
        self.threshold = threshold
        self.enough_shared = enough_shared
        self._sources: list[str] = []  # text number -> source
        self._numbers: dict[str, int] = {}
        self._sizes: list[int] = []  # runs per text number
        self._merged = array("Q")
        self._recent: dict[int, list[int]] = {}
        self._recent_runs = 0
        self._phrases: dict[tuple[str, ...], list[tuple[tuple[str, ...], str]]] = {}  # first words -> phrases

    def __len__(self) -> int:
        return len(self._sources) + sum(len(p) for p in self._phrases.values())

    def add(self, source: str, text: str) -> None:
        """Index `text` as `source` (a body); adding a source again adds to what it holds."""
        shingles = _shingles(content_words(text))
        if not shingles:  # too short to say anything specific ("ok, thanks")
            return
        number = self._numbers.get(source)
        if number is None:
            number = self._numbers[source] = len(self._sources)
            self._sources.append(source)
            self._sizes.append(0)
        self._sizes[number] += len(shingles)
        for h in shingles:
            self._recent.setdefault(h, []).append(number)
        self._recent_runs += len(shingles)
        if self._recent_runs >= _MERGE_AT:
            self.compact()

    def compact(self) -> None:
        """Merge the runs added since the last merge into the sorted array."""
        if not self._recent:
            return
        entries = self._merged.tolist()
        entries.extend((h << 32) | n for h, numbers in self._recent.items() for n in numbers)
        entries.sort()
        self._merged = array("Q", entries)
        self._recent.clear()
        self._recent_runs = 0

    def add_phrase(self, source: str, text: str) -> None:
        """Index a title: matched when its content words appear together, in order."""
        words = tuple(content_words(text))
        if len(words) >= _PHRASE_WORDS:
            phrases = self._phrases.setdefault(words[:_PHRASE_WORDS], [])
            if (words, source) not in phrases:
                phrases.append((words, source))

    def _holders(self, h: int) -> list[int]:
        low = bisect_left(self._merged, h << 32)
        high = bisect_left(self._merged, (h + 1) << 32, low)
        found = [e & _MASK for e in self._merged[low:high]] if high > low else []
        return found + self._recent.get(h, [])

    def match(self, text: str) -> list[PrivateHit]:
        """The private texts `text` shares too much with, the closest first."""
        words = content_words(text)
        hits: list[PrivateHit] = []
        if self._phrases:
            named: set[str] = set()
            for i in range(len(words) - _PHRASE_WORDS + 1):
                for phrase, source in self._phrases.get(tuple(words[i:i + _PHRASE_WORDS]), ()):
                    if source not in named and tuple(words[i:i + len(phrase)]) == phrase:
                        named.add(source)
                        hits.append(PrivateHit(source, 0, 1.0))
        shingles = _shingles(words)
        counts: Counter[int] = Counter()
        for h in shingles:
            holders = self._holders(h)
            if len(holders) <= _MAX_HOLDERS:
                counts.update(set(holders))
        for number, shared in counts.items():
            if shared < self.min_shared:
                continue
            share = shared / min(len(shingles), self._sizes[number])
            if share >= self.threshold or shared >= self.enough_shared:
                hits.append(PrivateHit(self._sources[number], shared, round(share, 3)))
        return sorted(hits, key=lambda h: -h.share)


def build_index(texts: Iterable[tuple[str, str, bool]], **settings: Any) -> PrivateIndex:
    """An index of `(source, text, is_title)` triples."""
    index = PrivateIndex(**settings)
    for source, text, is_title in texts:
        (index.add_phrase if is_title else index.add)(source, text)
    index.compact()
    return index
