"""radpath-map run by a real Airflow (``dag.test()`` under a local SQLite home) against the
test Orthanc: the PACS holds a generated CT and a converted slide of the same patient, the
run is launched on the slide's series as the data explorer would, and afterwards the PACS
holds what a radiologist and a pathologist open."""

from __future__ import annotations

import json

import pydicom
import pytest
from pairs import modalities, put_patient

from radpath.adapters.dicomweb import DicomWeb
from radpath.adapters.settings import Settings
from radpath.apps.airflow_local import LocalAirflow
from radpath.synthetic import write_svs

pytestmark = [pytest.mark.pacs, pytest.mark.slow]


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


@pytest.fixture(scope="module")
def own_orthanc(tmp_path_factory):
    """A PACS of its own: radpath-batch looks at every slide in it."""
    from radpath.adapters.orthanc import LocalOrthanc

    pacs = LocalOrthanc(storage=tmp_path_factory.mktemp("batch-orthanc")).start()
    yield pacs
    pacs.stop()


def test_radpath_batch_processes_exactly_the_unlinked_complete_pairs(airflow, run_env, own_orthanc, tmp_path):
    """A scheduled run (empty conf) hands each unlinked slide with radiology to a radpath-map
    run of its own, carrying the project of the Variable radpath_batch_project."""
    project = {"name": "radpath-test", "id": "7f1c2b5e-0000-4000-8000-000000000003"}
    env = {**run_env, "DICOMWEB_URL": own_orthanc.dicomweb_url, "AIRFLOW_VAR_RADPATH_BATCH_PROJECT": json.dumps(project)}
    pacs = DicomWeb(Settings.from_env({"DICOMWEB_URL": own_orthanc.dicomweb_url}).dicomweb)
    linked = put_patient(pacs, tmp_path, "RP-BATCH-A", slide_site="right kidney")
    slide_only = put_patient(pacs, tmp_path, "RP-BATCH-C", ct=False, slide_site="left kidney")

    def batch_run():
        run = airflow.run("radpath-batch", {}, env)
        assert run.succeeded, "\n".join(run.log[-60:])
        assert all(child.dag_id == "radpath-map" and child.succeeded for child in run.triggered), run.log[-60:]
        assert all(child.conf["project_form"] == project for child in run.triggered)
        return sorted(uid for child in run.triggered for uid in child.conf["data_form"]["identifiers"])

    # The first run pairs A (C's patient has no CT/MR); afterwards A counts as linked.
    assert batch_run() == [linked["slide_series"]]
    assert len(modalities(pacs, linked["ct_study"])["SEG"]) == 1
    complete = put_patient(pacs, tmp_path, "RP-BATCH-B", slide_site="left kidney")

    assert batch_run() == [complete["slide_series"]]
    assert len(modalities(pacs, complete["ct_study"])["SEG"]) == 1
    assert len(modalities(pacs, linked["ct_study"])["SEG"]) == 1  # A not done twice
    assert "SEG" not in modalities(pacs, slide_only["slide_study"])  # C: no radiology, nothing made


def test_radpath_wsi_import_stores_uploaded_slides_and_hands_them_to_radpath_map(airflow, run_env, pacs, tmp_path):
    uids = put_patient(pacs, tmp_path, "RP-IMPORT-1", slide=False)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    svs = write_svs(uploads / "biopsy.svs", width=2048, height=1536, levels=2)
    (uploads / "biopsy.svs.json").write_text(
        '{"patient_id": "RP-IMPORT-1", "anatomic_site": "Niere links, Stanzbiopsie"}')
    (uploads / "broken.svs").write_bytes(b"not a slide at all")
    (uploads / "broken.svs.json").write_text('{"patient_id": "RP-IMPORT-1"}')
    # As Kaapana's UI posts it: the project the run belongs to travels with it.
    project = {"name": "radpath-test", "id": "7f1c2b5e-0000-4000-8000-000000000001",
               "kubernetes_namespace": "project-radpath-test"}
    conf = {"workflow_form": {"slides_folder": str(uploads)}, "project_form": project}

    run = airflow.run("radpath-wsi-import", conf, run_env)
    # broken.svs failed (named in the log) and fails the verdict; biopsy.svs went on.
    assert run.task_states["store"] == "success" and run.task_states["trigger-map"] == "success", (
        "\n".join(run.log[-80:]))
    assert run.task_states["report"] == "failed" and not run.succeeded
    assert any("broken.svs" in line and "failed" in line for line in run.log), "\n".join(run.log[-60:])
    slides = pacs.find_series(patient_id="RP-IMPORT-1", modality="SM")
    assert len(slides) == 1 and svs.path.name

    (mapped,) = run.triggered
    assert mapped.dag_id == "radpath-map" and mapped.succeeded, mapped.task_states
    # The child carries the parent's whole conf (project included, as Kaapana's
    # LocalDagTriggerOperator passes it), its data_form naming the stored slide series.
    assert mapped.conf["project_form"] == project and mapped.conf["workflow_form"] == conf["workflow_form"]
    assert mapped.conf["data_form"] == {"identifiers": [slides[0]["0020000E"]["Value"][0]]}
    found = modalities(pacs, uids["ct_study"])
    assert len(found["SEG"]) == 1 and len(found["KO"]) == 1, found


def test_find_unlinked_takes_at_most_the_limit_and_counts_the_rest(own_orthanc, tmp_path):
    from radpath.pipeline.discovery import find_unlinked_slides

    pacs = DicomWeb(Settings.from_env({"DICOMWEB_URL": own_orthanc.dicomweb_url}).dicomweb)
    new = [put_patient(pacs, tmp_path, f"RP-LIMIT-{n}", slide_site="liver")["slide_series"] for n in (1, 2)]
    found = find_unlinked_slides(pacs, limit=1)
    assert len(found.chosen) == 1 and found.chosen[0] in new
    assert found.left_for_later == 1
    everything = find_unlinked_slides(pacs, limit=10)
    assert sorted(everything.chosen) == sorted(new) and everything.left_for_later == 0
    with pytest.raises(ValueError, match="at least 1"):
        find_unlinked_slides(pacs, limit=0)
