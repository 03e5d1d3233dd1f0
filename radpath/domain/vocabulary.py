"""radpath's defined terms, each spelled once.

Settings parse into these, the manifest sections hold them, the CLI offers them as
choices and the workflow form's enums are checked against them
(``python -m radpath.pipeline.stagetable --check``). They are ``str`` enums: a member equals its
value, so JSON and environment variables carry the plain word.
"""

from __future__ import annotations

from enum import Enum


class Term(str, Enum):
    """A defined term; ``str(term)`` is its value."""

    def __str__(self) -> str:
        return self.value

    # Enum hashes a member by its name: hash by the value, so that a term and its plain
    # word are one key in a dict or set ("fast" and Speed.FAST alike).
    def __hash__(self) -> int:
        return str.__hash__(self)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)


class Modality(Term):
    """Modality (0008,0060) of the series radpath handles."""

    CT = "CT"
    MR = "MR"
    SM = "SM"  # slide microscopy

    @classmethod
    def radiology(cls) -> tuple[Modality, ...]:
        """The modalities TotalSegmentator segments."""
        return (cls.CT, cls.MR)


class Laterality(Term):
    """The side a slide names (the SEG's anatomic region modifier, left/right)."""

    LEFT = "left"
    RIGHT = "right"
    BILATERAL = "bilateral"

    @classmethod
    def sides(cls) -> tuple[Laterality, ...]:
        return (cls.LEFT, cls.RIGHT)


class Speed(Term):
    """TotalSegmentator's resolution: full, fast (3 mm) or fastest (6 mm)."""

    FAST = "fast"
    FASTEST = "fastest"
    FULL = "full"


class SegEncoder(Term):
    """The DICOM SEG writer."""

    DCMQI = "dcmqi"
    HIGHDICOM = "highdicom"


class StoreTarget(Term):
    """Where results go: STOW-RS, DIMSE C-STORE (Kaapana's CTP) or a folder."""

    DICOMWEB = "dicomweb"
    DIMSE = "dimse"
    FOLDER = "folder"


class Transcoding(Term):
    """Encoding of slide tiles that cannot be copied as they are."""

    JPEG = "jpeg"
    JPEG2000 = "jpeg2000"
    JPEG2000_LOSSLESS = "jpeg2000-lossless"
    HTJ2K = "htj2k"


class StageName(Term):
    """The pipeline's stages, in pipeline order (``../DESIGN.md``)."""

    WSI_DICOMIZE = "wsi-dicomize"
    PAIR = "pair"
    BODYPART = "bodypart"
    NIFTI = "nifti"
    SEGMENT = "segment"
    MERGE = "merge"
    SEG_ENCODE = "seg-encode"
    QUANTIFY = "quantify"
    STORE = "store"
    LINK = "link"
