"""Free text → words, and organ words found as whole words, never inside other words.

Normalisation: German umlauts transliterated (Schilddrüse → schilddruese), accents
dropped, camelCase / underscores / dots / digits split into words, lower case. Matching
works on whole-word sequences (longest first), so "Liverpool" never contains "liver".
German compounds count only as organ stem + a known clinical head word
("Nierenbiopsie" = niere(n) + biopsie), so "Leberecht" is not the liver.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from radpath.domain.vocabulary import Laterality

_TRANSLITERATE = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z]{2})")
_DIGITS = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Lower-case ASCII words of ``text`` (umlauts transliterated, camelCase split)."""
    text = str(text).translate(_TRANSLITERATE)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _DIGITS.sub(" ", _CAMEL.sub(" ", text))
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Target:
    """What a code, term or phrase points at: an organ (maybe a sub-part) or a region."""

    organ: str | None
    subpart: str | None = None
    laterality: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class Phrase:
    target: Target
    kind: str  # text-term, text-abbreviation
    text: str  # the synonym as written in the master


@dataclass
class PhraseIndex:
    phrases: dict[tuple[str, ...], Phrase] = field(default_factory=dict)
    longest: int = 1

    def add(self, words: tuple[str, ...], phrase: Phrase) -> None:
        # Organ terms win over region terms written the same way ("abdomen" is a region only).
        existing = self.phrases.get(words)
        if existing is None or (existing.target.organ is None and phrase.target.organ is not None):
            self.phrases[words] = phrase
        self.longest = max(self.longest, len(words))


@dataclass(frozen=True)
class Mention:
    """One organ or region word found in a field: words[start:end] matched ``phrase``."""

    start: int
    end: int
    target: Target
    kind: str
    matched: str


def find_mentions(
    words: list[str], index: PhraseIndex, compound: Callable[[str], Any]
) -> list[Mention]:
    """Organ/region mentions in ``words``, longest phrase first, left to right."""
    mentions = []
    i = 0
    while i < len(words):
        for length in range(min(index.longest, len(words) - i), 0, -1):
            phrase = index.phrases.get(tuple(words[i : i + length]))
            if phrase is not None:
                mentions.append(Mention(i, i + length, phrase.target, phrase.kind, " ".join(words[i : i + length])))
                i += length
                break
        else:
            target = compound(words[i])
            if target is not None:
                mentions.append(Mention(i, i + 1, target, "text-compound", words[i]))
            i += 1
    return mentions


def split_compound(word: str, stems: dict[str, str], heads: frozenset[str]) -> str | None:
    """The organ of a German compound (stem + optional linking s + head word), else None."""
    for stem, organ in stems.items():
        if word.startswith(stem) and len(word) > len(stem):
            rest = word[len(stem) :]
            if rest in heads or (rest.startswith("s") and rest[1:] in heads):
                return organ
    return None


def sides_near(
    words: list[str],
    mention: Mention,
    segment: tuple[int, int],
    strong: dict[str, str],
    weak: dict[str, str],
    window: int,
) -> set[str]:
    """Laterality words for ``mention``: strong words anywhere in its segment of the
    field, abbreviations (li, re, L, Rt …) only within ``window`` words of it."""
    sides = set()
    lo, hi = segment
    for i in range(lo, hi):
        if mention.start <= i < mention.end:
            continue
        word = words[i]
        if word in strong:
            sides.add(strong[word])
        elif word in weak and (mention.start - window <= i < mention.start or mention.end <= i < mention.end + window):
            sides.add(weak[word])
    return sides


def combine_sides(sides: set[str]) -> str | None:
    if not sides:
        return None
    if Laterality.BILATERAL in sides or set(Laterality.sides()) <= sides:
        return Laterality.BILATERAL.value
    return next(iter(sides))
