"""Data sent to CTP enters through Kaapana's real incoming pipeline: a modality C-STOREs a
series to CTP's address in the box; the CTP stand-in files it as Kaapana's CTP does and
triggers Kaapana's own ``service-process-incoming-dcm`` through the plugin's trigger route;
that DAG's own operators, under the box's Airflow, bring it into OpenSearch (strict stand-in:
only what they wrote), the dataset, the project and the PACS (tests/kaapana_ctp.py)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, skip_unless_ci
from kaapana_box import ADMIN_PROJECT, PROJECT, kaapana_python, run_box
from kaapana_ctp import (AIRFLOW_IMAGE_PYDICOM, AIRFLOW_IMAGE_SITE, RESULT, add_incoming_dag,
                         incoming_environment, write_incoming_spec)

DATASET = "radpath-ds"
CALLING_AE, CALLED_AE = f"kp-{DATASET}", f"kp-{PROJECT['name']}"  # as Kaapana's dcmsend container sends
#: The tasks that take a series from CTP's folder into OpenSearch, the dataset and the PACS.
CORE_TASKS = ("get-input-data", "dcm2json", "json2meta", "add2dataset", "remove-project-and-dataset-tag",
              "local-dcm-send")
CTP_CONF_KEYS = {"callingAET", "calledAET", "connectionIP", "patientID", "studyInstanceUID", "seriesInstanceUID",
                 "dicom_path"}


def ct_series(tmp: Path, patient: str):
    from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series

    study = SyntheticStudy(patient=SyntheticPatient(patient_id=patient, name=f"Phantom^{patient}"),
                           accession_number=f"ACC-{patient}")
    return write_series(tmp / f"{patient}-ct", modality="CT", study=study,
                        geometry=SliceGeometry(32, 32, 3, (3.0, 3.0), 5.0, center=(0.0, 0.0, 10.0)))


def require_airflow_image_site() -> None:
    if not (AIRFLOW_IMAGE_SITE / "pydicom").is_dir():
        skip_unless_ci(f"{AIRFLOW_IMAGE_SITE} has no pydicom: Kaapana's Airflow image runs {AIRFLOW_IMAGE_PYDICOM} "
                       f"(scripts/setup.sh: pip install --no-deps --target {AIRFLOW_IMAGE_SITE} {AIRFLOW_IMAGE_PYDICOM})")


def incoming_box(root: Path, patient: str, paused: bool) -> tuple[object, dict, dict]:
    """One box in incoming mode: a modality sends one CT series to CTP with Kaapana's AE titles."""
    kaapana_python()
    require_airflow_image_site()
    series = ct_series(root.parent, patient)
    write_incoming_spec(root, [PROJECT], [{"files": [str(p) for p in series.paths], "calling_ae": CALLING_AE,
                                          "called_ae": CALLED_AE}], paused=paused)
    started = time.time()
    result = run_box(root, [], env=incoming_environment(root), edit_dags=add_incoming_dag)
    incoming = json.loads((root / RESULT).read_text())
    incoming["box_seconds"] = time.time() - started
    print(json.dumps({"box_seconds": incoming["box_seconds"], "sends": incoming["sends"]}, indent=1, default=str))
    return series, result, incoming


@pytest.fixture(scope="module")
def received(tmp_path_factory, kaapana_source):
    return incoming_box(tmp_path_factory.mktemp("incoming") / "box", "RP-IN-1", paused=False)


@pytest.fixture(scope="module")
def paused(tmp_path_factory, kaapana_source):
    return incoming_box(tmp_path_factory.mktemp("incoming-paused") / "box", "RP-IN-2", paused=True)


def only_send(incoming: dict) -> dict:
    (send,) = incoming["sends"]
    return send


@pytest.mark.pacs
@pytest.mark.slow
def test_ctp_files_the_series_as_kaapanas_ctp_and_triggers_the_incoming_dag(received):
    series, result, incoming = received
    send = only_send(incoming)
    assert send["dcmsend"]["returncode"] == 0, send["dcmsend"]
    got = [e for e in incoming["ctp_log"] if e["event"] == "received"]
    assert len(got) == len(series.paths)
    assert {(e["calling_ae"], e["called_ae"]) for e in got} == {(CALLING_AE, CALLED_AE)}
    hand_over = send["hand_over"]
    assert hand_over["event"] == "handed-over" and hand_over["files"] == len(series.paths)
    conf = hand_over["conf"]
    assert set(conf) == CTP_CONF_KEYS
    # no remove_tags in Kaapana's config.xml: the AE titles travel in the objects' tags, not the conf
    assert conf["callingAET"] == conf["calledAET"] == ""
    assert conf["seriesInstanceUID"] == series.series_instance_uid
    assert re.fullmatch(re.escape(series.series_instance_uid) + r"_\d{18}", conf["dicom_path"])
    run = send["run"]
    assert run["dag_id"] == "service-process-incoming-dcm"
    assert {k: run["conf"][k] for k in CTP_CONF_KEYS} == conf and run["conf"]["x_auth_token"] is None
    assert run["task_states"]["get-input-data"] == "success"
    assert send["ctp_incoming_left"] == []  # LocalGetInputDataOperator moved CTP's folder into the run


@pytest.mark.pacs
@pytest.mark.slow
def test_the_series_reaches_pacs_and_opensearch_only_through_the_incoming_run(received):
    series, result, incoming = received
    send = only_send(incoming)
    run = send["run"]
    assert run["ended"], run["task_states"]
    failed = {task: run["errors"].get(task) for task, state in run["task_states"].items() if state != "success"}
    assert all(run["task_states"][task] == "success" for task in CORE_TASKS), (run["task_states"], failed)
    # when CTP handed over, neither the PACS nor OpenSearch knew the series
    before = send["at_hand_over"]
    assert before["pacs"] is None
    for index in (PROJECT["opensearch_index"], ADMIN_PROJECT["opensearch_index"]):
        assert before["opensearch"][index]["get"]["found"] is False
        assert before["opensearch"][index]["get_dcm_uid_objects"] == []
    after = send["after_run"]
    # stored through dicom-web-filter (STOW-RS: Orthanc's DICOMweb plugin), without the tags CTP
    # wrote the AE titles into (LocalRemoveDicomTagsOperator)
    assert after["pacs"] == {"instances": len(series.paths), "origin": "Plugins",
                             "clinical_trial_sponsor_name": None, "clinical_trial_protocol_id": None}
    assert [s["series"] for s in result["pacs"]] == [series.series_instance_uid]
    for index in (PROJECT["opensearch_index"], ADMIN_PROJECT["opensearch_index"]):
        (found,) = after["opensearch"][index]["get_dcm_uid_objects"]  # as get_input.py asks it
        assert found["dcm-uid"]["series-uid"] == series.series_instance_uid and found["dcm-uid"]["modality"] == "CT"
    writes = [w for w in incoming["opensearch_journal"] if w["id"] == series.series_instance_uid]
    assert {(w["op"], w["index"]) for w in writes} >= {("index", PROJECT["opensearch_index"]),
                                                         ("index", ADMIN_PROJECT["opensearch_index"])}
    assert all(w["agent"].startswith("opensearch-py/") and w["at"] > send["hand_over"]["at"] for w in writes)
    print("incoming run:", run["state"], json.dumps(failed, indent=1))


@pytest.mark.pacs
@pytest.mark.slow
def test_the_ae_titles_become_dataset_and_project_as_kaapana_maps_them(received):
    series, _, incoming = received
    after = only_send(incoming)["after_run"]
    source = after["opensearch"][PROJECT["opensearch_index"]]["get"]["source"]
    assert source["00120010 ClinicalTrialSponsorName_keyword"] == DATASET  # calling AE, "kp-" dropped
    assert source["00120020 ClinicalTrialProtocolID_keyword"] == PROJECT["name"]  # called AE, "kp-" dropped
    project, admin = (incoming["projects"][name]["id"] for name in (PROJECT["name"], "admin"))
    assert incoming["datasets"] == {f"{project}/{DATASET}": [series.series_instance_uid],
                                    f"{admin}/{DATASET}": [series.series_instance_uid]}


@pytest.mark.pacs
@pytest.mark.slow
def test_dicom_web_filter_maps_the_series_to_the_project_and_admin(received):
    series, _, incoming = received
    send = only_send(incoming)
    run = send["run"]
    assert run["task_states"].get("assign-data-to-project") == "success", \
        run["errors"].get("assign-data-to-project")  # through Kaapana's real dicom-web-filter
    mapping = send["after_run"]["dicom_web_filter"]
    assert mapping["status"] == 200, mapping
    project, admin = (incoming["projects"][name]["id"] for name in (PROJECT["name"], "admin"))
    assert {str(p) for p in mapping["body"]} >= {project, admin}


@pytest.mark.pacs
@pytest.mark.slow
def test_with_the_incoming_dag_paused_nothing_reaches_the_pacs_or_opensearch(paused):
    """The negative control: CTP files and hands over the same way, but the paused DAG's run
    stays queued, so the PACS stays empty and the strict OpenSearch answers "not found"."""
    series, result, incoming = paused
    send = only_send(incoming)
    assert incoming["paused"] and send["hand_over"]["event"] == "handed-over"
    run = send["run"]
    assert run["state"] == "queued" and not run["ended"]
    assert all(state is None for state in run["task_states"].values()), run["task_states"]
    after = send["after_run"]
    assert after["pacs"] is None and result["pacs"] == []
    for index in (PROJECT["opensearch_index"], ADMIN_PROJECT["opensearch_index"]):
        answer = after["opensearch"][index]
        assert answer["get_dcm_uid_objects"] == []
        assert answer["get"] == {"found": False, "status": 404,
                                 "answer": {"_index": index, "_id": series.series_instance_uid, "found": False}}
    assert incoming["opensearch_journal"] == [] and incoming["datasets"] == {}
    assert send["ctp_incoming_left"] == [send["hand_over"]["dicom_path"]]  # waiting in CTP's volume


STRICT_PROBE = r"""
import json, subprocess, sys, tempfile
from pathlib import Path
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import kaapana_box_services as services
from kaapanapy.helper.HelperOpensearch import HelperOpensearch
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, RequestError
tmp = Path(tempfile.mkdtemp())
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=os",
                "-keyout", str(tmp / "key"), "-out", str(tmp / "crt")], check=True, capture_output=True)
store = services.IndexStore(["project_admin", "project_p"], tmp / "dump.json")
server = services.serve(services.opensearch(store), "127.0.0.1", 0, (str(tmp / "crt"), str(tmp / "key")))
def verify(token):  # the box verifies the realm's signature; here one fixed token is the realm's
    if token != "token":
        raise ValueError("not a token of the realm")
services.VERIFY = verify
def client(headers):
    return OpenSearch(hosts=[{"host": "127.0.0.1", "port": server.server_address[1]}], http_compress=True,
                      use_ssl=True, verify_certs=False, ssl_assert_hostname=False, ssl_show_warn=False, headers=headers)
os_client = client({"Authorization": "Bearer token"})
helper = HelperOpensearch.__new__(HelperOpensearch)
helper.os_client = os_client
out = {}
try:
    os_client.get(index="project_p", id="1.2")
except NotFoundError as err:
    out["missing"] = err.info
out["search_empty"] = helper.get_dcm_uid_objects(index="project_p", series_instance_uids=["1.2"])
doc = {"0020000E SeriesInstanceUID_keyword": "1.2", "0020000D StudyInstanceUID_keyword": "1.1",
       "00080060 Modality_keyword": "CT", "00000000 CuratedModality_keyword": "CT"}
out["index"] = os_client.index(index="project_p", body=doc, id="1.2", refresh=True)["result"]
out["found"] = helper.get_dcm_uid_objects(index="project_p", series_instance_uids=["1.2", "9.9"])
out["other_index"] = helper.get_dcm_uid_objects(index="project_admin", series_instance_uids=["1.2"])
out["by_term"] = helper.get_query_dataset(index="project_p", only_uids=True,
                                          query={"bool": {"must": [{"term": {"00080060 Modality_keyword.keyword": "CT"}}]}})
out["update"] = os_client.update(index="project_p", id="1.2", body={"doc": {"00111001 Validation_object": {"a": 1}}})["result"]
try:
    os_client.search(index="project_p", body={"query": {"match": {"x": "y"}}})
except RequestError as err:
    out["unsupported"] = err.status_code
try:
    client({}).get(index="project_p", id="1.2")
except Exception as err:
    out["no_token"] = type(err).__name__
out["journal"] = [(w["op"], w["index"], w["id"]) for w in store.journal]
print(json.dumps(out))
"""


def test_strict_opensearch_holds_only_what_was_written_and_answers_as_opensearch_py_expects(kaapana_source):
    """The strict OpenSearch stand-in against the real client and kaapanapy's HelperOpensearch
    (no box): "not found" until written, then found exactly in the index written to; a query it
    cannot evaluate is refused, not answered loosely; no token, no answer."""
    from kaapana_box import KAAPANAPY

    probe = subprocess.run([str(kaapana_python()), "-c", STRICT_PROBE, str(REPO / "tests"), str(kaapana_source / KAAPANAPY)],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    out = json.loads(probe.stdout.strip().splitlines()[-1])
    assert out["missing"] == {"_index": "project_p", "_id": "1.2", "found": False}
    assert out["search_empty"] == [] and out["other_index"] == []
    assert out["index"] == "created" and out["update"] == "updated"
    assert out["found"] == [{"dcm-uid": {"study-uid": "1.1", "series-uid": "1.2", "modality": "CT",
                                         "curated_modality": "CT", "source_presentation_address": None}}]
    assert out["by_term"] == ["1.2"]
    assert out["unsupported"] == 400 and out["no_token"] == "AuthenticationException"
    assert out["journal"] == [["index", "project_p", "1.2"], ["update", "project_p", "1.2"]]


@pytest.mark.slow
def test_the_ctp_stand_in_writes_folders_tags_and_trigger_as_kaapanas_ctp(tmp_path, kaapana_source):
    """The CTP stand-in alone (no box): AE titles into (0012,0020)/(0012,0010), one folder per
    series of <SOPInstanceUID>.dcm, renamed and handed over once no file came for two polls."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import pydicom

    posted = []

    class Airflow(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            posted.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            body = json.dumps({"message": ["created!", {"dag_id": "d", "run_id": "r"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    airflow = HTTPServer(("127.0.0.1", 0), Airflow)
    threading.Thread(target=airflow.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    series = ct_series(tmp_path, "RP-CTP")
    ctp = subprocess.Popen([str(kaapana_python()), str(REPO / "tests" / "kaapana_ctp.py"), "ctp", str(tmp_path / "data"),
                            "127.0.0.1", str(port), f"http://127.0.0.1:{airflow.server_address[1]}/flow/kaapana/api",
                            str(tmp_path / "ctp.jsonl")], stdout=subprocess.PIPE, text=True)
    try:
        assert ctp.stdout.readline().startswith("ctp-ready")
        sent = subprocess.run(["dcmsend", "127.0.0.1", str(port), "--aetitle", CALLING_AE, "--call", CALLED_AE,
                               *map(str, series.paths)], capture_output=True, text=True)
        assert sent.returncode == 0, sent.stderr
        deadline = time.time() + 60
        while not posted and time.time() < deadline:
            time.sleep(0.5)
    finally:
        ctp.terminate()
    ((path, body),) = posted
    assert path == "/flow/kaapana/api/trigger/service-process-incoming-dcm"
    (folder,) = [p for p in (tmp_path / "data" / "incoming").iterdir() if not p.name.startswith(".")]
    assert folder.name == body["conf"]["dicom_path"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{pydicom.dcmread(p).SOPInstanceUID}.dcm"
                                                            for p in series.paths)
    stored = pydicom.dcmread(next(folder.iterdir()))
    assert (stored[0x00120010].value, stored[0x00120020].value) == (CALLING_AE, CALLED_AE)
