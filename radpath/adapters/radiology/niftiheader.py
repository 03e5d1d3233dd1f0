"""The geometry of a NIfTI-1 file (shape, voxel → RAS affine), read with the standard library.

The nifti stage needs nothing of dcm2niix's output but its header. nibabel reads it the
same way (tests compare the two on dcm2niix's output) but imports pydicom on the way:
about 0.3 s, more than dcm2niix takes to convert a 300-slice CT. The affine is the one
nibabel calls best (``get_best_affine``): the sform where ``sform_code`` is set, else
the qform, as the NIfTI-1 standard (nifti1.h) defines them. A NIfTI-2 file is handed to
nibabel. Plain floats, no numpy: the nifti stage's process does without it.
"""

from __future__ import annotations

import gzip
import math
import struct
from dataclasses import dataclass
from pathlib import Path

NIFTI1_HEADER_BYTES = 348
NIFTI2_HEADER_BYTES = 540


class NiftiHeaderError(ValueError):
    """The file is not a NIfTI image radpath can place in space."""


#: A 4×4 matrix, row by row.
Affine = tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class NiftiGeometry:
    shape: tuple[int, ...]  # dim[1 .. dim[0]]
    affine_ras: Affine  # voxel (i, j, k, 1) → RAS+ mm (NIfTI's world space)


def read_nifti_geometry(path: Path) -> NiftiGeometry:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as stream:
        raw = stream.read(NIFTI1_HEADER_BYTES)
    if len(raw) < 4:
        raise NiftiHeaderError(f"{Path(path).name} is too short to be NIfTI")
    for endian in "<>":
        size = struct.unpack_from(endian + "i", raw, 0)[0]
        if size == NIFTI1_HEADER_BYTES and len(raw) == NIFTI1_HEADER_BYTES:
            return _nifti1(raw, endian, Path(path))
        if size == NIFTI2_HEADER_BYTES:
            return _by_nibabel(Path(path))
    raise NiftiHeaderError(f"{Path(path).name} is not a NIfTI-1 or NIfTI-2 file")


def _nifti1(raw: bytes, e: str, path: Path) -> NiftiGeometry:
    dim = struct.unpack_from(e + "8h", raw, 40)
    pixdim = struct.unpack_from(e + "8f", raw, 76)
    qform_code, sform_code = struct.unpack_from(e + "2h", raw, 252)
    if not 1 <= dim[0] <= 7:
        raise NiftiHeaderError(f"{path.name}: dim[0] = {dim[0]}, not 1 to 7")
    shape = tuple(int(n) for n in dim[1:dim[0] + 1])
    if sform_code > 0:
        rows = struct.unpack_from(e + "12f", raw, 280)  # srow_x, srow_y, srow_z
        affine = _with_last_row([rows[0:4], rows[4:8], rows[8:12]])
    elif qform_code > 0:
        affine = _qform(struct.unpack_from(e + "6f", raw, 256), pixdim)
    else:
        raise NiftiHeaderError(f"{path.name} has neither sform nor qform: no position in space")
    return NiftiGeometry(shape, affine)


def _with_last_row(rows) -> Affine:
    return (*(tuple(float(v) for v in row) for row in rows), (0.0, 0.0, 0.0, 1.0))  # type: ignore[return-value]


def _qform(quaternion: tuple[float, ...], pixdim: tuple[float, ...]) -> Affine:
    """nifti1.h's method 2, as nifti1_io.c's ``nifti_quatern_to_mat44`` computes it: rotation
    from the quaternion (b, c, d), zooms (a non-positive one taken as 1), qfac, offsets."""
    b, c, d, *offset = (float(v) for v in quaternion)
    a_squared = 1.0 - (b * b + c * c + d * d)
    if a_squared < 1e-7:  # a 180° rotation: a is 0 and (b, c, d) is renormalised
        norm = math.sqrt(b * b + c * c + d * d)
        a, b, c, d = 0.0, b / norm, c / norm, d / norm
    else:
        a = math.sqrt(a_squared)
    rotation = (
        (a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)),
        (2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)),
        (2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b),
    )
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    zooms = [v if v > 0 else 1.0 for v in pixdim[1:4]]
    zooms[2] *= qfac
    return _with_last_row([(*(r * z for r, z in zip(row, zooms)), t) for row, t in zip(rotation, offset)])


def _by_nibabel(path: Path) -> NiftiGeometry:
    import nibabel as nib

    image = nib.load(str(path))
    return NiftiGeometry(tuple(int(n) for n in image.shape), _with_last_row(image.affine.tolist()[:3]))
