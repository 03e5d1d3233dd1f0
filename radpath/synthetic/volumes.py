"""The phantom as NIfTI volumes: values and organ labels on one voxel grid.

For work that starts from a NIfTI (segmentation tests, the stand-in weights' training)
rather than from a DICOM series. Voxel (i, j, k) is column i, row j, slice k of the
geometry, as in :attr:`SliceGeometry.affine`; the NIfTI affine is that matrix taken from
DICOM's LPS to NIfTI's RAS.
"""

from __future__ import annotations

import numpy as np

from radpath.domain.vocabulary import Modality
from radpath.synthetic.phantom import sample
from radpath.synthetic.series import SliceGeometry

#: DICOM patient space (LPS) to NIfTI world space (RAS).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def phantom_volume(geometry: SliceGeometry, modality: str = Modality.CT, noise: float = 8.0, seed: int = 0):
    """``(values, labels)`` as ``nibabel.Nifti1Image``: int16 CT numbers or MR signal with
    Gaussian noise of ``noise`` standard deviation, and uint8 organ labels (see
    :data:`radpath.synthetic.phantom.LABELS`)."""
    import nibabel as nib

    values = np.empty((geometry.columns, geometry.rows, geometry.slices), dtype=np.float32)
    labels = np.empty(values.shape, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for k in range(geometry.slices):
        # slice_points is (row, column); NIfTI's first axis is the column.
        values[..., k], labels[..., k] = sample(geometry.slice_points(k).transpose(1, 0, 2), modality)
    values += rng.normal(0.0, noise, size=values.shape).astype(np.float32)
    affine = LPS_TO_RAS @ geometry.affine
    image = nib.Nifti1Image(np.round(values).astype(np.int16), affine)
    label_image = nib.Nifti1Image(labels, affine)
    for item in (image, label_image):
        item.set_qform(affine, code=1)
        item.set_sform(affine, code=1)
    return image, label_image
