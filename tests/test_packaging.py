"""The Kaapana packaging, checked against Kaapana's own code at 0.6.0 (``../shared/kaapana-0.6.0``):
the rules its build helper applies to Dockerfiles and charts (``build-scripts/build_helper/``),
what its model installer and its integration CI read. Kaapana's build helper itself runs on
the checkout in ``.ci/run`` (``../shared/tools/kaapana-build-check/check``); these tests say
which file breaks which rule, and run where that tool cannot."""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from radpath import __version__
from radpath.pipeline import stages

REPO = Path(__file__).resolve().parents[1]
CONTAINERS = REPO / "processing-containers"
OPERATORS = REPO / "operators" / "radpath_operators"
CHART = REPO / "helm"
MODELS_IMAGE = CONTAINERS / "totalsegmentator-models"
#: Where a Kaapana admin places the repository in a Kaapana tree (helm/README.md).
PLACE = Path("data-processing/processing-pipelines/radpath")


@dataclass(frozen=True)
class Dockerfile:
    """What Kaapana's build helper reads of a Dockerfile (container/container.py), and what
    ``docker build`` in its folder needs."""

    path: Path
    text: str

    @property
    def folder(self) -> Path:
        return self.path.parent

    def label(self, name: str) -> str | None:
        # container.py: a line starting with LABEL <name>=, the value stripped of quotes
        found = re.search(rf"^\s*LABEL {name}=(.*)$", self.text, re.M)
        return found.group(1).strip().strip('"').strip("'") if found else None

    @property
    def image(self) -> str:
        return self.label("IMAGE") or ""

    @property
    def local_only(self) -> bool:
        return "local-only" in (self.label("REGISTRY") or "")

    @property
    def stages(self) -> list[tuple[str, str | None]]:
        """Each FROM: (image, build-stage alias or None)."""
        return [(m.group(1), m.group(2)) for m in
                re.finditer(r"^\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?\s*$", self.text, re.M | re.I)]

    @property
    def copies(self) -> list[tuple[str | None, list[str]]]:
        """Each COPY/ADD: (the --from stage or None, its sources)."""
        found = []
        for line in re.findall(r"^\s*(?:COPY|ADD)\s+(.+)$", self.text, re.M):
            words = json.loads(line) if line.startswith("[") else shlex.split(line)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            origin = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            found.append((origin, paths[:-1]))
        return found

    @property
    def command(self) -> list[str] | None:
        found = re.search(r"^CMD (.+)$", self.text, re.M)
        return json.loads(found.group(1)) if found else None

    @property
    def pip_extras(self) -> list[str]:
        return re.findall(r"^RUN pip-install-radpath ?(\S*)$", self.text, re.M)


def project_dockerfiles() -> list[Dockerfile]:
    # Kaapana's build collects every file named Dockerfile* (container_helper.collect_containers)
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    return [Dockerfile(REPO / p, (REPO / p).read_text()) for p in tracked if Path(p).name.startswith("Dockerfile")]


def by_image() -> dict[str, Dockerfile]:
    return {d.image: d for d in project_dockerfiles()}


def kaapana_local_bases(kaapana: Path) -> set[str]:
    """The ``local-only/<name>:latest`` images Kaapana's tree builds (its base images)."""
    found = set()
    for path in kaapana.rglob("Dockerfile*"):
        dockerfile = Dockerfile(path, path.read_text(errors="replace"))
        if dockerfile.local_only:
            found.add(f"local-only/{dockerfile.image}:latest")
    return found


def kaapana_image_pattern(kaapana: Path) -> re.Pattern:
    """``IMAGE_PATTERN`` of Kaapana's build helper (helm/helm_chart.py): the operator lines
    from which a workflow chart collects its images."""
    source = (kaapana / "build-scripts/build_helper/helm/helm_chart.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "IMAGE_PATTERN" for t in node.targets):
            return re.compile(ast.literal_eval(node.value.args[0]))
    raise AssertionError("IMAGE_PATTERN not found in Kaapana's helm_chart.py")


def operator_images(pattern: re.Pattern, root: Path) -> set[str]:
    """What Kaapana's collect_operator_containers finds: image lines of ``**/*operator*.py``
    under ``root`` (the parent of the chart's folder)."""
    found = set()
    for path in root.glob("**/*.py"):
        if "operator" in path.name.lower() and ".venv" not in path.parts:
            found.update(m.group("image_name") for line in path.read_text().splitlines()
                         if (m := pattern.search(line)))
    return found


def chart_yaml(name: str) -> dict:
    return yaml.safe_load((CHART / name).read_text())


# --- images --------------------------------------------------------------------------------------


def test_every_stage_has_an_operator_and_an_image_of_the_same_name(kaapana_source):
    named = operator_images(kaapana_image_pattern(kaapana_source), OPERATORS)
    images = set(by_image())
    for name in stages.REGISTRY:
        assert f"radpath-{name}" in named, f"no operator names image radpath-{name}"
        assert f"radpath-{name}" in images, f"no Dockerfile builds radpath-{name}"
    assert named <= images, f"operators name images nobody builds: {sorted(named - images)}"


def test_each_image_is_labelled_and_named_by_its_folder():
    for dockerfile in project_dockerfiles():
        where = dockerfile.path.relative_to(REPO)
        assert dockerfile.label("BUILD_IGNORE") == "False", where
        if dockerfile.folder.parent == CONTAINERS:
            assert dockerfile.image == f"radpath-{dockerfile.folder.name}", where
    images = by_image()
    assert images["radpath-base"].path == REPO / "Dockerfile" and images["radpath-base"].local_only
    assert images["dag-radpath"].path == REPO / "dags" / "Dockerfile"
    assert len(images) == len(project_dockerfiles()), "two Dockerfiles build one image"


def test_stage_images_run_their_stage():
    for image, dockerfile in by_image().items():
        if not image.startswith("radpath-") or dockerfile.command is None:
            continue
        folder = image.removeprefix("radpath-")
        if image == "radpath-totalsegmentator-models":  # Kaapana's installer, or provide-weights per run
            assert dockerfile.command == ["python3", "-u", "/kaapana/app/provide_run_models.py"], image
            assert (dockerfile.path.parent / "files" / "provide_run_models.py").is_file()
            continue
        if dockerfile.command[:2] == ["radpath", "stage"]:
            assert dockerfile.command[2] == folder and folder in stages.REGISTRY, image
        else:
            assert dockerfile.command == ["radpath", folder], image
    commands = {image for image, d in by_image().items() if d.command}
    assert {f"radpath-{name}" for name in stages.REGISTRY} <= commands


def test_copy_sources_lie_in_each_images_own_folder():
    """Kaapana runs ``docker build -f Dockerfile .`` in the Dockerfile's folder
    (container.py, Container.build): a COPY can reach nothing outside it."""
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for dockerfile in project_dockerfiles():
        aliases = {alias: image for image, alias in dockerfile.stages if alias}
        for origin, sources in dockerfile.copies:
            if origin is not None:  # from a build stage of this file, itself an image of the project
                assert origin in aliases, (dockerfile.path, origin)
                continue
            for source in sources:
                matches = list(dockerfile.folder.glob(source))
                assert matches, f"{dockerfile.path.relative_to(REPO)}: COPY {source} finds nothing in its folder"
                for match in matches:
                    relative = match.resolve().relative_to(dockerfile.folder.resolve())
                    if dockerfile.folder == REPO:
                        assert relative.parts[0] not in ignored, f"{source} is excluded by .dockerignore"


def test_each_base_is_kaapanas_or_a_local_only_image_of_the_project(kaapana_source):
    kaapana_bases = kaapana_local_bases(kaapana_source)
    ours = {f"local-only/{d.image}:latest" for d in project_dockerfiles() if d.local_only}
    assert ours == {"local-only/radpath-base:latest"}
    for dockerfile in project_dockerfiles():
        for image, _alias in dockerfile.stages:
            assert image in kaapana_bases | ours, f"{dockerfile.path.relative_to(REPO)}: FROM {image}"
    images = by_image()
    assert images["radpath-base"].stages == [("local-only/base-python-cpu:latest", None)]
    assert images["radpath-segment"].stages[-1] == ("local-only/base-python-gpu:latest", None)
    assert images["dag-radpath"].stages[-1] == ("local-only/base-installer:latest", None)
    assert images["radpath-totalsegmentator-models"].stages == [("local-only/base-model-installer:latest", None)]
    for image, dockerfile in images.items():
        if image.startswith("radpath-") and image not in ("radpath-base", "radpath-segment",
                                                            "radpath-totalsegmentator-models"):
            assert dockerfile.stages == [("local-only/radpath-base:latest", None)], image


def test_images_install_only_through_the_script_and_extras_that_exist():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    extras = set(setup["options.extras_require"])
    for dockerfile in project_dockerfiles():
        assert not re.search(r"pip3? install", dockerfile.text), f"{dockerfile.path}: pip outside pip-install-radpath"
        for spec in dockerfile.pip_extras:
            assert set(filter(None, spec.split(","))) <= extras, (dockerfile.path, spec)


def test_images_use_ubuntu_package_names(kaapana_source):
    """Kaapana's bases are Ubuntu 24.04 (base-python-cpu: FROM ubuntu:24.04); Debian calls
    some packages otherwise (Debian's libturbojpeg0 is Ubuntu's libturbojpeg)."""
    base = (kaapana_source / "data-processing/base-images/base-python-cpu/Dockerfile").read_text()
    assert "FROM ubuntu:24.04" in base
    debian_only = {"libturbojpeg0": "libturbojpeg"}
    installed = set()
    for dockerfile in project_dockerfiles():
        for packages in re.findall(r"apt-get install -y --no-install-recommends ([^\\&\n]+)", dockerfile.text):
            installed.update(packages.split())
    assert installed and not installed & set(debian_only), sorted(installed & set(debian_only))
    assert "libturbojpeg" in installed  # opentile's tile access for SVS/NDPI


def test_the_image_install_keeps_the_bases_torch(tmp_path):
    """pip-install-radpath, run against a stand-in ``pip`` that reports the base's torch
    (a CUDA build) and records what it was asked: the constraints keep that torch, not the
    CPU pin of constraints.txt, and the rest of the pins stay."""
    fake = tmp_path / "bin"
    fake.mkdir()
    record = tmp_path / "pip-calls"
    (fake / "pip").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = freeze ]; then echo "numpy==2.1.0"; echo "torch==2.7.1+cu118"; '
        'echo "torchvision==0.22.1+cu118"; exit 0; fi\n'
        f'echo "$@" >> {record}\n'
        f'for a in "$@"; do case "$prev" in -c) cp "$a" {tmp_path}/constraints-used;; esac; prev="$a"; done\n')
    (fake / "pip").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "RADPATH_SOURCE": str(REPO)}
    subprocess.run([str(CONTAINERS / "pip-install-radpath"), "seg,nifti"], env=env, check=True)
    used = (tmp_path / "constraints-used").read_text().splitlines()
    assert "torch==2.7.1+cu118" in used and "torchvision==0.22.1+cu118" in used
    assert not any(line.startswith("torch==2.13") for line in used)
    assert "pydicom==3.0.2" in used
    assert record.read_text().split()[-1] == f"{REPO}[seg,nifti]"


# --- the workflow chart ---------------------------------------------------------------------------


def test_the_chart_is_a_kaapana_workflow_at_the_platforms_version():
    chart = chart_yaml("Chart.yaml")
    assert chart["apiVersion"] == "v1"
    # helm_chart.py: any version but "0.0.0" is taken literally and its images looked up at it
    assert chart["version"] == "0.0.0" and isinstance(chart["version"], str)
    # kube-helm lists only kaapanaworkflow / kaapanaapplication / kaapanaplatform charts
    assert "kaapanaworkflow" in chart["keywords"]
    assert chart["annotations"]["ui-visible-name"]
    assert not list(CHART.rglob("*/Chart.yaml")), "a chart inside the chart"


def test_the_charts_dependencies_resolve_in_a_kaapana_tree(kaapana_source):
    names = {}
    for path in kaapana_source.rglob("Chart.yaml"):
        names.setdefault(yaml.safe_load(path.read_text())["name"], path.parent)
    dependencies = chart_yaml("requirements.yaml")["dependencies"]
    # helm_chart.py _has_dag_dependency: the DAG installer must be the first dependency
    assert dependencies[0]["name"] == "dag-installer-chart"
    assert {d["name"] for d in dependencies} == {"dag-installer-chart", "model_installer_chart"}
    for dependency in dependencies:
        assert dependency["name"] in names, dependency
        assert str(dependency["version"]) == "0.0.0"
        target = Path(os.path.normpath(PLACE / "helm" / dependency["repository"].removeprefix("file://")))
        assert (kaapana_source / target).resolve() == names[dependency["name"]].resolve(), dependency


def test_the_workflow_chart_collects_the_dag_image_and_every_processing_image(kaapana_source):
    """What Kaapana's collect_operator_containers and extract_images_from_templates find for
    this chart: operator lines under the parent of the chart's folder, image lines of its
    YAML files. Every image the project builds, but its local-only base, must be among them."""
    collected = operator_images(kaapana_image_pattern(kaapana_source), CHART.parent)
    for path in CHART.glob("*.yaml"):
        collected.update(re.findall(r'^\s*-?\s*image:\s*"?([^"\s]+)"?\s*$', path.read_text(), re.M))
    built = {d.image for d in project_dockerfiles() if not d.local_only}
    assert collected == built, (sorted(built - collected), sorted(collected - built))
    values = chart_yaml("values.yaml")
    assert values["global"] == {"image": "dag-radpath", "action": "copy"}
    processing = {image for image in built if image.startswith("radpath-")} - {"radpath-totalsegmentator-models"}
    assert len(processing) == 13


def test_the_model_installer_names_every_model_radpath_may_run(kaapana_source):
    from radpath.adapters.totalseg.weights import kaapana_model_lookup

    lookup = json.loads((MODELS_IMAGE / "files" / "model_lookup.json").read_text())
    expected = kaapana_model_lookup()
    assert lookup == expected, "run scripts/write_kaapana_models.py"
    params = chart_yaml("values.yaml")["extension_params"]["task_ids"]
    assert params["type"] == "list_multi"
    assert params["value"] == params["default"] == list(expected), "run scripts/write_kaapana_models.py"
    for folder in ("Dataset297_TotalSegmentator_total_3mm_1559subj", "Dataset852_TotalSegMRI_total_3mm_1088subj"):
        assert folder in lookup  # the fast CT and MR models the default run needs
    # what each run's provide-weights task unpacks onto the project's volume, per speed
    from radpath.adapters.totalseg.weights import kaapana_models_by_speed

    by_speed = json.loads((MODELS_IMAGE / "files" / "models_by_speed.json").read_text())
    assert by_speed == kaapana_models_by_speed(), "run scripts/write_kaapana_models.py"
    assert set().union(*by_speed.values()) == set(lookup)

    readme = (kaapana_source / "services/utils/base-model-installer/README.md").read_text()
    schema = json.loads(re.search(r"must satisfy the following JSON schema:\s*```json\n(.*?)```", readme, re.S)[1])
    import jsonschema

    jsonschema.validate(lookup, schema)
    required = re.search(r"must contain the following lines\s*```bash\n(.*?)```", readme, re.S)[1]
    dockerfile = by_image()["radpath-totalsegmentator-models"].text
    for line in filter(None, map(str.strip, required.splitlines())):
        assert line in dockerfile, line


def test_the_model_installer_writes_onto_the_models_volume(kaapana_source):
    """The chart's values rendered into Kaapana's model_installer_chart job: the job mounts
    the models volume and unpacks into a folder on it."""
    installer = kaapana_source / "services/utils/base-model-installer/chart"
    values = {**yaml.safe_load((installer / "values.yaml").read_text()),
              **chart_yaml("values.yaml")["model_installer_chart"]}
    job = (installer / "templates/job.yaml").read_text()
    assert re.search(r'- name: MODEL_DIR\s+value: \{\{ \.Values\.model_dir \| default "/models"\}\}', job)
    mount = re.search(r"- name: modeldata\s+mountPath: (\S+)", job)[1]
    model_dir = values.get("model_dir") or "/models"
    assert Path(model_dir).is_relative_to(mount) and Path(model_dir) != Path(mount)
    assert values["image"] == "radpath-totalsegmentator-models"


# --- what the manifest and the Python package say ------------------------------------------------------


def test_the_manifest_agrees_with_what_is_built():
    manifest = yaml.safe_load((REPO / "extension-manifest.yaml").read_text())
    assert manifest["version"] == __version__ and manifest["dag_image"] == "dag-radpath"
    dag_ids = {m for path in (REPO / "dags").glob("dag_*.py") for m in re.findall(r'dag_id="([^"]+)"', path.read_text())}
    assert {dag["id"] for dag in manifest["dags"]} == dag_ids
    assert {image["name"] for image in manifest["images"]} == set(by_image()) - {"dag-radpath"}
    assert (REPO / manifest["chart"] / "Chart.yaml").is_file()


def test_a_built_wheel_carries_the_operators_and_the_anatomy(tmp_path):
    """A plain (not editable) install, e.g. an image's, has the operators package too. Built
    from the tracked files, so no build/ folder of the checkout can stand in for them."""
    source = tmp_path / "source"
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "--null", "-T", "-", "-cf", str(tmp_path / "tree.tar")], cwd=REPO, input=listing,
                   check=True)
    source.mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "tree.tar"), "-C", str(source)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("radpath-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    operators = {p.name for p in OPERATORS.glob("*.py")}
    assert {f"radpath_operators/{name}" for name in operators} <= names
    assert any(name.endswith("share/radpath/anatomy/master.json") for name in names)
