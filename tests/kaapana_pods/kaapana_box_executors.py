"""STAND-IN for Airflow's KubernetesExecutor in the box (Kubernetes cannot run here).

Kaapana's KaapanaPythonBaseOperator sends the Python tasks of every DAG not tagged "service"
or "import" to the KubernetesExecutor, which runs each in a worker pod (``airflow tasks run
...``). Here the worker pod is built exactly as on Kaapana, and then run as a local process:

- the pod: the cncf provider's own ``PodGenerator.construct_pod`` (what the KubernetesExecutor
  calls) on the base pod of Kaapana's pod template (``airflow-chart/templates/
  configmap_pod_template.yaml``), then Kaapana's own ``pod_mutation_hook`` (read from
  ``configmap_airflow_local_settings.yaml``): the namespace of the run's project, the
  project's volumes; then admitted as the API server would (kubernetes_admission.py);
- the process: ``airflow tasks run ...`` in a mount namespace of its own that has exactly the
  pod's data volumes: the template's emptyDir over /kaapana/mounted/workflows, and on it the
  pod's namespace's ``workflow-data`` and ``models`` claims. The claims every namespace
  shares (Airflow's dags, plugins and logs: ``sharedVolumes`` of the project-namespace
  chart) are the box's Airflow folders, which lie outside /kaapana and stay as they are. So
  a worker sees the run folders of its project, never the scheduler's.

Configured under Kaapana's executor name:
``AIRFLOW__CORE__EXECUTOR=LocalExecutor,KubernetesExecutor:kaapana_box_executors.KubernetesExecutorStandIn``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import yaml
from airflow.executors.base_executor import BaseExecutor
from kubernetes_admission import admit

BOX = json.loads(Path(os.environ["KAAPANA_BOX_CONFIG"]).read_text()) if os.environ.get("KAAPANA_BOX_CONFIG") else {}
CHART = "services/flow/airflow/airflow-chart/templates"
#: Where the pod template's volumes hold a worker's data (the emptyDir "tmp" and, on it, the claims).
WORKFLOWS = "/kaapana/mounted/workflows"


@functools.cache
def _configmap_file(name: str, key: str) -> str:
    """One file of a ConfigMap of Kaapana's Airflow chart, ``{{ .Values.global.* }}`` filled
    from the box's values (other values, the database's credentials, left as placeholders);
    read once per scheduler, not once per worker pod."""
    values = BOX["values"]
    text = (Path(BOX["kaapana_source"]) / CHART / name).read_text()
    text = re.sub(r"\{\{\s*\.Values\.global\.(\w+)\s*\}\}", lambda m: str(values.get(m[1], "")), text)
    return yaml.safe_load(re.sub(r"\{\{[^}]*\}\}", "box", text))["data"][key]


def base_worker_pod():
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    template = yaml.safe_load(_configmap_file("configmap_pod_template.yaml", "pod_template.yaml"))
    return PodGenerator.deserialize_model_dict(template)


def kaapana_pod_mutation_hook():
    """Kaapana's ``pod_mutation_hook`` from its chart, as Airflow loads airflow_local_settings."""
    namespace: dict = {}
    exec(compile(_configmap_file("configmap_airflow_local_settings.yaml", "airflow_local_settings.py"),
                 "airflow_local_settings.py", "exec"), namespace)
    return namespace["pod_mutation_hook"]


def worker_pod(key, command: list[str]):
    """The worker pod the KubernetesExecutor would create for task instance ``key``."""
    from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import create_pod_id
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    pod = PodGenerator.construct_pod(
        dag_id=key.dag_id, task_id=key.task_id, pod_id=create_pod_id(key.dag_id, key.task_id),
        try_number=key.try_number, kube_image=f"{BOX['values']['registry_url']}/airflow:box", date=None,
        args=command, pod_override_object=None, base_worker_pod=base_worker_pod(),
        namespace=BOX["values"]["services_namespace"], scheduler_job_id="box", run_id=key.run_id,
        map_index=key.map_index)
    kaapana_pod_mutation_hook()(pod)
    pod.api_version, pod.kind = "v1", "Pod"
    admit(pod)
    return pod


def mount_script(pod) -> str:
    """Shell lines that give a process the pod's data volumes (see the module's doc)."""
    from task_api.runners.KubernetesRunner import claim_folder

    (container,) = pod.spec.containers
    by_name = {volume.name: volume for volume in pod.spec.volumes or []}
    lines = [f"mount -t tmpfs worker-tmp {WORKFLOWS}"]
    for mount in container.volume_mounts or []:
        volume = by_name[mount.name]
        if volume.persistent_volume_claim is None:
            continue
        folder = claim_folder(pod.metadata.namespace, volume.persistent_volume_claim.claim_name)
        if mount.mount_path.rstrip("/") in (f"{WORKFLOWS}/data", f"{WORKFLOWS}/models"):
            target = shlex.quote(mount.mount_path)
            lines.append(f"mkdir -p {target} && mount --bind {shlex.quote(str(folder))} {target}")
    return " && ".join(lines)


class KubernetesExecutorStandIn(BaseExecutor):
    """A worker "pod" per task, as a local process in the pod's mount namespace."""

    is_local = True
    serve_logs = True

    def start(self) -> None:
        self.workers: dict = {}

    def execute_async(self, key, command, queue=None, executor_config=None) -> None:
        self.validate_airflow_tasks_run_command(command)
        try:
            pod = worker_pod(key, command)
            script = mount_script(pod)
        except Exception as error:  # the API server refused the pod, or a claim is missing
            self.log.error("worker pod for %s not created: %s %s", key, error, getattr(error, "body", "") or "")
            self.fail(key)
            return
        from task_api.runners.KubernetesRunner import _pod_log

        self.log.info("worker pod %s in namespace %s", pod.metadata.name, pod.metadata.namespace)
        _pod_log(event="start", pod=pod.metadata.name, image=pod.spec.containers[0].image, at=time.time(),
                 labels=pod.metadata.labels, namespace=pod.metadata.namespace, worker_for=[key.dag_id, key.task_id])
        self.workers[key] = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script + ' && exec "$@"', "worker",
             *command], close_fds=True)

    def sync(self) -> None:
        for key, process in list(self.workers.items()):
            if process.poll() is None:
                continue
            del self.workers[key]
            from task_api.runners.KubernetesRunner import _pod_log

            _pod_log(event="end", pod=f"worker-{key.task_id}", image="airflow", at=time.time(),
                     exit_code=process.returncode, worker_for=[key.dag_id, key.task_id])
            (self.success if process.returncode == 0 else self.fail)(key)

    def end(self) -> None:
        for process in self.workers.values():
            process.wait()
        self.sync()

    def terminate(self) -> None:
        for process in self.workers.values():
            process.terminate()
