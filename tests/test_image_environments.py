"""Each image's Python environment, made the image's way (tests/kaapana_pods/kaapana_images.py):
on the Python of its Kaapana base, by exactly its Dockerfiles' install commands. The box runs
every pod in it (tests/test_kaapana_box.py asserts that of each pod it started)."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import REPO, skip_unless_ci
from kaapana_pods import kaapana_images as images

pytestmark = pytest.mark.usefixtures("kaapana_source")


def radpath_install_lines(image: str) -> list[str]:
    """The ``RUN pip-install-radpath ...`` lines of the image's Dockerfiles, its bases' first."""
    return [line for path in reversed(images.image_layers(image))
            for line in re.findall(r"^RUN (pip-install-radpath.*)$", path.read_text(), re.M)]


def test_each_radpath_pod_image_is_planned_on_its_bases_python_with_its_own_install_lines():
    pod_images = [name for name in images.box_images() if name.startswith("radpath-")]
    assert len(pod_images) == 14
    for name in pod_images:
        plan = images.plan(name)
        assert plan.python == "3.12", name  # Kaapana 0.6.0's base-python-cpu: Ubuntu 24.04's python3.12
        # the shared layer is Kaapana's base-python-cpu's own installs, torch at the base's pin
        assert any(i.argv[:3] == ("pip", "install", "torch==2.7.1") for i in plan.base), name
        radpath_lines = [i.written for i in plan.own if i.radpath]
        assert radpath_lines == radpath_install_lines(name), name
    assert [i.written for i in images.plan("radpath-quantify").own] == \
        ["pip-install-radpath", "pip-install-radpath quantify,seg,nifti"]
    # the GPU image is not built on radpath-base: its one install brings radpath with its extras
    assert [i.written for i in images.plan("radpath-segment").own] == ["pip-install-radpath segment,nifti"]


def test_what_this_machine_cannot_reach_is_left_out_and_said():
    (torch,) = [i for i in images.plan("get-input").base if "torch==2.7.1" in i.argv]
    assert "--index-url" not in torch.argv
    assert torch.left_out == ("--index-url https://download.pytorch.org/whl/cu118: PyTorch's CUDA 11.8 index "
                              "(not reachable here; the same versions from PyPI)",)
    (validator,) = images.plan("dicom-validator").own
    assert validator.argv[-2:] == ("-r", str(images.KAAPANA_SOURCE / "data-processing/kaapana-plugin/processing-"
                                            "containers/dicom-validator/files/requirements.txt"))
    assert validator.left_out[0].startswith("-c https://codebase.helmholtz.cloud/")
    # what installs no Python package is not run, and listed
    assert any("apt-get" in line for line in images.plan("radpath-store").skipped)


def test_images_with_the_same_install_lines_share_one_environment():
    record = built_record()
    assert record["radpath-nifti"]["venv"] == record["radpath-merge"]["venv"]
    assert record["radpath-pair"]["venv"] == record["radpath-bodypart"]["venv"] == record["radpath-store"]["venv"]
    assert record["get-input"]["venv"] == record["workflow-cleaner"]["venv"]  # Kaapana's base alone
    assert len({entry["venv"] for entry in record.values()}) < len(record)


def built_record() -> dict:
    record = images.read_record()
    if not record:
        skip_unless_ci(f"{images.ENVIRONMENTS / images.RECORD} not found: make test's set-up builds the images' "
                       "environments")
    return record


def test_every_box_image_has_its_environment_on_python_3_12():
    record = built_record()
    for name in images.box_images():
        entry = record[name]
        assert entry.get("error") is None, (name, entry.get("error"), entry.get("log", "")[-2000:])
        assert entry["python"]["version"].startswith("3.12."), (name, entry["python"])
        assert entry["python"]["executable"].startswith(str(images.ENVIRONMENTS)), name


def test_the_quantify_image_builds_pyradiomics_on_python_3_12():
    """pyradiomics 3.0.1's sdist, its versioneer mended, built in the quantify image's
    environment on Python 3.12 (3.0.1 as released does not build there: the negative control
    is the box's, tests/test_kaapana_box.py)."""
    venv = built_record()["radpath-quantify"]["venv"]
    probe = subprocess.run([f"{venv}/bin/python", "-c", "import sys, radiomics; from radiomics import cMatrices; "
                            "print(radiomics.__version__, sys.version_info[:2])"],
                           capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split()[0] == "v3.0.1" and "(3, 12)" in probe.stdout
    assert str(REPO / ".venv") not in probe.stdout


def test_the_system_packages_radpaths_images_name_are_the_machines_own():
    """apt-get is not run (the pods run on this machine's Debian): each package a radpath
    image installs from Ubuntu is installed here under its Debian name."""
    debian_name = {"libturbojpeg": "libturbojpeg0"}
    named = set()
    for name in images.box_images():
        for path in images.image_layers(name):
            if REPO in path.parents:  # radpath's Dockerfiles (Kaapana's bases' tools are not radpath's to need)
                for _, command in images.run_commands(path):
                    if command.startswith("apt-get install"):
                        named |= {word for word in command.split()[2:] if not word.startswith("-")}
    assert {"dcmtk", "dicom3tools", "libturbojpeg"} <= named
    for package in sorted(named):
        installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", debian_name.get(package, package)],
                                   capture_output=True, text=True)
        assert installed.stdout.endswith("installed"), (package, installed.stdout, installed.stderr)
