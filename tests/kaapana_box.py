"""Kaapana's Airflow as the tests run it: Kaapana 0.6.0's own plugin, kaapanapy and task_api,
read from ``../shared/kaapana-0.6.0`` (never copied), under Airflow 2.11 on Python 3.12
(``.venv-kaapana``, made by ``scripts/setup.sh``), with the scheduler environment of
Kaapana's ``scheduler_deployment.yaml`` and the DAG folder laid out as the DAG image lays it.

Stand-ins, where Kubernetes cannot run here:
- a kubeconfig naming an unreachable API server (``KUBECONFIG``): task_api's
  KubernetesRunner loads a cluster configuration when imported, and nothing here talks to it;
- the secrets of the scheduler's environment (``valueFrom: secretKeyRef``) get fixed values.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from pathlib import Path

from conftest import KAAPANA_SOURCE, REPO, skip_unless_ci
from kaapana_pods.kaapana_images import ENVIRONMENTS, RECORD, build_all, copies

KAAPANA_VENV = Path(os.environ.get("RADPATH_KAAPANA_VENV", REPO / ".venv-kaapana"))
PLUGIN = "data-processing/kaapana-plugin/extension/docker/files/plugin"
KAAPANAPY = "data-processing/base-images/base-python-cpu/files/kaapana_python"
TASK_API = "lib/task_api"
SCHEDULER = "services/flow/airflow/airflow-chart/templates/scheduler_deployment.yaml"
#: The platform's chart values the scheduler's environment is rendered with.
GLOBAL_VALUES = {
    "services_namespace": "services",
    "admin_namespace": "admin",
    "extensions_namespace": "extensions",
    "registry_url": "registry.example.org/kaapana",
    "kaapana_build_version": "0.6.0",
    "hostname": "kaapana.example.org",
    "https_port": "443",
    "instance_name": "central",
    "gpu_support": "True",  # radpath's chart says gpurequired (a box sets it by its node: run_box)
    "pull_policy_images": "IfNotPresent",
    "oidc_client_secret": "box-client-secret",
}
#: Stand-in values of the secrets the scheduler reads through secretKeyRef.
SECRETS = {"SYSTEM_USER_PASSWORD": "box-system-password", "KAAPANA_PROJECT_USER_PASSWORD": "box-system-password"}
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: box, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: box, user: {token: box}}]
contexts: [{name: box, context: {cluster: box, user: box}}]
current-context: box
"""


def kaapana_python() -> Path:
    """The Python 3.12 of .venv-kaapana; the test is skipped where it was not made (no
    Python 3.12 on the machine), and fails under .ci/run."""
    python = KAAPANA_VENV / "bin" / "python"
    if not python.is_file():
        skip_unless_ci(f"{KAAPANA_VENV} not found: make test's set-up makes it where a Python 3.12 is installed")
    return python


def node_has_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU (nvidia-smi lists one)."""
    import subprocess

    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


@functools.cache
def image_environments() -> Path:
    """The record of the images' own Python environments, in which the box runs every pod;
    the test is skipped where set-up did not build them, and fails under .ci/run. Once per
    session radpath is reinstalled in those whose copy of it is older than the checkout (as
    set-up would: a box must not test yesterday's code)."""
    record = ENVIRONMENTS / RECORD
    if not record.is_file():
        skip_unless_ci(f"{record} not found: make test's set-up builds the images' environments "
                       "(tests/kaapana_pods/kaapana_images.py)")
    build_all()
    return record


def scheduler_environment(kaapana: Path = KAAPANA_SOURCE) -> dict[str, str]:
    """The scheduler container's environment from Kaapana's scheduler_deployment.yaml, its
    ``{{ .Values.global.* }}`` filled from :data:`GLOBAL_VALUES` (only what Kaapana's code reads)."""
    text = (kaapana / SCHEDULER).read_text()
    scheduler = text[text.index("- name: scheduler"):]
    env = {}
    for name, value in re.findall(r"- name: (\w+)\n\s+value: (.*)", scheduler):
        rendered = re.sub(r"\{\{\s*\.Values\.global\.(\w+)\s*\}\}", lambda m: GLOBAL_VALUES.get(m[1], ""), value)
        if "{{" not in rendered:
            env[name] = rendered.strip().strip('"')
    return {**env, **SECRETS}


def dag_folder(target: Path, kaapana_dags: tuple[str, ...] = (), kaapana: Path = KAAPANA_SOURCE) -> Path:
    """Airflow's DAG folder as Kaapana's dag-installer leaves it: what ``dags/Dockerfile``
    copies to /kaapana/tmp/dags (the DAG files, and radpath_operators out of radpath-base's
    /opt/radpath, which is this checkout). ``kaapana_dags`` names DAG files of Kaapana's own
    (e.g. ``dag_service_process_incoming_dcm.py``) to add where Kaapana's plugin image copies
    them (the kaapana-plugin Dockerfile's COPY lines: the same folder)."""
    target.mkdir(parents=True, exist_ok=True)
    wanted = set(kaapana_dags)
    plugin = copies(kaapana / "data-processing/kaapana-plugin/extension/docker/Dockerfile")
    theirs = {inside: local for inside, local in plugin.items() if local.name in wanted}
    for inside, local in {**copies(REPO / "dags" / "Dockerfile"), **theirs}.items():
        into = target / Path(inside).relative_to("/kaapana/tmp/dags")
        if local.is_dir():
            shutil.copytree(local, into, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(local, into)
    missing = wanted - {local.name for local in theirs.values()}
    if missing:
        raise FileNotFoundError(f"Kaapana's plugin image copies no {sorted(missing)}")
    return target


def airflow_environment(home: Path, kaapana: Path = KAAPANA_SOURCE, **extra: str) -> dict[str, str]:
    """A Kaapana scheduler's environment for an Airflow home of the test's."""
    home.mkdir(parents=True, exist_ok=True)
    kubeconfig = home / "kubeconfig-stand-in"
    kubeconfig.write_text(KUBECONFIG)
    return {
        **scheduler_environment(kaapana),
        "PATH": f"{KAAPANA_VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(home),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        # KaapanaPythonBaseOperator names these executors; Airflow checks they are configured.
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor,KubernetesExecutor",
        "KUBECONFIG": str(kubeconfig),
        # Kaapana's scheduler has its plugins folder on sys.path: the plugin, kaapanapy and
        # task_api (installed in the processing bases) come from the snapshot.
        "PYTHONPATH": os.pathsep.join(str(kaapana / part) for part in (PLUGIN, KAAPANAPY, TASK_API)),
        **extra,
    }


# --- the box: pods run (tests/kaapana_box_driver.py) --------------------------------------------------

#: Stand-in services, at the names and ports Kaapana's code uses for them, each on an
#: address of the box's own loopback; target_port is the port of the service's pods, which
#: the network policies name (Keycloak's service port 80 forwards to its pods' 8080).
BOX_SERVICES = [
    {"name": "dicom-web-filter", "host": "dicom-web-filter-service.services.svc", "ip": "127.0.10.1", "port": 8080,
     "namespace": "services", "target_port": 8080},
    {"name": "ctp", "host": "ctp-dicom-service.services.svc", "ip": "127.0.10.2", "port": 11112,
     "namespace": "services", "target_port": 11112},
    {"name": "opensearch", "host": "opensearch-service.services.svc", "ip": "127.0.10.3", "port": 9200,
     "namespace": "services", "target_port": 9200},
    {"name": "minio", "host": "minio-service.services.svc", "ip": "127.0.10.4", "port": 9000,
     "namespace": "services", "target_port": 9000},
    {"name": "keycloak", "host": "keycloak-external-service.admin.svc", "ip": "127.0.10.5", "port": 80,
     "namespace": "admin", "target_port": 8080},
    {"name": "aii", "host": "aii-service.services.svc", "ip": "127.0.10.6", "port": 8080,
     "namespace": "services", "target_port": 8080},
    # where the realm is published (Keycloak's frontend URL, https://<hostname>/auth): the
    # issuer of the tokens, whose keys dicom-web-filter fetches over TLS
    {"name": "keycloak-tls", "host": GLOBAL_VALUES["hostname"], "ip": "127.0.10.7", "port": 443,
     "namespace": "admin", "target_port": 8443},
]
#: The projects of the box as Kaapana's access-information-interface describes them: the
#: run's, a second one that must see none of the first's data, and the admin project.
OTHER_PROJECT = {"id": "7f1c2b5e-0000-4000-8000-0000000000bb", "name": "radpath-other",
                 "kubernetes_namespace": "project-other", "s3_bucket": "project-other",
                 "opensearch_index": "project_radpath-other"}
ADMIN_PROJECT = {"id": "7f1c2b5e-0000-4000-8000-000000000001", "name": "admin",
                 "kubernetes_namespace": "project-admin", "s3_bucket": "project-admin",
                 "opensearch_index": "project_admin"}
NETWORK_POLICIES = "services/data-separation/project-namespace/project-namespace-chart/templates/network_policies.yaml"
#: The project a box run belongs to, as Kaapana's UI sends project_form.
PROJECT = {"id": "7f1c2b5e-0000-4000-8000-0000000000aa", "name": "radpath-test",
           "kubernetes_namespace": "project-radpath-test", "s3_bucket": "project-radpath-test",
           "opensearch_index": "project_radpath-test"}
#: A user of the second project only (the box checks what it can see).
OTHER_USER = "project-other-system-user"
MOUNT_POINTS = ("/kaapana", "/models", "/tensorboard")  # made on the machine if missing (left empty)
SERVICES = GLOBAL_VALUES["services_namespace"]
#: The project namespaces of the box: the run's project, the admin project (runs without a
#: project) and a second project that must see nothing of the first's.
NAMESPACES = (PROJECT["kubernetes_namespace"], "project-admin", "project-other")
#: Claims of every project namespace: the project-namespace chart's dynamicVolumes (each
#: namespace its own) and sharedVolumes (Airflow's folders, the same in every namespace; in
#: the box they are the scheduler's own, outside /kaapana).
PROJECT_CLAIMS = ("workflow-data", "models", "tensorboard")
SHARED_CLAIMS = ("af-plugins", "dags", "af-logs")
#: The services namespace's claims the scheduler mounts (scheduler_deployment.yaml).
SERVICES_CLAIMS = ("workflow-data", "models", "uploads")


def model_archives(folder: Path) -> Path:
    """STAND-IN for the archives radpath's model image holds when built with
    include_model_weights=true (Kaapana's base-model-installer downloads them into
    /kaapana/app/models at build time): one ``<model>.zip`` per model of the lookup, as
    TotalSegmentator's releases pack them, here of radpath's stand-in weights (the official
    ones cannot be fetched here)."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    weights = REPO / "radpath" / "adapters" / "totalseg" / "standin-weights"
    for model in sorted(p for p in weights.iterdir() if p.is_dir()):
        with zipfile.ZipFile(folder / f"{model.name}.zip", "w") as archive:
            for path in sorted(model.rglob("*")):
                archive.write(path, path.relative_to(weights).as_posix())
    return folder


def box_claims(root: Path) -> dict[str, str]:
    """``"<namespace>/<claim>"`` → the box folder that volume is: one per namespace and
    volume, as Kaapana's charts make them, so no two namespaces share run data or weights."""
    claims = {}
    for namespace in NAMESPACES:
        for name in PROJECT_CLAIMS:
            claims[f"{namespace}/{name}-pv-claim"] = str(root / "volumes" / namespace / name)
        for name in SHARED_CLAIMS:
            claims[f"{namespace}/{name}-pv-claim"] = str(root / "volumes" / "shared" / name)
    for name in SERVICES_CLAIMS:
        claims[f"{SERVICES}/{name}-pv-claim"] = str(root / "volumes" / SERVICES / name)
    for folder in claims.values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    return claims
#: Airflow's database server, on a socket in the box's private /kaapana.
POSTGRES_DIR = "/kaapana/box-postgres"
#: Stand-in of the node's free RAM, which Kaapana's UtilService sizes the NODE_RAM pool from:
#: room for two of radpath's segment pods (16 GB each) and 8 GB for the others.
BOX_NODE_RAM_MB = 40000
#: tests/kaapana_pods/kaapana_box_executors.py, under the KubernetesExecutor's name
EXECUTOR_STAND_IN = "kaapana_box_executors.KubernetesExecutorStandIn"
RADPATH_DAGS = ("radpath-map", "radpath-wsi-import", "radpath-batch")


#: How long after CTP received a series the box's stand-in of Kaapana's incoming pipeline files
#: it (maps it to its project, indexes it in OpenSearch): CTP itself hands a series over only
#: once no file came for two polls 4 s apart (KaapanaDagTrigger), so this is the least a
#: platform takes; its incoming run adds more.
INCOMING_SECONDS = 10


def run_box(root: Path, waves: list[list[tuple[str, dict | None]]], seed: list[Path] = (), env: dict | None = None,
            uploads: dict[str, bytes] | None = None, edit_dags=None, kaapana: Path = KAAPANA_SOURCE,
            incoming_seconds: float = INCOMING_SECONDS, image_envs: Path | None = None,
            viewer_check: dict | None = None) -> dict:
    """Run ``waves`` in a fresh box whose PACS holds ``seed`` and whose uploads volume holds
    ``uploads``; ``edit_dags(folder)`` may change the installed DAG folder first;
    ``incoming_seconds``: how long what CTP receives takes to be filed (:data:`INCOMING_SECONDS`);
    ``image_envs``: the images' environments' record (set-up's, :func:`image_environments`);
    ``viewer_check``: after the waves, the published patient view of ``slide_series`` opened on
    ``study`` by each project user through the filter, SLIM's build ``slim`` beside it
    (kaapana_box_driver.check_viewers). A wave is a
    list of (dag id, conf) started at once, each through Kaapana's trigger route (conf None:
    the DAG is unpaused and its schedule starts it); the next wave starts when every run of
    this one, and every run they triggered, has ended. What the runs left, as
    kaapana_box_driver.py reports it."""
    import json
    import subprocess

    root.mkdir(parents=True, exist_ok=True)
    for point in MOUNT_POINTS:
        os.makedirs(point, exist_ok=True)
    claims = box_claims(root)
    # What Kaapana's model installer job leaves on the services namespace's models volume
    # (TotalSegmentator's layout; radpath's stand-in weights in it). No project pod mounts it.
    installed = Path(claims[f"{SERVICES}/models-pv-claim"]) / "radpath"
    installed.mkdir(parents=True, exist_ok=True)
    (installed / "totalsegmentator").symlink_to(REPO / "radpath" / "adapters" / "totalseg" / "standin-weights")
    archives = model_archives(root / "image-radpath-totalsegmentator-models")
    project_user = f"{PROJECT['kubernetes_namespace']}-system-user"
    box = {
        "kaapana_source": str(kaapana), "repo": str(REPO), "network_policies": NETWORK_POLICIES,
        "values": {**GLOBAL_VALUES, "project_namespace": PROJECT["kubernetes_namespace"],
                   "internalCidrs": ["10.0.0.0/8", "127.0.0.0/8"]},
        "services": BOX_SERVICES, "bucket": PROJECT["s3_bucket"], "claims": claims,
        # what an image built with include_model_weights=true holds beyond its COPY lines
        "image_build_files": {"radpath-totalsegmentator-models": {"/kaapana/app/models": str(archives)}},
        "secrets": {"project-user-credentials": {"project-user": project_user, "project-user-password": "box-project"},
                    "oidc-client-secret": {"oidc-client-secret": GLOBAL_VALUES["oidc_client_secret"]},
                    "system-user-password": {"system-user-password": SECRETS["SYSTEM_USER_PASSWORD"]}},
        "users": {project_user: "box-project", "system": SECRETS["SYSTEM_USER_PASSWORD"],
                  OTHER_USER: "box-other"},
        # who is in which project (the tokens' projects claim); the system user is the realm's admin
        "projects": [PROJECT, OTHER_PROJECT], "admin_project": ADMIN_PROJECT,
        "memberships": {project_user: [PROJECT["name"]], OTHER_USER: [OTHER_PROJECT["name"]]},
        "admins": ["system"],
        "client_secret": GLOBAL_VALUES["oidc_client_secret"],
        # each pod runs in its image's own environment (kaapanapy is in the base's, as on Kaapana)
        "image_envs": str(image_envs or image_environments()),
        "home": str(root / "home"), "scratch": str(root / "scratch"), "pod_log": str(root / "pods.jsonl"),
    }
    for folder in ("home", "scratch"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, data in (uploads or {}).items():
        (Path(claims[f"{SERVICES}/uploads-pv-claim"]) / name).write_bytes(data)
    dags = dag_folder(root / "dags")
    if edit_dags is not None:
        edit_dags(dags)
    (root / "box.json").write_text(json.dumps(box))
    airflow = airflow_environment(root / "airflow", kaapana, **(env or {}))
    airflow.update({
        # the platform's gpu_support as its installer sets it on this node: True only where the
        # node has a GPU, so that a pod's GPU request, Kaapana's GPU assignment and the device
        # TotalSegmentator chooses agree (a GPU request on a node without one stays Pending)
        "GPU_SUPPORT": "True" if node_has_gpu() else "False",
        "KAAPANA_BOX_CONFIG": str(root / "box.json"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        # Kaapana's Airflow runs on PostgreSQL; LocalExecutor (tasks in parallel) needs it
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow@/postgres?host={POSTGRES_DIR}",
        "AIRFLOW__CORE__EXECUTOR": f"LocalExecutor,KubernetesExecutor:{EXECUTOR_STAND_IN}",
        "AIRFLOW__CORE__PARALLELISM": "6",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        # one parse of the DAG folder at the scheduler's start is enough for a box
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "3600",
        "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "3600",
        # the runner stand-in first: task_api.runners.KubernetesRunner resolves to it
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "kaapana_pods"), airflow["PYTHONPATH"]]),
    })
    airflow.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    on_schedule = {dag_id for wave in waves for dag_id, conf in wave if conf is None}
    spec = {"root": str(root), "box_config": str(root / "box.json"), "seed": [str(p) for p in seed],
            "waves": waves, "postgres_dir": POSTGRES_DIR, "node_ram_mb": BOX_NODE_RAM_MB,
            "incoming_seconds": incoming_seconds, "viewer_check": viewer_check,
            "dag_ids": sorted(RADPATH_DAGS),
            # what a wave triggers, and radpath-map, which runs of the others trigger
            "unpaused": sorted(({dag_id for wave in waves for dag_id, _ in wave} | {"radpath-map"}) - on_schedule)}
    (root / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(["unshare", "--mount", "--net", "--fork", "--propagation", "private",
                           str(kaapana_python()), str(REPO / "tests" / "kaapana_box_driver.py"), str(root / "spec.json")],
                          env=airflow, capture_output=True, text=True,
                          timeout=3000)
    result = next((line.split("kaapana-box-result: ", 1)[1] for line in done.stdout.splitlines()
                   if line.startswith("kaapana-box-result: ")), None)
    assert result is not None, (done.stdout[-3000:], done.stderr[-5000:])
    return json.loads(result)
