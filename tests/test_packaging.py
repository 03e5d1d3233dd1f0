"""What can be checked of the Kaapana packaging without Docker, helm or a cluster: every
stage has an operator and an image, the names agree, the labels Kaapana's build reads are
there, and each image installs extras that exist."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import pytest

from radpath import __version__, stages

REPO = Path(__file__).resolve().parents[1]
CONTAINERS = REPO / "processing-containers"
OPERATORS = REPO / "operators" / "radpath_operators"
#: Kaapana's build scripts find images in operator files with this expression (KAAPANA.md).
IMAGE_LINE = re.compile(r"^\s*-?\s*image\s*[:=]\s*f?[\"']\{DEFAULT_REGISTRY\}/(?P<image_name>[^:]+):", re.M)


def dockerfiles() -> dict[str, str]:
    return {path.parent.name: path.read_text() for path in CONTAINERS.glob("*/Dockerfile")}


def label(text: str, name: str) -> str | None:
    found = re.search(rf'^LABEL {name}="([^"]*)"', text, re.M)
    return found.group(1) if found else None


def test_every_stage_has_an_operator_and_an_image_of_the_same_name():
    operator_images = {m for path in OPERATORS.glob("*Operator.py") for m in IMAGE_LINE.findall(path.read_text())}
    images = {f"radpath-{name}" for name in dockerfiles()}
    for name in stages.REGISTRY:
        assert f"radpath-{name}" in operator_images, f"no operator names image radpath-{name}"
        assert f"radpath-{name}" in images, f"no Dockerfile for radpath-{name}"
    assert operator_images <= images  # no operator points at an image nobody builds


@pytest.mark.parametrize("folder", sorted(dockerfiles()))
def test_each_dockerfile_is_labelled_and_runs_a_known_command(folder):
    text = dockerfiles()[folder]
    assert label(text, "IMAGE") == f"radpath-{folder}"
    assert label(text, "VERSION") == __version__
    assert label(text, "BUILD_IGNORE") == "False"
    assert re.search(r"^FROM local-only/(base-python-(cpu|gpu)|radpath-base):latest$", text, re.M)
    if folder == "base":
        return
    command = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))
    if command[:2] == ["radpath", "stage"]:
        assert command[2] == folder and command[2] in stages.REGISTRY
    else:
        assert command == ["radpath", folder]
    if folder == "segment":
        assert "base-python-gpu" in text  # TotalSegmentator wants CUDA


def test_the_extras_the_images_install_exist():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    extras = set(setup["options.extras_require"])
    for folder, text in dockerfiles().items():
        for spec in re.findall(r'"\.\[([^\]]+)\]"', text):
            assert set(spec.split(",")) <= extras, (folder, spec)


def test_the_charts_and_the_manifest_agree_with_what_is_built():
    import yaml

    chart = yaml.safe_load((REPO / "helm/radpath-workflow/Chart.yaml").read_text())
    assert chart["apiVersion"] == "v1" and chart["version"] == __version__
    assert {"kaapanaworkflow", "gpurequired"} <= set(chart["keywords"])
    assert chart["annotations"]["ui-visible-name"]
    (dependency,) = yaml.safe_load((REPO / "helm/radpath-workflow/requirements.yaml").read_text())["dependencies"]
    assert dependency["name"] == "dag-installer-chart" and "services/utils/dag-installer-chart" in dependency["repository"]
    values = yaml.safe_load((REPO / "helm/radpath-workflow/values.yaml").read_text())
    assert values["global"] == {"image": "dag-radpath", "action": "copy"}
    dag_image = (REPO / "helm/dag-image/Dockerfile").read_text()
    assert label(dag_image, "IMAGE") == "dag-radpath" and "FROM local-only/base-installer:latest" in dag_image

    manifest = yaml.safe_load((REPO / "extension-manifest.yaml").read_text())
    assert manifest["version"] == __version__ and manifest["dag_image"] == "dag-radpath"
    dag_ids = {m for path in (REPO / "dags").glob("dag_*.py")
               for m in re.findall(r'dag_id="([^"]+)"', path.read_text())}
    assert {dag["id"] for dag in manifest["dags"]} == dag_ids
    assert {image["name"] for image in manifest["images"]} == {f"radpath-{name}" for name in dockerfiles()}
    weights = yaml.safe_load((REPO / "helm/totalsegmentator-weights/values.yaml").read_text())
    from radpath.segmentation.weights import DOWNLOAD_NAMES

    assert set(weights["tasks"]) == set(DOWNLOAD_NAMES.values())  # every model radpath may run
