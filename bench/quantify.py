"""Quantification: radpath's quantify stage vs pyradiomics run directly on the same image and mask.

A generated CT (512×512, ``--slices`` slices at 1.5 mm) goes through radpath's nifti,
merge and seg-encode stages with the phantom's liver as the mask (not timed). Then, in
one run, medians of ``--repeat`` rounds (ABBA order):
- bare: pyradiomics' ``RadiomicsFeatureExtractor.execute`` on the same image and mask as
  NRRD files (what a researcher runs by hand), with radiomics.json's settings;
- radpath: ``radpath stage quantify`` in this process (the manifest, the source series
  read from DICOM, the mask read back from the SEG, pyradiomics, the SR written and
  checked with dciodvfy).

Run: .venv/bin/python bench/quantify.py [--slices 200] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from common import abba_medians, emit  # bench/common.py

from radpath.adapters.dicomseg.readback import read_with_highdicom
from radpath.adapters.radiology.series import read_series_in
from radpath.adapters.settings import Settings
from radpath.domain.dicomseg.geometry import LPS_FROM_RAS, mask_from_source
from radpath.domain.quantify import load_radiomics
from radpath.pipeline.batch import run_stage
from radpath.pipeline.manifest import Manifest, Status
from radpath.pipeline.stages.merge import run_merge
from radpath.pipeline.stages.nifti import run_nifti
from radpath.pipeline.stages.quantify import run_quantify
from radpath.pipeline.stages.seg_encode import run_seg_encode
from radpath.synthetic import SliceGeometry, write_series
from radpath.synthetic.facts import add_sections, given_bodypart, given_segment
from radpath.synthetic.phantom import LABELS


def stage(root: Path, name: str, function) -> None:
    out = run_stage(name, function, Settings.from_env({"WORKFLOW_DIR": str(root), "OPERATOR_OUT_DIR": name}))
    if out.elements[0].status is not Status.DONE:
        raise SystemExit(f"{name}: {out.elements[0].detail}")


def liver_element(root: Path, slices: int) -> Path:
    """One element after seg-encode: the phantom CT and its liver as a SEG."""
    element = root / "batch" / "e1"
    written = write_series(element / "get-input", geometry=SliceGeometry(512, 512, slices, (0.8, 0.8), 1.5,
                                                                         center=(-60.0, -10.0, 70.0)))
    stage(root, "nifti", run_nifti)
    nifti = Manifest.load(element).facts["nifti"]
    image = nib.load(str(element / "nifti" / nifti["path"]))
    (series,) = read_series_in(element / "get-input")
    grid = series.source_grid()
    by_uid = {uid: k for k, uid in enumerate(written.sop_instance_uids)}
    liver = np.stack([written.labels[by_uid[f.sop_instance_uid]] for f in grid.frames]) == LABELS["liver"]
    on_nifti = mask_from_source(liver, grid, LPS_FROM_RAS @ image.affine, image.shape[:3])
    (element / "segment").mkdir()
    nib.save(nib.Nifti1Image(on_nifti.astype(np.uint8), image.affine), str(element / "segment" / "liver.nii.gz"))
    add_sections(element, given_bodypart("liver"), given_segment("total", "2.18.0"))
    stage(root, "merge", run_merge)
    stage(root, "seg-encode", run_seg_encode)
    return element


def main() -> int:
    import SimpleITK as sitk
    from radiomics import featureextractor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="radpath-bench-quantify-") as tmp:
        root = Path(tmp)
        element = liver_element(root, args.slices)
        manifest = Manifest.load(element)
        (series,) = read_series_in(element / "get-input")
        grid = series.source_grid()
        image = sitk.ReadImage([str(p) for p in grid.files])
        mask = sitk.GetImageFromArray(read_with_highdicom(
            element / "seg-encode" / manifest.facts["seg-encode"]["path"], grid).astype(np.uint8))
        mask.CopyInformation(image)
        image_path, mask_path = root / "image.nrrd", root / "mask.nrrd"
        sitk.WriteImage(image, str(image_path))
        sitk.WriteImage(mask, str(mask_path))
        parameters = load_radiomics().parameters("CT")
        voxels = int(sitk.GetArrayViewFromImage(mask).sum())

        def bare():
            featureextractor.RadiomicsFeatureExtractor(parameters).execute(str(image_path), str(mask_path))

        def radpath():
            stage(root, "quantify", run_quantify)

        radpath()  # warm: imports, first-call costs, on both sides alike
        bare()
        medians = abba_medians({"pyradiomics": bare, "radpath quantify": radpath}, args.repeat)
    report = {
        "benchmark": f"quantify, liver on a generated CT 512x512x{args.slices} ({voxels} mask voxels)",
        "median_s": {name: round(v, 3) for name, v in medians.items()},
        "ratio_radpath_vs_pyradiomics": round(medians["radpath quantify"] / medians["pyradiomics"], 3),
    }
    return emit(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
