"""A chosen radiology series → NIfTI with dcm2niix, and which DICOM slice each NIfTI slice is.

dcm2niix runs on the chosen series' image files only (linked into a scratch folder), so
other series, non-image objects and leftovers of the study cannot end up in the volume.
It may still write several volumes (echoes, a gantry-tilt-corrected copy, inconsistent
orientations): the one whose slices lie on the most selected instances wins, and the
manifest says which and why.

The slice map is computed in patient space, never by array index: each NIfTI slice's
plane (through its affine) is matched to the DICOM frame whose ImagePositionPatient lies
on it. dcm2niix flips the row axis of most series; the map does not care.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radpath.adapters.headers import read_header
from radpath.adapters.radiology.dcm2niix import Dcm2niixRun, NiftiConversionError, run_dcm2niix
from radpath.adapters.radiology.series import Frame, SeriesFiles

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: A NIfTI slice matches a DICOM frame when their planes lie within this distance (mm).
PLANE_TOLERANCE_MM = 0.05


@dataclass
class Volume:
    """One NIfTI written by dcm2niix, with its slices mapped to DICOM frames."""

    path: Path
    shape: tuple[int, ...]
    affine_lps: np.ndarray  # voxel (i, j, k, 1) → LPS mm
    slices: list[Frame | None]  # k → the DICOM frame on that plane, None where none lies
    grid_aligned: bool = False  # every mapped slice's voxels sit on its frame's pixel grid
    notes: list[str] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return sum(s is not None for s in self.slices)


def _on_pixel_grid(
    affine: np.ndarray, k: int, origin: tuple[float, float, float], orientation: np.ndarray, spacing: tuple[float, ...]
) -> bool:
    """Do voxels (0,0,k), (1,0,k) and (0,1,k) fall on the frame's pixel centres?"""
    rows_between, columns_between = spacing[0], spacing[1]
    for voxel in ((0, 0), (1, 0), (0, 1)):
        point = (affine @ np.array([voxel[0], voxel[1], k, 1.0]))[:3] - np.asarray(origin)
        column = point @ orientation[:3] / columns_between
        row = point @ orientation[3:] / rows_between
        if abs(column - round(column)) * columns_between > PLANE_TOLERANCE_MM:
            return False
        if abs(row - round(row)) * rows_between > PLANE_TOLERANCE_MM:
            return False
    return True


def map_slices(
    path: Path,
    frames: list[Frame],
    normal: np.ndarray,
    orientation: tuple[float, ...] | None = None,
    spacing: tuple[float, ...] | None = None,
) -> Volume:
    """Match each slice of the NIfTI at ``path`` to the DICOM frame lying on its plane,
    and check whether its voxels also sit on that frame's pixel grid (they do not when
    dcm2niix resampled the volume, e.g. to undo a gantry tilt)."""
    import nibabel as nib

    image = nib.load(str(path))
    shape = tuple(int(n) for n in image.shape)
    affine = LPS_FROM_RAS @ image.affine
    notes = []
    if len(shape) > 3 and shape[3] > 1:
        notes.append(f"{path.name} has {shape[3]} volumes; only the first is used")
    slice_count = shape[2] if len(shape) > 2 else 1
    positioned = [f for f in frames if f.position is not None]
    offsets = np.array([np.dot(normal, f.position) for f in positioned]) if positioned else np.empty(0)
    slices: list[Frame | None] = []
    for k in range(slice_count):
        centre = affine @ np.array([0.0, 0.0, k, 1.0])
        if offsets.size == 0:
            slices.append(None)
            continue
        distance = np.abs(offsets - np.dot(normal, centre[:3]))
        best = int(np.argmin(distance))
        slices.append(positioned[best] if distance[best] <= PLANE_TOLERANCE_MM else None)
    aligned = bool(orientation and spacing) and any(slices) and all(
        _on_pixel_grid(affine, k, frame.position, np.asarray(orientation), spacing)
        for k, frame in enumerate(slices)
        if frame is not None
    )
    return Volume(path, shape, affine, slices, aligned, notes)


@dataclass
class Conversion:
    volume: Volume
    others: list[str]  # why each other NIfTI dcm2niix wrote was not used
    ignored_instances: int  # non-image instances of the series left out


def convert_series(series: SeriesFiles, out_dir: Path, started: Dcm2niixRun | None = None) -> Conversion:
    """The series → one NIfTI in ``out_dir`` whose slices map onto its DICOM frames.

    ``started``: a :class:`Dcm2niixRun` over a folder that holds exactly this series'
    image files; its output is used instead of converting again.
    """
    images = series.image_instances
    if not images:
        raise NiftiConversionError(f"series {series.summary.key} has no image instances")
    normal = series.summary.normal
    if normal is None:
        raise NiftiConversionError(f"series {series.summary.key} has no ImageOrientationPatient")
    frames = series.frames
    with tempfile.TemporaryDirectory(prefix="radpath-dcm2niix-") as scratch:
        if started is not None:
            converted = started.result()
        else:
            source = Path(scratch) / "in"
            source.mkdir()
            originals = {}
            for index, instance in enumerate(images):
                link = source / f"{index:06d}.dcm"
                originals[str(link)] = str(instance.path.resolve())
                os.symlink(originals[str(link)], link)
            try:
                converted = run_dcm2niix(source, Path(scratch) / "out")
            except NiftiConversionError as err:  # name the user's files, not the scratch links
                message = str(err)
                for link_name, original in originals.items():
                    message = message.replace(link_name, original)
                raise NiftiConversionError(message.replace(str(source), "the series' folder")) from None
        if not converted:
            raise NiftiConversionError(f"dcm2niix wrote no volume for series {series.summary.key}")
        summary = series.summary
        volumes = [map_slices(path, frames, normal, summary.orientation, summary.pixel_spacing) for path in converted]
        # Voxels on the DICOM pixels beat more matched planes (a resampled copy), then coverage.
        best = max(volumes, key=lambda v: (v.grid_aligned and v.matched == len(frames), v.matched,
                                           -abs(v.shape[2] - len(frames))))
        if best.matched == 0:
            raise NiftiConversionError(
                f"no slice of dcm2niix's output lies on a DICOM slice of series {series.summary.key} "
                "(gantry tilt or inconsistent geometry)"
            )
        others = [
            f"{v.path.name}: {v.matched}/{len(frames)} slices on the selected instances (used {best.path.name}: {best.matched})"
            for v in volumes
            if v is not best
        ]
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / "series.nii"
        shutil.move(str(best.path), target)
        sidecar = best.path.parent / (best.path.name.split(".nii")[0] + ".json")
        if sidecar.exists():
            shutil.move(str(sidecar), out_dir / "series.dcm2niix.json")
        best.path = target
        if not best.grid_aligned:
            tilt = f" (GantryDetectorTilt {summary_tilt})" if (summary_tilt := _tilt(images)) else ""
            best.notes.append(
                f"resampled by dcm2niix{tilt}: the slices lie on the DICOM planes but voxels do not sit on the "
                "DICOM pixels; masks must go back to the source grid through the affines"
            )
    return Conversion(best, others, len(series.instances) - len(images))


def _tilt(images) -> str | None:
    value = read_header(images[0].path).get("GantryDetectorTilt")
    return str(value) if value not in (None, "", 0, 0.0) else None
