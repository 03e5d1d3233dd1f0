"""Segmentation: radpath's segment stage vs TotalSegmentator's own command line, same NIfTI.

In one run, medians of ``--repeat`` rounds (order reversed every other round), each a fresh process measured by
GNU time (wall seconds, peak RSS): ``TotalSegmentator -i … -o … --fast --roi_subset …
--device cpu`` (the bare tool) and ``radpath stage segment`` on an element holding the
same NIfTI and asking for the kidney (the same two classes), and TotalSegmentator's Python
API called with the same arguments from ``python -c`` (a reference: nnU-Net's spawned
workers import torch late under a main module without TotalSegmentator, which the stage
avoids, see radpath/adapters/totalseg/runner.py). All run the same weights:
the official ones when installed, else radpath's stand-ins (``--weights standin``, the
default here, where no official weights can be downloaded). Where a GPU is present, pass
``--device gpu`` to record that run too.

Run: .venv/bin/python bench/segment.py [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
from common import emit  # bench/common.py

from radpath.adapters.totalseg.standin import STANDIN_WEIGHTS
from radpath.pipeline.manifest import Manifest
from radpath.synthetic import SliceGeometry
from radpath.synthetic.facts import add_sections, given_bodypart, given_nifti
from radpath.synthetic.volumes import phantom_volume

CLASSES = ["kidney_left", "kidney_right"]


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of ``command`` under GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        done = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", report.name, *command], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # 126: the stage ran and found no kidney (skipped); still a full TotalSegmentator run.
        if done.returncode not in (0, 126):
            raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
        wall, rss_kib = report.read().split()[-2:]
    return float(wall), float(rss_kib) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--weights", choices=["standin", "installed"], default="standin")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="radpath-bench-segment-") as tmp:
        root = Path(tmp)
        geometry = SliceGeometry(256, 256, 100, (1.5, 1.5), 3.0, center=(0.0, 0.0, 0.0))
        image, _ = phantom_volume(geometry, "CT")
        element = root / "run" / "batch" / "ct"
        (element / "nifti").mkdir(parents=True)
        nib.save(image, element / "nifti" / "ct.nii.gz")
        add_sections(element, given_nifti("ct.nii.gz", "CT", "ct"), given_bodypart("kidney"))

        env = {**os.environ, "TOTALSEG_HOME_DIR": str(root / "totalseg-home"), "RADPATH_LOG_LEVEL": "WARNING"}
        (root / "totalseg-home").mkdir()
        (root / "totalseg-home" / "config.json").write_text(json.dumps({"send_usage_stats": False}))
        if args.weights == "standin":
            env["TOTALSEG_STANDIN_WEIGHTS"] = "true"
        bare_env = {**env, **({"TOTALSEG_WEIGHTS_PATH": str(STANDIN_WEIGHTS)} if args.weights == "standin" else {})}
        stage_env = {**env, "WORKFLOW_DIR": str(root / "run"), "OPERATOR_IN_DIR": "nifti",
                     "OPERATOR_OUT_DIR": "segment", "TOTALSEG_THREADS": "1"}
        bare = [str(bin_dir / "TotalSegmentator"), "-i", str(element / "nifti" / "ct.nii.gz"), "-o",
                str(root / "bare"), "--fast", "--device", args.device, "--roi_subset", *CLASSES, "--nr_thr_resamp",
                "1", "--nr_thr_saving", "1"]
        # TotalSegmentator's Python API with the same arguments and nothing else: what the
        # stage calls, so stage vs API is radpath's own cost and API vs CLI TotalSegmentator's.
        api = [sys.executable, "-c", "from totalsegmentator.python_api import totalsegmentator; "
               f"totalsegmentator({str(element / 'nifti' / 'ct.nii.gz')!r}, {str(root / 'api')!r}, task='total', "
               f"roi_subset={CLASSES!r}, fast=True, device={args.device!r}, nr_thr_resamp=1, nr_thr_saving=1, "
               "quiet=True)"]
        stage = [str(bin_dir / "radpath"), "stage", "segment"]  # as its container runs it
        contenders = {"TotalSegmentator CLI": (bare, bare_env), "TotalSegmentator API": (api, bare_env),
                      "radpath stage segment": (stage, stage_env)}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        for round_ in range(args.repeat):  # ABC, CBA, ...: no contender always runs first
            order = list(contenders.items())
            for name, (command, command_env) in order if round_ % 2 == 0 else order[::-1]:
                runs[name].append(measured(command, command_env))
        facts = Manifest.load(element).facts["segment"]
    wall = {name: statistics.median(r[0] for r in values) for name, values in runs.items()}
    rss = {name: statistics.median(r[1] for r in values) for name, values in runs.items()}
    report = {
        "benchmark": "segment (kidney, total --fast) on a phantom CT 256x256x100, 1.5x1.5x3 mm",
        "device": args.device,
        "weights": facts["weights"],
        "median_wall_s": {name: round(v, 2) for name, v in wall.items()},
        "median_peak_rss_mib": {name: round(v) for name, v in rss.items()},
        "ratio_wall_stage_vs_cli": round(wall["radpath stage segment"] / wall["TotalSegmentator CLI"], 3),
        "ratio_rss_stage_vs_cli": round(rss["radpath stage segment"] / rss["TotalSegmentator CLI"], 3),
        "ratio_wall_stage_vs_api": round(wall["radpath stage segment"] / wall["TotalSegmentator API"], 3),
        "ratio_wall_api_vs_cli": round(wall["TotalSegmentator API"] / wall["TotalSegmentator CLI"], 3),
        "classes": facts["classes"],
    }
    return emit(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
