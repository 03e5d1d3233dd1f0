"""``anatomy/master.json`` loaded once, with the look-up indexes the resolver needs.

The file is found, in order: ``$RADPATH_ANATOMY``; the repository's ``anatomy/`` (source
checkouts and editable installs); ``<prefix>/share/radpath/anatomy/`` (wheel installs,
see setup.cfg's data_files).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from radpath.domain.anatomy.text import Phrase, PhraseIndex, Target, tokens
from radpath.domain.records import Record
from radpath.domain.vocabulary import Laterality

#: Scheme designators seen for SNOMED CT and for legacy SNOMED-RT / SNOMED 3 codes.
SCT_SCHEMES = {"SCT", "SNOMED", "SNOMED-CT", "SNOMEDCT", "SNOMED CT"}
SRT_SCHEMES = {"SRT", "SNM3", "99SDM"}
ICD_SCHEMES = {"I10", "ICD10", "ICD-10", "ICD10GM", "ICD-10-GM", "ICD10CM", "ICD-10-CM", "ICDO3", "ICD-O-3", "ICDO", "I10P"}


class MasterNotFound(FileNotFoundError):
    pass


def master_path() -> Path:
    candidates = []
    if os.environ.get("RADPATH_ANATOMY"):
        candidates.append(Path(os.environ["RADPATH_ANATOMY"]))
    candidates.append(Path(__file__).resolve().parents[3] / "anatomy" / "master.json")
    candidates.append(Path(sys.prefix) / "share" / "radpath" / "anatomy" / "master.json")
    for path in candidates:
        if path.is_file():
            return path
    raise MasterNotFound("anatomy/master.json not found (looked in: " + ", ".join(map(str, candidates)) + ")")


@dataclass(frozen=True)
class ClassSelection(Record):
    """What a mask is made of: the TotalSegmentator classes of one organ (of one side,
    of one sub-part) in one task; ``note`` says where the task could not be as specific
    as the slide. ``entries`` are the classes' records in ``anatomy/master.json``."""

    organ: str
    task: str
    laterality: str | None  # "left" / "right" when the mask is one side's only
    subpart: str | None  # the sub-part the mask is, when the task has classes for it
    entries: tuple[dict[str, Any], ...]
    note: str | None = None

    @property
    def classes(self) -> list[str]:
        return [c["class"] for c in self.entries]

    @property
    def what(self) -> str:
        """The part in words, for messages: "left upper lobe lung", "kidney"."""
        return in_words(self.organ, self.laterality, self.subpart)


def in_words(organ: str | None, laterality: str | None = None, subpart: str | None = None) -> str:
    """An organ, its side and sub-part as people say it ("left upper lobe lung"); empty
    without an organ."""
    if not organ:
        return ""
    return " ".join(filter(None, (laterality, (subpart or "").replace("_", " "), organ)))


@dataclass
class Master:
    data: dict[str, Any]
    codes: dict[tuple[str, str], Target] = field(default_factory=dict)
    annex_l: dict[str, Target] = field(default_factory=dict)
    region_concepts: dict[str, dict[str, str]] = field(default_factory=dict)  # Annex L term → concept
    icd: dict[str, Target] = field(default_factory=dict)
    phrases: PhraseIndex = field(default_factory=PhraseIndex)
    compound_stems: dict[str, str] = field(default_factory=dict)
    compound_heads: frozenset[str] = frozenset()
    laterality_codes: dict[str, str] = field(default_factory=dict)
    laterality_strong: dict[str, str] = field(default_factory=dict)
    laterality_weak: dict[str, str] = field(default_factory=dict)
    laterality_dicom: dict[str, str] = field(default_factory=dict)
    weak_window: int = 1

    @property
    def organs(self) -> dict[str, dict[str, Any]]:
        return self.data["organs"]

    @property
    def regions(self) -> dict[str, dict[str, Any]]:
        return self.data["regions"]

    def organ(self, key: str) -> dict[str, Any]:
        return self.organs[key]

    def concept(self, target: Target) -> dict[str, str] | None:
        """The SNOMED concept of the target's organ, or of its region when organ-less."""
        entry = self.organs[target.organ] if target.organ else self.regions.get(target.region or "")
        if not entry or not entry.get("snomed"):
            return None
        return {k: entry["snomed"][k] for k in ("scheme", "code", "meaning")}

    def concept_of(self, organ: str) -> dict[str, str] | None:
        return self.concept(Target(organ))

    def subpart_concept(self, organ: str, subpart: str | None) -> dict[str, str] | None:
        for sub in self.organs[organ]["subparts"] if subpart else []:
            if sub["key"] == subpart and sub.get("snomed"):
                return {k: sub["snomed"][k] for k in ("scheme", "code", "meaning")}
        return None

    def classes(self, organ: str, task: str) -> list[dict[str, Any]]:
        """TotalSegmentator classes of an organ for a task (``total`` / ``total_mr``)."""
        return [c for c in self.organs[organ]["totalsegmentator"] if c["task"] == task]

    def select_classes(
        self, organ: str, task: str, laterality: str | None = None, subpart: str | None = None
    ) -> ClassSelection:
        """The classes of ``task`` whose union is the organ as the slide names it.

        No side: every class of the organ (both kidneys, all five lobes). A side: that
        side's classes only. A sub-part (a lobe): its classes, of that side where one is
        named; where the task has no class for the sub-part (``total_mr`` has whole lungs,
        no lobes) the selection falls back to the side's whole organ and says so.
        """
        side = laterality if laterality in Laterality.sides() else None
        candidates = [c for c in self.classes(organ, task) if side is None or c["laterality"] in (side, None)]
        if subpart:
            chosen = [c for c in candidates if c["subpart"] == subpart]
            if chosen:
                return ClassSelection(organ, task, side, subpart, tuple(chosen))
        chosen = [c for c in candidates if c["subpart"] is None] or candidates
        note = (
            f"task {task} has no class for the {subpart.replace('_', ' ')} of the {organ}: "
            f"the {f'{side} ' if side else ''}{organ} is segmented whole"
            if subpart
            else None
        )
        return ClassSelection(organ, task, side, None, tuple(chosen), note)

    def counterpart(self, class_name: str, task: str) -> str | None:
        """The class of ``task`` that covers ``class_name``, a class of another task: the
        same class where both tasks have it, else the organ's class of the same side with
        no subpart (``total_mr``'s ``lung_left`` for ``total``'s left lobes)."""
        for organ in self.organs:
            entries = self.organs[organ]["totalsegmentator"]
            source = next((c for c in entries if c["class"] == class_name), None)
            if source is None:
                continue
            candidates = [c for c in entries if c["task"] == task]
            for match in (
                lambda c: c["class"] == class_name,
                lambda c: c["laterality"] == source["laterality"] and c["subpart"] is None,
            ):
                found = next((c["class"] for c in candidates if match(c)), None)
                if found:
                    return found
        return None

    # -- building the indexes ----------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None = None) -> Master:
        data = json.loads(Path(path or master_path()).read_text(encoding="utf-8"))
        master = cls(data=data)
        master._index()
        return master

    def _add_code(self, code: dict | None, target: Target) -> None:
        if code:
            scheme = "SRT" if code["scheme"] in SRT_SCHEMES else code["scheme"]
            self.codes.setdefault((scheme, code["code"]), target)

    def _add_terms(self, synonyms: dict[str, list], target: Target) -> None:
        for language, terms in synonyms.items():
            for term in terms:
                text, laterality = (term["term"], term.get("laterality")) if isinstance(term, dict) else (term, None)
                words = tuple(tokens(text))
                if words:
                    phrase_target = Target(target.organ, target.subpart, laterality or target.laterality, target.region)
                    kind = "text-abbreviation" if len(text.replace(" ", "")) <= 4 else "text-term"
                    self.phrases.add(words, Phrase(phrase_target, kind, text))

    def _index(self) -> None:
        for key, organ in self.organs.items():
            target = Target(key)
            self._add_code(organ["snomed"], target)
            for legacy in organ["legacy_codes"]:
                self._add_code(legacy, target)
            for lat in organ["lateral_concepts"]:
                lateral = Target(key, laterality=lat["laterality"])
                self._add_code(lat, lateral)
                for legacy in lat.get("legacy_codes", []):
                    self._add_code(legacy, lateral)
            for term in organ["annex_l"]:
                self.annex_l[term] = target
            for code in organ["icd10"] + organ["icdo3"]:
                self.icd.setdefault(_icd_key(code), target)
            self._add_terms(organ["synonyms"], target)
            for stem in organ["compound_stems"]:
                self.compound_stems[_plain(stem)] = key
            for sub in organ["subparts"]:
                sub_target = Target(key, sub["key"], sub.get("laterality"))
                self._add_code(sub.get("snomed"), sub_target)
                for legacy in sub["legacy_codes"]:
                    self._add_code(legacy, sub_target)
                for lat in sub["lateral_concepts"]:
                    self._add_code(lat, Target(key, sub["key"], lat["laterality"]))
                for term in sub["annex_l"]:
                    self.annex_l[term] = sub_target
                for code in sub["icd10"] + sub["icdo3"]:
                    self.icd[_icd_key(code)] = sub_target  # more specific than the organ's
                self._add_terms(sub["synonyms"], sub_target)
        for key, region in self.regions.items():
            target = Target(None, region=key)
            self._add_code(region.get("snomed"), target)
            for term in region["annex_l"]:
                self.annex_l[term] = target
                self.region_concepts[term] = region["concepts"][term]
                self._add_code(region["concepts"][term], target)
            self._add_terms(region["synonyms"], target)
        self.compound_heads = frozenset(_plain(h) for h in self.data["german_compound_heads"])
        for side, spec in self.data["laterality"].items():
            self.laterality_codes[spec["code"]["code"]] = side
            for word in spec["strong"]:
                self.laterality_strong[_plain(word)] = side
            for word in spec["weak"]:
                self.laterality_weak[_plain(word)] = side
            for value in spec["dicom"]:
                self.laterality_dicom[value] = side
        self.weak_window = int(self.data.get("weak_laterality_window", 1))


def _plain(word: str) -> str:
    return "".join(tokens(word))


def _icd_key(code: str) -> str:
    return code.upper().replace(".", "").replace(" ", "")


@lru_cache(maxsize=1)
def load_master() -> Master:
    return Master.load()
