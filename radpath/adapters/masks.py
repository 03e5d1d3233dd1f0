"""Organ masks as NIfTI files (nibabel): TotalSegmentator's class masks and radpath's
merged ones, read as booleans with their affine, written as ``uint8``, counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radpath.domain.dicomseg.geometry import LPS_FROM_RAS


def read_mask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A mask NIfTI as (boolean array, voxel → RAS affine as the file has it)."""
    import nibabel as nib

    image = nib.load(str(path))
    data = np.asanyarray(image.dataobj)
    if data.ndim > 3:
        data = data.reshape(data.shape[:3])
    return data > 0, image.affine


def nifti_mask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A mask NIfTI as (boolean array, voxel → LPS affine): DICOM's patient space."""
    mask, affine = read_mask(path)
    return mask, LPS_FROM_RAS @ affine


def write_mask(mask: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """``mask`` as a ``uint8`` NIfTI with ``affine`` (RAS) as both its qform and sform."""
    import nibabel as nib

    image = nib.Nifti1Image(mask.astype(np.uint8), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))


def count_voxels(path: Path) -> int:
    """The mask's voxels (0 when the file is absent: TotalSegmentator wrote no mask)."""
    return int(np.count_nonzero(read_mask(path)[0])) if path.exists() else 0
