"""Source instances as the encoders need them: every UID a SEG inherits present.

De-identified series can carry empty StudyInstanceUID / SeriesInstanceUID /
SOPInstanceUID / SOPClassUID in the dataset (``ct-abdomen-totalseg``: only the file meta
keeps the SOP UIDs). A SEG copies the study from its source and references each source by SOP
UID, so an empty one makes dcmqi stop ("Missing value") and a SEG no viewer can place.
Such sources are copied with the UIDs filled in: SOP UIDs from the file meta, study and
series UIDs derived from what does identify them, the same on every run, and reported
so the store stage can store the source under the same UIDs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from radpath.adapters.headers import read_header
from radpath.domain.dicomseg.geometry import SourceGrid
from radpath.domain.uids import derived_uid

#: Attributes a SEG needs from each source, and where the file meta has a copy.
_FROM_FILE_META = {"SOPInstanceUID": "MediaStorageSOPInstanceUID", "SOPClassUID": "MediaStorageSOPClassUID"}


def complete_sources(grid: SourceGrid, scratch: Path, series_key: str) -> tuple[SourceGrid, dict[str, str]]:
    """``grid`` itself when its sources carry every UID, else a grid over completed copies
    in ``scratch`` and the UIDs that were filled in (attribute → value)."""
    import pydicom

    first = read_header(grid.files[0])
    missing = [name for name in ("StudyInstanceUID", "SeriesInstanceUID", *_FROM_FILE_META) if not first.get(name)]
    if not missing:
        return grid, {}
    anchor = str(first.get("FrameOfReferenceUID") or series_key)
    study = str(first.get("StudyInstanceUID") or "") or derived_uid("study", anchor)
    series = str(first.get("SeriesInstanceUID") or "") or derived_uid("series", series_key)
    filled = {}
    if "StudyInstanceUID" in missing:
        filled["StudyInstanceUID"] = study
    if "SeriesInstanceUID" in missing:
        filled["SeriesInstanceUID"] = series
    scratch.mkdir(parents=True, exist_ok=True)
    copies = []
    for k, path in enumerate(grid.files):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        for name, meta_name in _FROM_FILE_META.items():
            if not ds.get(name):
                value = ds.file_meta.get(meta_name)
                if not value:
                    raise ValueError(f"{Path(path).name}: no {name}, in the dataset or its file meta")
                setattr(ds, name, value)
                filled[name] = f"from the file meta ({meta_name})"
        copy = scratch / f"{k:06d}.dcm"
        ds.save_as(copy, enforce_file_format=True)
        copies.append(copy)
    return replace(grid, files=tuple(copies)), filled
