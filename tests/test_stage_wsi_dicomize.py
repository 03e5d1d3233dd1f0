"""The wsi-dicomize stage over a batch: linked slides convert, others are named and kept out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from radpath.adapters.settings import Settings
from radpath.pipeline.batch import run_stage
from radpath.pipeline.manifest import Manifest, Status
from radpath.pipeline.stages.wsi_dicomize import run_wsi_dicomize

pytestmark = pytest.mark.filterwarnings("ignore:get_frame_offsets is deprecated", "ignore:hamamatsu-format")


def settings_for(root: Path, **env: str) -> Settings:
    return Settings.from_env({"WORKFLOW_DIR": str(root), "BATCH_NAME": "batch", "OPERATOR_IN_DIR": "slides",
                              "OPERATOR_OUT_DIR": "wsi-dicomize", **env})


@pytest.fixture
def batch(tmp_path: Path, shared_data: Path) -> Path:
    svs = shared_data / "wsi/CMU-1-Small-Region.svs"
    root = tmp_path / "run"

    def element(name: str) -> Path:
        folder = root / "batch" / name / "slides"
        folder.mkdir(parents=True)
        return folder

    linked = element("linked")
    shutil.copy(svs, linked / "biopsy.svs")
    (linked / "biopsy.svs.json").write_text(json.dumps(
        {"patient_id": "RP-42", "accession_number": "ACC-42", "anatomic_site": "Niere links, Stanzbiopsie"}))
    shutil.copy(svs, element("unlinked") / "orphan.svs")
    mixed = element("mixed")
    shutil.copy(svs, mixed / "good.svs")
    (mixed / "bad.svs").write_text("not a slide")
    (mixed / "radpath-slides.csv").write_text("slide,patient_id\ngood.svs,RP-43\nbad.svs,RP-43\n")
    broken = element("broken")
    (broken / "only.svs").write_text("not a slide either")
    (broken / "only.svs.json").write_text(json.dumps({"patient_id": "RP-44"}))
    dicom = element("dicom")
    shutil.copy(shared_data / "sm/highdicom-sm_image-brain.dcm", dicom / "already.dcm")
    return root


def test_stage_converts_linked_slides_and_names_the_rest(batch: Path):
    result = run_stage("wsi-dicomize", run_wsi_dicomize, settings_for(batch))
    statuses = {r.element: (r.status, r.detail) for r in result.elements}
    assert result.exit_code == 0  # the good elements go on
    assert [r.element for r in result.failed] == ["broken"]  # the element with no usable slide

    assert statuses["linked"][0] is Status.DONE
    facts = Manifest.load(batch / "batch/linked").facts["wsi-dicomize"]
    (slide,) = facts["slides"]
    assert (slide["file"], slide["link_source"], slide["accession_number"]) == ("biopsy.svs", "sidecar biopsy.svs.json", "ACC-42")
    assert slide["anatomy"]["organ"] == "kidney" and slide["anatomy"]["laterality"] == "left"
    files = list((batch / "batch/linked/wsi-dicomize/biopsy.svs").glob("*.dcm"))
    assert files and {pydicom.dcmread(f, stop_before_pixels=True).PatientID for f in files} == {"RP-42"}

    assert statuses["unlinked"] == (Status.SKIPPED, "no patient link for orphan.svs")
    assert not any((batch / "batch/unlinked/wsi-dicomize").iterdir())

    # One bad slide is rejected on its own: the patient's good slide goes on.
    assert statuses["mixed"][0] is Status.DONE
    mixed = Manifest.load(batch / "batch/mixed").facts["wsi-dicomize"]
    assert [s["file"] for s in mixed["slides"]] == ["good.svs"]
    ((bad),) = mixed["failed"]
    assert bad["file"] == "bad.svs"
    assert "bad.svs: cannot convert, format SVS (not a TIFF/DICOM container)" in bad["reason"]
    mixed_out = batch / "batch/mixed/wsi-dicomize"
    assert sorted(p.name for p in mixed_out.iterdir()) == ["good.svs"]  # nothing partial of bad.svs
    assert statuses["broken"][0] is Status.FAILED
    assert "only.svs: cannot convert, format SVS (not a TIFF/DICOM container)" in statuses["broken"][1]

    assert statuses["dicom"][0] is Status.DONE
    (passed,) = Manifest.load(batch / "batch/dicom").facts["wsi-dicomize"]["slides"]
    assert passed["passthrough"] is True
    copied = next((batch / "batch/dicom/wsi-dicomize").rglob("already.dcm"))
    assert copied.read_bytes() == (batch / "batch/dicom/slides/already.dcm").read_bytes()


def test_allow_unlinked_creates_its_own_study_and_says_so(batch: Path, caplog):
    caplog.set_level("INFO", logger="radpath")
    result = run_stage("wsi-dicomize", run_wsi_dicomize, settings_for(batch, ALLOW_UNLINKED="True"))
    assert {r.element: r.status for r in result.elements}["unlinked"] is Status.DONE
    (slide,) = Manifest.load(batch / "batch/unlinked").facts["wsi-dicomize"]["slides"]
    assert slide["unlinked"] is True and slide["study_instance_uid"]
    assert f"unlinked: created its own study {slide['study_instance_uid']}" in caplog.text


def test_patient_identity_never_reaches_info_logs(batch: Path, caplog):
    caplog.set_level("INFO", logger="radpath")
    run_stage("wsi-dicomize", run_wsi_dicomize, settings_for(batch))
    assert "RP-42" not in caplog.text and "RP-43" not in caplog.text


def test_radiology_dicom_beside_the_slides_is_not_taken_for_a_slide(tmp_path: Path):
    from radpath.synthetic import SliceGeometry, write_series

    root = tmp_path / "run"
    write_series(root / "batch/ct-only/slides", geometry=SliceGeometry(8, 8, 2, (1.0, 1.0), 1.0))
    result = run_stage("wsi-dicomize", run_wsi_dicomize, settings_for(root))
    assert [(r.status, r.detail) for r in result.elements] == [(Status.SKIPPED, "no slide file in slides/")]
