"""The bodypart stage over a batch: organ and side into the manifest, or a reason to skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from radpath.pipeline.manifest import Manifest, Status
from radpath.synthetic import SliceGeometry, write_series

SMALL = SliceGeometry(16, 16, 3, (10.0, 10.0), 10.0)


def slide(shared_data: Path, folder: Path, text: str) -> None:
    """A real SM instance (highdicom's test slide) whose specimen is described by ``text`` only."""
    ds = pydicom.dcmread(shared_data / "sm/highdicom-sm_image-brain.dcm")
    specimen = ds.SpecimenDescriptionSequence[0]
    del specimen.PrimaryAnatomicStructureSequence
    specimen.SpecimenShortDescription = text
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / "slide.dcm")


def run_stage(workflow: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ORGAN", "LATERALITY"))}
    environ.update(WORKFLOW_DIR=str(workflow), BATCH_NAME="batch", OPERATOR_IN_DIR="slides",
                   OPERATOR_OUT_DIR="bodypart", **env)
    return subprocess.run([sys.executable, "-m", "radpath", "stage", "bodypart"],
                          capture_output=True, text=True, env=environ)


@pytest.fixture
def batch(tmp_path: Path, shared_data: Path) -> Path:
    root = tmp_path / "run"
    cases = {
        "a-kidney": "Niere links, Stanzbiopsie",
        "b-no-organ": "H&E Schnitt 3, Block A2",
        "c-rectum": "Rektum, Tumorresektat",
    }
    for name, text in cases.items():
        slide(shared_data, root / "batch" / name / "slides", text)
        write_series(root / "batch" / name / "ct", modality="CT", geometry=SMALL)
    (root / "batch" / "d-no-slide" / "slides").mkdir(parents=True)
    return root


def test_stage_resolves_skips_with_reasons_and_writes_the_manifest(batch: Path):
    run = run_stage(batch)
    assert run.returncode == 0, run.stderr

    kidney = Manifest.load(batch / "batch/a-kidney")
    assert kidney.stages["bodypart"].status is Status.DONE
    facts = kidney.facts["bodypart"]
    assert (facts["organ"], facts["laterality"], facts["modality"], facts["task"]) == ("kidney", "left", "CT", "total")
    assert facts["snomed"]["code"] == "64033007"
    assert facts["resolved"]["source"] == "SpecimenDescriptionSequence[0].SpecimenShortDescription"

    reasons = {name: Manifest.load(batch / "batch" / name).stages["bodypart"] for name in
               ("b-no-organ", "c-rectum", "d-no-slide")}
    assert all(r.status is Status.SKIPPED for r in reasons.values())
    assert reasons["b-no-organ"].reason.startswith("slide names no organ")
    assert reasons["c-rectum"].reason == "TotalSegmentator cannot segment rectum on CT (no class for it in task total)"
    assert reasons["d-no-slide"].reason == "no slide (DICOM SM) in the element"
    # The task log names each element's outcome, never the patient.
    assert "a-kidney: kidney, left" in run.stderr
    assert "slide names no organ" in run.stderr


def test_workflow_form_overrides_are_recorded(batch: Path):
    run = run_stage(batch, ORGAN="liver", LATERALITY="right")
    assert run.returncode == 0
    facts = Manifest.load(batch / "batch/b-no-organ").facts["bodypart"]
    assert (facts["organ"], facts["laterality"], facts["override"]) == ("liver", "right", "ORGAN")
    assert facts["resolved"]["organ"] is None  # what the slide said stays on record


def test_unknown_organ_override_names_the_variable(batch: Path):
    run = run_stage(batch, ORGAN="kidny")
    assert run.returncode == 1
    manifest = Manifest.load(batch / "batch/a-kidney")
    assert manifest.stages["bodypart"].error == "SettingsError: ORGAN: unknown organ 'kidny' (a key of anatomy/master.json)"
