"""radpath-map run by a real Airflow (``dag.test()`` under a local SQLite home) against the
test Orthanc: the PACS holds a generated CT and a converted slide of the same patient, the
run is launched on the slide's series as the data explorer would, and afterwards the PACS
holds what a radiologist and a pathologist open."""

from __future__ import annotations

import pydicom
import pytest

from radpath.airflow_local import LocalAirflow
from radpath.dicomweb import TAG_MODALITY, TAG_SERIES_UID, DicomWeb
from radpath.settings import Settings
from radpath.slides.convert import ConversionOptions, dicomize_slide
from radpath.slides.linkage import SlideLink
from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series, write_svs

pytestmark = [pytest.mark.pacs, pytest.mark.slow]


def put_patient(pacs: DicomWeb, tmp, patient_id: str, *, ct: bool = True, slide_site: str | None = None,
                slide: bool = True) -> dict[str, str]:
    """Store a phantom CT and/or a converted slide of one patient; returns their UIDs."""
    study = SyntheticStudy(patient=SyntheticPatient(patient_id=patient_id, name=f"Phantom^{patient_id}"),
                           accession_number=f"ACC-{patient_id}")
    uids = {"ct_study": study.study_instance_uid}
    if ct:
        geometry = SliceGeometry(128, 128, 60, (3.0, 3.0), 5.0, center=(0.0, 0.0, 10.0))
        series = write_series(tmp / f"{patient_id}-ct", modality="CT", geometry=geometry, study=study)
        pacs.store(series.paths)
        uids["ct_series"] = series.series_instance_uid
    if slide:
        svs = write_svs(tmp / f"{patient_id}-slide.svs", width=2048, height=1536, levels=2)
        # A pathology system's own study: same patient, no reference to the CT's study.
        link = SlideLink(patient_id=patient_id, source="test", patient_name=f"Phantom^{patient_id}",
                         anatomic_site=slide_site, specimen_description=slide_site or "Biopsie")
        converted = dicomize_slide(svs.path, tmp / f"{patient_id}-dicom", link, ConversionOptions(workers=2))
        pacs.store(converted.files)
        uids["slide_series"], uids["slide_study"] = converted.series_instance_uid, converted.study_instance_uid
    return uids


def modalities(pacs: DicomWeb, study: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in pacs.find_series(study_instance_uid=study):
        found.setdefault(row[TAG_MODALITY]["Value"][0], []).append(row[TAG_SERIES_UID]["Value"][0])
    return found


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> LocalAirflow:
    root = tmp_path_factory.mktemp("airflow")
    return LocalAirflow(home=root / "home", data_dir=root / "data")


@pytest.fixture(scope="module")
def run_env(orthanc) -> dict[str, str]:
    return {"DICOMWEB_URL": orthanc.dicomweb_url, "TOTALSEG_STANDIN_WEIGHTS": "true", "DICOMWEB_RETRIES": "2",
            "DICOMWEB_BACKOFF": "0.05", "STORE_TARGET": "dicomweb", "RADPATH_LOG_LEVEL": "INFO"}


@pytest.fixture(scope="module")
def pacs(orthanc) -> DicomWeb:
    return DicomWeb(Settings.from_env({"DICOMWEB_URL": orthanc.dicomweb_url}).dicomweb)


def test_radpath_map_links_left_kidney_once(airflow, run_env, pacs, tmp_path):
    uids = put_patient(pacs, tmp_path, "RP-DAG-1", slide_site="left kidney")
    conf = {"data_form": {"identifiers": [uids["slide_series"]]}, "workflow_form": {}}

    first = airflow.run("radpath-map", conf, run_env)
    assert first.succeeded, "\n".join(first.log[-60:])
    assert set(first.task_states.values()) == {"success"}, first.task_states
    found = modalities(pacs, uids["ct_study"])
    assert len(found["SEG"]) == 1 and len(found["KO"]) == 1, found
    (seg_path,) = pacs.retrieve_series(uids["ct_study"], found["SEG"][0], tmp_path / "seg")
    seg = pydicom.dcmread(seg_path)
    (segment,) = seg.SegmentSequence
    kind = segment.SegmentedPropertyTypeCodeSequence[0]
    assert kind.CodeMeaning == "Kidney"
    assert [m.CodeMeaning for m in kind.SegmentedPropertyTypeModifierCodeSequence] == ["Left"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uids["ct_series"]
    kos = pydicom.dcmread(pacs.retrieve_series(uids["ct_study"], found["KO"][0], tmp_path / "kos")[0])
    evidence = {item.StudyInstanceUID: {s.SeriesInstanceUID for s in item.ReferencedSeriesSequence}
                for item in kos.CurrentRequestedProcedureEvidenceSequence}
    assert uids["slide_series"] in evidence[uids["slide_study"]]
    assert found["SEG"][0] in evidence[uids["ct_study"]]
    # The per-element lines of every stage reach the task log.
    assert any("segment [1/1]" in line and ": done" in line for line in first.log)

    second = airflow.run("radpath-map", conf, run_env)
    assert second.succeeded, "\n".join(second.log[-60:])
    assert second.run_id != first.run_id
    assert modalities(pacs, uids["ct_study"]) == found  # nothing added
    assert any("store [1/1]" in line and ": done" in line for line in second.log)


def test_radpath_map_skips_a_slide_that_names_no_organ(airflow, run_env, pacs, tmp_path):
    uids = put_patient(pacs, tmp_path, "RP-DAG-2", slide_site=None)
    conf = {"data_form": {"identifiers": [uids["slide_series"]]}, "workflow_form": {}}

    run = airflow.run("radpath-map", conf, run_env)
    # The only element ends at bodypart: that task and the rest of the chain are skipped.
    assert run.task_states["pair"] == "success"
    assert {run.task_states[t] for t in ("bodypart", "segment", "store", "link")} == {"skipped"}
    assert run.task_states["report"] == "success" and run.succeeded
    lines = [line for line in run.log if "bodypart [1/1]" in line and "skipped" in line]
    assert lines and "organ" in lines[0], "\n".join(run.log[-60:])
    assert "SEG" not in modalities(pacs, uids["ct_study"])
