"""What a crash costs: a run killed during the 5th of 6 patients' segmentation, then run
again (resumed), against the same input run whole from the start.

Three runs of ``radpath run --no-airflow --standin-weights`` over six generated patients
(a CT and a kidney slide each), each into an output of its own: the whole run; the run
killed (SIGKILL to its process group) as soon as the 4th patient's segmentation is done;
the run again into the killed run's output, which resumes it. Reports the seconds of each
and the ratio of the resumed run to the whole one (issue 42's target: at most 0.40).
Run: .venv/bin/python bench/resume.py [--patients 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit  # noqa: E402  (bench/common.py)

from radpath.apps.demo import KIDNEY, write_demo_input  # noqa: E402
from radpath.pipeline.events import EVENTS_FILE, read_events  # noqa: E402
from radpath.synthetic import SyntheticPatient  # noqa: E402


def write_cohort(folder: Path, patients: int) -> None:
    for number in range(1, patients + 1):
        write_demo_input(folder / f"patient-{number:02d}", slides=(KIDNEY,),
                         patient=SyntheticPatient(patient_id=f"BENCH-{number:03d}", name=f"Bench^{number}"))


def command(folder: Path, output: Path) -> list[str]:
    return [sys.executable, "-m", "radpath", "run", "--input", str(folder), "--output", str(output),
            "--standin-weights", "--no-airflow"]


def segmented(output: Path) -> int:
    """How many elements the runs under ``output`` segmented so far (by their events)."""
    return sum(1 for events in output.glob(f"runs/*/{EVENTS_FILE}") for e in read_events(events.parent)
               if e.stage == "segment" and e.status == "done")


def run_killed(folder: Path, output: Path, after: int) -> float:
    """Seconds until the run is killed, once ``after`` elements are segmented."""
    start = time.perf_counter()
    job = subprocess.Popen(command(folder, output), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    while segmented(output) < after:
        if job.poll() is not None:
            raise RuntimeError(f"the run ended (exit {job.returncode}) before {after} segmentations")
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    return time.perf_counter() - start


def run_whole(folder: Path, output: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command(folder, output), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"radpath run exited {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    killed_after = args.patients - 2  # killed during the next-to-last patient's segmentation
    with tempfile.TemporaryDirectory(prefix="radpath-bench-resume-") as tmp:
        root = Path(tmp)
        write_cohort(root / "input", args.patients)
        whole = run_whole(root / "input", root / "whole")
        killed = run_killed(root / "input", root / "resumed", killed_after)
        resumed = run_whole(root / "input", root / "resumed")
        segmented_again = segmented(root / "resumed") - killed_after
    report = {
        "benchmark": "resume after a crash",
        "patients": args.patients,
        "killed_after_segmentations": killed_after,
        "seconds": {"whole run": round(whole, 1), "killed run": round(killed, 1), "resumed run": round(resumed, 1)},
        "segmentations in the resumed run": segmented_again,
        "ratio resumed / whole": round(resumed / whole, 3),
        "ratio (killed + resumed) / whole": round((killed + resumed) / whole, 3),
    }
    return emit(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
