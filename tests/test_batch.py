"""The batch runner: every element gets a status; one failure never stops the others."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from radpath.adapters.settings import Settings
from radpath.pipeline.batch import (
    EXIT_FAILED,
    EXIT_NOTHING_TO_DO,
    EXIT_OK,
    BatchElement,
    ElementSkipped,
    run_stage,
)
from radpath.pipeline.manifest import MANIFEST_NAME, Manifest, Status
from radpath.pipeline.sections import Section


def make_batch(root: Path, names: list[str]) -> Settings:
    for name in names:
        (root / "batch" / name / "in").mkdir(parents=True)
        (root / "batch" / name / "in" / "input.txt").write_text(name)
    return Settings.from_env(
        {"WORKFLOW_DIR": str(root), "BATCH_NAME": "batch", "OPERATOR_IN_DIR": "in", "OPERATOR_OUT_DIR": "out"}
    )


@dataclass
class CopyFacts(Section, stage="copy"):
    folder: str | None
    chars: int


def copy_unless_b(element: BatchElement, settings: Settings) -> CopyFacts:
    if element.name == "b":
        raise ValueError("series b has no pixel data")
    text = (element.in_dir / "input.txt").read_text()
    (element.out_dir / "output.txt").write_text(text.upper())
    return CopyFacts(folder=element.output.name, chars=len(text))


def test_middle_element_failing_leaves_the_others_done(tmp_path: Path):
    settings = make_batch(tmp_path, ["a", "b", "c"])
    result = run_stage("copy", copy_unless_b, settings)

    assert [(r.element, r.status) for r in result.elements] == [
        ("a", Status.DONE),
        ("b", Status.FAILED),
        ("c", Status.DONE),
    ]
    # The task goes on (a failing task would stop a and c downstream); report fails the run.
    assert result.exit_code == EXIT_OK == 0
    assert [r.element for r in result.failed] == ["b"]
    for name, status in (("a", "done"), ("b", "failed"), ("c", "done")):
        on_disk = json.loads((tmp_path / "batch" / name / MANIFEST_NAME).read_text())
        assert on_disk["status"] == status
        assert on_disk["stages"]["copy"]["status"] == status
    b = Manifest.load(tmp_path / "batch" / "b")
    assert b.stages["copy"].error == "ValueError: series b has no pixel data"
    assert (tmp_path / "batch" / "c" / "out" / "output.txt").read_text() == "C"
    assert Manifest.load(tmp_path / "batch" / "c").facts == {"copy": {"folder": "out", "chars": 1}}


def test_batch_where_every_element_failed_exits_1(tmp_path: Path):
    result = run_stage("copy", copy_unless_b, make_batch(tmp_path, ["b"]))
    assert result.exit_code == EXIT_FAILED == 1


def test_empty_batch_exits_126(tmp_path: Path):
    (tmp_path / "batch").mkdir()
    assert run_stage("copy", copy_unless_b, make_batch(tmp_path, [])).exit_code == EXIT_NOTHING_TO_DO == 126


def test_missing_batch_folder_exits_126(tmp_path: Path):
    settings = Settings.from_env({"WORKFLOW_DIR": str(tmp_path / "nowhere")})
    assert run_stage("copy", copy_unless_b, settings).exit_code == 126


def test_skipped_elements_keep_their_reason_and_alone_mean_nothing_to_do(tmp_path: Path):
    def skip(element: BatchElement, settings: Settings) -> None:
        raise ElementSkipped("slide names no organ")

    settings = make_batch(tmp_path, ["a"])
    result = run_stage("bodypart", skip, settings)
    assert result.exit_code == EXIT_NOTHING_TO_DO
    assert Manifest.load(tmp_path / "batch" / "a").stages["bodypart"].reason == "slide names no organ"


def test_elements_ended_by_an_earlier_stage_are_passed_over(tmp_path: Path):
    settings = make_batch(tmp_path, ["a", "b", "c"])
    run_stage("copy", copy_unless_b, settings)
    seen = []

    def later(element: BatchElement, settings: Settings) -> None:
        seen.append(element.name)

    result = run_stage("later", later, settings)
    assert seen == ["a", "c"]
    assert result.exit_code == EXIT_OK
    assert Manifest.load(tmp_path / "batch" / "b").status is Status.FAILED


def test_rerun_clears_stale_output(tmp_path: Path):
    settings = make_batch(tmp_path, ["a"])
    stale = tmp_path / "batch" / "a" / "out" / "half-written.dcm"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"partial")
    run_stage("copy", copy_unless_b, settings)
    assert not stale.exists()


def test_corrupt_manifest_fails_that_element_only(tmp_path: Path):
    settings = make_batch(tmp_path, ["a", "b"])
    (tmp_path / "batch" / "a" / MANIFEST_NAME).write_text("{broken")
    result = run_stage("copy", lambda e, s: None, settings)
    assert [r.status for r in result.elements] == [Status.FAILED, Status.DONE]
    assert "unreadable manifest" in result.elements[0].detail


def test_stage_command_without_workflow_dir_says_so():
    run = subprocess.run(
        [sys.executable, "-m", "radpath", "stage", "--list"], capture_output=True, text=True, env={}
    )
    assert run.returncode == 0
    run = subprocess.run(
        [sys.executable, "-m", "radpath", "stage", "no-such-stage"], capture_output=True, text=True, env={}
    )
    assert run.returncode == 2
    assert "unknown stage 'no-such-stage'" in run.stderr


@pytest.mark.parametrize("status", list(Status))
def test_manifest_round_trips(tmp_path: Path, status: Status):
    from radpath.pipeline.manifest import StageRecord

    m = Manifest.load(tmp_path)
    m.put(CopyFacts(folder="out", chars=3))
    m.record("copy", StageRecord(status, reason="r" if status is Status.SKIPPED else None))
    m.save()
    again = Manifest.load(tmp_path)
    assert again.sections == {"copy": CopyFacts(folder="out", chars=3)}
    assert again.status is status


def test_uploaded_slides_come_from_the_run_folder_where_kaapanas_upload_operator_put_them(tmp_path):
    """On Kaapana, LocalVolumeMountOperator copies the picked uploads to
    $WORKFLOW_DIR/<its out dir>; get-slides reads them there (OPERATOR_IN_DIR) when no
    SLIDES_FOLDER is set, one element per slide with its sidecar."""
    from radpath.adapters.settings import Settings
    from radpath.pipeline.getinput import copy_uploaded_slides
    from radpath.synthetic import write_svs

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    write_svs(uploads / "biopsy.svs", width=512, height=512, levels=1)
    (uploads / "biopsy.svs.json").write_text('{"patient_id": "P1"}')
    (uploads / "notes.txt").write_text("not a slide")
    settings = Settings.from_env({"WORKFLOW_DIR": str(tmp_path), "OPERATOR_IN_DIR": "uploads",
                                  "OPERATOR_OUT_DIR": "get-slides"})
    report = copy_uploaded_slides(settings, "get-slides")
    assert report.fetched == ["biopsy.svs"] and not report.missing
    (element,) = (tmp_path / "batch").iterdir()
    assert sorted(p.name for p in (element / "get-slides").iterdir()) == ["biopsy.svs", "biopsy.svs.json"]
    with pytest.raises(FileNotFoundError, match="SLIDES_FOLDER is not set"):
        copy_uploaded_slides(Settings.from_env({"WORKFLOW_DIR": str(tmp_path)}), "get-slides")


FILL_THE_DISK = """
import json, sys
from dataclasses import dataclass
from pathlib import Path
from radpath.adapters.settings import Settings
from radpath.pipeline.batch import run_stage

root = Path(sys.argv[1])
for name in ("a", "b"):
    (root / "batch" / name / "in").mkdir(parents=True)
settings = Settings.from_env({"WORKFLOW_DIR": str(root), "BATCH_NAME": "batch", "OPERATOR_IN_DIR": "in",
                              "OPERATOR_OUT_DIR": "out"})

def fill(element, settings):
    with open(element.out_dir / "big", "wb") as handle:  # until the disk is full (ENOSPC)
        while True:
            handle.write(b"x" * 65536)

result = run_stage("fill", fill, settings)
print(json.dumps([[r.element, r.status.value, r.detail] for r in result.elements]))
"""


def test_a_full_disk_fails_each_element_with_its_cause_and_never_the_batch(tmp_path: Path):
    """The run folder on a 2 MB tmpfs (a mount namespace of the test's own): the stage fills
    it, so neither its output nor the manifest can be written. Each element is a failed
    result naming the cause, the loop goes on, no traceback."""
    import shutil

    from conftest import skip_unless_ci

    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        skip_unless_ci("unshare -rm (a mount namespace of one's own) is not allowed here")
    root = tmp_path / "run"
    root.mkdir()
    script = (f"mount -t tmpfs -o size=2m radpath-test-run {root} && "
              f"{sys.executable} -c {subprocess.list2cmdline([FILL_THE_DISK])} {root}")
    done = subprocess.run(["unshare", "-rm", "bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert [(name, status) for name, status, _ in results] == [("a", "failed"), ("b", "failed")], results
    for _, _, detail in results:
        assert detail.startswith("no space left on device"), detail
    # a's own outcome could not be recorded: said so, and the element is not taken as done
    assert any("could not be recorded in radpath-manifest.json: no space left on device" in d for *_, d in results)
