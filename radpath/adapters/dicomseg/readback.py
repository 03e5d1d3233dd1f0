"""A written SEG read back onto its source grid, with its geometry checked frame by frame.

Two independent readers: highdicom (pixels by referenced source instance) and dcmqi's
``segimage2itkimage`` (an image with its own geometry, moved onto the source grid through
the affines). The tests and ``radpath bench`` hold both against the mask that went in.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radpath.adapters.dicomseg.encoders import SegEncodeError, dcmqi_binary
from radpath.adapters.headers import read_header
from radpath.domain.dicomseg.geometry import SourceGrid, mask_on_source

#: ImagePositionPatient is a DS string: positions within this (mm) are the same point.
POSITION_TOLERANCE_MM = 1e-3
ORIENTATION_TOLERANCE = 1e-5


@dataclass
class FrameCheck:
    """Every frame's geometry against its referenced source slice; ``problems`` lists
    each disagreement (frame number, what, expected and found)."""

    frames: int
    referenced: list[int] = field(default_factory=list)  # grid slice k of each frame
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_frames(path: Path, grid: SourceGrid) -> FrameCheck:
    """Does every frame lie on the slice it references, with the source's orientation?"""
    ds = read_header(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    by_uid = {frame.sop_instance_uid: k for k, frame in enumerate(grid.frames)}
    check = FrameCheck(int(ds.NumberOfFrames))
    for number, item in enumerate(ds.PerFrameFunctionalGroupsSequence, start=1):
        orientation_item = item.get("PlaneOrientationSequence") or shared.get("PlaneOrientationSequence")
        orientation = np.array(orientation_item[0].ImageOrientationPatient, float)
        if np.abs(orientation - np.array(grid.orientation)).max() > ORIENTATION_TOLERANCE:
            check.problems.append(f"frame {number}: ImageOrientationPatient {list(orientation)} "
                                  f"is not the source's {list(grid.orientation)}")
        references = [
            source.ReferencedSOPInstanceUID
            for derivation in item.get("DerivationImageSequence", [])
            for source in derivation.get("SourceImageSequence", [])
        ]
        slices = [by_uid[uid] for uid in references if uid in by_uid]
        if len(slices) != 1:
            check.problems.append(f"frame {number}: references {references}, not one slice of the source")
            continue
        k = slices[0]
        check.referenced.append(k)
        position = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
        if np.abs(position - grid.positions[k]).max() > POSITION_TOLERANCE_MM:
            check.problems.append(f"frame {number}: ImagePositionPatient {list(position)} is not that of the "
                                  f"referenced slice {list(grid.positions[k])}")
    return check


def read_with_highdicom(path: Path, grid: SourceGrid, segment: int = 1) -> np.ndarray:
    """One segment on the source grid, (slices, rows, columns), by highdicom."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    mask = np.zeros(grid.shape, dtype=bool)
    present = [k for k, frame in enumerate(grid.frames) if frame.sop_instance_uid in referenced]
    if present:
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[grid.frames[k].sop_instance_uid for k in present],
            segment_numbers=[segment],
            assert_missing_frames_are_empty=True,
            # dcmqi leaves SpatialLocationsPreserved out; check_frames tests the geometry.
            ignore_spatial_locations=True,
        )
        mask[present] = pixels[..., 0] > 0
    return mask


def read_with_dcmqi(path: Path, grid: SourceGrid, segment: int = 1) -> np.ndarray:
    """One segment on the source grid, by dcmqi's ``segimage2itkimage`` and the affines."""
    import SimpleITK as sitk

    binary = dcmqi_binary("segimage2itkimage")
    if binary is None:
        raise SegEncodeError("dcmqi's segimage2itkimage not found: pip install dcmqi")
    with tempfile.TemporaryDirectory(prefix="radpath-segread-") as tmp:
        run = subprocess.run([binary, "--inputDICOM", str(path), "--outputDirectory", tmp, "-t", "nrrd", "-p", "seg"],
                             capture_output=True, text=True, errors="replace")
        written = sorted(Path(tmp).glob(f"seg-{segment}.nrrd"))
        if run.returncode != 0 or not written:
            raise SegEncodeError(f"segimage2itkimage exited with {run.returncode}: {run.stderr.strip()[-300:]}")
        image = sitk.ReadImage(str(written[0]))
    values = sitk.GetArrayFromImage(image).transpose(2, 1, 0) > 0  # (i, j, k)
    affine = np.eye(4)
    affine[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return mask_on_source(values, affine, grid)
