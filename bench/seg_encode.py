"""SEG encoding: radpath's encoders vs dcmqi's bare command line on the same liver mask.

A generated 512×512×300 CT, converted by dcm2niix as the pipeline does, and the phantom's
liver as a mask on that NIfTI. In one run, medians of ``--repeat`` rounds (ABBA order):
``itkimage2segimage`` as a user would call it on the NIfTI mask (the bare tool); radpath
with dcmqi (mask read, moved onto the source grid through the affines, encoded, UIDs
set); radpath with highdicom; and the checks the stage adds (dciodvfy, frame geometry).
Sizes against the binary SEG's floor: 32 KiB (512×512 bits) per non-empty frame.

Run: .venv/bin/python bench/seg_encode.py [--slices 300] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from common import abba_medians, emit, timed  # bench/common.py
from pydicom.uid import generate_uid

from radpath.adapters.dciodvfy import verify
from radpath.adapters.dicomseg.encoders import DcmqiEncoder, HighdicomEncoder, dcmqi_binary, dcmqi_meta
from radpath.adapters.dicomseg.readback import check_frames
from radpath.adapters.masks import nifti_mask
from radpath.adapters.radiology.series import read_series_in
from radpath.adapters.radiology.volumes import convert_series
from radpath.domain.anatomy import load_master
from radpath.domain.dicomseg.description import Algorithm, SegSeries, describe_segment, series_description
from radpath.domain.dicomseg.geometry import LPS_FROM_RAS, mask_from_source, mask_on_source
from radpath.synthetic import SliceGeometry, write_series
from radpath.synthetic.phantom import LABELS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="radpath-bench-seg-") as tmp:
        root = Path(tmp)
        series_dir = root / "series"
        written = write_series(series_dir, geometry=SliceGeometry(512, 512, args.slices, (0.8, 0.8), 1.5,
                                                                  center=(0.0, 0.0, 20.0)))
        (series,) = read_series_in(series_dir)
        volume = convert_series(series, root / "nifti").volume
        image = nib.load(str(volume.path))
        grid = series.source_grid()
        by_uid = {uid: k for k, uid in enumerate(written.sop_instance_uids)}
        liver = np.stack([written.labels[by_uid[f.sop_instance_uid]] for f in grid.frames]) == LABELS["liver"]
        on_nifti = mask_from_source(liver, grid, LPS_FROM_RAS @ image.affine, image.shape[:3])
        mask_path = root / "liver.nii.gz"
        nib.save(nib.Nifti1Image(on_nifti.astype(np.uint8), image.affine), str(mask_path))
        master = load_master()
        segment = describe_segment(master, master.select_classes("liver", "total"), Algorithm("TotalSegmentator", "2.18.0"))
        seg_series = SegSeries(generate_uid(), generate_uid(), 300, series_description([segment]), "LIVER")
        meta = root / "meta.json"
        meta.write_text(json.dumps(dcmqi_meta([segment], seg_series)))
        outputs = {name: root / f"{name}.dcm" for name in ("bare", "dcmqi", "highdicom")}

        def bare():
            subprocess.run([dcmqi_binary(), "--inputImageList", str(mask_path), "--inputDICOMDirectory",
                            str(series_dir), "--inputMetadata", str(meta), "--outputDICOM", str(outputs["bare"])],
                           stdout=subprocess.DEVNULL, check=True)

        def radpath_with(encoder):
            def run():
                source = read_series_in(series_dir)[0].source_grid()
                mask, affine = nifti_mask(mask_path)
                encoder.encode([mask_on_source(mask, affine, source)], [segment], source, seg_series,
                               outputs[encoder.name])
            return run

        def checks():
            assert verify(outputs["dcmqi"]).ok and check_frames(outputs["dcmqi"], grid).ok

        contenders = {"dcmqi CLI": bare, "radpath dcmqi": radpath_with(DcmqiEncoder()),
                      "radpath highdicom": radpath_with(HighdicomEncoder())}
        medians = abba_medians(contenders, args.repeat)
        check_s = statistics.median(timed(checks) for _ in range(args.repeat))
        frames = int(liver.any(axis=(1, 2)).sum())
        sizes = {name: path.stat().st_size for name, path in outputs.items()}
    floor = 32 * 1024 * frames
    report = {
        "benchmark": f"SEG encoding, liver on a generated CT 512x512x{args.slices}",
        "non_empty_frames": frames,
        "median_s": {name: round(v, 3) for name, v in medians.items()},
        "stage_checks_s (dciodvfy + frame geometry)": round(check_s, 3),
        "ratio_radpath_dcmqi_vs_cli": round(medians["radpath dcmqi"] / medians["dcmqi CLI"], 2),
        "ratio_radpath_highdicom_vs_cli": round(medians["radpath highdicom"] / medians["dcmqi CLI"], 2),
        "seg_bytes": sizes,
        "size_vs_32KiB_per_frame": {name: round(size / floor, 3) for name, size in sizes.items()},
    }
    return emit(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
