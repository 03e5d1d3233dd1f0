"""Elements as a stage finds them, made from the phantom (a segmenter that is always right)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom import Dataset

from radpath.adapters.settings import Settings
from radpath.domain.anatomy.resolver import resolve_body_part
from radpath.domain.dicomseg.geometry import LPS_FROM_RAS
from radpath.pipeline.batch import run_stage
from radpath.pipeline.manifest import Manifest, Status
from radpath.pipeline.stages.merge import run_merge
from radpath.pipeline.stages.nifti import run_nifti
from radpath.pipeline.stages.seg_encode import run_seg_encode
from radpath.synthetic import SliceGeometry, write_series
from radpath.synthetic.facts import add_sections, given_bodypart, given_segment
from radpath.synthetic.phantom import LABELS, sample


def phantom_mask_on_nifti(nifti_path: Path, organ: str, modality: str) -> tuple[np.ndarray, np.ndarray]:
    """The phantom organ sampled at the NIfTI's own voxel centres (independent of radpath's
    resampling): what a segmenter that is always right would write."""
    image = nib.load(str(nifti_path))
    affine = LPS_FROM_RAS @ image.affine
    shape = image.shape[:3]
    index = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).reshape(-1, 3)
    points = (affine[:3, :3] @ index.T).T + affine[:3, 3]
    _, labels = sample(points, modality)
    return labels.reshape(shape) == LABELS[organ], affine


def resolved(text: str) -> dict:
    ds, specimen = Dataset(), Dataset()
    specimen.SpecimenShortDescription = text
    ds.SpecimenDescriptionSequence = [specimen]
    result = resolve_body_part(ds)
    return {"organ": result.organ, "laterality": result.laterality, "subpart": result.subpart}


def element_after_segment(tmp_path: Path, text: str, geometry: SliceGeometry, classes: dict[str, str],
                          modality: str = "CT") -> Path:
    """An element as the segment stage leaves it: the series, its NIfTI (real nifti stage),
    the slide's organ (real resolver) and per-class masks from the phantom (a perfect
    segmenter); ``classes`` maps class → phantom organ, "" for an empty mask."""
    root = tmp_path / "run"
    write_series(root / "batch/e1/get-input", geometry=geometry, modality=modality)
    env = {"WORKFLOW_DIR": str(root), "OPERATOR_IN_DIR": "get-input", "OPERATOR_OUT_DIR": "nifti"}
    assert run_stage("nifti", run_nifti, Settings.from_env(env)).elements[0].status is Status.DONE
    element = root / "batch/e1"
    manifest = Manifest.load(element)
    nifti = manifest.facts["nifti"]
    (element / "segment").mkdir()
    for name, organ in classes.items():
        mask, affine = phantom_mask_on_nifti(element / "nifti" / nifti["path"], organ or "liver", modality)
        image = nib.Nifti1Image((mask & bool(organ)).astype(np.uint8), LPS_FROM_RAS @ affine)
        nib.save(image, str(element / "segment" / f"{name}.nii.gz"))
    add_sections(element, given_bodypart(**resolved(text)), given_segment("total", "2.18.0"))
    return root


def run_merge_and_encode(root: Path, **env: str):
    base = {"WORKFLOW_DIR": str(root), **env}
    merged = run_stage("merge", run_merge, Settings.from_env({**base, "OPERATOR_OUT_DIR": "merge"}))
    encoded = run_stage("seg-encode", run_seg_encode, Settings.from_env({**base, "OPERATOR_OUT_DIR": "seg-encode"}))
    # An element that ended skipped is not handed to the next stage.
    return merged.elements[0], (encoded.elements or [None])[0], Manifest.load(root / "batch/e1")
