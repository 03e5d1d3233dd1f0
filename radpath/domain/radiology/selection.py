"""Which series of a study to segment, by the rules in ``series_rules.json``.

Three steps, each recorded with a reason a person understands:

1. *reject*: not CT/MR, not an image (SEG, RTSTRUCT, SR, PR, secondary capture …),
   localizers and scouts, too few slices;
2. *avoid*: derived series (reformats, projections, maps) and, for MR, diffusion /
   perfusion / parameter maps: kept only as a last resort, and the choice says so;
3. *prefer*, in order: axial, T1/T2 anatomical (MR), most slices, thinnest slices.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from radpath.domain.radiology.summary import SeriesSummary
from radpath.domain.vocabulary import Modality

RULES_PATH = Path(__file__).with_name("series_rules.json")


@lru_cache(maxsize=1)
def load_rules(path: Path = RULES_PATH) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _image_type(series: SeriesSummary) -> str:
    return "\\".join(series.image_type)  # as DICOM writes multiple values


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _phrase_in(phrase: str, text: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", text.lower()) is not None


@dataclass
class Selection:
    """The chosen series and why every other one was not chosen."""

    chosen: SeriesSummary | None
    reasons: dict[str, str] = field(default_factory=dict)  # series key → why not chosen
    note: str | None = None  # caveat about the chosen series (e.g. "derived: nothing else")

    def to_json(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.key if self.chosen else None,
            "chosen_description": self.chosen.description if self.chosen else None,
            "note": self.note,
            "rejected": self.reasons,
        }


def _by_image_type(series: SeriesSummary, table: dict[str, str]) -> str | None:
    for value, why in table.items():
        if value in series.image_type:
            return f"{why} (ImageType {_image_type(series)})"
    return None


def _by_description(series: SeriesSummary, table: dict[str, str]) -> str | None:
    for phrase, why in table.items():
        if _phrase_in(phrase, series.description):
            return f"{why} (SeriesDescription {series.description!r})"
    return None


def _rejection(series: SeriesSummary, rules: dict[str, Any]) -> str | None:
    reject = rules["reject"]
    if series.modality not in rules["modalities"]:
        return f"modality {series.modality or 'unknown'} is not {' or '.join(rules['modalities'])}"
    for prefix, why in reject["sop_class_prefixes"].items():
        if series.sop_class_uid == prefix or series.sop_class_uid.startswith(prefix + "."):
            return f"{why} (SOP class {series.sop_class_uid})"
    found = _by_image_type(series, reject["image_type_values"]) or _by_description(series, reject["description_words"])
    if found:
        return found
    if series.slice_count < reject["min_slices"]:
        return f"only {series.slice_count} slice(s), fewer than {reject['min_slices']}"
    return None


def _avoidance(series: SeriesSummary, rules: dict[str, Any]) -> str | None:
    avoid = rules["avoid"]
    found = _by_image_type(series, avoid["image_type_values"])
    if found or series.modality != Modality.MR:
        return found
    return _by_image_type(series, avoid["mr_image_type_values"]) or _by_description(series, avoid["mr_description_words"])


def _score(series: SeriesSummary, rules: dict[str, Any]) -> tuple:
    """Higher is better, one component per 'prefer' rule in order."""
    score = []
    for preference in rules["prefer"]:
        rule = preference["rule"]
        if rule == "axial":
            normal = series.normal
            score.append(int(normal is not None and abs(normal[2]) >= preference["min_abs_normal_z"]))
        elif rule == "mr_anatomical_words":
            score.append(int(series.modality == Modality.MR and bool(_words(series.description) & set(preference["words"]))))
        elif rule == "most_slices":
            score.append(series.slice_count)
        elif rule == "thinnest_slices":
            score.append(-(series.slice_thickness or 1e9))
        else:
            raise ValueError(f"series_rules.json: unknown preference rule {rule!r}")
    return tuple(score)


def _lost_on(best: tuple, other: tuple, rules: dict[str, Any]) -> str:
    for preference, a, b in zip(rules["prefer"], best, other):
        if a != b:
            return preference["why"]
    return "equal by every rule; the first found was taken"


def select_series(candidates: list[SeriesSummary], rules: dict[str, Any] | None = None) -> Selection:
    """The series to segment among ``candidates``, with a reason for each one not chosen."""
    rules = rules or load_rules()
    reasons: dict[str, str] = {}
    usable, fallback = [], []
    for series in candidates:
        rejected = _rejection(series, rules)
        if rejected:
            reasons[series.key] = f"rejected: {rejected}"
            continue
        avoided = _avoidance(series, rules)
        (fallback if avoided else usable).append((series, avoided))
    pool, note = usable, None
    if not pool and fallback:
        pool = fallback
    if not pool:
        return Selection(None, reasons)
    ranked = sorted(pool, key=lambda item: _score(item[0], rules), reverse=True)
    chosen, chosen_avoided = ranked[0]
    if chosen_avoided:
        note = f"chosen although {chosen_avoided}: no better series in the study"
    best = _score(chosen, rules)
    for series, avoided in ranked[1:]:
        reasons[series.key] = f"ranked lower: {_lost_on(best, _score(series, rules), rules)}"
    if pool is usable:
        for series, avoided in fallback:
            reasons[series.key] = f"avoided: {avoided}"
    return Selection(chosen, reasons, note)
