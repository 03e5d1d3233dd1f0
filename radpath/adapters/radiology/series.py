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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from radpath.adapters.radiology.headerindex import HeaderIndex, HeaderRecord, read_record
from radpath.domain.radiology.summary import Frame, SeriesSummary

if TYPE_CHECKING:
    from radpath.domain.dicomseg.geometry import SourceGrid

__all__ = ["Frame", "HeaderRecord", "InstanceFile", "SeriesFiles", "SeriesSummary", "read_series", "read_series_in"]


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
        from radpath.domain.dicomseg.geometry import SourceGrid  # numpy: not for grouping alone

        return SourceGrid.of_slices(self.summary, [(i.frames, i.path) for i in self.image_instances])


#: The key of a series whose datasets leave SeriesInstanceUID empty starts so.
NO_UID = "no-uid:"


def _series_key(summary: SeriesSummary, path: Path) -> str:
    if summary.series_instance_uid:
        return summary.series_instance_uid
    # Empty series UID (de-identified): files of one folder with the same number and
    # description belong together, as dcm2niix would group them.
    number = summary.series_number if summary.series_number is not None else ""
    return f"{NO_UID}{path.parent}:{number}:{summary.description}"


def _content_key(number: int | None, instances: list[InstanceFile]) -> str:
    """The key of a series without a UID, from its instances' SOP UIDs (the file meta
    keeps them): the same wherever the files lie, so what radpath derives from the key
    (the SEG's UIDs, the source's filled-in series UID) is the same on every run."""
    digest = hashlib.sha256("\\".join(sorted(i.sop_instance_uid for i in instances)).encode()).hexdigest()
    return f"{NO_UID}{number if number is not None else ''}:{digest[:24]}"


def read_series(paths: Iterable[Path], index: HeaderIndex | None = None) -> list[SeriesFiles]:
    """Group DICOM files by series; non-DICOM files are ignored. With ``index``, headers
    it holds are not read again (and those read are added to it)."""
    # key → (first record, first image record, instance files)
    grouped: dict[str, tuple[HeaderRecord, HeaderRecord | None, list[InstanceFile]]] = {}
    for path in sorted(paths):
        record = index.record(path) if index is not None else read_record(path)
        if record is None:
            continue
        key = _series_key(record.summary, path)
        first, first_image, instances = grouped.setdefault(key, (record, None, []))
        if record.is_image and first_image is None:
            grouped[key] = (first, record, instances)
        instances.append(InstanceFile(path, record.sop_instance_uid, list(record.frames), record.is_image))
    result = []
    for key, (first, first_image, instances) in grouped.items():
        count = sum(len(i.frames) for i in instances if i.is_image)
        summary = replace((first_image or first).summary, key=key, slice_count=count)
        if key.startswith(NO_UID) and all(i.sop_instance_uid for i in instances):
            summary.key = _content_key(summary.series_number, instances)
        result.append(SeriesFiles(summary, instances))
    if index is not None:
        index.save()
    return result


def read_series_in(folder: Path, index: HeaderIndex | None = None) -> list[SeriesFiles]:
    """The series below ``folder``. Hidden files and folders (a name starting with a dot)
    are not looked at: they are radpath's own (the header index, scratch folders, a slide
    being written), and a scratch folder's links would count a series' files twice."""
    folder = Path(folder)
    return read_series((p for p in folder.rglob("*") if p.is_file()
                        and not any(part.startswith(".") for part in p.relative_to(folder).parts)), index)
