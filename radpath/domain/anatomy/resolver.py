"""Which organ (and side) a slide or series shows, from its DICOM codes and free text.

Sources, most trusted first; codes always beat text:

1. ``SpecimenDescriptionSequence › PrimaryAnatomicStructureSequence`` (with its modifier
   sequence), and a top-level ``PrimaryAnatomicStructureSequence``;
2. ``BodyPartExamined`` as a PS3.16 Annex L defined term;
3. ``AnatomicRegionSequence`` (with ``AnatomicRegionModifierSequence``);
4. ``AdmittingDiagnosesCodeSequence`` (ICD-10 / ICD-O-3 topography, SNOMED CT);
5. free text: SpecimenShortDescription, SpecimenDetailedDescription, SeriesDescription,
   StudyDescription, ProtocolName, AdmittingDiagnosesDescription, ContainerIdentifier
   (and BodyPartExamined when it is not a defined term).

The first source that names an organ decides it; a later source naming another organ is
reported as a conflict, never silently used. A region (ABDOMEN, "CT THORAX") is not an
organ: the result then carries the region and organ ``None``. Laterality is reported for
paired organs only: from the deciding source, else from any other source naming the same
organ, else from the Laterality / ImageLaterality attributes. Fields such as
InstitutionName or ReferringPhysicianName are never read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from radpath.domain.anatomy.master import ICD_SCHEMES, SCT_SCHEMES, SRT_SCHEMES, Master, Target, load_master
from radpath.domain.anatomy.text import combine_sides, find_mentions, sides_near, split_compound, tokens

if TYPE_CHECKING:  # pydicom is imported where a dataset is read, not by every reader of the master
    from pydicom.dataset import Dataset

TEXT_FIELDS = (
    "SeriesDescription",
    "StudyDescription",
    "ProtocolName",
    "AdmittingDiagnosesDescription",
    "ContainerIdentifier",
)
SPECIMEN_TEXT_FIELDS = ("SpecimenShortDescription", "SpecimenDetailedDescription")

CONFIDENCE = {
    "coded-structure": 1.0,
    "annex-l-term": 0.95,
    "coded-region": 0.9,
    "icd-topography": 0.85,
    "coded-diagnosis": 0.85,
    "text-term": 0.75,
    "text-compound": 0.7,
    "text-abbreviation": 0.6,
}


@dataclass(frozen=True)
class Finding:
    """One source's statement: what it names, where it was read, by which rule."""

    target: Target
    source: str
    rule: str
    matched: str
    laterality: str | None = None


@dataclass
class BodyPart:
    """The resolver's answer for one dataset."""

    organ: str | None
    snomed: dict[str, str] | None
    laterality: str | None
    subpart: str | None = None
    subpart_snomed: dict[str, str] | None = None
    region: str | None = None
    source: str | None = None
    rule: str | None = None
    matched: str | None = None
    confidence: float = 0.0
    laterality_source: str | None = None
    reason: str | None = None
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_body_part(dataset: Dataset, master: Master | None = None) -> BodyPart:
    """Resolve organ, side, sub-part and region of a slide or radiology dataset."""
    master = master or load_master()
    findings = list(_findings(dataset, master))
    organ_findings = [f for f in findings if f.target.organ]
    if not organ_findings:
        return _no_organ(findings, master)
    winner = organ_findings[0]
    organ = winner.target.organ
    entry = master.organ(organ)
    same = [f for f in organ_findings if f.target.organ == organ]
    conflicts = [
        {"source": f.source, "organ": f.target.organ, "rule": f.rule, "matched": f.matched}
        for f in organ_findings
        if f.target.organ != organ
    ]
    subpart = next((f.target.subpart for f in same if f.target.subpart), None)
    laterality, laterality_source = None, None
    if entry["paired"]:
        laterality, laterality_source = _laterality(same, dataset, master)
    confidence = CONFIDENCE.get(winner.rule, 0.5) - (0.1 if conflicts else 0.0)
    return BodyPart(
        organ=organ,
        snomed=master.concept(winner.target),
        laterality=laterality,
        subpart=subpart,
        subpart_snomed=master.subpart_concept(organ, subpart),
        region=entry.get("region"),
        source=winner.source,
        rule=winner.rule,
        matched=winner.matched,
        confidence=round(confidence, 2),
        laterality_source=laterality_source,
        conflicts=conflicts,
    )


def _laterality(same: list[Finding], dataset: Dataset, master: Master) -> tuple[str | None, str | None]:
    # The most trusted rule that names a side decides; within it, sides combine
    # (a left and a right Breast item in one sequence: bilateral).
    for finding in same:
        side = finding.laterality or finding.target.laterality
        if side:
            peers = {f.laterality or f.target.laterality for f in same if f.rule == finding.rule} - {None}
            return combine_sides(peers), finding.source
    for keyword in ("Laterality", "ImageLaterality", "FrameLaterality"):
        value = str(dataset.get(keyword, "") or "").strip().upper()
        if value in master.laterality_dicom:
            return master.laterality_dicom[value], keyword
    return None, None


def _no_organ(findings: list[Finding], master: Master) -> BodyPart:
    region_finding = next((f for f in findings if f.target.region), None)
    if region_finding is not None:
        region = region_finding.target.region
        return BodyPart(
            organ=None,
            snomed=_region_concept(region_finding, master),
            laterality=None,
            region=region,
            source=region_finding.source,
            rule=region_finding.rule,
            matched=region_finding.matched,
            confidence=0.5,
            reason=f"names the region {region} ({region_finding.source}) but no organ",
        )
    return BodyPart(organ=None, snomed=None, laterality=None, reason="no organ named in the codes or text read")


def _region_concept(finding: Finding, master: Master) -> dict[str, str] | None:
    """The concept of what matched: the Annex L term's or the code's own, else the region's."""
    if finding.rule == "annex-l-term":
        term = "".join(finding.matched.upper().split()).replace("_", "")
        return master.region_concepts.get(term) or master.concept(finding.target)
    if finding.rule.startswith("coded"):
        code, scheme, meaning = (finding.matched.split("^") + ["", ""])[:3]
        return {"scheme": scheme, "code": code, "meaning": meaning}
    return master.concept(finding.target)


# -- the sources, in order of trust -----------------------------------------------------


def _findings(ds: Dataset, master: Master) -> Iterator[Finding]:
    specimens = list(_sequence(ds, "SpecimenDescriptionSequence"))
    for i, specimen in enumerate(specimens):
        yield from _coded_items(
            specimen,
            "PrimaryAnatomicStructureSequence",
            "PrimaryAnatomicStructureModifierSequence",
            f"SpecimenDescriptionSequence[{i}].",
            "coded-structure",
            master,
        )
    yield from _coded_items(
        ds, "PrimaryAnatomicStructureSequence", "PrimaryAnatomicStructureModifierSequence", "", "coded-structure", master
    )
    body_part = str(ds.get("BodyPartExamined", "") or "").strip()
    term = "".join(body_part.upper().split()).replace("_", "")
    body_part_is_term = term in master.annex_l
    if body_part_is_term:
        yield Finding(master.annex_l[term], "BodyPartExamined", "annex-l-term", body_part)
    yield from _coded_items(ds, "AnatomicRegionSequence", "AnatomicRegionModifierSequence", "", "coded-region", master)
    for i, item in enumerate(_sequence(ds, "AdmittingDiagnosesCodeSequence")):
        finding = _diagnosis(item, f"AdmittingDiagnosesCodeSequence[{i}]", master)
        if finding:
            yield finding
    texts: list[tuple[str, str]] = []
    if body_part and not body_part_is_term:
        texts.append(("BodyPartExamined", body_part))
    for i, specimen in enumerate(specimens):
        for keyword in SPECIMEN_TEXT_FIELDS:
            texts.append((f"SpecimenDescriptionSequence[{i}].{keyword}", _text(specimen.get(keyword))))
    for keyword in TEXT_FIELDS:
        texts.append((keyword, _text(ds.get(keyword))))
    for source, text in texts:
        if text:
            yield from _text_findings(text, source, master)


def _sequence(ds: Dataset, keyword: str) -> list[Dataset]:
    from pydicom.dataset import Dataset

    try:
        value = ds.get(keyword)
    except Exception:  # a malformed element must not stop the resolution
        return []
    if value is None:
        return []
    try:
        return [item for item in value if isinstance(item, Dataset)]
    except TypeError:
        return []


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return " ".join(str(v) for v in value)
    return str(value)


def _code_of(item: Dataset) -> tuple[str, str, str]:
    scheme = str(item.get("CodingSchemeDesignator", "") or "").strip().upper()
    code = str(item.get("CodeValue", "") or item.get("LongCodeValue", "") or "").strip()
    meaning = str(item.get("CodeMeaning", "") or "").strip()
    return scheme, code, meaning


def _lookup(master: Master, scheme: str, code: str) -> Target | None:
    if scheme in SCT_SCHEMES:
        return master.codes.get(("SCT", code))
    if scheme in SRT_SCHEMES:
        return master.codes.get(("SRT", code))
    return None


def _coded_items(
    ds: Dataset, keyword: str, modifier_keyword: str, prefix: str, rule: str, master: Master
) -> Iterator[Finding]:
    for j, item in enumerate(_sequence(ds, keyword)):
        scheme, code, meaning = _code_of(item)
        target = _lookup(master, scheme, code)
        if target is None:
            continue
        sides = set()
        for modifier in _sequence(item, modifier_keyword):
            m_scheme, m_code, _ = _code_of(modifier)
            if m_scheme in SCT_SCHEMES and m_code in master.laterality_codes:
                sides.add(master.laterality_codes[m_code])
        yield Finding(target, f"{prefix}{keyword}[{j}]", rule, f"{code}^{scheme}^{meaning}", combine_sides(sides))


def _diagnosis(item: Dataset, source: str, master: Master) -> Finding | None:
    scheme, code, meaning = _code_of(item)
    if scheme in ICD_SCHEMES:
        key = code.upper().replace(".", "").replace(" ", "")
        # Longest known prefix: C34.1 (upper lobe) before C34 (lung).
        for length in range(len(key), 2, -1):
            target = master.icd.get(key[:length])
            if target is not None:
                return Finding(target, source, "icd-topography", f"{code}^{scheme}^{meaning}")
        return None
    target = _lookup(master, scheme, code)
    if target is not None:
        return Finding(target, source, "coded-diagnosis", f"{code}^{scheme}^{meaning}")
    return None


def _text_findings(text: str, source: str, master: Master) -> Iterator[Finding]:
    words = tokens(text)

    def compound(word: str) -> Target | None:
        organ = split_compound(word, master.compound_stems, master.compound_heads)
        return Target(organ) if organ else None

    mentions = find_mentions(words, master.phrases, compound)
    organ_mentions = [m for m in mentions if m.target.organ]
    for mention in mentions:
        if mention.target.organ:
            index = organ_mentions.index(mention)
            lo = organ_mentions[index - 1].end if index > 0 else 0
            hi = organ_mentions[index + 1].start if index + 1 < len(organ_mentions) else len(words)
            sides = sides_near(
                words, mention, (lo, hi), master.laterality_strong, master.laterality_weak, master.weak_window
            )
            side = mention.target.laterality or combine_sides(sides)
        else:
            side = None
        yield Finding(mention.target, source, mention.kind, mention.matched, side)
