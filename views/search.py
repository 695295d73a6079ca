"""The shop search: one function decides whether a shop's name matches what a shopper typed, and how well.

Shoppers type "parfum", "parfuem" or "Parfüm", "muller" or "mueller",
"strasse" or "Straße", "cafe" or "Café", and now and then a typo. Names and
queries are folded alike (``loose``): case, accents and umlauts dropped,
"ae"/"oe"/"ue" read as the vowel, "ß" as "ss". A query matches exactly, at
the start of the name, anywhere in it, or, in words of five letters or more,
with one letter wrong, missing or extra against a word of the name or its
start; the order of those is the rank.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Optional

EXACT, PREFIX, PART, TYPO = 0, 1, 2, 3
TYPO_MIN_LETTERS = 5  # shorter words must match as typed: one edit in "ota" finds too much

_VOWEL_PAIRS = re.compile(r"([aou])e")
_WORD = re.compile(r"[a-z0-9]+")


def loose(text: str) -> str:
    """``text`` folded for matching, words kept apart by single spaces: ``"Parfüm-Welt"`` → ``"parfum welt"``."""
    folded = text.casefold().replace("ß", "ss")
    folded = "".join(char for char in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(char))
    folded = _VOWEL_PAIRS.sub(r"\1", folded)  # "parfuem" and "Parfüm" both end up "parfum"
    return " ".join(_WORD.findall(folded))


@functools.lru_cache(maxsize=250_000)  # every search folds every shop name: fold each name once
def _folded_name(name: str) -> tuple[str, tuple[str, ...]]:
    words = tuple(loose(name).split())
    return "".join(words), words


def _one_edit_apart(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by changing, adding or removing at most one character."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i + 1:] == b[i + 1:] if len(a) == len(b) else a[i:] == b[i + 1:]


def _word_matches(word: str, name_words: tuple[str, ...]) -> bool:
    """A query word in the name as typed (part of a word), or, when long enough, with one typo."""
    if any(word in name_word for name_word in name_words):
        return True
    if len(word) < TYPO_MIN_LETTERS:
        return False
    # The whole word or its start ("parfun" in "parfumwelt"): a typo is looked for where words begin.
    return any(_one_edit_apart(word, candidate)
               for name_word in name_words
               for candidate in {name_word, *(name_word[:size] for size in range(len(word) - 1, len(word) + 2))})


class Query:
    """A shopper's query, folded once, to rank many names against."""

    def __init__(self, text: str) -> None:
        self.words = loose(text).split()
        self.key = "".join(self.words)

    def rank(self, name: str) -> Optional[int]:
        """How well ``name`` matches: EXACT, PREFIX, PART or TYPO (lower is better); None: no match."""
        joined, words = _folded_name(name)
        if not self.key or self.key == joined:
            return EXACT
        if self.key in joined:
            return PREFIX if joined.startswith(self.key) else PART
        if all(_word_matches(word, words) for word in self.words):
            return TYPO
        return None


def match_rank(name: str, query: str) -> Optional[int]:
    """How well ``name`` matches ``query`` (see ``Query.rank``)."""
    return Query(query).rank(name)
