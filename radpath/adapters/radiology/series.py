"""Radiology series as found on disk: files grouped by series, with what selection and
slice mapping need (modality, SOP class, ImageType, orientation, positions, frames).

Real series are untidy: de-identification may leave SOPInstanceUID / SeriesInstanceUID
empty in the dataset (the file meta still names the instance), files may lack a suffix,
non-image objects may share the series, and enhanced (multi-frame) objects carry their
positions per frame. Grouping and identity here handle all of that once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from radpath.adapters.headers import read_header
from radpath.domain.dicomseg.geometry import SourceGrid
from radpath.domain.radiology.summary import (
    PLANE_POSITION,
    Frame,
    SeriesSummary,
    float_tuple,
    functional_attribute,
)

__all__ = ["Frame", "InstanceFile", "SeriesFiles", "SeriesSummary", "read_series", "read_series_in"]


@dataclass
class InstanceFile:
    path: Path
    sop_instance_uid: str
    frames: list[Frame]
    is_image: bool


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

    def source_grid(self) -> SourceGrid:
        """The series as the voxel grid a SEG's frames lie on (single-frame images only)."""
        return SourceGrid.of_slices(self.summary, [(i.frames, i.path) for i in self.image_instances])


def _sop_uid(ds: Dataset) -> str:
    uid = str(ds.get("SOPInstanceUID") or "")
    if not uid and hasattr(ds, "file_meta"):
        uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID") or "")
    return uid


def _frames(ds: Dataset, sop_uid: str) -> list[Frame]:
    count = int(ds.get("NumberOfFrames") or 1)
    if count > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        return [
            Frame(sop_uid, i + 1, float_tuple(functional_attribute(ds, PLANE_POSITION, i)))  # type: ignore[arg-type]
            for i in range(count)
        ]
    return [Frame(sop_uid, None, float_tuple(ds.get("ImagePositionPatient")))]  # type: ignore[arg-type]


#: The key of a series whose datasets leave SeriesInstanceUID empty starts so.
NO_UID = "no-uid:"


def _series_key(ds: Dataset, path: Path) -> str:
    uid = str(ds.get("SeriesInstanceUID") or "")
    if uid:
        return uid
    # Empty series UID (de-identified): files of one folder with the same number and
    # description belong together, as dcm2niix would group them.
    return f"{NO_UID}{path.parent}:{ds.get('SeriesNumber', '')}:{ds.get('SeriesDescription', '')}"


def _content_key(number: int | None, instances: list[InstanceFile]) -> str:
    """The key of a series without a UID, from its instances' SOP UIDs (the file meta
    keeps them): the same wherever the files lie, so what radpath derives from the key
    (the SEG's UIDs, the source's filled-in series UID) is the same on every run."""
    digest = hashlib.sha256("\\".join(sorted(i.sop_instance_uid for i in instances)).encode()).hexdigest()
    return f"{NO_UID}{number if number is not None else ''}:{digest[:24]}"


def read_series(paths: Iterable[Path]) -> list[SeriesFiles]:
    """Group DICOM files by series; non-DICOM files are ignored."""
    # key → (first dataset, first image dataset, instance files)
    grouped: dict[str, tuple[Dataset, Dataset | None, list[InstanceFile]]] = {}
    for path in sorted(paths):
        try:
            ds = read_header(path)
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
        if key.startswith(NO_UID) and all(i.sop_instance_uid for i in instances):
            summary.key = _content_key(summary.series_number, instances)
        result.append(SeriesFiles(summary, instances))
    return result


def read_series_in(folder: Path) -> list[SeriesFiles]:
    return read_series(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
