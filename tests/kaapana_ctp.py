"""Data sent to CTP enters Kaapana through Kaapana's own incoming pipeline, in the box
(tests/kaapana_box.py, tests/kaapana_box_driver.py).

On Kaapana 0.6.0, CTP (Java, ``ctp-dicom-service.<services>.svc:11112``) receives DICOM and
hands each series to Airflow; the ``service-process-incoming-dcm`` DAG (Kaapana's plugin image)
then extracts the metadata, writes it to OpenSearch, maps the series to the project in
dicom-web-filter, adds it to the dataset in kaapana-backend and stores it into the PACS
through dicom-web-filter (STOW-RS). GetInputOperator finds a series only once its metadata
is in OpenSearch. CTP's configuration is not in the snapshot (a partial export); what the
stand-in below follows is Kaapana's tag 0.6.0 of github.com/kaapana/kaapana:

- ``services/flow/ctp/ctp-chart/templates/configmap.yaml`` (config.xml): the
  DicomImportService on port 11112 writes the association's called AE title into
  (0012,0020) ClinicalTrialProtocolID and the calling AE title into (0012,0010)
  ClinicalTrialSponsorName of every received object (``calledAETTag="00120020"``,
  ``callingAETTag="00120010"``); the KaapanaDagTrigger stage stores the objects under
  ``root="/data/incoming"``, one folder per series (``structure="(0020,000E)"``), each file
  ``<SOPInstanceUID>.dcm`` (``setStandardExtensions="yes"``), and triggers
  ``dagnames="service-process-incoming-dcm"`` at
  ``http://airflow-webserver-service.<services>.svc:8080/flow/kaapana/api/trigger``
  (``unchangedCounter="2"``; no ``remove_tags``, no ``fix_aetitle``, no
  ``limitTriggerOnRunningDagsUrl`` in that pipeline);
- ``services/flow/ctp/docker/files/kaapana-dag-trigger/source/KaapanaDagTrigger.java``: on a
  folder's first file it waits until the folder's file count stays unchanged for
  ``unchangedCounter`` polls 4 s apart, renames the folder to ``<SeriesInstanceUID>_<yyyyMMddHHmmssSSSS>``
  and POSTs ``{"conf": {callingAET, calledAET, connectionIP, patientID, studyInstanceUID,
  seriesInstanceUID, dicom_path}}`` (the AE fields are empty without ``remove_tags``: the AE
  titles travel in the tags above); a failed trigger moves the files into the quarantine;
- ``services/flow/ctp/ctp-chart/templates/deployment.yaml``: CTP mounts the volume
  ``ctp-data-pv-claim`` (subPath ``data``) at ``/data``; Airflow's scheduler mounts it at
  ``/kaapana/mounted/ctpinput`` (the snapshot's ``scheduler_deployment.yaml``), where
  LocalGetInputDataOperator.ctp_input moves ``incoming/<dicom_path>`` into the run folder.

What runs for real here: Kaapana's DAG file and every Local* operator of it under the box's
Airflow (LocalExecutor: the DAG is tagged ``service``), the plugin's trigger route (served
at the webserver's name and path), kaapanapy, dcmtk's dcmodify, the box's pods (validator,
thumbnail, cleaner) through the box's pod runner, and the PACS through dicom-web-filter's
name (whatever the box serves there). STAND-INS, each named here and following the Kaapana
file it names:

- CTP (:func:`ctp_main`, a separate process, pynetdicom): config.xml and
  KaapanaDagTrigger.java above.
- OpenSearch: the box's strict one (tests/kaapana_box_services.py), which here only the
  incoming DAG's tasks write into.
- access-information-interface: the box's (tests/kaapana_dwf.py), which dicom-web-filter asks too.
- kaapana-backend (:func:`kaapana_backend`): PUT ``/client/dataset`` with the ``Project``
  header, the semantics of ``crud.update_dataset`` (created when missing; ADD, DELETE, UPDATE)
  in ``services/base/kaapana-backend/docker/files/app/workflows/crud.py``.
- Airflow's webserver (:func:`airflow_webserver`): only Kaapana's own ``kaapanaApi``
  blueprint (``kaapana/blueprints/kaapana_api.py``), under the webserver's ``/flow`` base
  URL, so CTP's POST takes Kaapana's own trigger path.
- Kaapana's Airflow image (``services/flow/airflow/docker``): its ``DICT_PATH`` file
  ``/scripts/dicom_tag_dict.json`` is not in the snapshot; :func:`write_dicom_tag_dict`
  writes one from pydicom's dictionary in the same form (``"00080020": "00080020
  StudyDate"``, names without spaces). The image installs ``dicom_parser==1.2.3``, which pins
  ``pydicom<2.4``: the scheduler there runs pydicom 2.3.1 (LocalDcm2JsonOperator calls
  ``pydicom.read_file``, which pydicom 3 removed), so the box's Airflow gets pydicom 2.3.1
  from :data:`AIRFLOW_IMAGE_SITE` first on its path.

Use (a box in "incoming mode"): the test writes ``<root>/incoming.json``
(:func:`write_incoming_spec`), passes :func:`incoming_environment` as run_box's ``env`` and
:func:`add_incoming_dag` as its ``edit_dags``. Inside the box, the driver asks
:func:`pacs_dicom_port` for Orthanc's DIMSE port (CTP's own without a spec: the box as it was)
and calls :func:`start_incoming` once the scheduler runs. Without ``incoming.json`` Orthanc's
DIMSE is CTP, and the driver's stand-in of the incoming pipeline files what it received
(kaapana_box_driver.file_what_ctp_received).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

INCOMING_DAG_ID = "service-process-incoming-dcm"
INCOMING_DAG_FILE = "dag_service_process_incoming_dcm.py"
SPEC = "incoming.json"  # in the box's root: the test's wish; its absence keeps the box as it was
RESULT = "incoming-result.json"  # in the box's root: what start_incoming saw
#: CTP's config.xml (Kaapana 0.6.0, ctp-chart configmap): where the DicomImportService puts the
#: association's AE titles, and the KaapanaDagTrigger's poll count (4 s each).
CALLED_AE_TAG, CALLING_AE_TAG = 0x00120020, 0x00120010
UNCHANGED_COUNTER, POLL_SECONDS = 2, 4.0
#: Airflow's scheduler mounts CTP's volume (subPath data) here (scheduler_deployment.yaml).
CTP_INPUT = "/kaapana/mounted/ctpinput"
#: pydicom as Kaapana's Airflow image has it (see the module's doc), installed by
#: scripts/setup.sh: ``pip install --no-deps --target .venv-kaapana/airflow-image pydicom==2.3.1``.
AIRFLOW_IMAGE_PYDICOM = "pydicom==2.3.1"
AIRFLOW_IMAGE_SITE = Path(os.environ.get("RADPATH_KAAPANA_VENV", Path(__file__).resolve().parents[1] / ".venv-kaapana")) \
    / "airflow-image"
#: The services the incoming DAG talks to beyond those of the box (BOX_SERVICES), on
#: addresses of the box's loopback; ``{ns}`` is the services namespace.
INCOMING_SERVICES = [
    {"name": "kaapana-backend", "host": "kaapana-backend-service.{ns}.svc", "ip": "127.0.10.7", "port": 5000},
    {"name": "airflow-webserver", "host": "airflow-webserver-service.{ns}.svc", "ip": "127.0.10.8", "port": 8080},
]


# --- the test's side: what a box in incoming mode is given ---------------------------------------------


def write_incoming_spec(root: Path, projects: list[dict], sends: list[dict], paused: bool = False,
                        run_timeout: float = 1200, paused_wait: float = 30) -> Path:
    """``<root>/incoming.json``: the projects Kaapana knows (besides admin), what a modality
    sends to CTP once the box's Airflow runs (``{"files": [...], "calling_ae": ..., "called_ae":
    ...}`` each), and whether the incoming DAG stays paused (Kaapana leaves it active:
    ``dags_are_paused_at_creation = False`` in its airflow.cfg)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / SPEC
    path.write_text(json.dumps({"projects": projects, "sends": sends, "paused": paused, "run_timeout": run_timeout,
                                "paused_wait": paused_wait}))
    return path


def write_dicom_tag_dict(path: Path) -> Path:
    """STAND-IN for Kaapana's Airflow image's ``/scripts/dicom_tag_dict.json`` (absent from the
    snapshot): tag → ``"<tag> <name without spaces and 's>"`` from pydicom's dictionary, as the
    image's file has it (it also lists GE private tags, which no test data here carries)."""
    from pydicom.datadict import DicomDictionary, RepeatersDictionary

    def name(entry) -> str:
        return entry[2].replace("'s", "").replace(" ", "")

    tags = {f"{tag:08X}": f"{tag:08X} {name(entry)}" for tag, entry in DicomDictionary.items()}
    tags.update({tag: f"{tag} {name(entry)}" for tag, entry in RepeatersDictionary.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tags, indent=1))
    return path


def incoming_environment(root: Path) -> dict[str, str]:
    """run_box's ``env`` for incoming mode: what Kaapana's Airflow image adds to the scheduler's
    environment (its ``DICT_PATH`` file, its pydicom first on the path, before the plugin,
    kaapanapy and task_api)."""
    from conftest import KAAPANA_SOURCE
    from kaapana_box import KAAPANAPY, PLUGIN, TASK_API

    dictionary = write_dicom_tag_dict(root / "airflow-image" / "scripts" / "dicom_tag_dict.json")
    parts = [str(AIRFLOW_IMAGE_SITE), *(str(KAAPANA_SOURCE / part) for part in (PLUGIN, KAAPANAPY, TASK_API))]
    return {"DICT_PATH": str(dictionary), "PYTHONPATH": os.pathsep.join(parts)}


def add_incoming_dag(dags: Path) -> None:
    """run_box's ``edit_dags``: Kaapana's incoming DAG beside radpath's, where Kaapana's plugin
    image copies it (tests/kaapana_box.py's dag_folder)."""
    from kaapana_box import dag_folder

    dag_folder(dags, kaapana_dags=(INCOMING_DAG_FILE,))


# --- the box's side (tests/kaapana_box_driver.py) --------------------------------------------------


def incoming_spec(root: Path) -> dict | None:
    path = Path(root) / SPEC
    return json.loads(path.read_text()) if path.is_file() else None


def pacs_dicom_port(service: dict, root: Path) -> int | None:
    """Orthanc's DIMSE port in the box: CTP's own without an incoming spec (Orthanc stands for
    CTP, the box as it was); none in incoming mode, where CTP's address is the CTP stand-in's
    and the PACS is reached through dicom-web-filter, as LocalDicomSendOperator reaches it."""
    return None if incoming_spec(root) is not None else service["ctp"]["port"]


def start_incoming(box: dict, service: dict, pacs, root: Path, started: dict) -> dict:
    """In incoming mode (``<root>/incoming.json``), once the box's scheduler runs: CTP's stand-in
    at CTP's address, the kaapana-backend and webserver stand-ins at their names (the box
    serves OpenSearch and the AII already), CTP's volume at the scheduler's
    ``/kaapana/mounted/ctpinput``, the admin project's bucket; the incoming DAG active as on
    Kaapana (unless the spec keeps it paused). Then each of the spec's sends goes to CTP
    (dcmtk's dcmsend, as Kaapana's dcmsend container sends), and this waits for CTP's hand-over
    and the run it triggered (or, paused, ``paused_wait`` seconds), recording what the PACS,
    OpenSearch, the datasets and dicom-web-filter held at the hand-over and after, in
    ``<root>/incoming-result.json``. Returns the started parts ({} without a spec)."""
    spec = incoming_spec(root)
    if spec is None:
        return {}
    root = Path(root)
    namespace = box["values"]["services_namespace"]
    extra = {s["name"]: {**s, "host": s["host"].format(ns=namespace)} for s in INCOMING_SERVICES}
    # the box's /etc/hosts is this file, bound; a service someone else already serves in the box
    # (its name listed) is theirs
    served = (root / "hosts").read_text().split()
    extra = {name: s for name, s in extra.items() if s["host"] not in served}
    with open(root / "hosts", "a") as hosts:
        hosts.write("".join(f"{s['ip']} {s['host']}\n" for s in extra.values()))
    ctp_data = root / "ctp-data" / "data"  # the ctp-data volume, subPath data
    (ctp_data / "incoming").mkdir(parents=True, exist_ok=True)
    os.makedirs(CTP_INPUT, exist_ok=True)
    subprocess.run(["mount", "--bind", str(ctp_data), CTP_INPUT], check=True)

    projects = [_aii_project(p) for p in (box["admin_project"], *spec.get("projects", []))]
    index = started["index"]  # the box's strict OpenSearch: here only the incoming DAG writes into it
    datasets = DatasetStore(root / "datasets.json")
    from kaapana_box_services import serve

    servers = []
    if "kaapana-backend" in extra:
        servers.append(serve(kaapana_backend(datasets), extra["kaapana-backend"]["ip"], extra["kaapana-backend"]["port"]))
    if "airflow-webserver" in extra:
        servers.append(airflow_webserver(extra["airflow-webserver"]["ip"], extra["airflow-webserver"]["port"]))
    for project in projects:
        if project["s3_bucket"] != box["bucket"]:
            started["s3"].create_bucket(Bucket=project["s3_bucket"])

    webserver = next(s for s in INCOMING_SERVICES if s["name"] == "airflow-webserver")
    trigger_url = f"http://{webserver['host'].format(ns=namespace)}:{webserver['port']}/flow/kaapana/api"
    ctp = start_ctp(ctp_data, service["ctp"]["ip"], service["ctp"]["port"], trigger_url, root / "ctp.jsonl")
    parts = {"ctp": ctp, "servers": servers, "index": index, "datasets": datasets}

    _wait_for_dag(INCOMING_DAG_ID)
    if not spec.get("paused"):
        from kaapana_box_driver import unpause

        unpause(INCOMING_DAG_ID)
    outcome = {"paused": bool(spec.get("paused")), "projects": _projects_as_served(spec, service["aii"]), "sends": []}
    for send in spec.get("sends", []):
        outcome["sends"].append(_send_and_follow(send, spec, pacs, root, projects, index, datasets, service))
    outcome["ctp_log"] = _read_jsonl(root / "ctp.jsonl")
    outcome["opensearch_journal"] = index.journal
    outcome["datasets"] = datasets.snapshot()
    (root / RESULT).write_text(json.dumps(outcome, indent=1, default=str))
    return parts


# --- following one series from the modality through CTP and the incoming run ----------------------


def _send_and_follow(send: dict, spec: dict, pacs, root: Path, projects: list, index, datasets, service) -> dict:
    import pydicom  # whichever the driver has: only the UIDs are read

    first = pydicom.dcmread(send["files"][0], stop_before_pixels=True)
    series, study = str(first.SeriesInstanceUID), str(first.StudyInstanceUID)
    ctp = service["ctp"]
    sent = subprocess.run(["dcmsend", ctp["host"], str(ctp["port"]), "--aetitle", send["calling_ae"],
                           "--call", send["called_ae"], *send["files"]], capture_output=True, text=True, timeout=300)
    record = {"series": series, "study": study, "calling_ae": send["calling_ae"], "called_ae": send["called_ae"],
              "dcmsend": {"returncode": sent.returncode, "output": (sent.stdout + sent.stderr)[-2000:]},
              "sent_at": time.time()}
    handed = _wait_for(lambda: next((e for e in _read_jsonl(root / "ctp.jsonl")
                                     if e["event"] in ("handed-over", "quarantined") and e["series"] == series), None),
                       timeout=120)
    record["hand_over"] = handed
    record["at_hand_over"] = _where_is(series, study, pacs, projects, index, datasets)
    if handed is None or handed["event"] != "handed-over":
        return record
    run_id = handed["response"]["message"][1]["run_id"]
    record["run"] = _follow_run(run_id, wait=spec["paused_wait"] if spec.get("paused") else None,
                                timeout=spec.get("run_timeout", 1200))
    record["after_run"] = _where_is(series, study, pacs, projects, index, datasets)
    record["ctp_incoming_left"] = sorted(p.name for p in (root / "ctp-data" / "data" / "incoming").iterdir()
                                         if not p.name.startswith("."))
    return record


def _follow_run(run_id: str, wait: float | None, timeout: float) -> dict:
    """The run's outcome once it ended, or (``wait``) after that many seconds whatever its state."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from kaapana_box_driver import run_outcome

    deadline = time.time() + (wait if wait is not None else timeout)
    while True:
        with create_session() as session:
            run = session.query(DagRun).filter(DagRun.dag_id == INCOMING_DAG_ID, DagRun.run_id == run_id).one()
            ended = run.state in (DagRunState.SUCCESS, DagRunState.FAILED)
            if (ended and wait is None) or time.time() > deadline:
                outcome = run_outcome(run, session)
                outcome["ended"] = ended
                outcome["errors"] = _task_errors(outcome)
                return outcome
        time.sleep(2)


#: What a failed task's log says about why: error lines, without the tracebacks' frames and
#: without the retries of KaapanaBaseOperator's cleanup call to kube-helm (absent in the box).
_WHY = re.compile(r"Error|Exception|error:|exit code|can't|No such file|not found|Failed")
_NOISE = re.compile(r"kube-helm-service|urllib3|HTTPConnectionPool|^\s+File \"|^\s+\^|^Traceback")


def _task_errors(outcome: dict) -> dict[str, list[str]]:
    """For each task that did not succeed, the distinct log lines that say why (the last 8)."""
    from airflow.configuration import conf

    logs = Path(conf.get("logging", "base_log_folder")) / f"dag_id={outcome['dag_id']}" / f"run_id={outcome['run_id']}"
    errors = {}
    for task, state in outcome["task_states"].items():
        if state in ("failed", "up_for_retry"):
            lines: dict[str, None] = {}
            for path in sorted((logs / f"task_id={task}").glob("attempt=*.log")):
                for line in path.read_text(errors="replace").splitlines():
                    text = re.sub(r"^\[[^]]*\] ", "", line)  # without the timestamp, so repeats fold
                    if _WHY.search(text) and not _NOISE.search(text):
                        lines[text] = None
            errors[task] = list(lines)[-8:]
    return errors


def _where_is(series: str, study: str, pacs, projects: list, index, datasets) -> dict:
    """Where the series is: the PACS (Orthanc, with the AE tags its copy kept), OpenSearch
    (asked as get_input.py asks it: kaapanapy's HelperOpensearch, per project index), the
    datasets kaapana-backend holds, and dicom-web-filter's project mapping."""
    import requests

    found = requests.post(f"{pacs.url}/tools/find", json={"Level": "Series", "Query": {"SeriesInstanceUID": series}},
                          timeout=30).json()
    state: dict = {"at": time.time(), "pacs": None, "opensearch": {}, "datasets": {}, "dicom_web_filter": None}
    if found:
        detail = requests.get(f"{pacs.url}/series/{found[0]}", timeout=30).json()
        instance = detail["Instances"][0]
        tags = requests.get(f"{pacs.url}/instances/{instance}/tags?short", timeout=30).json()
        metadata = requests.get(f"{pacs.url}/instances/{instance}/metadata?expand", timeout=30).json()
        state["pacs"] = {"instances": len(detail["Instances"]), "origin": metadata.get("Origin"),
                         "clinical_trial_sponsor_name": tags.get("0012,0010"),
                         "clinical_trial_protocol_id": tags.get("0012,0020")}
    from kaapanapy.helper.HelperOpensearch import HelperOpensearch
    from opensearchpy.exceptions import NotFoundError

    helper = HelperOpensearch()
    for project in projects:
        name = project["opensearch_index"]
        entry = {"get_dcm_uid_objects": helper.get_dcm_uid_objects(index=name, series_instance_uids=[series])}
        try:
            source = helper.os_client.get(index=name, id=series)["_source"]
            entry["get"] = {"found": True, "source": {k: v for k, v in source.items() if k.startswith("0012")
                                                      or k in ("0020000D StudyInstanceUID_keyword",
                                                               "0020000E SeriesInstanceUID_keyword",
                                                               "00080060 Modality_keyword")}}
        except NotFoundError as err:
            entry["get"] = {"found": False, "status": err.status_code, "answer": err.info}
        state["opensearch"][name] = entry
    state["datasets"] = {f"{project_id}/{name}": ids for (project_id, name), ids in datasets.snapshot_raw().items()
                         if series in ids}
    state["dicom_web_filter"] = _dwf_projects_of(series)
    return state


def _dwf_projects_of(series: str) -> dict:
    """dicom-web-filter's answer to ``GET /data/{series}/projects`` (DATAPROJECTS/routes.py)."""
    import requests
    from kaapanapy.helper import get_project_user_access_token
    from kaapanapy.settings import ServicesSettings

    token = get_project_user_access_token()
    answer = requests.get(f"{ServicesSettings().dicom_web_filter_url}/data/{series}/projects",
                          headers={"Authorization": f"Bearer {token}", "x-forwarded-access-token": token}, timeout=30)
    try:
        body = answer.json()
    except ValueError:
        body = answer.text[:300]
    return {"status": answer.status_code, "body": body}


def _projects_as_served(spec: dict, aii: dict) -> dict:
    """The projects as the box's access-information-interface (``aii``: its service) answers
    them: admin, and the spec's by name."""
    import requests

    base = f"http://{aii['host']}:{aii['port']}/projects"
    names = ["admin", *[p["name"] for p in spec.get("projects", [])]]
    return {name: requests.get(f"{base}/{name}", timeout=30).json() for name in names}


def _wait_for(probe, timeout: float, every: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(every)
    return None


def _wait_for_dag(dag_id: str, timeout: float = 600) -> None:
    """Until the scheduler has parsed ``dag_id``; its import error, if it has one, is raised."""
    from airflow.models import DagModel
    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session

    deadline = time.time() + timeout
    while time.time() < deadline:
        with create_session() as session:
            if session.query(DagModel).filter(DagModel.dag_id == dag_id).first() is not None:
                return
            errors = [e.stacktrace for e in session.query(ParseImportError)
                      if e.filename and e.filename.endswith(INCOMING_DAG_FILE)]
        if errors:
            raise RuntimeError(f"{INCOMING_DAG_FILE} does not import: {errors[0][-3000:]}")
        time.sleep(1)
    raise RuntimeError(f"the scheduler did not parse {dag_id} in {timeout} s")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


# --- STAND-INS: kaapana-backend, Airflow's webserver --------------------------------------------------


def _aii_project(project: dict) -> dict:
    """A project as AII answers it (app/projects/schemas.py Project)."""
    return {"external_id": None, "int_id": None, "description": f"Project {project['name']}",
            **{k: project[k] for k in ("id", "name", "kubernetes_namespace", "s3_bucket", "opensearch_index")}}


class DatasetStore:
    """kaapana-backend's datasets by (project id, name): their identifiers, in order added."""

    def __init__(self, dump: Path):
        self.sets: dict[tuple[str, str], list[str]] = {}
        self.created: dict[tuple[str, str], str] = {}
        self.dump = dump
        self.lock = threading.Lock()

    def update(self, project_id: str, name: str, action: str, identifiers: list[str]) -> dict:
        with self.lock:
            key = (project_id, name)
            ids = self.sets.setdefault(key, [])
            now = datetime.now(timezone.utc).isoformat()
            self.created.setdefault(key, now)
            if action == "ADD":
                ids += [i for i in identifiers if i not in ids]
            elif action == "DELETE":
                for i in identifiers:
                    ids.remove(i)
            elif action == "UPDATE":
                ids[:] = list(identifiers)
            else:
                raise ValueError(f"Invalid action {action}")
            self.dump.write_text(json.dumps(self.snapshot()))
            return {"name": name, "time_created": self.created[key], "time_updated": now, "username": None,
                    "identifiers": list(ids)}

    def snapshot_raw(self) -> dict:
        return {key: list(ids) for key, ids in self.sets.items()}

    def snapshot(self) -> dict:
        return {f"{project_id}/{name}": ids for (project_id, name), ids in self.snapshot_raw().items()}


def kaapana_backend(datasets: DatasetStore):
    from kaapana_box_services import Handler

    class KaapanaBackend(Handler):
        def do_PUT(self):
            if urlsplit(self.path).path.rstrip("/") != "/client/dataset":
                return self.reply(404, b'{"detail": "Not Found"}')
            try:
                project = json.loads(self.headers.get("Project") or "null")
                body = json.loads(self.body())
                answer = datasets.update(project["id"], body["name"], body.get("action", ""), body.get("identifiers", []))
            except (TypeError, KeyError, ValueError) as err:
                return self.reply(422, json.dumps({"detail": str(err)}).encode())
            return self.reply(200, json.dumps(answer).encode())
    return KaapanaBackend


def airflow_webserver(ip: str, port: int):
    """Kaapana's ``kaapanaApi`` blueprint, as the Airflow webserver serves it under ``/flow``."""
    from flask import Flask
    from kaapana.blueprints.kaapana_api import kaapanaApi
    from werkzeug.serving import make_server

    app = Flask("airflow-webserver-stand-in")
    app.register_blueprint(kaapanaApi, url_prefix="/flow/kaapana")
    server = make_server(ip, port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- STAND-IN: CTP ----------------------------------------------------------------------------------


def start_ctp(data: Path, ip: str, port: int, airflow_url: str, log: Path) -> subprocess.Popen:
    """CTP as a process of its own (its own Python environment: pynetdicom with the venv's
    pydicom, not the Airflow image's), listening at CTP's address; it ends with the box."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    process = subprocess.Popen([sys.executable, __file__, "ctp", str(data), ip, str(port), airflow_url, str(log)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    atexit.register(lambda: process.poll() is None and process.terminate())
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("ctp-ready"):
            break
    else:
        raise RuntimeError(f"the CTP stand-in did not start: {''.join(lines)[-3000:]}")
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # keep its pipe drained
    return process


class KaapanaDagTrigger:
    """KaapanaDagTrigger.java (a DirectoryStorageService that triggers Airflow) as config.xml
    configures it for the DICOM pipeline."""

    def __init__(self, root: Path, airflow_url: str, dag_id: str, log: Path,
                 unchanged_counter: int = UNCHANGED_COUNTER, poll: float = POLL_SECONDS):
        self.root, self.trigger_url, self.dag_id, self.log = root, airflow_url + "/trigger", dag_id, log
        self.unchanged_counter, self.poll = unchanged_counter, poll
        self.quarantine = root / ".quarantines" / "KaapanaDagTrigger"
        self.lock = threading.Lock()

    def event(self, **record) -> None:
        with self.lock, open(self.log, "a") as out:
            out.write(json.dumps({"at": time.time(), **record}) + "\n")

    def store(self, received: Path, ds) -> None:
        """DirectoryStorageService.store (structure (0020,000E), <SOPInstanceUID>.dcm), then, on a
        folder's first file, the delayed trigger."""
        folder_name = re.sub(r"[\\/\s]", "_", str(ds.get("SeriesInstanceUID", ""))).strip() or "UNKNOWN"
        with self.lock:
            folder = self.root / folder_name
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(received, folder / f"{ds.SOPInstanceUID}.dcm")
            count = len(os.listdir(folder))
        if count == 1:
            conf = {"callingAET": "", "calledAET": "", "connectionIP": "", "patientID": str(ds.get("PatientID", "")),
                    "studyInstanceUID": str(ds.get("StudyInstanceUID", "")),
                    "seriesInstanceUID": str(ds.get("SeriesInstanceUID", ""))}
            threading.Thread(target=self.delayed_trigger, args=(folder, conf), daemon=True).start()

    def delayed_trigger(self, folder: Path, conf: dict) -> None:
        import requests

        now = datetime.now()
        dicom_path = f"{conf['seriesInstanceUID']}_{now:%Y%m%d%H%M%S}{now.microsecond // 1000:04d}"
        conf = {**conf, "dicom_path": dicom_path}
        try:
            count = self.unchanged(folder)
            with self.lock:
                renamed = folder.parent / dicom_path
                folder.rename(renamed)
            answer = requests.post(f"{self.trigger_url}/{self.dag_id}", json={"conf": conf},
                                   headers={"Accept": "application/json"}, timeout=60)
            if answer.status_code != 200:
                self.to_quarantine(renamed, conf, f"HTTP {answer.status_code}: {answer.text[:500]}")
                return
            self.event(event="handed-over", series=conf["seriesInstanceUID"], files=count, conf=conf,
                       dicom_path=dicom_path, response=answer.json())
        except Exception as err:  # CTP quarantines what it could not hand over
            self.to_quarantine(folder.parent / dicom_path if (folder.parent / dicom_path).exists() else folder, conf,
                               repr(err))

    def unchanged(self, folder: Path) -> int:
        count, still = len(os.listdir(folder)), 0
        while still < self.unchanged_counter:
            time.sleep(self.poll)
            now = len(os.listdir(folder))
            still = still + 1 if now == count else 0
            count = now
        return count

    def to_quarantine(self, folder: Path, conf: dict, why: str) -> None:
        self.quarantine.mkdir(parents=True, exist_ok=True)
        for path in folder.iterdir():
            shutil.move(str(path), self.quarantine / path.name)
        folder.rmdir()
        self.event(event="quarantined", series=conf["seriesInstanceUID"], why=why)


def ctp_main(data: str, ip: str, port: str, airflow_url: str, log: str) -> int:
    """The CTP stand-in's process: DicomImportService (port, AE titles into the tags) feeding
    KaapanaDagTrigger (root ``<data>/incoming``)."""
    from pynetdicom import ALL_TRANSFER_SYNTAXES, AE, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import Verification

    incoming = Path(data) / "incoming"
    temp = incoming / ".roots" / "DicomImportService"
    temp.mkdir(parents=True, exist_ok=True)
    trigger = KaapanaDagTrigger(incoming, airflow_url, INCOMING_DAG_ID, Path(log))

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        called = str(event.assoc.requestor.primitive.called_ae_title).strip()
        calling = str(event.assoc.requestor.ae_title).strip()
        ds.add_new(CALLED_AE_TAG, "LO", called)
        ds.add_new(CALLING_AE_TAG, "LO", calling)
        received = temp / f"TMP-{uuid.uuid4().hex}.dcm"
        ds.save_as(received, enforce_file_format=True)
        trigger.event(event="received", series=str(ds.SeriesInstanceUID), sop=str(ds.SOPInstanceUID),
                      called_ae=called, calling_ae=calling)
        trigger.store(received, ds)
        return 0x0000

    ae = AE(ae_title="CTP")
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    server = ae.start_server((ip, int(port)), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    print("ctp-ready", flush=True)
    parent = os.getppid()
    try:
        while os.getppid() == parent:  # ends with the box's driver
            time.sleep(1)
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "ctp":
        sys.exit(ctp_main(*sys.argv[2:]))
    sys.exit(f"usage: {sys.argv[0]} ctp DATA IP PORT AIRFLOW_API_URL LOG")
