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

import os
import re
import shutil
from pathlib import Path

from conftest import KAAPANA_SOURCE, REPO, skip_unless_ci

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
    "gpu_support": "True",  # radpath's chart says gpurequired
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


def dag_folder(target: Path) -> Path:
    """Airflow's DAG folder as Kaapana's dag-installer leaves it: what ``dags/Dockerfile``
    copies to /kaapana/tmp/dags (the DAG files, and radpath_operators out of radpath-base's
    /opt/radpath, which is this checkout)."""
    dockerfile = (REPO / "dags" / "Dockerfile").read_text()
    target.mkdir(parents=True, exist_ok=True)
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        *sources, destination = line.split()
        origin = REPO / "dags"
        if sources[0].startswith("--from="):
            sources, origin = sources[1:], REPO
        relative = Path(destination).relative_to("/kaapana/tmp/dags")
        for source in sources:
            path = origin / Path(source.removeprefix("/opt/radpath/"))
            if path.is_dir():
                shutil.copytree(path, target / relative, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, target / relative / path.name)
    return target


def airflow_environment(home: Path, kaapana: Path = KAAPANA_SOURCE, **extra: str) -> dict[str, str]:
    """A Kaapana scheduler's environment for an Airflow home of the test's."""
    home.mkdir(parents=True, exist_ok=True)
    kubeconfig = home / "kubeconfig-stand-in"
    kubeconfig.write_text(KUBECONFIG)
    return {
        **scheduler_environment(kaapana),
        "PATH": f"{KAAPANA_VENV / 'bin'}:/usr/bin:/bin",
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
