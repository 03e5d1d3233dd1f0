"""Radiology series as found on disk: files grouped by series, with what selection and
slice mapping need (modality, SOP class, ImageType, orientation, positions, frames).

Real series are untidy: de-identification may leave SOPInstanceUID / SeriesInstanceUID
empty in the dataset (the file meta still names the instance), files may lack a suffix,
non-image objects may share the series, and enhanced (multi-frame) objects carry their
positions per frame. Grouping and identity here handle all of that once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

#: Shared / per-frame functional group paths of enhanced (multi-frame) objects.
_PLANE_ORIENTATION = ("PlaneOrientationSequence", "ImageOrientationPatient")
_PLANE_POSITION = ("PlanePositionSequence", "ImagePositionPatient")
_PIXEL_MEASURES = ("PixelMeasuresSequence", "SliceThickness")
_PIXEL_SPACING = ("PixelMeasuresSequence", "PixelSpacing")


def _float_tuple(value) -> tuple[float, ...] | None:
    try:
        return tuple(float(v) for v in value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _functional(ds: Dataset, group: tuple[str, str], frame: int | None = None):
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
class Frame:
    """One 2-D image: a single-frame instance, or one frame of a multi-frame instance."""

    sop_instance_uid: str
    frame_number: int | None  # 1-based for multi-frame instances, None for single-frame
    position: tuple[float, float, float] | None  # ImagePositionPatient (LPS, mm)


@dataclass
class InstanceFile:
    path: Path
    sop_instance_uid: str
    frames: list[Frame]
    is_image: bool


@dataclass
class SeriesSummary:
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

    @property
    def normal(self) -> np.ndarray | None:
        if not self.orientation or len(self.orientation) != 6:
            return None
        n = np.cross(self.orientation[:3], self.orientation[3:])
        norm = np.linalg.norm(n)
        return n / norm if norm else None

    @classmethod
    def from_dataset(cls, ds: Dataset, key: str, slice_count: int) -> SeriesSummary:
        orientation = ds.get("ImageOrientationPatient") or _functional(ds, _PLANE_ORIENTATION)
        thickness = ds.get("SliceThickness") or _functional(ds, _PIXEL_MEASURES)
        number = ds.get("SeriesNumber")
        return cls(
            key=key,
            series_instance_uid=str(ds.get("SeriesInstanceUID") or "") or None,
            study_instance_uid=str(ds.get("StudyInstanceUID") or "") or None,
            modality=str(ds.get("Modality") or ""),
            sop_class_uid=str(ds.get("SOPClassUID") or getattr(ds.get("file_meta"), "MediaStorageSOPClassUID", "") or ""),
            image_type=tuple(str(v).upper() for v in (ds.get("ImageType") or [])),
            description=str(ds.get("SeriesDescription") or ""),
            orientation=_float_tuple(orientation),
            slice_thickness=float(thickness) if thickness not in (None, "") else None,
            slice_count=slice_count,
            frame_of_reference_uid=str(ds.get("FrameOfReferenceUID") or "") or None,
            series_number=int(number) if number not in (None, "") else None,
            pixel_spacing=_float_tuple(ds.get("PixelSpacing") or _functional(ds, _PIXEL_SPACING)),
        )


@dataclass
class SeriesFiles:
    """A series on disk: its summary and its instance files."""

    summary: SeriesSummary
    instances: list[InstanceFile] = field(default_factory=list)

    @property
    def image_instances(self) -> list[InstanceFile]:
        return [i for i in self.instances if i.is_image]

    @property
    def frames(self) -> list[Frame]:
        return [f for i in self.image_instances for f in i.frames]


def _sop_uid(ds: Dataset) -> str:
    uid = str(ds.get("SOPInstanceUID") or "")
    if not uid and hasattr(ds, "file_meta"):
        uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID") or "")
    return uid


def _frames(ds: Dataset, sop_uid: str) -> list[Frame]:
    count = int(ds.get("NumberOfFrames") or 1)
    if count > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        return [
            Frame(sop_uid, i + 1, _float_tuple(_functional(ds, _PLANE_POSITION, i)))  # type: ignore[arg-type]
            for i in range(count)
        ]
    return [Frame(sop_uid, None, _float_tuple(ds.get("ImagePositionPatient")))]  # type: ignore[arg-type]


def _series_key(ds: Dataset, path: Path) -> str:
    uid = str(ds.get("SeriesInstanceUID") or "")
    if uid:
        return uid
    # Empty series UID (de-identified): files of one folder with the same number and
    # description belong together, as dcm2niix would group them.
    return f"no-uid:{path.parent}:{ds.get('SeriesNumber', '')}:{ds.get('SeriesDescription', '')}"


def read_series(paths: Iterable[Path]) -> list[SeriesFiles]:
    """Group DICOM files by series; non-DICOM files are ignored."""
    # key → (first dataset, first image dataset, instance files)
    grouped: dict[str, tuple[Dataset, Dataset | None, list[InstanceFile]]] = {}
    for path in sorted(paths):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError):
            continue
        sop_uid = _sop_uid(ds)
        is_image = bool(ds.get("Rows")) and (
            "ImagePositionPatient" in ds or "PerFrameFunctionalGroupsSequence" in ds
        )
        key = _series_key(ds, path)
        first, first_image, instances = grouped.setdefault(key, (ds, None, []))
        if is_image and first_image is None:
            grouped[key] = (first, ds, instances)
        instances.append(InstanceFile(path, sop_uid, _frames(ds, sop_uid) if is_image else [], is_image))
    result = []
    for key, (first, first_image, instances) in grouped.items():
        count = sum(len(i.frames) for i in instances if i.is_image)
        summary = SeriesSummary.from_dataset(first_image if first_image is not None else first, key, count)
        result.append(SeriesFiles(summary, instances))
    return result


def read_series_in(folder: Path) -> list[SeriesFiles]:
    return read_series(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
