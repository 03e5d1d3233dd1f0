"""pyradiomics on the source series and a SEG's segment, on the grid the SEG references.

The image is the source series as SimpleITK's DICOM reader builds it (GDCM; Rescale
Slope and Intercept applied: Hounsfield units for CT), its slices in the order of the
:class:`~radpath.domain.dicomseg.geometry.SourceGrid` the SEG's frames reference. The mask
is the segment read back from the SEG file onto that grid (highdicom), so the features
describe what is stored, not the NIfTI mask it was made from. No resampling: pyradiomics
sees the voxels the SEG's frames lie on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from radpath.adapters.dicomseg.readback import read_with_highdicom
from radpath.domain.dicomseg.geometry import TOLERANCE_MM, SourceGrid


class QuantifyError(RuntimeError):
    """The features cannot be computed on this series or mask; the message says why."""


def pyradiomics_version() -> str:
    import radiomics

    return str(radiomics.__version__).lstrip("v")


def slice_spacing_mm(grid: SourceGrid) -> float:
    """The step between slices; :class:`QuantifyError` where it varies."""
    step = grid.slice_step
    if step is None:
        raise QuantifyError("the source slices are unevenly spaced: radiomics needs one voxel size")
    return float(np.linalg.norm(step))


def voxel_volume_mm3(grid: SourceGrid) -> float:
    """PixelSpacing × the step between slices: one voxel of the source grid."""
    return grid.pixel_spacing[0] * grid.pixel_spacing[1] * slice_spacing_mm(grid)


def source_image(grid: SourceGrid):
    """The source series as a SimpleITK image whose array is ``grid.shape`` (slice k, row j, column i)."""
    import SimpleITK as sitk

    expected_spacing = (grid.pixel_spacing[1], grid.pixel_spacing[0], slice_spacing_mm(grid))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(path) for path in grid.files])
    image = reader.Execute()
    expected_origin = np.asarray(grid.positions[0], float)
    if (image.GetSize()[::-1] != grid.shape
            or np.abs(np.asarray(image.GetOrigin()) - expected_origin).max() > TOLERANCE_MM
            or np.abs(np.asarray(image.GetSpacing()) - expected_spacing).max() > TOLERANCE_MM):
        raise QuantifyError(f"SimpleITK read the source series as {image.GetSize()} voxels at {image.GetOrigin()}, "
                            f"spacing {image.GetSpacing()}; the SEG's grid is {grid.shape[::-1]} at "
                            f"{tuple(expected_origin)}, spacing {expected_spacing}")
    return image


def segment_mask(seg_path: Path, grid: SourceGrid, segment_number: int, like) -> tuple[Any, int]:
    """Segment ``segment_number`` of the SEG as a label image on ``like``'s geometry, and its voxels."""
    import SimpleITK as sitk

    mask = read_with_highdicom(seg_path, grid, segment_number)
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(like)
    return image, int(mask.sum())


def extract_features(image, mask, parameters: dict[str, Any]) -> dict[str, float]:
    """pyradiomics' features (its result keys → values), diagnostics left out."""
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)  # it reports every class at INFO
    extractor = featureextractor.RadiomicsFeatureExtractor(parameters)
    try:
        result = extractor.execute(image, mask)
    except ValueError as err:  # pyradiomics' word for a mask it cannot use (too small, one voxel)
        raise QuantifyError(f"pyradiomics: {err}") from None
    return {key: float(value) for key, value in result.items() if not key.startswith("diagnostics_")}
