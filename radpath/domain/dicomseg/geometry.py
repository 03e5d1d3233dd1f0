"""The source series' voxel grid, and masks moved onto it through the affines.

A SEG frame must lie on a source slice, share its ImageOrientationPatient and reference
its SOPInstanceUID. So the mask is resampled onto the grid DICOM itself defines: column
``i`` along the first vector of ImageOrientationPatient, row ``j`` along the second,
slice ``k`` in order along their normal. NIfTI writers reorder axes (dcm2niix flips the
row axis of many series), so masks are moved by their affines, never by array index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from radpath.domain.radiology.summary import Frame, SeriesSummary

#: Slice positions and voxel centres closer than this (mm) are the same place.
TOLERANCE_MM = 0.01
#: DICOM patient space (LPS) from NIfTI world space (RAS) and back: the same matrix.
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class SourceGeometryError(ValueError):
    """The source series has no usable plane geometry (missing or mixed orientation)."""


@dataclass(frozen=True)
class SourceGrid:
    """The source series as a voxel grid, slices ordered along the plane normal.

    ``orientation`` is ImageOrientationPatient (row direction, then column direction),
    ``pixel_spacing`` is PixelSpacing (between rows, between columns), ``frames[k]`` and
    ``positions[k]`` the source frame and its ImagePositionPatient for slice ``k``.
    """

    rows: int
    columns: int
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    frames: tuple[Frame, ...]
    positions: np.ndarray  # (slices, 3) LPS mm
    files: tuple[Path, ...]  # slice k's instance file

    def __post_init__(self) -> None:
        if len(self.orientation) != 6:
            raise SourceGeometryError("ImageOrientationPatient must have 6 values")
        if len(self.frames) != len(self.positions) or not len(self.frames):
            raise SourceGeometryError("one position per frame, at least one frame")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, columns): the order of a SEG's frames and pixels."""
        return len(self.frames), self.rows, self.columns

    @property
    def row_direction(self) -> np.ndarray:
        return np.asarray(self.orientation[:3], float)

    @property
    def column_direction(self) -> np.ndarray:
        return np.asarray(self.orientation[3:], float)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_direction, self.column_direction)

    @cached_property
    def slice_step(self) -> np.ndarray | None:
        """The vector from one slice to the next when the slices are evenly spaced along
        the normal, else None (a missing slice, a varying gap)."""
        if len(self.positions) == 1:
            return self.normal * 1.0
        steps = np.diff(self.positions, axis=0)
        step = steps.mean(axis=0)
        if np.abs(steps - step).max() > TOLERANCE_MM:
            return None
        return step

    @property
    def regular(self) -> bool:
        return self.slice_step is not None

    def slice_affine(self, k: int) -> np.ndarray:
        """Voxel (i, j, 0, 1) of slice ``k`` → LPS; its third column is the normal."""
        affine = np.eye(4)
        affine[:3, 0] = self.row_direction * self.pixel_spacing[1]
        affine[:3, 1] = self.column_direction * self.pixel_spacing[0]
        affine[:3, 2] = self.normal
        affine[:3, 3] = self.positions[k]
        return affine

    @property
    def affine(self) -> np.ndarray:
        """Voxel (i, j, k, 1) → LPS for an evenly spaced series."""
        step = self.slice_step
        if step is None:
            raise SourceGeometryError("the source slices are not evenly spaced: no single affine")
        affine = self.slice_affine(0)
        affine[:3, 2] = step
        return affine

    @classmethod
    def of_slices(cls, summary: SeriesSummary, slices: Sequence[tuple[Sequence[Frame], Path]]) -> SourceGrid:
        """The grid of a series of single-frame images: ``slices`` are each image's frames
        and file, in any order."""
        if not summary.orientation or len(summary.orientation) != 6:
            raise SourceGeometryError(f"series {summary.key} has no ImageOrientationPatient")
        if not summary.pixel_spacing or len(summary.pixel_spacing) != 2:
            raise SourceGeometryError(f"series {summary.key} has no PixelSpacing")
        if not summary.rows or not summary.columns:
            raise SourceGeometryError(f"series {summary.key} has no Rows and Columns")
        if any(len(frames) != 1 or frames[0].frame_number is not None for frames, _ in slices):
            raise SourceGeometryError(f"series {summary.key} is multi-frame: seg-encode takes single-frame series")
        if any(frames[0].position is None for frames, _ in slices):
            raise SourceGeometryError(f"series {summary.key} has images without ImagePositionPatient")
        normal = np.cross(summary.orientation[:3], summary.orientation[3:])
        ordered = sorted(((frames[0], path) for frames, path in slices),
                         key=lambda slice_: float(np.dot(normal, slice_[0].position)))
        positions = np.array([frame.position for frame, _ in ordered], float)
        offsets = positions @ normal
        if len(offsets) > 1 and np.diff(offsets).min() < TOLERANCE_MM:
            raise SourceGeometryError(f"series {summary.key} has two images on one plane")
        return cls(
            rows=summary.rows,
            columns=summary.columns,
            orientation=tuple(float(v) for v in summary.orientation),
            pixel_spacing=(float(summary.pixel_spacing[0]), float(summary.pixel_spacing[1])),
            frames=tuple(frame for frame, _ in ordered),
            positions=positions,
            files=tuple(path for _, path in ordered),
        )


def _permutation(transform: np.ndarray) -> tuple[list[int], list[bool], list[int]] | None:
    """(axes, flips, offsets) when ``transform`` maps voxel indices onto voxel indices by
    a signed axis permutation and an integer shift, else None."""
    linear, shift = transform[:3, :3], transform[:3, 3]
    rounded = np.round(linear)
    if np.abs(linear - rounded).max() > 1e-4 or np.abs(shift - np.round(shift)).max() > 1e-3:
        return None
    if sorted(np.abs(rounded).sum(axis=0)) != [1, 1, 1] or sorted(np.abs(rounded).sum(axis=1)) != [1, 1, 1]:
        return None
    axes = [int(np.flatnonzero(rounded[row])[0]) for row in range(3)]
    flips = [bool(rounded[row, axes[row]] < 0) for row in range(3)]
    return axes, flips, [int(round(v)) for v in shift]


def resample_nearest(
    values: np.ndarray, values_affine: np.ndarray, target_affine: np.ndarray, target_shape: tuple[int, int, int]
) -> np.ndarray:
    """``values`` (voxel → world by ``values_affine``) on the grid ``target_affine``,
    ``target_shape``; nearest neighbour, zero outside. Grids that share their voxel
    centres (every NIfTI of a DICOM series) are re-indexed exactly, without interpolation."""
    transform = np.linalg.inv(values_affine) @ target_affine  # target voxel → values voxel
    exact = _permutation(transform)
    if exact is not None:
        axes, flips, shift = exact  # source index s[r] = ±t[axes[r]] + shift[r]
        order = [axes.index(t) for t in range(3)]  # target axis t ← source axis order[t]
        moved = values.transpose(order)
        target, source = [], []
        for t, r in enumerate(order):
            n = values.shape[r]
            if flips[r]:  # flipped, index s' = n-1-s = t + (n-1-shift)
                moved = np.flip(moved, axis=t)
            offset = n - 1 - shift[r] if flips[r] else shift[r]
            low, high = max(0, -offset), min(target_shape[t], n - offset)
            if high <= low:
                return np.zeros(target_shape, dtype=values.dtype)
            target.append(slice(low, high))
            source.append(slice(low + offset, high + offset))
        out = np.zeros(target_shape, dtype=values.dtype)
        out[tuple(target)] = moved[tuple(source)]
        return out
    from scipy.ndimage import affine_transform

    return affine_transform(values, transform[:3, :3], transform[:3, 3], output_shape=target_shape,
                            order=0, mode="constant", cval=0)


#: Voxel (k, j, i) → voxel (i, j, k).
_REVERSED_AXES = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)


def _cropped(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mask's bounding box and its affine: an organ fills a fraction of the volume,
    and moving only that box is several times faster than moving the whole grid."""
    bounds = []
    for axis in range(3):
        filled = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if not filled.size:
            return mask, affine
        bounds.append((int(filled[0]), int(filled[-1]) + 1))
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ [low for low, _ in bounds] + affine[:3, 3]
    return mask[tuple(slice(low, high) for low, high in bounds)], shifted


def mask_on_source(mask: np.ndarray, mask_affine: np.ndarray, grid: SourceGrid) -> np.ndarray:
    """The mask on the source grid as (slices, rows, columns) booleans."""
    mask, mask_affine = _cropped(mask, mask_affine)
    if grid.regular:
        # Index the grid as (k, j, i) directly: one gather, no transposed copy afterwards.
        return resample_nearest(mask, mask_affine, grid.affine @ _REVERSED_AXES, grid.shape).astype(bool, copy=False)
    planes = [resample_nearest(mask, mask_affine, grid.slice_affine(k), (grid.columns, grid.rows, 1))[..., 0].T
              for k in range(len(grid.frames))]
    return np.stack(planes).astype(bool)


def mask_from_source(source_mask: np.ndarray, grid: SourceGrid, target_affine: np.ndarray,
                     target_shape: tuple[int, int, int]) -> np.ndarray:
    """A (slices, rows, columns) mask on the source grid, onto another grid (a NIfTI's)."""
    if not grid.regular:
        raise SourceGeometryError("the source slices are not evenly spaced: no single affine to map from")
    return resample_nearest(source_mask.transpose(2, 1, 0), grid.affine, target_affine, target_shape).astype(bool)
