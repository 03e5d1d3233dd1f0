"""`radpath run --input`: a user's folder of radiology DICOM, a vendor slide with its
sidecar and a file that is neither, through the main job in this process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from tables import table_cells

from radpath.pipeline.manifest import Manifest
from radpath.synthetic import write_svs

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def test_run_on_the_prostate_mr_with_a_biopsy_slide_and_a_corrupt_file(shared_data: Path, tmp_path: Path):
    folder = tmp_path / "input"
    shutil.copytree(shared_data / "mr-prostate-adc", folder / "mr")
    patient_id = pydicom.dcmread(next((folder / "mr").iterdir()), stop_before_pixels=True).PatientID
    slide = write_svs(folder / "prostate-core.svs", width=2048, height=1536, levels=2)
    (folder / "prostate-core.svs.json").write_text(json.dumps({"patient_id": patient_id,
                                                               "anatomic_site": "Prostatabiopsie"}))
    (folder / "scan-0042.dcm").write_bytes(b"\x00" * 64 + b"truncated while copying")
    output = tmp_path / "out"

    run = subprocess.run([sys.executable, "-m", "radpath", "run", "--input", str(folder), "--output",
                          str(output), "--standin-weights", "--no-airflow"],
                         capture_output=True, text=True, timeout=900)
    text = " ".join(run.stdout.split())
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]  # the corrupt file
    rows = {row["element"]: row for row in table_cells(run.stdout)}
    corrupt = rows["scan-0042.dcm"]
    assert (corrupt["status"], corrupt["stage"]) == ("failed", "input"), corrupt
    assert corrupt["detail"].startswith("not readable as DICOM"), corrupt

    (workflow_dir,) = (output / "runs").iterdir()
    (element,) = (workflow_dir / "batch").iterdir()  # MR and slide: one patient, one element
    manifest = Manifest.load(element)
    assert manifest.facts["bodypart"]["organ"] == "prostate"
    assert manifest.facts["nifti"]["modality"] == "MR"
    assert manifest.status.value in ("done", "skipped"), manifest.stages
    if manifest.status.value == "skipped":  # the stand-in MR model may miss the prostate: it says so
        name, record = manifest.ended_at()
        assert name == "segment" and "prostate" in record.reason and "stand-in" in record.reason, record
        row = rows[element.name]
        assert (row["status"], row["stage"], row["organ"]) == ("skipped", "segment", "prostate"), row
        assert row["detail"].startswith("prostate"), row
    else:
        assert (element / "link" / "link.json").is_file() and f"{element.name} │ done" in text
    assert slide.path.name in (manifest.facts["wsi-dicomize"]["slides"][0]["file"])
    assert patient_id not in run.stdout + run.stderr  # no patient identity on the terminal


def test_a_store_that_cannot_work_stops_the_run_before_any_stage(tmp_path: Path):
    """``--store dicomweb`` with ``--input`` and no server: exit 2 at once, naming what is
    missing and how to give it, and no run started in the output."""
    from radpath.synthetic import SliceGeometry, write_series

    write_series(tmp_path / "input" / "ct", modality="CT", geometry=SliceGeometry(16, 16, 3, (2.0, 2.0), 2.0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMWEB_")}
    run = subprocess.run([sys.executable, "-m", "radpath", "run", "--input", str(tmp_path / "input"), "--output",
                          str(tmp_path / "out"), "--store", "dicomweb", "--no-airflow"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "DICOMWEB_URL: is required when STORE_TARGET=dicomweb (give --dicomweb URL, or --store folder)" \
        in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "out" / "runs").exists()


def test_the_printed_view_command_pastes_into_a_shell_as_it_is(tmp_path: Path):
    """The command printed at the end of a run, for an output with a space, an umlaut and a
    bracket in its path, split as a shell splits it: radpath view and that very folder."""
    import io
    import shlex

    from rich.console import Console

    from radpath.apps.mainjob import _print_results

    workflow_dir = tmp_path / "Ausgabe Ü [7]" / "runs" / "local__1"
    (workflow_dir / "batch" / "e1" / "link").mkdir(parents=True)
    (workflow_dir / "batch" / "e1" / "link" / "link.json").write_text("{}")
    out = io.StringIO()
    _print_results(Console(file=out, width=300), workflow_dir, None)
    (line,) = [line for line in out.getvalue().splitlines() if "radpath view" in line]
    assert shlex.split(line.split(": ", 1)[1]) == ["radpath", "view", str(workflow_dir)]
