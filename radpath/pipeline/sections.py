"""What each stage decides about an element: one record per manifest section.

A stage returns its section; the runner (:mod:`radpath.pipeline.batch`) writes it into the
element's manifest under the stage's name and hands it to the stages after it, which
ask for what they need by class (``element.need(NiftiFacts)``). The JSON form is the
record's fields (:mod:`radpath.domain.records`); :data:`SCHEMA_VERSION` in
:mod:`radpath.pipeline.manifest` changes when a field changes meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from radpath.domain.anatomy.master import ClassSelection, in_words
from radpath.domain.dicomseg.description import Algorithm
from radpath.domain.link.page import ExtentSlice
from radpath.domain.quantify.quantities import SegmentQuantities
from radpath.domain.records import Record
from radpath.domain.vocabulary import Modality, SegEncoder, Speed, StageName

_SECTIONS: dict[str, type[Section]] = {}


class Section(Record):
    """A stage's decisions about one element; ``stage`` names its manifest section."""

    stage: ClassVar[str]
    folder: str | None  # the stage's output folder in the element, where it wrote files

    def __init_subclass__(cls, stage: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if stage is not None:
            cls.stage = str(stage)
            _SECTIONS[cls.stage] = cls


def section_class(stage: str) -> type[Section] | None:
    """The record of ``stage``'s section, if one is defined."""
    return _SECTIONS.get(stage)


def section_classes() -> dict[str, type[Section]]:
    return dict(_SECTIONS)


# -- wsi-dicomize --------------------------------------------------------------------


@dataclass
class ConvertedSlideRecord(Record):
    """One slide file as it went into the element's DICOM."""

    file: str
    folder: str
    format: str
    instances: int
    series_instance_uid: str | None
    study_instance_uid: str | None
    passthrough: bool
    link_source: str | None
    accession_number: str | None
    unlinked: bool
    anatomy: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)


@dataclass
class SlideFailure(Record):
    """A slide file rejected on its own (the element went on with the others)."""

    file: str
    reason: str


@dataclass
class WsiDicomizeFacts(Section, stage=StageName.WSI_DICOMIZE):
    folder: str | None
    slides: list[ConvertedSlideRecord] = field(default_factory=list)
    unlinked: list[str] = field(default_factory=list)  # slide files with no patient link
    failed: list[SlideFailure] = field(default_factory=list)

    @property
    def series_instance_uids(self) -> set[str]:
        return {s.series_instance_uid for s in self.slides if s.series_instance_uid}


# -- pair ----------------------------------------------------------------------------


@dataclass
class PairFacts(Section, stage=StageName.PAIR):
    """The series to segment and the slide it pairs with."""

    folder: str | None
    series_key: str  # SeriesInstanceUID, or radpath's stand-in where it is empty
    modality: Modality
    radiology_study_instance_uid: str | None
    slide_series_instance_uid: str | None
    selection: dict[str, Any]  # radpath.domain.radiology.selection.Selection.to_json()
    radiology_dir: str | None = None  # where the CT/MR fetched from the PACS lies
    study_reason: str | None = None  # why that study of the patient's
    studies_considered: int | None = None
    slides_found: int | None = None
    split_from: str | None = None  # the element this one was split from (one per slide)


# -- bodypart ------------------------------------------------------------------------


@dataclass
class BodyPartFacts(Section, stage=StageName.BODYPART):
    """The organ and side the slide shows (anatomy/master.json), and the workflow form's say."""

    folder: str | None
    resolved: dict[str, Any]  # radpath.domain.anatomy.BodyPart.to_json(): what the slide said
    slide_series_instance_uid: str
    organ: str | None
    laterality: str | None
    subpart: str | None
    snomed: dict[str, Any] | None
    override: str | None = None  # "ORGAN" when the form chose the organ
    laterality_override: str | None = None
    modality: Modality | None = None
    task: str | None = None  # TotalSegmentator task for that modality

    @property
    def what(self) -> str:
        """The organ and side in words ("liver", "left kidney"), empty when none."""
        return in_words(self.organ, self.laterality, self.subpart)


# -- nifti ---------------------------------------------------------------------------


@dataclass
class SliceSource(Record):
    """The DICOM frame one NIfTI slice came from."""

    sop_instance_uid: str
    frame: int | None


@dataclass
class NiftiFacts(Section, stage=StageName.NIFTI):
    """The NIfTI volume of the chosen series, slice by slice mapped to its instances."""

    folder: str | None
    path: str
    shape: list[int]
    grid_aligned: bool
    affine_lps: list[list[float]]  # voxel → patient (LPS, mm)
    slices: list[SliceSource | None]
    series_key: str
    series_instance_uid: str | None
    study_instance_uid: str | None
    frame_of_reference_uid: str | None
    modality: Modality
    series_description: str
    orientation: list[float]
    notes: list[str]
    ignored_non_image_instances: int
    selection: dict[str, Any] | None = None  # when this stage chose the series itself

    @property
    def series_label(self) -> str:
        return self.series_description or self.series_key


# -- segment -------------------------------------------------------------------------


@dataclass
class SegmentFacts(Section, stage=StageName.SEGMENT):
    """TotalSegmentator's run: task, resolution, device, weights, voxels per class."""

    folder: str | None
    task: str
    speed: Speed
    device: str
    models: list[int]
    totalsegmentator: str  # its version
    weights: str
    standin_weights: bool
    classes: dict[str, int]  # class → voxels
    notes: list[str] = field(default_factory=list)

    @property
    def algorithm(self) -> Algorithm:
        """TotalSegmentator and its version, as the SEG names it; stand-in weights say so."""
        name = "TotalSegmentator + radpath stand-in weights" if self.standin_weights else "TotalSegmentator"
        return Algorithm(name, self.totalsegmentator or "unknown")


# -- merge ---------------------------------------------------------------------------


@dataclass
class MaskPart(Record):
    """One merged mask: an organ (or its side, or lobe) as the slide names it, and the
    classes it was made of (the segment's description is written from the same)."""

    selection: ClassSelection
    classes: dict[str, int]  # TotalSegmentator class → voxels, the classes that went in
    voxels: int
    path: str | None = None  # the mask file, when it has voxels

    @property
    def organ(self) -> str:
        return self.selection.organ

    @property
    def laterality(self) -> str | None:
        return self.selection.laterality

    @property
    def what(self) -> str:
        return self.selection.what


@dataclass
class MergeFacts(Section, stage=StageName.MERGE):
    folder: str | None
    task: str
    parts: list[MaskPart]  # only parts with voxels
    notes: list[str] = field(default_factory=list)

    @property
    def what(self) -> str:
        return " and ".join(p.what for p in self.parts)


# -- seg-encode ----------------------------------------------------------------------


@dataclass
class EncodedSegment(Record):
    label: str
    type: str  # SegmentedPropertyType code value
    modifier: str | None  # AnatomicRegionModifier (side) code value
    voxels: int


@dataclass
class SegEncodeFacts(Section, stage=StageName.SEG_ENCODE):
    """The SEG written: its file, UIDs, description and frames."""

    folder: str | None
    path: str
    encoder: SegEncoder
    series_instance_uid: str
    sop_instance_uid: str
    series_number: int
    series_description: str
    body_part_examined: str | None
    segments: list[EncodedSegment]
    frames: int
    extent: list[ExtentSlice]  # the source slices the SEG has frames on, in slice order
    source_slices: int  # the source series' slice count
    bytes: int
    source_uids: dict[str, str]  # attribute → value filled in on copies of the sources
    sources_folder: str | None  # those copies, which the SEG references
    notes: list[str] = field(default_factory=list)


# -- quantify ------------------------------------------------------------------------


@dataclass
class QuantifyFacts(Section, stage=StageName.QUANTIFY):
    """The organ's volume and radiomics features, and the measurement report (SR) holding them.

    ``path`` is None when nothing could be measured; ``reason`` then says why (the pair
    goes on to be stored and linked without a report)."""

    folder: str | None
    path: str | None  # the SR file
    series_instance_uid: str | None
    sop_instance_uid: str | None
    modality: Modality
    pyradiomics: str  # its version
    parameters: dict[str, Any]  # pyradiomics' settings as applied
    segments: list[SegmentQuantities]
    reason: str | None = None
    notes: list[str] = field(default_factory=list)


# -- store ---------------------------------------------------------------------------


@dataclass
class StoreFacts(Section, stage=StageName.STORE):
    folder: str | None
    target: str  # the target in words
    checked: bool  # whether the target could say what it held
    counts: dict[str, dict[str, int]]  # kind → {"sent": n, "present": n}
    series: list[list[str]]  # [kind, study UID, series UID]


# -- link ----------------------------------------------------------------------------


@dataclass
class LinkFacts(Section, stage=StageName.LINK):
    folder: str | None
    kos: str
    kos_sent: bool
    target: str
    ohif: str
    slim: str
    notes: list[str] = field(default_factory=list)
