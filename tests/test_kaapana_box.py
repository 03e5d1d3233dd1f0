"""radpath on Kaapana, run: Kaapana 0.6.0's own plugin under a real Airflow 2.11, its pods as
local processes (the one stand-in for Kubernetes, tests/kaapana_pods), Orthanc as the PACS
behind Kaapana's service names (DICOMweb as dicom-web-filter, DIMSE as CTP), and stand-in
Keycloak, OpenSearch and MinIO (moto's S3 behind an STS stand-in): tests/kaapana_box.py,
tests/kaapana_box_driver.py, tests/kaapana_box_services.py. Each box is a private network
and mount namespace, so Kaapana's names, ports and paths are its own."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from conftest import skip_unless_ci
from kaapana_box import PROJECT, image_environments, run_box
from kaapana_pods import kaapana_images
from pairs import Files, put_patient
from slide_pane import frames_of

from radpath.adapters.cache import cache_dir
from radpath.apps.viewer.assets import ViewerUnavailable, node_modules
from radpath.apps.viewer.slim import built_slim

pytestmark = [pytest.mark.pacs, pytest.mark.slow]


def selection(series: str) -> dict:
    """The conf Kaapana's backend posts for a data-explorer selection of one series in the
    project (single execution: one conf per series, workflows/crud.py)."""
    return {"data_form": {"identifiers": [series], "dataset_name": "radpath-test"},
            "workflow_form": {"single_execution": True}, "project_form": PROJECT}


def series_of(result: dict, study: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for series in result["pacs"]:
        if series["study"] == study:
            found.setdefault(series["modality"], []).append(series)
    return found


def runs_of(result: dict) -> list[dict]:
    """Every DAG run of the box, triggered ones included, in the order they were created."""
    return result["runs"]


def image(pod: dict) -> str:
    """The image a pod-log record names, without registry and tag (``radpath-segment``)."""
    return pod["image"].rsplit("/", 1)[-1].split(":", 1)[0]


def most_at_once(pods: list[dict], image_name: str | None = None) -> int:
    """The most pods (of ``image_name``, or any) running at one moment, from the runner's log
    of start and end events."""
    events = sorted((pod["at"], 1 if pod["event"] == "start" else -1) for pod in pods
                    if image_name is None or image(pod) == image_name)
    running = most = 0
    for _, change in events:  # at one instant, an end (-1) sorts before a start
        running += change
        most = max(most, running)
    return most


#: Series selected in the data explorer for one radpath-map workflow: more runs than the
#: NODE_RAM pool has room for segment pods at once (2), so the pool's bound shows.
SELECTED = 3


@pytest.fixture(scope="module")
def mapped(tmp_path_factory, kaapana_source):
    """A data-explorer selection of three slides, each of its own patient with a CT, started
    as Kaapana's backend starts a single-execution workflow (one job per series, all at
    once); then radpath-map again on the first slide."""
    tmp = tmp_path_factory.mktemp("box-map")
    seed = Files()
    patients = [put_patient(seed, tmp, f"RP-BOX-{n}", slide_site="left kidney") for n in range(1, SELECTED + 1)]
    jobs = [("radpath-map", selection(uids["slide_series"])) for uids in patients]
    slim = built_slim()  # the patient view's check needs SLIM (set-up builds it) and a browser:
    if slim is not None:  # its driver is fetched here, as the box has no network
        try:
            node_modules()
        except ViewerUnavailable:
            slim = None
    check = {"slim": str(slim.www), "study": patients[0]["ct_study"], "slide_series": patients[0]["slide_series"],
             "cache": str(cache_dir())}
    return patients, run_box(tmp / "box", [jobs, jobs[:1]], seed.paths, viewer_check=check if slim else None)


def test_radpath_map_on_kaapana_links_the_pair_through_ctp_and_publishes_the_page(mapped):
    patients, result = mapped
    uids = patients[0]
    runs = runs_of(result)
    first, second = (run for run in runs if run["conf"]["data_form"]["identifiers"] == [uids["slide_series"]])
    assert first["state"] == "success" and set(first["task_states"].values()) == {"success"}, first["task_states"]
    assert list(first["task_states"])[:2] == ["get-input-data", "wsi-dicomize"]  # Kaapana's own GetInputOperator
    made = series_of(result, uids["ct_study"])
    (seg,), (kos,), (sr,) = made["SEG"], made["KO"], made["SR"]
    for series in (seg, kos, sr):  # through CTP (DIMSE), filed into the project and the dataset
        assert series["origin"] == "DicomProtocol"
        assert series["called_ae"] == "kp-radpath-test" and series["calling_ae"] == "kp-radpath-test"
    pages = [key for key in result["bucket"] if key.startswith("staticwebsiteresults/") and uids["slide_series"] in key]
    assert {key.rsplit("/", 1)[-1] for key in pages} == {"index.html", "patient.html", "qc.png"}
    # The run's research table in the project's bucket: the pair's kidney measured.
    tables = [text for key, text in result["tables"].items()
              if key.startswith("radpath/report/quantification-") and uids["slide_series"] in text]
    assert len(tables) == 2, list(result["tables"])  # the first run's and the second's
    (row,) = list(csv.DictReader(io.StringIO(tables[0])))
    assert row["slide_series_instance_uid"] == uids["slide_series"] and row["status"] == "measured"
    assert float(row["volume_ml"]) > 50 and row["organ"] == "left kidney"
    assert result["run_folders"] == []  # Kaapana's workflow cleaner removed every run's folder
    # Through Kaapana's dicom-web-filter, the project's user sees the pair and what radpath
    # made of it (filed into the project by the called AE); the second project's user, none.
    project_user, other_user = result["visible"]
    made_series = {series["series"] for series in (seg, kos, sr)}
    assert made_series | {uids["slide_series"]} <= set(result["visible"][project_user])
    assert not (made_series | {uids["slide_series"]}) & set(result["visible"][other_user])
    # the segment pod ran on the models volume's weights (radpath's stand-ins laid out there)
    assert any("STAND-IN weights from /models/radpath/totalsegmentator" in line for line in first["log"])
    # ... which the run's provide-weights pod unpacked onto the project's own models volume
    # (the model installer's volume is the services namespace's, which no project pod mounts)
    assert first["task_states"]["provide-weights"] == "success"
    assert second["state"] == "success" and runs.index(second) == len(runs) - 1
    assert series_of(result, uids["ct_study"])["SEG"] == [seg]  # the second run added nothing
    assert series_of(result, uids["ct_study"])["KO"] == [kos]


def test_the_published_patient_view_shows_the_projects_pair_in_slim_through_the_filter(mapped):
    """Each project user signs in on the Kaapana host (stand-in: tests/kaapana_host.py) and opens
    the patient view radpath published into the project's bucket. The project's user sees its
    pair, and SLIM (Kaapana's own local.js) draws the slide from frames read through
    /dicom-web-filter with the user's session; the other project's user sees no pair. Without
    a session the host answers nothing."""
    patients, result = mapped
    if "viewer_check" not in result:
        skip_unless_ci("SLIM is not built on this machine (`make setup` builds it), or no browser driver (npm)")
    check = result["viewer_check"]
    assert "error" not in check, check.get("error")
    assert set(check["unsigned"].values()) == {401}, check["unsigned"]
    project_user, other_user = result["visible"]
    uids = patients[0]
    member, outsider = check["users"][project_user], check["users"][other_user]
    assert member["pairs"] == "1" and member["list"][0].startswith("left kidney"), member
    # Kaapana's URL schemes: OHIF on the study with the SEG, SLIM on the slide's series.
    assert member["ohif"].startswith(f"/ohif/viewer?StudyInstanceUIDs={uids['ct_study']}&initialSeriesInstanceUID=")
    assert member["slide"] == f"/slim/studies/{uids['slide_study']}/series/{uids['slide_series']}"
    pane = member["slide_pane"]
    assert pane["slim"] and pane["drawn"] and pane["pink"] > 5000, pane
    origin = pane["url"].split("/slim/", 1)[0]
    frames = frames_of(pane, uids["slide_series"])
    assert frames and all(url.startswith(f"{origin}/dicom-web-filter/studies/") for url in frames), frames[:3]
    assert outsider["pairs"] == "0" and outsider["list"] == [] and "slide_pane" not in outsider, outsider
    assert outsider["status"] == "radpath has linked no slide to this study yet"


def test_parallel_runs_of_a_project_unpack_the_weights_onto_its_volume_once(mapped):
    """Three runs of one project start at once: one provide-weights pod unpacks the models from
    the model image onto the project's models volume, the others wait for it (a lock on the
    volume) and find them there."""
    _, result = mapped
    runs = runs_of(result)[:SELECTED]
    unpacked = [run for run in runs if any("provide-weights: unpacking" in line for line in run["log"])]
    found = [run for run in runs if any("models are on the project's volume" in line for line in run["log"])]
    assert len(unpacked) == 1 and len(found) == SELECTED, [run["run_id"] for run in unpacked]
    assert {image(pod) for pod in result["pods"] if pod["event"] == "start"} >= {"radpath-totalsegmentator-models"}


def test_every_pod_runs_in_its_images_own_environment_on_the_bases_python(mapped):
    """Each pod's programs come from its image's environment (built by its Dockerfiles'
    install lines on Kaapana's base Python, 3.12), none from the development environments."""
    _, result = mapped
    starts = [pod for pod in result["pods"] if pod["event"] == "start" and "worker_for" not in pod]
    assert {"get-input", "radpath-segment", "radpath-quantify", "radpath-store", "radpath-totalsegmentator-models",
            "workflow-cleaner"} <= {image(pod) for pod in starts}
    record = json.loads(image_environments().read_text())
    for pod in starts:
        venv = record[image(pod)]["venv"]
        assert pod["python"]["version"].startswith("3.12.") and pod["python"]["executable"] == f"{venv}/bin/python", pod
        assert pod["command"][0].startswith(f"{venv}/bin/"), pod["command"]
        assert not any("/.venv/" in word or "/.venv-kaapana/" in word for word in pod["command"]), pod["command"]


def test_segment_says_it_runs_on_the_cpu_because_kaapana_assigned_no_gpu(mapped):
    """No GPU on this node, so the platform has no GPU support: Kaapana's KaapanaBaseOperator
    requests no GPU for the segment pod and gives it an empty CUDA_VISIBLE_DEVICES, and the
    segment stage says it runs on the CPU, and why."""
    from kaapana_box import node_has_gpu

    if node_has_gpu():
        pytest.skip("this node has a GPU: the box's platform has GPU support")
    _, result = mapped
    segments = [pod for pod in result["pods"] if pod["event"] == "start" and image(pod) == "radpath-segment"]
    assert segments and all(pod["gpu_request"] in (0, "0") and pod["cuda_visible_devices"] == "" for pod in segments), \
        [(pod["gpu_request"], pod["cuda_visible_devices"]) for pod in segments]
    first = runs_of(result)[0]
    assert any("CPU: no GPU was assigned to this pod (CUDA_VISIBLE_DEVICES is empty" in line
               for line in first["log"]), [line for line in first["log"] if "GPU" in line or "CPU" in line][-10:]


def test_an_image_whose_environment_cannot_be_built_fails_its_task_with_pips_message(tmp_path, kaapana_source):
    """The negative control of the images' environments: the quantify image pinned back to
    pyradiomics 3.0.1's sdist as released (what pip-install-radpath did before) cannot be
    built on Python 3.12, and the box's quantify task fails with pip's own message; nothing
    after it is stored."""
    pinned_back = tmp_path / "quantify-pinned-back"
    pinned_back.mkdir()
    (pinned_back / "Dockerfile").write_text(
        'FROM local-only/radpath-base:latest\nLABEL IMAGE="radpath-quantify"\n'
        "RUN pip install --no-cache-dir numpy setuptools wheel\n"
        "RUN pip install --no-cache-dir --no-build-isolation pyradiomics==3.0.1\n"
        "RUN pip-install-radpath quantify,seg,nifti\n"
        'CMD ["radpath", "stage", "quantify"]\n')
    broken = kaapana_images.build("radpath-quantify", roots=(pinned_back, kaapana_images.REPO,
                                                             kaapana_images.KAAPANA_SOURCE))
    assert broken["venv"] is None and "pyradiomics==3.0.1` failed" in broken["error"], broken.get("error")
    assert "SafeConfigParser" in broken["log"], broken["log"][-2000:]
    record = {**json.loads(image_environments().read_text()), "radpath-quantify": broken}
    (tmp_path / "images.json").write_text(json.dumps(record))
    seed = Files()
    uids = put_patient(seed, tmp_path, "RP-BOX-PR", slide_site="left kidney")
    result = run_box(tmp_path / "box", [[("radpath-map", selection(uids["slide_series"]))]], seed.paths,
                     image_envs=tmp_path / "images.json")
    (run,) = runs_of(result)
    assert run["task_states"]["seg-encode"] == "success" and run["task_states"]["quantify"] == "failed", \
        run["task_states"]
    assert any("the environment of image radpath-quantify could not be built" in line for line in run["log"])
    assert any("SafeConfigParser" in line for line in run["log"]), run["log"][-40:]
    assert not {"SEG", "SR", "KO"} & set(series_of(result, uids["ct_study"]))


def test_pods_run_in_the_project_namespace_with_the_labels_kaapana_gives(mapped):
    _, result = mapped
    starts = [pod for pod in result["pods"] if pod["event"] == "start"]
    assert {pod["namespace"] for pod in starts} == {PROJECT["kubernetes_namespace"]}
    ctp = {image(pod) for pod in starts if pod["labels"].get("network-access-ctp") == "true"}
    assert ctp == {"radpath-store", "radpath-link"}
    assert all(pod["labels"]["kaapana.ai/type"] == "processing-container" for pod in starts)


def test_a_single_execution_selection_runs_one_run_per_slide_in_parallel_bounded_by_the_pool(mapped):
    """Three selected slides: three radpath-map runs, their pods in parallel, but never more
    segment pods at once than Kaapana's NODE_RAM pool has room for (the pool's slots over
    the segment task's), all three pairs linked."""
    patients, result = mapped
    runs = runs_of(result)[:SELECTED]
    assert [run["state"] for run in runs] == ["success"] * SELECTED
    assert sorted(run["conf"]["data_form"]["identifiers"][0] for run in runs) == \
        sorted(uids["slide_series"] for uids in patients)
    for uids in patients:
        made = series_of(result, uids["ct_study"])
        assert len(made["SEG"]) == 1 and len(made["KO"]) == 1, uids
    pool, slots = runs[0]["task_pools"]["segment"]
    room = result["pools"][pool] // slots
    assert pool == "NODE_RAM" and room == 2
    assert 1 <= most_at_once(result["pods"], "radpath-segment") <= room
    assert most_at_once(result["pods"]) >= 2  # the runs did not wait for one another


def test_most_at_once_counts_overlapping_pods():
    """The negative control of the bound above: three segment pods that overlap count 3."""
    def pod(event, at, name="radpath-segment"):
        return {"event": event, "at": at, "image": f"registry/{name}:0.6.0"}

    log = [pod("start", 0), pod("start", 1), pod("start", 2), pod("end", 3), pod("end", 3),
           pod("start", 3, "radpath-nifti"), pod("end", 4), pod("end", 5, "radpath-nifti")]
    assert most_at_once(log, "radpath-segment") == 3
    assert most_at_once(log) == 3
    assert most_at_once(log[:2] + log[3:5]) == 2


def test_a_store_pod_without_the_ctp_label_cannot_reach_ctp_and_stores_nothing_half(tmp_path, kaapana_source):
    """The negative control of the network policy: the same run with the store pod's
    network-access-ctp label taken out of the installed operators fails at store, naming
    the CTP it could not reach, and the PACS holds no SEG and no KOS."""
    seed = Files()
    uids = put_patient(seed, tmp_path, "RP-BOX-2", slide_site="left kidney")

    def unlabel(dags):
        operators = dags / "radpath_operators" / "RadpathBaseOperator.py"
        text = operators.read_text()
        assert '"network-access-ctp": "true"' in text
        operators.write_text(text.replace('"network-access-ctp": "true"', '"network-access-ctp": "false"'))

    result = run_box(tmp_path / "box", [[("radpath-map", selection(uids["slide_series"]))]], seed.paths,
                     edit_dags=unlabel)
    (run,) = runs_of(result)
    assert run["task_states"]["seg-encode"] == "success" and run["task_states"]["store"] == "failed", run["task_states"]
    assert run["state"] == "failed"
    assert any("cannot reach the C-STORE peer ctp-dicom-service.services.svc:11112" in line
               for line in run["log"]), run["log"][-60:]
    assert not {"SEG", "KO"} & set(series_of(result, uids["ct_study"]))


@pytest.fixture(scope="module")
def imported_and_batched(tmp_path_factory, kaapana_source):
    """One box: radpath-wsi-import on an uploaded SVS with its sidecar and a corrupt upload,
    then radpath-batch unpaused with the project Variable set, started by its schedule."""
    from radpath.synthetic import write_svs

    tmp = tmp_path_factory.mktemp("box-import")
    seed = Files()
    importing = put_patient(seed, tmp, "RP-BOX-IMP", slide=False)
    batch_pair = put_patient(seed, tmp, "RP-BOX-BA", slide_site="right kidney")
    slide_only = put_patient(seed, tmp, "RP-BOX-BC", ct=False, slide_site="left kidney")
    svs = write_svs(tmp / "biopsy.svs", width=2048, height=1536, levels=2)
    uploads = {"biopsy.svs": svs.path.read_bytes(),
               "biopsy.svs.json": b'{"patient_id": "RP-BOX-IMP", "anatomic_site": "Niere links"}',
               "broken.svs": b"not a slide at all", "broken.svs.json": b'{"patient_id": "RP-BOX-IMP"}'}
    conf = {"data_form": {"action_files": sorted(uploads)}, "workflow_form": {}, "project_form": PROJECT}
    result = run_box(tmp / "box", [[("radpath-wsi-import", conf)], [("radpath-batch", None)]], seed.paths,
                     uploads=uploads, env={"AIRFLOW_VAR_RADPATH_BATCH_PROJECT": json.dumps(PROJECT)},
                     incoming_seconds=SLOW_INCOMING_SECONDS)
    return {"importing": importing, "batch_pair": batch_pair, "slide_only": slide_only}, result


#: A platform whose incoming pipeline takes this long to index what CTP received: longer than a
#: child run's get-input takes to start, so a child started at once would not find its slide.
SLOW_INCOMING_SECONDS = 30
#: Longer than a child's get-input takes to start and fail, and to try again where it retries
#: (KaapanaBaseOperator's default: retries=1, retry_delay 30 s).
SLOWER_INCOMING_SECONDS = 60
WAITING = re.compile(r"waiting for Kaapana's incoming pipeline to index 1 of 1 slide series in "
                     + re.escape(PROJECT["opensearch_index"]))


def test_radpath_wsi_import_on_kaapana_takes_uploads_and_hands_the_slide_on_in_the_project(imported_and_batched):
    uids, result = imported_and_batched
    imported, linked, *_ = runs_of(result)
    assert imported["dag_id"] == "radpath-wsi-import"
    assert imported["task_states"]["get-uploads"] == "success" and imported["task_states"]["store"] == "success"
    assert imported["task_states"]["report"] == "failed"  # broken.svs failed, and is named
    assert any("broken.svs" in line and "failed" in line for line in imported["log"])
    slides = [s for s in result["pacs"] if s["modality"] == "SM" and s["study"] != uids["batch_pair"]["ct_study"]
              and s["series"] not in (uids["batch_pair"]["slide_series"], uids["slide_only"]["slide_series"])]
    assert len(slides) == 1
    assert linked["dag_id"] == "radpath-map" and linked["state"] == "success", linked["task_states"]
    assert linked["conf"]["project_form"] == PROJECT
    assert linked["conf"]["data_form"]["identifiers"] == [slides[0]["series"]]
    made = series_of(result, uids["importing"]["ct_study"])
    assert len(made["SEG"]) == 1 and len(made["KO"]) == 1


def test_radpath_wsi_import_starts_radpath_map_only_once_kaapana_has_indexed_the_slide(imported_and_batched):
    """Kaapana's GetInputOperator, a child's first task, finds a series only in the project's
    OpenSearch index, which Kaapana's incoming pipeline fills some time after CTP received it
    (here 30 s). trigger-map waits for it, so the child's get-input finds the slide at its
    first try."""
    _, result = imported_and_batched
    imported, linked, *_ = runs_of(result)
    assert any(WAITING.search(line) for line in imported["log"]), [l for l in imported["log"] if "trigger" in l][-20:]
    assert linked["task_tries"]["get-input-data"] == 1, [l for l in linked["log"] if "No metadata found" in l]
    assert not any("No metadata found" in line for line in linked["log"])


def test_a_child_started_before_kaapana_indexed_its_slide_finds_nothing(tmp_path, kaapana_source):
    """The negative control of trigger-map's wait: with it taken out of the installed operators,
    radpath-map starts at once on the slide wsi-import stored, and Kaapana's get-input finds no
    metadata in the project's index, which the incoming pipeline fills only later. Nothing is
    made for the patient."""
    from radpath.synthetic import write_svs

    svs = write_svs(tmp_path / "biopsy.svs", width=1024, height=768, levels=1)
    uploads = {"biopsy.svs": svs.path.read_bytes(),
               "biopsy.svs.json": b'{"patient_id": "RP-BOX-NI", "anatomic_site": "Niere links"}'}
    conf = {"data_form": {"action_files": sorted(uploads)}, "workflow_form": {}, "project_form": PROJECT}
    result = run_box(tmp_path / "box", [[("radpath-wsi-import", conf)]], uploads=uploads,
                     incoming_seconds=SLOWER_INCOMING_SECONDS,
                     edit_dags=lambda dags: _disable(dags, "radpath_operators/TriggerMapOperator.py",
                                                     "if IN_KAAPANA:\n        ready = indexed_series("))
    imported, child = runs_of(result)
    assert imported["task_states"]["trigger-map"] == "success" and not any(WAITING.search(l) for l in imported["log"])
    assert child["dag_id"] == "radpath-map" and child["state"] == "failed", child["task_states"]
    assert child["task_states"]["get-input-data"] == "failed"
    assert any(f"No metadata found in self.project_index='{PROJECT['opensearch_index']}'" in line
               for line in child["log"]), child["log"][-40:]
    assert not [s for s in result["pacs"] if s["modality"] in ("SEG", "SR", "KO")]


def test_a_scheduled_radpath_batch_on_kaapana_links_exactly_the_unlinked_complete_pair(imported_and_batched):
    """The scheduler starts radpath-batch as ``scheduled__<date>``, a name Kubernetes refuses
    for the run's ConfigMap: the run hands over to a run under Kaapana's own run id, whose
    trigger-map (a worker pod in the project's namespace, reading the project's run folder)
    starts radpath-map on exactly the unlinked complete pair, under a run id Kubernetes takes."""
    uids, result = imported_and_batched
    runs = runs_of(result)
    scheduled, handed = [run for run in runs if run["dag_id"] == "radpath-batch"]
    assert scheduled["run_id"].startswith("scheduled__")  # Airflow's scheduler started it, not a trigger
    assert scheduled["task_states"]["hand-over"] == "skipped" and scheduled["state"] == "success"
    assert re.fullmatch(r"radpath-batch-\d{18}", handed["run_id"]), handed["run_id"]
    assert handed["state"] == "success", handed["task_states"]
    assert handed["conf"]["project_form"] == PROJECT
    after = runs[runs.index(handed) + 1:]
    assert [run["dag_id"] for run in after] == ["radpath-map"]
    (child,) = after
    assert re.fullmatch(r"radpath-map-\d{18}", child["run_id"]), child["run_id"]
    assert child["conf"]["data_form"]["identifiers"] == [uids["batch_pair"]["slide_series"]]
    assert child["conf"]["project_form"] == PROJECT and child["state"] == "success"
    made = series_of(result, uids["batch_pair"]["ct_study"])
    assert len(made["SEG"]) == 1 and made["SEG"][0]["called_ae"] == "kp-radpath-test"
    assert not {"SEG", "KO"} & set(series_of(result, uids["slide_only"]["slide_study"]))
    workers = {tuple(pod["worker_for"]): pod["namespace"] for pod in result["pods"]
               if pod["event"] == "start" and "worker_for" in pod}
    assert workers[("radpath-batch", "trigger-map")] == PROJECT["kubernetes_namespace"]


def test_radpath_wsi_import_works_beside_the_schedulers_uploads(imported_and_batched):
    """An import DAG: its Python tasks (get-uploads, trigger-map) run on the scheduler's
    LocalExecutor, not as worker pods, and its pods in the services namespace, whose run
    folder the scheduler's tasks share."""
    _, result = imported_and_batched
    starts = [pod for pod in result["pods"] if pod["event"] == "start"]
    assert not [pod for pod in starts if pod.get("worker_for", [None])[0] == "radpath-wsi-import"]
    # get-slides is radpath-wsi-import's alone
    assert {pod["namespace"] for pod in starts if image(pod) == "radpath-get-slides"} == {"services"}


def _disable(dags, relative: str, marker: str) -> None:
    """Turn the ``if IN_KAAPANA:`` block that ``marker`` opens off in the installed DAG folder."""
    path = dags / relative
    text = path.read_text()
    assert marker in text, marker
    path.write_text(text.replace(marker, marker.replace("if IN_KAAPANA:", "if False:"), 1))


def test_a_scheduled_run_that_starts_pods_under_its_own_id_is_refused(tmp_path, kaapana_source):
    """The negative control of the run-id hand-over: without it, the scheduled run's first
    pod needs the ConfigMap ``scheduled__…-config``, which Kubernetes (the box's admission)
    refuses, and the run fails there."""
    seed = Files()
    put_patient(seed, tmp_path, "RP-BOX-NC", slide_site="right kidney")
    result = run_box(tmp_path / "box", [[("radpath-batch", None)]], seed.paths,
                     env={"AIRFLOW_VAR_RADPATH_BATCH_PROJECT": json.dumps(PROJECT)},
                     edit_dags=lambda dags: _disable(dags, "dag_radpath_batch.py",
                                                     "if IN_KAAPANA:\n    from radpath_operators.HandOverOperator"))
    (run,) = runs_of(result)
    assert run["run_id"].startswith("scheduled__") and run["task_states"]["find-unlinked"] == "failed"
    assert any("Unprocessable Entity" in line or "is invalid" in line for line in run["log"]), run["log"][-40:]
    assert any(f"'{run['run_id']}-config'" in line for line in run["log"]), run["log"][-40:]


def test_without_provide_weights_segment_finds_no_weights_on_the_projects_volume(tmp_path, kaapana_source):
    """The negative control of the per-project models volume: the weights the model
    installer put onto the services namespace's volume are not on the project's, so a run
    without provide-weights fails at segment, naming where it looked, and stores no SEG."""
    seed = Files()
    uids = put_patient(seed, tmp_path, "RP-BOX-NW", slide_site="left kidney")
    result = run_box(tmp_path / "box", [[("radpath-map", selection(uids["slide_series"]))]], seed.paths,
                     edit_dags=lambda dags: _disable(dags, "radpath_operators/chains.py",
                                                     "if IN_KAAPANA:  # the weights onto"))
    (run,) = runs_of(result)
    assert "provide-weights" not in run["task_states"] and run["task_states"]["segment"] == "failed"
    assert any("weights for task total (fast) are missing" in line and "/models/radpath/totalsegmentator" in line
               for line in run["log"]), run["log"][-40:]
    assert "SEG" not in series_of(result, uids["ct_study"])
