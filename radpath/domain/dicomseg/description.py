"""What a segment is, in DICOM's words, from ``anatomy/master.json``.

One :class:`SegmentDescription` per segment and one :class:`SegSeries` per SEG object;
both encoders (dcmqi's meta.json, highdicom's SegmentDescription) are filled from them,
so the two cannot disagree about codes, colour or algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass

from radpath.domain.anatomy.master import ClassSelection, Master

#: SegmentedPropertyCategoryCodeSequence of every organ segment (CID 7150).
ANATOMICAL_STRUCTURE = ("SCT", "123037004", "Anatomical Structure")
#: The SEG's ContentCreatorName.
CONTENT_CREATOR = "radpath^"  # PN: family name only, caret says so
#: DICOM's LO value representation holds 64 characters.
LO_MAX = 64


@dataclass(frozen=True)
class Code:
    """One coded concept: (CodingSchemeDesignator, CodeValue, CodeMeaning)."""

    scheme: str
    value: str
    meaning: str

    def __post_init__(self) -> None:
        if not (self.scheme and self.value and self.meaning):
            raise ValueError(f"incomplete code {self}")

    @classmethod
    def of(cls, concept: dict[str, str]) -> Code:
        return cls(concept["scheme"], concept["code"], concept["meaning"])

    def as_dcmqi(self) -> dict[str, str]:
        return {"CodingSchemeDesignator": self.scheme, "CodeValue": self.value, "CodeMeaning": self.meaning}


@dataclass(frozen=True)
class Algorithm:
    """SegmentAlgorithmName / AlgorithmVersion of the segmentation that made the mask."""

    name: str
    version: str

    @property
    def label(self) -> str:
        """Name and version in one LO (dcmqi's meta.json has no separate version field)."""
        return f"{self.name} {self.version}"[:LO_MAX]


@dataclass(frozen=True)
class SegmentDescription:
    """Everything the SEG says about one segment.

    ``property_type`` is SegmentedPropertyTypeCodeSequence, ``modifier`` the
    SegmentedPropertyTypeModifierCodeSequence (laterality, only when the mask is one
    side's), ``color`` the sRGB source of RecommendedDisplayCIELabValue.
    """

    label: str  # SegmentLabel
    property_type: Code
    modifier: Code | None
    color: tuple[int, int, int]
    algorithm: Algorithm
    category: Code = Code(*ANATOMICAL_STRUCTURE)

    def __post_init__(self) -> None:
        if not self.label or len(self.label) > LO_MAX:
            raise ValueError(f"SegmentLabel must be 1-{LO_MAX} characters: {self.label!r}")
        if len(self.color) != 3 or not all(0 <= c <= 255 for c in self.color):
            raise ValueError(f"colour must be three values 0-255: {self.color}")


def describe_segment(master: Master, selection: ClassSelection, algorithm: Algorithm) -> SegmentDescription:
    """The segment of a class selection: the organ's (or sub-part's) concept, and the
    laterality modifier when the mask is one side's."""
    concept = master.subpart_concept(selection.organ, selection.subpart) if selection.subpart else None
    concept = concept or master.concept_of(selection.organ)
    if concept is None:
        raise ValueError(f"organ {selection.organ} has no SNOMED concept in anatomy/master.json")
    side = selection.laterality
    modifier = Code.of(master.data["laterality"][side]["code"]) if side else None
    property_type = Code.of(concept)
    color = next((tuple(c["color"]) for c in selection.entries if c.get("color")), (128, 174, 128))
    words = f"{property_type.meaning}, {side}" if side else property_type.meaning
    return SegmentDescription(
        label=words[:LO_MAX],
        property_type=property_type,
        modifier=modifier,
        color=color,  # type: ignore[arg-type]
        algorithm=algorithm,
    )


@dataclass(frozen=True)
class SegSeries:
    """The SEG object's own identity and series attributes: UIDs radpath chooses (so a
    retried run writes the same object), SeriesNumber, SeriesDescription, BodyPartExamined
    (a PS3.16 Annex L defined term), ContentCreatorName."""

    series_instance_uid: str
    sop_instance_uid: str
    series_number: int
    series_description: str
    body_part: str | None
    content_creator: str = CONTENT_CREATOR
    instance_number: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.series_number < 2**31:
            raise ValueError(f"SeriesNumber must be a positive IS: {self.series_number}")
        if len(self.series_description) > LO_MAX:
            raise ValueError(f"SeriesDescription longer than {LO_MAX} characters: {self.series_description!r}")
        if self.body_part is not None and (len(self.body_part) > 16 or self.body_part != self.body_part.upper()):
            raise ValueError(f"BodyPartExamined must be an upper-case CS of at most 16 characters: {self.body_part!r}")


def series_description(segments: list[SegmentDescription]) -> str:
    """SeriesDescription naming the organ(s) and the algorithm: "Kidney, left (TotalSegmentator)"."""
    names = " + ".join(dict.fromkeys(s.label for s in segments))
    return f"{names} ({segments[0].algorithm.name})"[:LO_MAX]
