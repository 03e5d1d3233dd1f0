"""Kaapana in a box: runs inside ``unshare --mount --net`` (tests/kaapana_box.py starts it), so
Kaapana's service names, ports and mount paths can be the platform's own without touching
the machine: a private loopback, a private /etc/hosts, and the run-data volume bound at both
/kaapana/mounted/workflows/data (where Airflow sees it) and, through each pod's own mounts,
/kaapana/mounted/data (where the pods see it).

Real: Airflow 2.11's scheduler on PostgreSQL (Kaapana's Airflow database), with its
LocalExecutor running the tasks in parallel under Airflow's pools; Kaapana 0.6.0's plugin,
kaapanapy and task_api from the snapshot, runs triggered through the plugin's own
``/kaapana/api/trigger/<dag_id>`` route (as Kaapana's backend posts each job); Orthanc as the
PACS (its DICOMweb behind the dicom-web-filter name, its DIMSE as CTP); radpath's images' and
Kaapana's images' commands. Stand-ins: Kubernetes (tests/kaapana_pods/...: the pod runner and
the KubernetesExecutor's worker pods), the node RAM that Kaapana's UtilService reads from
Prometheus to size the NODE_RAM pool (``BOX_NODE_RAM_MB``), Keycloak, OpenSearch, MinIO's STS
(tests/kaapana_box_services.py) and moto as its S3.

Usage: ``kaapana_box_driver.py SPEC.json`` (written by tests/kaapana_box.py); prints one
JSON line with what the runs left: each run's outcome (tasks, conf, log), the PACS's series
(with the AE titles CTP saw), the bucket's objects, the run folders left, the pod log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
import kaapana_box_services as services  # noqa: E402
from kaapana_dwf import data_separation  # noqa: E402
import kaapana_ctp  # noqa: E402

from radpath.adapters.orthanc import LocalOrthanc  # noqa: E402

RESULT = "kaapana-box-result: "


def sh(*command: str) -> None:
    subprocess.run(command, check=True)


def bind(source: Path, target: str) -> None:
    source.mkdir(parents=True, exist_ok=True)
    os.makedirs(target, exist_ok=True)
    sh("mount", "--bind", str(source), target)


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    box = json.loads(Path(spec["box_config"]).read_text())
    root = Path(spec["root"])
    sh("ip", "link", "set", "lo", "up")
    # Kaapana's paths, private to this mount namespace (a tmpfs holds the mount points).
    sh("mount", "-t", "tmpfs", "box", "/kaapana")
    # The scheduler's volumes (scheduler_deployment.yaml): the services namespace's run data,
    # models and uploads. Project pods and worker pods get their own (the pod runner).
    services_ns = box["values"]["services_namespace"]
    bind(Path(box["claims"][f"{services_ns}/workflow-data-pv-claim"]), "/kaapana/mounted/workflows/data")
    bind(Path(box["claims"][f"{services_ns}/models-pv-claim"]), "/kaapana/mounted/workflows/models")
    bind(Path(box["claims"][f"{services_ns}/uploads-pv-claim"]), "/kaapana/app/uploads")
    hosts = root / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"{s['ip']} {s['host']}\n" for s in box["services"]))
    sh("mount", "--bind", str(hosts), "/etc/hosts")

    service = {s["name"]: s for s in box["services"]}
    with LocalOrthanc(storage=root / "pacs", dicom_port=kaapana_ctp.pacs_dicom_port(service, root)) as pacs, \
            postgres(Path(spec["postgres_dir"])), data_separation_of(box, service, pacs, root, spec) as separation:
        started = start_services(box, service, pacs, root)
        seed_pacs(pacs, separation, started["index"], spec.get("seed", []), box)
        filing, unfiled = threading.Event(), []
        if not (root / kaapana_ctp.SPEC).is_file():  # not in incoming mode
            file_what_ctp_received(pacs, separation, started["index"], box, spec["incoming_seconds"], filing, unfiled)
        prepare_airflow(spec)
        with scheduler(root):
            wait_for_dags(spec["dag_ids"])
            for dag_id in spec["unpaused"]:  # those started on their schedule wait for their wave
                unpause(dag_id)
            kaapana_ctp.start_incoming(box, service, pacs, root, started)
            runs = [run for wave in spec["waves"] for run in run_wave(wave, filed=lambda: all_filed(unfiled))]
        result = {"runs": runs, "pacs": pacs_series(pacs), "bucket": bucket_objects(started["s3"], box),
                  "tables": research_tables(started["s3"], box),
                  "run_folders": sorted(f"{claim.split('/')[0]}/{p.name}" for claim, folder in box["claims"].items()
                                        if claim.endswith("/workflow-data-pv-claim")
                                        for p in Path(folder).iterdir() if p.is_dir()),
                  "pods": [json.loads(line) for line in Path(box["pod_log"]).read_text().splitlines()]
                  if Path(box["pod_log"]).exists() else [],
                  "pools": pools(),
                  # what each project's user sees through dicom-web-filter, as radpath's client asks it
                  "visible": {user: visible_series(separation, user) for user in box["memberships"]}}
        if spec.get("viewer_check"):  # the published patient view in a browser, through the filter
            result["viewer_check"] = check_viewers(spec["viewer_check"], box, started["s3"], separation, root)
        filing.set()
        started["moto"].terminate()
    print(RESULT + json.dumps(result), flush=True)
    return 0


# --- Airflow: its database, its scheduler, runs triggered as Kaapana's backend triggers them ----------


@contextmanager
def postgres(folder: Path):
    """A PostgreSQL server for Airflow's metadata database, on a Unix socket in ``folder``
    (the box has no network but its loopback; PostgreSQL will not run as root)."""
    (binaries,) = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1:] or [None]
    if binaries is None:
        raise RuntimeError("PostgreSQL not found under /usr/lib/postgresql (scripts/setup.sh installs it)")
    folder.mkdir(parents=True)
    shutil.chown(folder, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    sh(*as_postgres, str(binaries / "initdb"), "-D", str(folder / "data"), "-U", "airflow", "--auth=trust",
       "--no-sync", "-E", "UTF8")
    server = subprocess.Popen([*as_postgres, str(binaries / "postgres"), "-D", str(folder / "data"),
                               "-k", str(folder), "-c", "listen_addresses=", "-c", "fsync=off",
                               "-c", "max_connections=300"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if subprocess.run([str(binaries / "pg_isready"), "-q", "-h", str(folder)]).returncode == 0:
                break
            time.sleep(0.1)
        yield
    finally:
        server.terminate()
        server.wait(timeout=60)


def airflow(*args: str, timeout: int = 600) -> None:
    done = subprocess.run([sys.executable, "-m", "airflow", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)}: {done.stderr[-3000:]}")


def prepare_airflow(spec: dict) -> None:
    airflow("db", "migrate")
    # What Kaapana's UtilService.create_pool runs once it has read the node's free RAM from
    # Prometheus (kaapana/kubetools/utilization_service.py); here the free RAM is the spec's.
    airflow("pools", "set", "NODE_RAM", str(spec["node_ram_mb"]), "Pool for the available nodes RAM memory in MB")


@contextmanager
def scheduler(root: Path):
    """``airflow scheduler`` in a session of its own (its executors' workers go with it)."""
    log = open(root / "scheduler.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "airflow", "scheduler"], stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def wait_for_dags(dag_ids: list[str], timeout: float = 600) -> None:
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    deadline = time.time() + timeout
    while time.time() < deadline:
        with create_session() as session:
            known = {d for (d,) in session.query(DagModel.dag_id).filter(DagModel.dag_id.in_(dag_ids))}
        if known == set(dag_ids):
            return
        time.sleep(1)
    raise RuntimeError(f"the scheduler did not parse {sorted(set(dag_ids) - known)} in {timeout} s")


def unpause(dag_id: str) -> None:
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({DagModel.is_paused: False})


def kaapana_trigger(dag_id: str, conf: dict) -> None:
    """POST the conf to Kaapana's own trigger route (kaapana/blueprints/kaapana_api.py), as
    Kaapana's backend does for every job of a workflow (one per series with single execution)."""
    from flask import Flask
    from kaapana.blueprints.kaapana_api import kaapanaApi

    app = Flask("kaapana-box")
    app.register_blueprint(kaapanaApi)
    response = app.test_client().post(f"/kaapana/api/trigger/{dag_id}", json={"conf": conf})
    if response.status_code != 200:
        raise RuntimeError(f"trigger {dag_id}: {response.status_code} {response.get_data(as_text=True)}")


def run_wave(wave: list, filed=lambda: True, timeout: float = 2400) -> list[dict]:
    """Start each (dag id, conf) of ``wave`` at once (conf None: unpause the DAG and let its
    schedule start it), wait until every run this made (those they triggered included) has
    ended and ``filed()`` says all that CTP received is filed (a next wave comes later on a
    platform too: a schedule, a user), and report them in the order they were created."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        before = {run_id for (run_id,) in session.query(DagRun.id)}
    for dag_id, conf in wave:
        if conf is None:
            unpause(dag_id)
        else:
            kaapana_trigger(dag_id, conf)
    deadline = time.time() + timeout
    while True:
        with create_session() as session:
            made = session.query(DagRun).filter(DagRun.id.notin_(before)).order_by(DagRun.id).all()
            started = {run.dag_id for run in made}
            if all(run.state in (DagRunState.SUCCESS, DagRunState.FAILED) for run in made) and \
                    all(dag_id in started for dag_id, _ in wave) and filed():
                return [run_outcome(run, session) for run in made]
            if time.time() > deadline:
                raise RuntimeError(f"runs still going after {timeout} s: {[(r.run_id, r.state) for r in made]}")
        time.sleep(2)


def run_outcome(run, session) -> dict:
    """A run's state, its tasks' states (in the order they started), how often each was tried,
    and their logs."""
    from airflow.configuration import conf

    tasks = sorted(run.get_task_instances(session=session), key=lambda ti: (ti.start_date is None, ti.start_date or 0, ti.task_id))
    logs = Path(conf.get("logging", "base_log_folder")) / f"dag_id={run.dag_id}" / f"run_id={run.run_id}"
    log = []
    for ti in tasks:
        for path in sorted((logs / f"task_id={ti.task_id}").glob("attempt=*.log")):
            log += path.read_text(errors="replace").splitlines()
    return {"dag_id": run.dag_id, "run_id": run.run_id, "state": str(run.state), "conf": dict(run.conf or {}),
            "task_states": {ti.task_id: (str(ti.state) if ti.state else None) for ti in tasks},
            "task_pools": {ti.task_id: [ti.pool, ti.pool_slots] for ti in tasks},
            "task_tries": {ti.task_id: ti.try_number for ti in tasks}, "log": log[-4000:]}


def pools() -> dict[str, int]:
    from airflow.models import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        return {pool.pool: pool.slots for pool in session.query(Pool)}


def data_separation_of(box: dict, service: dict, pacs: LocalOrthanc, root: Path, spec: dict):
    """Kaapana's real dicom-web-filter at its service name, on the box's PostgreSQL, in front
    of the PACS, with the Keycloak and access-information-interface stand-ins
    (tests/kaapana_dwf.py) at theirs; the other services check tokens with the realm's key."""
    at = {name: (service[name]["ip"], service[name]["port"]) for name in ("dicom-web-filter", "keycloak", "aii")}
    at["keycloak-tls"] = (service["keycloak-tls"]["ip"], service["keycloak-tls"]["port"])
    keycloak = f"http://{service['keycloak']['host']}:{service['keycloak']['port']}"
    return data_separation(
        root / "data-separation", pacs.dicomweb_url, Path(spec["postgres_dir"]), users=box["users"],
        client_secret=box["client_secret"], projects=box["projects"], admin_project=box["admin_project"],
        memberships=box["memberships"], admins=box["admins"], at=at,
        realm_url=f"https://{service['keycloak-tls']['host']}", tls_names=[service["keycloak-tls"]["host"]],
        # the filter's chart: the realm's configuration from keycloak-external-service
        openid_config_url=f"{keycloak}/auth/realms/kaapana/.well-known/openid-configuration")


def first_instance(pacs: LocalOrthanc, series_id: str) -> str:
    """Orthanc's id of the first instance of its series ``series_id``."""
    return requests.get(f"{pacs.url}/series/{series_id}", timeout=30).json()["Instances"][0]


def first_instance_tags(pacs: LocalOrthanc, series_id: str) -> dict:
    return requests.get(f"{pacs.url}/instances/{first_instance(pacs, series_id)}/simplified-tags", timeout=30).json()


def incoming_document(tags: dict) -> dict:
    """STAND-IN for the document service-process-incoming-dcm's push-json task
    (LocalJson2MetaOperator) writes: only the fields Kaapana's get_input.py reads (kaapanapy's
    HelperOpensearch.get_dcm_uid_objects), named as json2meta names them."""
    return {"0020000D StudyInstanceUID_keyword": tags["StudyInstanceUID"],
            "0020000E SeriesInstanceUID_keyword": tags["SeriesInstanceUID"],
            "00080060 Modality_keyword": tags["Modality"], "00000000 CuratedModality_keyword": tags["Modality"]}


def file_series(pacs: LocalOrthanc, separation, index, series_id: str, project: dict | None, box: dict) -> None:
    """What Kaapana's incoming pipeline leaves of one series: mapped through dicom-web-filter's
    own routes into ``project`` (None: admin alone) and admin, as LocalAssignDataToProjectOperator
    maps it, and its metadata in those projects' OpenSearch indices. Until then the filter
    shows the series to no project and OpenSearch does not know it."""
    tags = first_instance_tags(pacs, series_id)
    separation.map_series(tags["SeriesInstanceUID"], tags["StudyInstanceUID"],
                          project_name=project["name"] if project else None, as_user="system")
    for filed_into in (project, box["admin_project"]):
        if filed_into:
            index.put(filed_into["opensearch_index"], tags["SeriesInstanceUID"], incoming_document(tags),
                      agent="box: the incoming pipeline's push-json")


def seed_pacs(pacs: LocalOrthanc, separation, index, paths: list[str], box: dict) -> None:
    """What the box's PACS holds before the runs: the files stored, and each series filed into
    the run's project (and admin) as Kaapana's incoming pipeline files what CTP received."""
    services.VERIFY = separation.idp.verify
    series = []
    for path in paths:
        stored = requests.post(f"{pacs.url}/instances", data=Path(path).read_bytes(), timeout=60)
        stored.raise_for_status()
        if stored.json()["ParentSeries"] not in series:
            series.append(stored.json()["ParentSeries"])
    for series_id in series:
        file_series(pacs, separation, index, series_id, box["projects"][0], box)


def file_what_ctp_received(pacs: LocalOrthanc, separation, index, box: dict, incoming_seconds: float,
                           stop: threading.Event, due: list) -> threading.Thread:
    """STAND-IN for what Kaapana's incoming pipeline does with a series CTP received, where the
    box's CTP is the PACS's own DIMSE port (the default; incoming mode runs the real
    service-process-incoming-dcm DAG, tests/kaapana_ctp.py): ``incoming_seconds`` after its first
    instance arrived (CTP hands a series over once no file came for two polls 4 s apart, then
    the incoming run extracts, maps and indexes it), each new series is filed (:func:`file_series`)
    into the project its called AE names (``kp-<project>``), or admin alone where the called AE
    names no project the platform knows. ``due``: (when, Orthanc's series id) of those received
    and not filed yet."""
    projects = {p["name"]: p for p in box["projects"]}

    def metadata(series_id: str, name: str) -> requests.Response:  # Orthanc's record of how it was received
        return requests.get(f"{pacs.url}/instances/{first_instance(pacs, series_id)}/metadata/{name}", timeout=30)

    def project_of(series_id: str) -> dict | None:
        called = metadata(series_id, "CalledAET")
        return projects.get(called.text.removeprefix("kp-")) if called.ok and called.text.startswith("kp-") else None

    def received_by_dimse(series_id: str) -> bool:  # not one of the box's seeds, filed before the runs
        return metadata(series_id, "Origin").text == "DicomProtocol"

    def follow():
        since = requests.get(f"{pacs.url}/changes", params={"last": ""}, timeout=30).json()["Last"]
        while not stop.is_set():
            changes = requests.get(f"{pacs.url}/changes", params={"since": since, "limit": 100}, timeout=30).json()
            due.extend((time.time() + incoming_seconds, change["ID"]) for change in changes["Changes"]
                       if change["ChangeType"] == "NewSeries" and received_by_dimse(change["ID"]))
            for entry in [entry for entry in due if entry[0] <= time.time()]:
                file_series(pacs, separation, index, entry[1], project_of(entry[1]), box)
                due.remove(entry)
            since = changes["Last"]
            if changes["Done"]:
                stop.wait(0.5)

    def follow_or_say():
        try:
            follow()
        except Exception:  # a stand-in that stops in silence would leave every later link waiting
            traceback.print_exc()
            due.insert(0, (float("inf"), None))

    thread = threading.Thread(target=follow_or_say, daemon=True)
    thread.start()
    return thread


def all_filed(due: list) -> bool:
    """Whether the incoming pipeline's stand-in has filed all that CTP received."""
    if due and due[0][1] is None:
        raise RuntimeError("the box's stand-in of the incoming pipeline failed (its traceback is above)")
    return not due


def visible_series(separation, user: str) -> list[str]:
    """The series ``user`` finds through dicom-web-filter: its studies, then each study's series."""
    from radpath.adapters.dicomweb import DicomWeb
    from radpath.adapters.settings import Settings

    client = DicomWeb(Settings.from_env({"DICOMWEB_URL": separation.filter.url,
                                         "DICOMWEB_TOKEN": separation.token(user)}).dicomweb)
    return sorted(row["0020000E"]["Value"][0] for row in client.find_all_series())


def start_services(box: dict, service: dict, pacs: LocalOrthanc, root: Path) -> dict:
    key, cert = root / "opensearch.key", root / "opensearch.crt"
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
       f"/CN={service['opensearch']['host']}", "-keyout", str(key), "-out", str(cert))
    # OpenSearch holds only what was written into it: here what the incoming pipeline's stand-in
    # writes (file_series), in incoming mode what Kaapana's own incoming DAG writes
    index = services.IndexStore([p["opensearch_index"] for p in (*box["projects"], box["admin_project"])],
                                   root / "opensearch.json")
    services.serve(services.opensearch(index), service["opensearch"]["ip"], service["opensearch"]["port"],
                   (str(cert), str(key)))
    moto_port = 5129
    moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s3 = f"http://127.0.0.1:{moto_port}"
    for _ in range(100):
        try:
            requests.get(s3, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    services.serve(services.minio(s3), service["minio"]["ip"], service["minio"]["port"])
    import boto3

    client = boto3.client("s3", endpoint_url=s3, aws_access_key_id="box", aws_secret_access_key="box",
                          region_name="us-east-1")
    client.create_bucket(Bucket=box["bucket"])
    return {"moto": moto, "s3": client, "index": index}


def pacs_series(pacs: LocalOrthanc) -> list[dict]:
    found = []
    for series_id in requests.get(f"{pacs.url}/series", timeout=30).json():
        series = requests.get(f"{pacs.url}/series/{series_id}", timeout=30).json()
        instance = series["Instances"][0]
        metadata = requests.get(f"{pacs.url}/instances/{instance}/metadata?expand", timeout=30).json()
        tags = requests.get(f"{pacs.url}/instances/{instance}/simplified-tags", timeout=30).json()
        found.append({"modality": tags.get("Modality"), "study": tags.get("StudyInstanceUID"),
                      "series": tags.get("SeriesInstanceUID"), "instances": len(series["Instances"]),
                      "called_ae": metadata.get("CalledAET"), "calling_ae": metadata.get("RemoteAET"),
                      "origin": metadata.get("Origin")})
    return found


def check_viewers(check: dict, box: dict, s3, separation, root: Path) -> dict:
    """The patient view radpath published into the project's bucket for ``check["slide_series"]``,
    opened on ``check["study"]`` by each project user in headless Chromium on the Kaapana host
    stand-in (tests/kaapana_host.py): the real dicom-web-filter behind it, SLIM's build
    ``check["slim"]`` with Kaapana's own local.js. An error is reported, not raised."""
    from kaapana_host import kaapana_host, patient_view_check

    def read_object(key: str) -> bytes | None:
        try:
            return s3.get_object(Bucket=box["bucket"], Key=key)["Body"].read()
        except Exception:  # noqa: BLE001 (botocore's NoSuchKey: the host answers 404)
            return None

    # the browser's parts (playwright-core, Chromium's driver) in radpath's cache outside the box
    os.environ["RADPATH_CACHE"] = check["cache"]
    try:
        (page,) = [key for key in bucket_objects(s3, box) if key.startswith("staticwebsiteresults/")
                   and key.endswith("/patient.html") and check["slide_series"] in key][:1]
        with kaapana_host(root / "kaapana-host", filter_url=separation.filter.url, slim_www=Path(check["slim"]),
                          kaapana=Path(box["kaapana_source"]), bucket=box["bucket"], read_object=read_object,
                          token_of=separation.token) as host:
            return patient_view_check(host, page, check["study"], check["slide_series"], list(box["memberships"]),
                                      root / "kaapana-host" / "browser")
    except Exception:  # noqa: BLE001
        return {"error": traceback.format_exc()}


def bucket_objects(client, box: dict) -> list[str]:
    listing = client.list_objects_v2(Bucket=box["bucket"])
    return sorted(item["Key"] for item in listing.get("Contents", []))


def research_tables(client, box: dict) -> dict[str, str]:
    """The research tables (CSV) in the bucket, by key, with their text."""
    return {key: client.get_object(Bucket=box["bucket"], Key=key)["Body"].read().decode()
            for key in bucket_objects(client, box) if key.startswith("radpath/") and key.endswith(".csv")}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
