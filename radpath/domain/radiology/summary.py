"""What selection and slice mapping know of a radiology series, from any dataset: its
summary (modality, SOP class, ImageType, orientation, spacing …) and its frames'
positions, enhanced (multi-frame) objects included. No file is read here
(:mod:`radpath.adapters.radiology.series` reads them; DICOMweb metadata gives the same datasets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from radpath.domain.records import Record

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Shared / per-frame functional group paths of enhanced (multi-frame) objects.
_PLANE_ORIENTATION = ("PlaneOrientationSequence", "ImageOrientationPatient")
PLANE_POSITION = ("PlanePositionSequence", "ImagePositionPatient")
_PIXEL_MEASURES = ("PixelMeasuresSequence", "SliceThickness")
_PIXEL_SPACING = ("PixelMeasuresSequence", "PixelSpacing")


def float_tuple(value) -> tuple[float, ...] | None:
    try:
        return tuple(float(v) for v in value) if value is not None else None
    except (TypeError, ValueError):
        return None


def functional_attribute(ds: Dataset, group: tuple[str, str], frame: int | None = None):
    """An attribute from the per-frame group of ``frame``, else from the shared groups."""
    holders = []
    if frame is not None and "PerFrameFunctionalGroupsSequence" in ds:
        holders.append(ds.PerFrameFunctionalGroupsSequence[frame])
    if "SharedFunctionalGroupsSequence" in ds:
        holders.append(ds.SharedFunctionalGroupsSequence[0])
    for holder in holders:
        sequence = holder.get(group[0])
        if sequence:
            value = sequence[0].get(group[1])
            if value is not None:
                return value
    return None


@dataclass(frozen=True)
class Frame(Record):
    """One 2-D image: a single-frame instance, or one frame of a multi-frame instance."""

    sop_instance_uid: str
    frame_number: int | None  # 1-based for multi-frame instances, None for single-frame
    position: tuple[float, float, float] | None  # ImagePositionPatient (LPS, mm)


@dataclass
class SeriesSummary(Record):
    """What selection reads of a series (from files, or from DICOMweb metadata)."""

    key: str  # SeriesInstanceUID, or a stand-in when the dataset leaves it empty
    series_instance_uid: str | None
    study_instance_uid: str | None
    modality: str
    sop_class_uid: str
    image_type: tuple[str, ...]
    description: str
    orientation: tuple[float, ...] | None  # ImageOrientationPatient
    slice_thickness: float | None
    slice_count: int
    frame_of_reference_uid: str | None = None
    series_number: int | None = None
    pixel_spacing: tuple[float, ...] | None = None  # PixelSpacing: (between rows, between columns)
    rows: int | None = None  # Rows
    columns: int | None = None  # Columns

    @property
    def normal(self) -> tuple[float, float, float] | None:
        """The image plane's unit normal: row direction × column direction (plain floats:
        the nifti stage's process does without numpy)."""
        if not self.orientation or len(self.orientation) != 6:
            return None
        (r1, r2, r3), (c1, c2, c3) = self.orientation[:3], self.orientation[3:]
        n = (r2 * c3 - r3 * c2, r3 * c1 - r1 * c3, r1 * c2 - r2 * c1)
        norm = math.sqrt(sum(v * v for v in n))
        return (n[0] / norm, n[1] / norm, n[2] / norm) if norm else None

    @classmethod
    def from_dataset(cls, ds: Dataset, key: str, slice_count: int) -> SeriesSummary:
        orientation = ds.get("ImageOrientationPatient") or functional_attribute(ds, _PLANE_ORIENTATION)
        thickness = ds.get("SliceThickness") or functional_attribute(ds, _PIXEL_MEASURES)
        number = ds.get("SeriesNumber")
        return cls(
            key=key,
            series_instance_uid=str(ds.get("SeriesInstanceUID") or "") or None,
            study_instance_uid=str(ds.get("StudyInstanceUID") or "") or None,
            modality=str(ds.get("Modality") or ""),
            sop_class_uid=str(ds.get("SOPClassUID") or getattr(ds.get("file_meta"), "MediaStorageSOPClassUID", "") or ""),
            image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or [])),
            description=str(ds.get("SeriesDescription") or ""),
            orientation=float_tuple(orientation),
            slice_thickness=float(thickness) if thickness not in (None, "") else None,
            slice_count=slice_count,
            frame_of_reference_uid=str(ds.get("FrameOfReferenceUID") or "") or None,
            series_number=int(number) if number not in (None, "") else None,
            pixel_spacing=float_tuple(ds.get("PixelSpacing") or functional_attribute(ds, _PIXEL_SPACING)),
            rows=_int_or_none(ds.get("Rows")),
            columns=_int_or_none(ds.get("Columns")),
        )


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
