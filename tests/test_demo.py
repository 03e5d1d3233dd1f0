"""`radpath demo`: the main job on generated data, every stage, no server, through the
radpath-map DAG under a local Airflow."""

from __future__ import annotations

import json

from radpath.pipeline.manifest import Manifest


def test_demo_runs_the_pipeline_on_a_generated_patient(demo_run):
    tmp_path, run = demo_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (workflow_dir,) = (tmp_path / "runs").iterdir()
    assert workflow_dir.name.startswith("manual__")  # an Airflow run id: the DAG ran it
    # One patient, two slides: two pairs (the kidney's and the liver's), each an element.
    elements = {p.name: p for p in (workflow_dir / "batch").iterdir()}
    assert sorted(elements) == ["biopsy-kidney", "biopsy-liver"]
    liver = Manifest.load(elements["biopsy-liver"])
    assert all(record.status.value == "done" for record in liver.stages.values()), liver.stages
    assert liver.facts["bodypart"]["organ"] == "liver" and liver.facts["seg-encode"]["segments"][0]["label"] == "Liver"
    element = elements["biopsy-kidney"]
    manifest = Manifest.load(element)
    assert list(manifest.stages) == ["wsi-dicomize", "pair", "bodypart", "nifti", "segment", "merge", "seg-encode",
                                     "quantify", "store", "link"]
    assert all(record.status.value == "done" for record in manifest.stages.values())
    nifti = manifest.facts["nifti"]
    assert nifti["modality"] == "CT" and all(nifti["slices"])
    facts = manifest.facts["bodypart"]
    assert (facts["organ"], facts["laterality"], facts["task"]) == ("kidney", "left", "total")
    segment = manifest.facts["segment"]
    # The slide names the left kidney; the phantom's left kidney is ~1700 voxels on this grid.
    assert segment["standin_weights"] is True and segment["task"] == "total"
    assert segment["classes"]["kidney_left"] > 1000
    # The left kidney only, as a SEG a viewer places on the CT's slices.
    (part,) = manifest.facts["merge"]["parts"]
    assert list(part["classes"]) == ["kidney_left"]
    seg = manifest.facts["seg-encode"]
    assert seg["encoder"] == "dcmqi" and seg["frames"] > 0
    assert seg["segments"] == [{"label": "Kidney, left", "type": "64033007", "modifier": "7771000",
                                "voxels": part["voxels"]}]
    assert seg["series_description"] == "Kidney, left (TotalSegmentator + radpath stand-in weights)"
    assert (element / "seg-encode" / seg["path"]).exists()
    # Stored in the demo's file store (no server), linked, and a page to open.
    store = tmp_path / "store"
    assert (store / manifest.facts["link"]["ohif"].split("StudyInstanceUIDs=")[1].split("&")[0]).is_dir()
    kos = manifest.facts["link"]
    assert kos["kos_sent"] is True and kos["target"] == f"folder {store}"
    for name in ("link.json", "qc.png", "index.html", "link.kos.dcm"):
        assert (element / "link" / name).is_file(), name
    # The kidney measured: a report on the SEG, stored with the pair and named in link.json.
    quantify = manifest.facts["quantify"]
    assert quantify["path"] and quantify["reason"] is None
    (measured,) = quantify["segments"]
    assert measured["voxels"] == part["voxels"] and len(measured["features"]) > 40
    link = json.loads((element / "link" / "link.json").read_text())
    assert link["measurements"]["sr"]["sop_instance_uid"] == quantify["sop_instance_uid"]
    assert link["measurements"]["volumes_ml"]["Kidney, left"] > 50
    assert any(store.rglob(quantify["sop_instance_uid"] + "*"))
    assert "radpath: elements of" in run.stdout and "│ done" in run.stdout
    assert f"result: {element}/link:" in run.stdout  # whole, on one line, to copy
    assert "segment" in run.stdout and "2/2" in run.stdout  # the progress bars' final state
    assert any((tmp_path / "logs").glob("radpath-run-*.log"))
