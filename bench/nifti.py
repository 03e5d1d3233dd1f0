"""NIfTI conversion: radpath's nifti stage vs bare dcm2niix on the same 512×512×300 CT.

The element is set up as the pipeline leaves it for the nifti stage: the CT in the input
folder (as Kaapana's GetInputOperator puts it), a slide beside it, and the pair stage run
on it, which chose the series and wrote the element's header index
(radpath/adapters/radiology/headerindex.py). In one run, on the same page-cached files,
medians of ``--repeat`` rounds (ABBA order): ``dcm2niix -z n -b y`` as a process (the
bare tool: the binary of dcm2niix's wheel, as the stage runs it, not the Python shim of
the same name beside the interpreter); the nifti stage in-process (series from the
index, dcm2niix, slice map, manifest); ``radpath stage nifti`` as a process (adds
interpreter start-up and imports,
which a Kaapana container pays once per task; dcm2niix starts before the imports, see
radpath/pipeline/headstart.py); and the same with the index removed before each round
(a nifti stage run on an element no stage has read before: it reads the 300 headers
with pydicom, importing it).

Run: .venv/bin/python bench/nifti.py [--slices 300] [--repeat 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import abba_medians, emit, timed  # bench/common.py

from radpath.adapters.radiology.dcm2niix import dcm2niix_binary
from radpath.adapters.radiology.headerindex import INDEX_NAME
from radpath.adapters.settings import Settings
from radpath.pipeline.batch import run_stage
from radpath.pipeline.stages.nifti import run_nifti
from radpath.pipeline.stages.pair import run_pair
from radpath.synthetic import SliceGeometry, write_series, write_slide_header


def timer(function) -> float:
    subprocess.run(["sync"], check=True)  # written files on disk before each round
    return timed(function)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="radpath-bench-nifti-") as tmp:
        root = Path(tmp)
        element = root / "run" / "batch" / "ct" / "get-input"
        t0 = time.perf_counter()
        ct = write_series(element, geometry=SliceGeometry(512, 512, args.slices, (0.8, 0.8), 1.5, center=(0.0, 0.0, 20.0)))
        write_slide_header(element.parent / "slide" / "slide.dcm", ct.study.patient)
        made_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in element.iterdir())
        subprocess.run(["cat", *map(str, element.iterdir())], stdout=subprocess.DEVNULL, check=True)

        def bare():
            out = root / "bare"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            subprocess.run([dcm2niix_binary(), "-z", "n", "-b", "y", "-o", str(out), str(element)],
                           stdout=subprocess.DEVNULL, check=True)

        layout = {"WORKFLOW_DIR": str(root / "run"), "OPERATOR_IN_DIR": "get-input"}
        assert run_stage("pair", run_pair, Settings.from_env({**layout, "OPERATOR_OUT_DIR": "pair"})).exit_code == 0
        settings = Settings.from_env({**layout, "OPERATOR_OUT_DIR": "nifti"})

        def in_process():
            result = run_stage("nifti", run_nifti, settings)
            assert result.exit_code == 0

        env = {**os.environ, "WORKFLOW_DIR": str(root / "run"), "OPERATOR_IN_DIR": "get-input",
               "OPERATOR_OUT_DIR": "nifti", "RADPATH_LOG_LEVEL": "WARNING"}

        def stage_process():
            subprocess.run([str(Path(sys.executable).parent / "radpath"), "stage", "nifti"], env=env, check=True)

        def stage_process_unindexed():
            (element.parent / INDEX_NAME).unlink()
            stage_process()

        contenders = {"dcm2niix": bare, "radpath in-process": in_process, "radpath stage process": stage_process,
                      "radpath stage process, headers not indexed": stage_process_unindexed}
        medians = abba_medians(contenders, args.repeat, timer)
    report = {
        "benchmark": f"NIfTI conversion, generated CT 512x512x{args.slices}",
        "input_mb": round(size / 1e6, 1),
        "generated_in_s": round(made_s, 1),
        "median_s": {name: round(v, 3) for name, v in medians.items()},
        "ratio_in_process_vs_dcm2niix": round(medians["radpath in-process"] / medians["dcm2niix"], 2),
        "ratio_stage_process_vs_dcm2niix": round(medians["radpath stage process"] / medians["dcm2niix"], 2),
        "ratio_stage_process_not_indexed_vs_dcm2niix": round(
            medians["radpath stage process, headers not indexed"] / medians["dcm2niix"], 2),
    }
    return emit(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
