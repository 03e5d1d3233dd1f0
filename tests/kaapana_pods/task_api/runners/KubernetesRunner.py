"""STAND-IN for task_api's KubernetesRunner (Kaapana 0.6.0, lib/task_api): the one part of
Kaapana that cannot run here, Kubernetes itself. Found first on the box's PYTHONPATH, so
``from task_api.runners.KubernetesRunner import KubernetesRunner, PodPhase`` in Kaapana's
KaapanaBaseOperator gets this module; everything else of task_api is Kaapana's own.

It takes exactly the pod Kaapana's code builds: the real KubernetesRunner.run(dry_run=True)
makes the V1Pod it would submit, and this runner starts that pod's container as a local
process instead:
- the command is the container's, else the image's own CMD, read from the Dockerfile whose
  ``LABEL IMAGE`` names the image (radpath's, or Kaapana's in the snapshot); it runs on a
  root of the pod's own, with the files the image COPYs where the image has them;
- its programs come from the image's own Python environment, built by set-up from the
  image's Dockerfiles' install commands on its base's Python (tests/kaapana_pods/
  kaapana_images.py), first on PATH as the base's venv is; nothing of the development
  environments is on a pod's path. An image whose environment could not be built fails its
  pod with the failing command and pip's output;
- the environment is the container's, secrets (``valueFrom.secretKeyRef``) resolved from the
  box's stand-in secrets;
- each volume mount of the pod is a bind mount in a mount namespace of the pod's own
  (``unshare -m``): persistent volume claims onto the box's folders, the conf ConfigMap onto
  the file the ConfigMap stand-in wrote;
- the network policies of Kaapana's project namespace decide which services the pod can
  resolve: its /etc/hosts lists only those its labels admit (network_policies.yaml of
  services/data-separation/project-namespace, rendered with the box's values);
- the exit code is the container's: 0 Succeeded, anything else Failed (126: Kaapana skips).

The Kubernetes API calls Kaapana's operators make beside the runner (ConfigMaps for the run
conf, reading a failed pod) go to a small stand-in API object (:class:`StandInCoreV1Api`).
Every pod's start (with its command and its Python: ``sys.executable``, ``sys.version``) and
end go to the box's pod log, one JSON line each.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import kubernetes
import yaml
from kaapana_images import image_cmd, image_files, image_layers, image_name, read_record
from kubernetes_admission import admit

BOX = json.loads(Path(os.environ["KAAPANA_BOX_CONFIG"]).read_text())
_real_spec = importlib.util.spec_from_file_location(
    "task_api_kubernetes_runner_real", Path(BOX["kaapana_source"]) / "lib/task_api/task_api/runners/KubernetesRunner.py")
_real = importlib.util.module_from_spec(_real_spec)
_real_spec.loader.exec_module(_real)  # loads the kubeconfig stand-in, talks to nothing

PodPhase = _real.PodPhase
generate_pod_name = _real.generate_pod_name


# --- the Kubernetes API, as far as Kaapana's operators call it ------------------------------------


class StandInCoreV1Api:
    """ConfigMaps land where their mount would show them, in the run folder of their
    namespace's workflow-data volume; pods are the runner's processes. Every object is first
    admitted as the API server would (tests/kaapana_pods/kubernetes_admission.py)."""

    def create_namespaced_config_map(self, namespace, body):
        body.metadata.namespace = body.metadata.namespace or namespace
        admit(body)
        for key, text in (body.data or {}).items():
            run_id = body.metadata.labels.get("run_id") or body.metadata.name.removesuffix("-config")
            target = claim_folder(namespace, "workflow-data-pv-claim") / run_id / "conf" / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        _CONFIG_MAPS[(namespace, body.metadata.name)] = body
        return body

    def delete_namespaced_config_map(self, name, namespace, **_):
        if _CONFIG_MAPS.pop((namespace, name), None) is None:
            raise kubernetes.client.exceptions.ApiException(status=404, reason="Not Found")

    def read_namespaced_pod(self, name, namespace):
        pod = _PODS[name]
        terminated = SimpleNamespace(exit_code=pod.exit_code, message=pod.message, reason=pod.reason)
        status = SimpleNamespace(name="main", state=SimpleNamespace(terminated=terminated))
        return SimpleNamespace(status=SimpleNamespace(container_statuses=[status]), metadata=SimpleNamespace(name=name))

    def delete_namespaced_pod(self, name, namespace, **_):
        pod = _PODS.get(name)
        if pod is not None and pod.process.poll() is None:
            pod.process.kill()


_CONFIG_MAPS: dict = {}
_PODS: dict = {}
kubernetes.config.load_incluster_config = lambda *a, **k: None  # "in cluster": the stand-in API below
kubernetes.client.CoreV1Api = StandInCoreV1Api


# --- what a pod may reach -----------------------------------------------------------------------------


def _policies() -> list[dict]:
    text = (Path(BOX["kaapana_source"]) / BOX["network_policies"]).read_text()
    values = BOX["values"]
    # the chart's one loop: the cluster's internal ranges, which external-ips pods may not reach
    text = re.sub(r"[ \t]*\{\{-? range \.Values\.global\.internalCidrs \}\}.*?\{\{-? end \}\}",
                  lambda _: "\n".join(f'          - "{cidr}"' for cidr in values["internalCidrs"]), text, flags=re.S)
    text = re.sub(r"\{\{\s*\.Values\.global\.(\w+)\s*\}\}", lambda m: str(values[m[1]]), text)
    return [doc for doc in yaml.safe_load_all(text) if doc and doc.get("kind") == "NetworkPolicy"]


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in (selector.get("matchLabels") or {}).items())


def admitted(labels: dict, service: dict) -> bool:
    """Whether a project-namespace pod with ``labels`` may open a connection to ``service``
    (its namespace and the port its pods listen on) under Kaapana's network policies."""
    for policy in _policies():
        spec = policy["spec"]
        if "Egress" not in spec.get("policyTypes", []) or not _selects(spec.get("podSelector") or {}, labels):
            continue
        for rule in spec.get("egress") or []:
            namespaces = [peer["namespaceSelector"] for peer in rule.get("to") or [] if "namespaceSelector" in peer]
            to_namespace = any(_selects(sel, {"kubernetes.io/metadata.name": service["namespace"]}) for sel in namespaces)
            ports = [port["port"] for port in rule.get("ports") or []]
            if (to_namespace or "to" not in rule) and (not ports or service["target_port"] in ports):
                return True
    return False


def hosts_file(labels: dict, namespace: str) -> Path:
    """The names a pod resolves: in a project namespace those its network policies admit; in
    the services namespace (no such policies) every service."""
    in_project = namespace != BOX["values"]["services_namespace"]
    lines = ["127.0.0.1 localhost"]
    lines += [f"{s['ip']} {s['host']}" for s in BOX["services"] if not in_project or admitted(labels, s)]
    path = Path(tempfile.mkstemp(prefix="pod-hosts-", dir=BOX["scratch"])[1])
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the image's command, in the image's own environment -------------------------------------------


#: Each image's Python environment, as set-up built it (tests/kaapana_pods/kaapana_images.py).
ENVIRONMENTS = read_record(Path(BOX["image_envs"]).parent)


def image_environment(image: str) -> dict:
    """The record of ``image``'s environment: its venv and Python, or why there is none."""
    record = ENVIRONMENTS.get(image_name(image))
    if record is None:
        return {"venv": None, "error": f"no environment was built for {image_name(image)} "
                                       "(make setup-test builds them: tests/kaapana_pods/kaapana_images.py)"}
    return record


def runnable(command: list[str], venv: str) -> list[str]:
    """A container's command with its programs from the image's venv (on the image, the
    base's venv /opt/venv is first on PATH: radpath's script and python are that venv's)."""
    programs = {"radpath": f"{venv}/bin/radpath", "python": f"{venv}/bin/python", "python3": f"{venv}/bin/python"}
    return [programs.get(command[0], command[0]), *command[1:]]


def unbuilt_command(image: str, record: dict) -> list[str]:
    """The pod of an image whose environment could not be built: it prints why (the failing
    install command and pip's output) and fails, as the image's build would have."""
    path = Path(tempfile.mkstemp(prefix="pod-unbuilt-", dir=BOX["scratch"])[1])
    path.write_text(f"the environment of image {image_name(image)} could not be built: {record['error']}\n"
                    f"{record.get('log', '')}\n")
    return ["sh", "-c", 'cat "$0"; exit 1', str(path)]


#: Top-level folders of this machine a pod does not see as they are: its own volumes and
#: its own /kaapana (the scheduler's folders there are not the pod's), and the kernel's.
_NOT_SHARED = {"kaapana", "models", "tensorboard", "proc", "sys", "dev", "lost+found"}


def pod_root_script(files: dict[str, Path], mounts: list[tuple[str, str]], hosts: Path) -> str:
    """Shell lines that build the pod's root file system in ``$R`` (a tmpfs): this machine's
    top-level folders (the container's OS and tools), the image's own files at the paths
    the image has them (a folder they land in is an overlay, so nothing of the machine
    changes), the pod's volumes, and its /etc/hosts."""
    quote = shlex.quote
    lines = ['R=$(mktemp -d)', 'mount -t tmpfs pod-root "$R"']
    layered = {inside.strip("/").split("/")[0] for inside in files if "/" in inside.strip("/")}
    for entry in sorted(os.listdir("/")):
        source = Path("/") / entry
        if entry in _NOT_SHARED and entry not in ("proc", "sys", "dev"):
            lines.append(f'mkdir -p "$R"/{quote(entry)}')
        elif source.is_symlink():
            lines.append(f'ln -s {quote(os.readlink(source))} "$R"/{quote(entry)}')
        elif source.is_dir() and entry in layered:
            lines.append(f'mkdir -p "$R"/.layers/{quote(entry)}/u "$R"/.layers/{quote(entry)}/w "$R"/{quote(entry)} && '
                         f'mount -t overlay overlay -o lowerdir=/{entry},upperdir="$R"/.layers/{entry}/u,'
                         f'workdir="$R"/.layers/{entry}/w "$R"/{quote(entry)}')
        elif source.is_dir():
            lines.append(f'mkdir -p "$R"/{quote(entry)} && mount --rbind /{quote(entry)} "$R"/{quote(entry)}')
    for inside, local in sorted(files.items()):
        target = f'"$R"{quote(inside)}'
        make = f"mkdir -p {target}" if local.is_dir() else f'mkdir -p "$(dirname {target})" && touch {target}'
        lines.append(f"{make} && mount --bind {quote(str(local))} {target}")
    for source, inside in mounts:
        lines.append(f'mkdir -p "$R"{quote(inside)} && mount --bind {quote(source)} "$R"{quote(inside)}')
    lines.append(f'mount --bind {quote(str(hosts))} "$R"/etc/hosts')
    return " && ".join(lines)


class LocalPod:
    def __init__(self, name: str, process: subprocess.Popen, image: str):
        self.name, self.process, self.image = name, process, image
        self.exit_code, self.message, self.reason = None, "", ""


def _pod_log(**record) -> None:
    with open(BOX["pod_log"], "a") as log:
        log.write(json.dumps(record) + "\n")


def _environment(container, venv: str | None) -> dict[str, str]:
    """The container's environment: its own variables (secrets resolved), and the image's venv
    first on PATH, as the base's ENV PATH puts /opt/venv/bin; nothing of the development
    environments."""
    path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    env = {"PATH": f"{venv}/bin:{path}" if venv else path, "HOME": BOX["home"], "LANG": "C.UTF-8"}
    for var in container.env or []:
        if var.value_from is not None:
            ref = var.value_from.secret_key_ref
            env[var.name] = BOX["secrets"][ref.name][ref.key]
        else:
            env[var.name] = var.value if var.value is not None else ""
    return env


def claim_folder(namespace: str, claim: str) -> Path:
    """The box folder of persistent volume claim ``claim`` in ``namespace``: each namespace
    has its own (Kaapana's project-namespace chart makes workflow-data, models and
    tensorboard per project; the services namespace has its own). A claim that does not
    exist leaves the pod unscheduled on Kubernetes; here it fails it, naming the claim."""
    folder = BOX["claims"].get(f"{namespace}/{claim}")
    if folder is None:
        raise kubernetes.client.exceptions.ApiException(
            status=404, reason=f'persistentvolumeclaim "{claim}" not found in namespace "{namespace}"')
    return Path(folder)


def _mounts(pod, container) -> list[tuple[str, str]]:
    """(box folder, mount path) of each claim the container mounts, in the pod's namespace.
    The conf ConfigMap's file is where the ConfigMap stand-in wrote it, inside the run-data
    claim; the emptyDir (/dev/shm) is there already."""
    by_name = {volume.name: volume for volume in pod.spec.volumes or []}
    return [(str(claim_folder(pod.metadata.namespace, by_name[m.name].persistent_volume_claim.claim_name)),
             m.mount_path)
            for m in container.volume_mounts or [] if by_name[m.name].persistent_volume_claim is not None]


class KubernetesRunner(_real.KubernetesRunner):
    """Kaapana's runner interface, pods run as local processes (see the module's doc)."""

    api = StandInCoreV1Api()

    @classmethod
    def run(cls, task, dry_run: bool = False):
        planned = super().run(task, dry_run=True)
        pod = planned.config.V1Pod
        (container,) = pod.spec.containers
        name = pod.metadata.name
        # what create_namespaced_pod's endpoint implies: a v1 Pod in the task's namespace
        pod.api_version, pod.kind, pod.metadata.namespace = "v1", "Pod", task.config.namespace
        admit(pod)
        hosts = hosts_file(pod.metadata.labels or {}, pod.metadata.namespace)
        layers = image_layers(container.image, (Path(BOX["repo"]), Path(BOX["kaapana_source"])))
        built = {inside: Path(local) for inside, local in
                 BOX.get("image_build_files", {}).get(image_name(container.image), {}).items()}
        script = pod_root_script({**image_files(layers), **built}, _mounts(pod, container), hosts)
        # the pod's root in place of the machine's; a program starts where the box's pods work
        script += ' && exec chroot "$R" sh -c \'cd "$0" && exec "$@"\' "$0" "$@"'
        environment = image_environment(container.image)
        if environment.get("venv"):
            program = [*runnable(container.command or image_cmd(layers), environment["venv"]), *(container.args or [])]
        else:
            program = unbuilt_command(container.image, environment)
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, BOX["scratch"], *program]
        process = subprocess.Popen(command, env=_environment(container, environment.get("venv")),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=BOX["scratch"])
        _PODS[name] = LocalPod(name, process, container.image)
        _pod_log(event="start", pod=name, image=container.image, at=time.time(), labels=pod.metadata.labels,
                 namespace=task.config.namespace, command=program, python=environment.get("python"),
                 environment_error=environment.get("error"),
                 gpu_request=((container.resources.limits if container.resources else None) or {}).get("nvidia.com/gpu"),
                 cuda_visible_devices=next((v.value for v in container.env or [] if v.name == "CUDA_VISIBLE_DEVICES"),
                                           None))
        return planned.model_copy(update={"id": name})

    @classmethod
    def logs(cls, task_run, follow=True, startup_timeout=30, log_timeout=3600):
        pod = _PODS[task_run.id]
        timer = threading.Timer(log_timeout, pod.process.kill)
        timer.start()
        try:
            for line in pod.process.stdout:
                cls._logger.info(line.rstrip())
            pod.process.wait()
        finally:
            timer.cancel()
        pod.exit_code = pod.process.returncode
        pod.reason = "Completed" if pod.exit_code == 0 else "Error"
        _pod_log(event="end", pod=pod.name, image=pod.image, at=time.time(), exit_code=pod.exit_code)
        if pod.exit_code < 0:  # killed: it ran past the operator's execution timeout
            pod.exit_code = None
            raise TimeoutError(f"{task_run.id} ran past {log_timeout} s")

    @classmethod
    def wait_for_task_status(cls, task_run, states=None, timeout=5):
        pod = _PODS[task_run.id]
        if pod.process.poll() is None:
            phase = PodPhase.RUNNING
        else:
            phase = PodPhase.SUCCEEDED if pod.process.returncode == 0 else PodPhase.FAILED
        if states and phase not in states:
            raise TimeoutError(f"{task_run.id} is {phase.value}, not one of {[s.value for s in states]}")
        return phase

    @classmethod
    def stop(cls, task_run):
        cls.api.delete_namespaced_pod(task_run.id, task_run.config.namespace)
