"""A run's word under real faults (issue 42): each fault injected for real, each outcome read
as a user reads it (the table on the terminal, ``radpath report``, the research table, the
store), then the run again.

- a SIGKILL of the run's process group during segment;
- a store volume that fills up (a size-limited tmpfs in a mount namespace of its own);
- the PACS (a real Orthanc) stopped before store and started again;
- two runs into one output at once; a damaged manifest in an old run.

Every run is ``radpath run --no-airflow`` with the stand-in weights, in a home folder of its
own, so that anything written outside the output folder and radpath's cache shows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from conftest import skip_unless_ci
from tables import squash, table_cells
from test_bad_input import listing

from radpath.adapters.orthanc import LocalOrthanc, OrthancUnavailable
from radpath.apps.demo import KIDNEY, write_demo_input
from radpath.pipeline.events import EVENTS_FILE, read_events
from radpath.synthetic import SyntheticPatient

pytestmark = [pytest.mark.slow]

QUICK_PACS = {"DICOMWEB_RETRIES": "1", "DICOMWEB_BACKOFF": "0.05", "DICOMWEB_TIMEOUT": "10"}


def cohort(folder: Path, patients: int) -> Path:
    """``patients`` patients, one folder each with a non-ASCII name, a CT and a kidney slide."""
    for number in range(1, patients + 1):
        write_demo_input(folder / f"Fall Müller {number:02d}", slides=(KIDNEY,),
                         patient=SyntheticPatient(patient_id=f"FAULT-{number:03d}", name=f"Müller^Fall{number}"))
    return folder


class Place:
    """A test's folders: input, output, and a home and cache of its own."""

    def __init__(self, root: Path, patients: int):
        self.root = root
        self.input = cohort(root / "input", patients)
        self.output = root / "out"
        self.home = root / "home"
        self.cache = root / "radpath-cache"
        self.home.mkdir()
        self.before = self.outside()

    def env(self, **extra: str) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("DICOMWEB_", "TOTALSEG_HOME"))}
        return {**environ, "HOME": str(self.home), "RADPATH_CACHE": str(self.cache), **extra}

    def command(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "radpath", "run", "--input", str(self.input), "--output", str(self.output),
                "--standin-weights", "--no-airflow", *extra]

    def run(self, *extra: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*extra), capture_output=True, text=True, env=self.env(**env),
                              timeout=900)

    def start(self, *extra: str, **env: str) -> subprocess.Popen:
        """The run in a process group of its own (as a shell starts a job), to be killed whole."""
        return subprocess.Popen(self.command(*extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=self.env(**env), start_new_session=True)

    def report(self, workflow_dir: Path) -> subprocess.CompletedProcess:
        env = self.env(WORKFLOW_DIR=str(workflow_dir), BATCH_NAME="batch")
        return subprocess.run([sys.executable, "-m", "radpath", "report"], capture_output=True, text=True, env=env,
                              timeout=300)

    def runs(self) -> list[Path]:
        """The run folders, oldest first (by their run conf, written as each run starts; a
        folder whose run has not written it yet is left out)."""
        confs = [run / "conf" / "conf.json" for run in (self.output / "runs").iterdir()]
        started = {conf.parent.parent: conf.stat().st_mtime for conf in confs if conf.is_file()}
        return sorted(started, key=started.__getitem__)

    def outside(self) -> dict[str, str]:
        """Every file of the test's folder outside the output and radpath's cache."""
        return {path: digest for path, digest in listing(self.root, skip=self.cache).items()
                if path != "out" and not path.startswith("out/")}

    def check_nothing_changed_outside(self) -> None:
        after = self.outside()
        assert after == self.before, sorted(p for p in set(after) | set(self.before)
                                            if after.get(p) != self.before.get(p))[:20]


def wait_for_event(output: Path, matches, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for events in output.glob(f"runs/*/{EVENTS_FILE}"):
            if any(matches(event) for event in read_events(events.parent)):
                return
        time.sleep(0.2)
    raise AssertionError(f"no such event within {timeout_s} s under {output}")


def results(workflow_dir: Path, stage: str) -> list[str]:
    """The statuses ``stage`` gave the elements in that run, by its own events."""
    return [e.status for e in read_events(workflow_dir) if e.stage == stage and e.element is not None]


def research_rows(workflow_dir: Path) -> list[dict]:
    (table,) = workflow_dir.glob("report/quantification-*.json")
    return json.loads(table.read_text())["rows"]


def no_traceback(*outputs: subprocess.CompletedProcess | str) -> None:
    for out in outputs:
        text = out if isinstance(out, str) else out.stdout + out.stderr
        assert "Traceback" not in text, text[-3000:]


# ------------------------------------------------------------------ SIGKILL during segment


@pytest.fixture(scope="session")
def killed_and_resumed(tmp_path_factory):
    """Two patients; the run killed (SIGKILL to its process group) while segmenting the
    second; ``radpath report`` on it; the run again."""
    place = Place(tmp_path_factory.mktemp("killed"), patients=2)
    job = place.start()
    # The first patient segmented: the second one's segmentation is under way.
    wait_for_event(place.output, lambda e: e.stage == "segment" and e.index == 1 and e.status == "done")
    os.killpg(job.pid, signal.SIGKILL)
    killed_output = job.communicate(timeout=60)[0]
    (killed,) = place.runs()
    report = place.report(killed)
    again = place.run()
    return place, killed, killed_output, report, again


def test_a_run_killed_at_segment_is_reported_interrupted_at_segment(killed_and_resumed):
    place, killed, _, report, _ = killed_and_resumed
    assert report.returncode == 1, report.stdout[-3000:] + report.stderr[-3000:]
    no_traceback(report)
    rows = {row["element"]: row for row in table_cells(report.stdout)}
    assert set(rows) == {"Fall_Müller_01", "Fall_Müller_02"}, rows  # the user's letters, kept
    assert all(row["status"] == "interrupted" for row in rows.values()), rows
    assert rows["Fall_Müller_02"]["stage"] == "segment", rows  # the one being segmented
    assert "run interrupted at segment" in squash(report.stdout, keep_spaces=True), report.stdout
    # The research table claims nothing, and says why.
    rows = research_rows(killed)
    assert {(row["status"], row["reason"]) for row in rows} == {
        ("interrupted", "the run stopped at segment (killed or crashed): run it again to resume")}, rows


def test_the_rerun_segments_only_what_was_not_segmented_and_finishes_done(killed_and_resumed):
    place, killed, _, _, again = killed_and_resumed
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    no_traceback(again)
    assert f"resuming {killed.name}" in squash(again.stdout, keep_spaces=True)
    resumed = place.runs()[-1]
    assert results(resumed, "segment") == ["done before", "done"]  # one segmentation, not two
    assert results(resumed, "wsi-dicomize") == ["done before", "done before"]
    rows = {row["element"]: row for row in table_cells(again.stdout)}
    assert {(row["status"], row["stage"]) for row in rows.values()} == {("done", "link")}, rows
    assert {row["status"] for row in research_rows(resumed)} == {"measured"}
    # The killed run's own account stays what it was.
    assert place.report(killed).returncode == 1


def test_a_run_changes_nothing_outside_its_output_and_radpaths_cache(killed_and_resumed):
    """TotalSegmentator's config.json (its prediction counter) included: under the cache,
    not in the home folder (issue 42, point 9)."""
    place, *_ = killed_and_resumed
    place.check_nothing_changed_outside()
    assert (place.cache / "totalsegmentator" / "config.json").is_file()
    assert not (place.home / ".totalsegmentator").exists()


def test_a_truncated_manifest_in_an_old_run_is_named_and_the_rest_shown(killed_and_resumed, tmp_path):
    """``radpath report`` on the damaged run, and what ``radpath view OUTPUT`` serves."""
    from radpath.apps.viewer.view import elements_under

    place, killed, *_ = killed_and_resumed
    output = tmp_path / "out"
    shutil.copytree(place.output, output, symlinks=True)
    old_run = output / "runs" / killed.name
    damaged = old_run / "batch" / "Fall_Müller_01" / "radpath-manifest.json"
    damaged.write_text(damaged.read_text()[:100])
    report = place.report(old_run)
    no_traceback(report)
    rows = {row["element"]: row for row in table_cells(report.stdout)}
    assert rows["Fall_Müller_01"]["status"] == "failed" and "unreadable manifest" in rows["Fall_Müller_01"]["detail"]
    assert rows["Fall_Müller_02"]["status"] == "interrupted", rows
    skipped: list[str] = []
    shown = elements_under(output, skipped)
    assert {e.name for e in shown} == {"Fall_Müller_01", "Fall_Müller_02"}  # the resumed run's, both linked
    assert len(skipped) == 1 and str(damaged) in skipped[0] and "unreadable manifest" in skipped[0], skipped


# ------------------------------------------------------------------ a store volume fills up


def test_a_full_store_volume_fails_the_element_at_store_and_the_rerun_completes(tmp_path):
    """The store folder is a 1 MB tmpfs (in a mount namespace of this test's own); the CT
    alone needs about 2 MB. Then the volume grows (space freed) and the run goes again."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        skip_unless_ci("unshare -rm (a mount namespace of one's own) is not allowed here")
    place = Place(tmp_path / "place", patients=1)
    said = tmp_path / "said"  # what the commands in the namespace said (beside the place, not in it)
    said.mkdir()
    store = place.output / "store"
    store.mkdir(parents=True)
    q = subprocess.list2cmdline
    script = "\n".join([
        "set -u",
        f"mount -t tmpfs -o size=1m radpath-test-store {q([str(store)])}",
        f"{q(place.command())} > {q([str(said / 'first.out')])} 2>&1; echo $? > {q([str(said / 'first.rc')])}",
        f"mount -o remount,size=64m {q([str(store)])}",
        f"{q(place.command())} > {q([str(said / 'again.out')])} 2>&1; echo $? > {q([str(said / 'again.rc')])}",
        f"find {q([str(store)])} -type f -printf '%P\\n' > {q([str(said / 'stored.txt')])}",
    ])
    subprocess.run(["unshare", "-rm", "bash", "-c", script], env=place.env(), check=True, timeout=900)
    first, again = (said / "first.out").read_text(), (said / "again.out").read_text()
    no_traceback(first, again)
    assert (said / "first.rc").read_text().strip() == "1", first[-3000:]
    (row,) = table_cells(first)
    assert (row["status"], row["stage"]) == ("failed", "store"), row
    detail = squash(row["detail"], keep_spaces=True)
    assert detail.startswith("StoreFailed: no space left on device: cannot write source"), detail
    assert "(stored: source " in detail and " of 60, slide 0 of " in detail, detail
    log = sorted((place.output / "logs").glob("*.log"))[0]
    assert "store [1/1] Fall_Müller_01: failed: StoreFailed: no space left on device" in log.read_text()
    first_run = place.runs()[0]
    (measured,) = research_rows(first_run)
    assert measured["status"] == "measured, not stored" and "no space left on device" in measured["reason"]
    # Space freed: the run again stores the rest, each instance once and whole.
    assert (said / "again.rc").read_text().strip() == "0", again[-3000:]
    stored = (said / "stored.txt").read_text().split()
    assert not [name for name in stored if ".partial" in name], stored
    sops = [Path(name).stem for name in stored]
    assert len(sops) == len(set(sops)) and len(sops) == 60 + 4 + 1 + 1 + 1, len(sops)  # CT, slide, SEG, SR, KOS
    (resumed_row,) = table_cells(again)
    assert (resumed_row["status"], resumed_row["stage"]) == ("done", "link"), resumed_row
    assert results(place.runs()[-1], "segment") == ["done before"]
    place.check_nothing_changed_outside()


# ------------------------------------------------------------------ the PACS goes down


def test_with_the_pacs_down_at_store_the_table_says_not_stored_until_a_rerun_stores(tmp_path):
    try:
        pacs = LocalOrthanc(storage=tmp_path / "orthanc").start()
    except OrthancUnavailable as err:
        skip_unless_ci(f"Orthanc: {err}")
    place = Place(tmp_path / "place", patients=1)
    pacs_env = {"DICOMWEB_URL": pacs.dicomweb_url, **QUICK_PACS}
    try:
        job = place.start("--store", "dicomweb", **pacs_env)
        wait_for_event(place.output, lambda e: e.stage == "segment" and e.started)
        pacs.stop()  # down before store
        first = job.communicate(timeout=600)[0]
        assert job.returncode == 1, first[-3000:]
        no_traceback(first)
        (row,) = table_cells(first)
        assert (row["status"], row["stage"]) == ("failed", "store"), row
        (unstored,) = research_rows(place.runs()[0])
        assert unstored["status"] == "measured, not stored", unstored
        assert unstored["reason"].startswith("not stored: failed at store:") and "cannot connect" in unstored["reason"]
        assert "research table (volumes, radiomics; 0 measured, 1 measured but not stored of 1 rows)" \
            in squash(first, keep_spaces=True)
        pacs = LocalOrthanc(storage=tmp_path / "orthanc", port=pacs.port).start()  # back
        again = place.run("--store", "dicomweb", **pacs_env)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        (stored,) = research_rows(place.runs()[-1])
        assert stored["status"] == "measured" and stored["sr_sop_instance_uid"] == unstored["sr_sop_instance_uid"]
        modalities = [pydicom.dcmread(path, stop_before_pixels=True).Modality
                      for path in (tmp_path / "orthanc").rglob("*") if path.is_file() and _is_dicom(path)]
        assert {m: modalities.count(m) for m in ("SEG", "SR", "KO")} == {"SEG": 1, "SR": 1, "KO": 1}, modalities
        place.check_nothing_changed_outside()
    finally:
        pacs.stop()


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def test_a_pacs_that_cannot_be_reached_stops_the_run_before_any_stage(tmp_path):
    place = Place(tmp_path, patients=1)
    run = place.run("--store", "dicomweb", DICOMWEB_URL="http://127.0.0.1:9/dicom-web", **QUICK_PACS)
    assert run.returncode == 2, run.stdout[-3000:] + run.stderr[-3000:]
    no_traceback(run)
    assert "radpath run: the PACS to store into: QIDO-RS study search at http://127.0.0.1:9/dicom-web" in run.stderr
    assert not (place.output / "runs").exists()


# ------------------------------------------------------------------ two runs into one output


def test_two_runs_into_one_output_one_runs_the_other_stops_or_waits(tmp_path):
    place = Place(tmp_path, patients=1)
    first, second = place.start(), place.start()
    (first_out, _), (second_out, _) = first.communicate(timeout=600), second.communicate(timeout=600)
    outcomes = sorted([(first.returncode, first_out), (second.returncode, second_out)])
    (ran_code, ran), (stopped_code, stopped) = outcomes
    assert (ran_code, stopped_code) == (0, 2), outcomes
    no_traceback(ran, stopped)
    holder = first if first.returncode == 0 else second
    assert f"is in use by another radpath run (pid {holder.pid} on" in squash(stopped, keep_spaces=True), stopped
    (workflow_dir,) = place.runs()  # the stopped one made no run folder
    # With --wait, a run started while another runs waits for it, then resumes it.
    busy = place.start("--fresh")
    deadline = time.monotonic() + 300
    while len(place.runs()) < 2 or not any(e.stage == "segment" and e.started for e in read_events(place.runs()[-1])):
        assert time.monotonic() < deadline and busy.poll() is None, "the --fresh run never came to segment"
        time.sleep(0.2)
    waiting = place.run("--wait")
    busy_out = busy.communicate(timeout=600)[0]
    assert busy.returncode == 0 and waiting.returncode == 0, busy_out[-2000:] + waiting.stdout[-2000:]
    assert "waiting for the other radpath run into" in squash(waiting.stdout, keep_spaces=True)
    # Each object once in the store, and each element's SEG, SR and KOS from one run.
    stored = [p.stem for p in (place.output / "store").rglob("*.dcm")]
    assert len(stored) == len(set(stored)) == 60 + 4 + 3
    last = place.runs()[-1]
    assert results(last, "store") == ["done before"] and results(last, "link") == ["done before"]
    place.check_nothing_changed_outside()
