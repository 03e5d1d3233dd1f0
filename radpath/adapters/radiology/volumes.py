"""A chosen radiology series → NIfTI with dcm2niix, and which DICOM slice each NIfTI slice is.

dcm2niix runs on the chosen series' image files only (linked into a scratch folder beside
the output, so that the volume moves into it by a rename), so
other series, non-image objects and leftovers of the study cannot end up in the volume.
It may still write several volumes (echoes, a gantry-tilt-corrected copy, inconsistent
orientations): the one whose slices lie on the most selected instances wins, and the
manifest says which and why.

The slice map is computed in patient space, never by array index: each NIfTI slice's
plane (through its affine) is matched to the DICOM frame whose ImagePositionPatient lies
on it. dcm2niix flips the row axis of most series; the map does not care.
"""

from __future__ import annotations

import bisect
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from radpath.adapters.headers import read_header
from radpath.adapters.radiology.dcm2niix import (
    Dcm2niixRun,
    NiftiConversionError,
    run_dcm2niix,
    scratch_folder,
)
from radpath.adapters.radiology.niftiheader import Affine, read_nifti_geometry
from radpath.adapters.radiology.series import Frame, SeriesFiles

#: A NIfTI slice matches a DICOM frame when their planes lie within this distance (mm).
PLANE_TOLERANCE_MM = 0.05

# Plain floats, not numpy: a few hundred points, and the nifti stage's process does
# without numpy's import (it slows the dcm2niix run beside it).
Vector = tuple[float, float, float]


def _dot(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _voxel_centre(affine: Affine, i: float, j: float, k: float) -> Vector:
    x, y, z = (row[0] * i + row[1] * j + row[2] * k + row[3] for row in affine[:3])
    return x, y, z


def _lps_from_ras(affine: Affine) -> Affine:
    """NIfTI's world space (RAS) → DICOM patient space (LPS): x and y change sign."""
    (x, y, z, last) = affine
    return tuple(0.0 - v for v in x), tuple(0.0 - v for v in y), z, last  # type: ignore[return-value]  # 0.0, not -0.0


@dataclass
class Volume:
    """One NIfTI written by dcm2niix, with its slices mapped to DICOM frames."""

    path: Path
    shape: tuple[int, ...]
    affine_lps: Affine  # voxel (i, j, k, 1) → LPS mm
    slices: list[Frame | None]  # k → the DICOM frame on that plane, None where none lies
    grid_aligned: bool = False  # every mapped slice's voxels sit on its frame's pixel grid
    notes: list[str] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return sum(s is not None for s in self.slices)


def _on_pixel_grid(
    affine: Affine, k: int, origin: Vector, orientation: tuple[float, ...], spacing: tuple[float, ...]
) -> bool:
    """Do voxels (0,0,k), (1,0,k) and (0,1,k) fall on the frame's pixel centres?"""
    rows_between, columns_between = spacing[0], spacing[1]
    for i, j in ((0, 0), (1, 0), (0, 1)):
        centre = _voxel_centre(affine, i, j, k)
        point = (centre[0] - origin[0], centre[1] - origin[1], centre[2] - origin[2])
        column = _dot(point, orientation[:3]) / columns_between
        row = _dot(point, orientation[3:]) / rows_between
        if abs(column - round(column)) * columns_between > PLANE_TOLERANCE_MM:
            return False
        if abs(row - round(row)) * rows_between > PLANE_TOLERANCE_MM:
            return False
    return True


def _nearest(offsets: list[tuple[float, int]], target: float) -> int | None:
    """Index of the frame whose plane offset (``offsets``: sorted (offset, index) pairs)
    lies nearest ``target`` and within the tolerance; the lower index on a tie."""
    at = bisect.bisect_left(offsets, (target, -1))
    near = [offsets[n] for n in (at - 1, at) if 0 <= n < len(offsets)]
    if not near:
        return None
    offset, index = min(near, key=lambda pair: (abs(pair[0] - target), pair[1]))
    return index if abs(offset - target) <= PLANE_TOLERANCE_MM else None


def map_slices(
    path: Path,
    frames: list[Frame],
    normal: Vector,
    orientation: tuple[float, ...] | None = None,
    spacing: tuple[float, ...] | None = None,
) -> Volume:
    """Match each slice of the NIfTI at ``path`` to the DICOM frame lying on its plane,
    and check whether its voxels also sit on that frame's pixel grid (they do not when
    dcm2niix resampled the volume, e.g. to undo a gantry tilt)."""
    geometry = read_nifti_geometry(path)
    shape = geometry.shape
    affine = _lps_from_ras(geometry.affine_ras)
    notes = []
    if len(shape) > 3 and shape[3] > 1:
        notes.append(f"{path.name} has {shape[3]} volumes; only the first is used")
    slice_count = shape[2] if len(shape) > 2 else 1
    positioned = [f for f in frames if f.position is not None]
    offsets = sorted((_dot(normal, f.position), n) for n, f in enumerate(positioned))  # type: ignore[arg-type]
    slices: list[Frame | None] = []
    for k in range(slice_count):
        best = _nearest(offsets, _dot(normal, _voxel_centre(affine, 0, 0, k)))
        slices.append(positioned[best] if best is not None else None)
    aligned = bool(orientation and spacing) and any(slices) and all(
        _on_pixel_grid(affine, k, frame.position, orientation, spacing)  # type: ignore[arg-type]
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
    scratch: Path | None = None
    try:
        if started is not None:
            converted = started.result()
        else:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            scratch = scratch_folder(out_dir.parent)  # the volume then moves into out_dir by a rename
            source = scratch / "in"
            source.mkdir()
            originals = {}
            for index, instance in enumerate(images):
                link = source / f"{index:06d}.dcm"
                originals[str(link)] = str(instance.path.resolve())
                os.symlink(originals[str(link)], link)
            try:
                converted = run_dcm2niix(source, scratch / "out")
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
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return Conversion(best, others, len(series.instances) - len(images))


def _tilt(images) -> str | None:
    value = read_header(images[0].path).get("GantryDetectorTilt")
    return str(value) if value not in (None, "", 0, 0.0) else None
