"""One TotalSegmentator run (its Python API) in a process of its own, whose main module
has TotalSegmentator imported.

Why a process, and why this main module: nnU-Net starts its preprocessing and export
workers with the *spawn* method, and a spawned worker first imports its parent's main
module. Under TotalSegmentator's own command line that module imports TotalSegmentator
(torch, nnU-Net), so the workers load it at start, while the parent is still busy; under
a main module that does not (``radpath`` or ``python -c``) each worker imports torch only
when its first job arrives, on the critical path: 4–5 s per model on a 2-core machine
(``bench/segment.py`` measured the stage at 1.16× the command line). Run as
``python -m radpath.segmentation.runner``, the workers preload TotalSegmentator as under
its command line. Each element's run also gets its memory back when it ends, and a crash
(e.g. out of memory) fails that element, not the batch.

The parent writes the request as JSON, the child writes the outcome as JSON beside it:
device, the resolution actually run, weights used, notes; or the error to report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Imported here, at module level, on purpose: spawned nnU-Net workers import this module
# as their main module and so load TotalSegmentator before their first job (see above).
if __name__ == "__main__":
    from totalsegmentator.python_api import totalsegmentator  # noqa: F401
elif __name__ == "__mp_main__":
    import totalsegmentator.python_api  # noqa: F401

from radpath.segmentation.weights import WeightsMissing


class SegmentationFailed(RuntimeError):
    """TotalSegmentator's run ended with an error (message from the run's process)."""


def segment_in_own_process(request: dict, workdir: Path) -> dict:
    """Run :func:`_segment` with ``request`` in a fresh interpreter; its outcome dict."""
    request_path, outcome_path = workdir / ".totalseg-request.json", workdir / ".totalseg-outcome.json"
    request_path.write_text(json.dumps(request))
    outcome_path.unlink(missing_ok=True)
    try:
        # stderr is inherited: the run's log lines land in the stage's (task) log.
        done = subprocess.run([sys.executable, "-m", "radpath.segmentation.runner", str(request_path),
                               str(outcome_path)], stdout=subprocess.DEVNULL, env=os.environ.copy())
        outcome = json.loads(outcome_path.read_text()) if outcome_path.is_file() else None
    finally:
        request_path.unlink(missing_ok=True)
        outcome_path.unlink(missing_ok=True)
    if outcome is None:
        raise SegmentationFailed(f"TotalSegmentator's process ended with exit code {done.returncode} and no "
                                 "result (killed, e.g. out of memory?)")
    if "weights_missing" in outcome:
        raise WeightsMissing(outcome["weights_missing"])
    if "error" in outcome:
        raise SegmentationFailed(outcome["error"])
    return outcome


def _device() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def _segment(request: dict) -> dict:
    """Device, resolution and weights chosen, then TotalSegmentator's API called."""
    from totalsegmentator.python_api import totalsegmentator

    from radpath.segmentation.standin import weights_path
    from radpath.segmentation.weights import choose_weights, disable_usage_stats

    device, speed, notes = _device(), request["speed"], []
    if device == "cpu" and speed == "full" and not request["full_on_cpu"]:
        speed = "fast"
        notes.append("CPU: fast mode instead of full resolution (set TOTALSEG_FULL_ON_CPU=true to insist)")
    disable_usage_stats()  # before anything of TotalSegmentator's runs
    choice = choose_weights(request["task"], speed, allow_standin=request["allow_standin"], roi_subset=True,
                            robust_crop=request["robust_crop"])
    notes.extend(choice.notes)
    with weights_path(choice.root):
        totalsegmentator(
            Path(request["source"]),
            Path(request["out_dir"]),
            task=request["task"],
            roi_subset=request["classes"],
            fast=choice.spec.speed == "fast",
            fastest=choice.spec.speed == "fastest",
            device=device,
            robust_crop=request["robust_crop"],
            nr_thr_resamp=request["threads"],
            nr_thr_saving=request["threads"],
            quiet=True,
        )
    spec = choice.spec
    return {
        "device": device,
        "speed": spec.speed,
        "models": list(spec.task_ids) + ([spec.crop_model[0]] if spec.crop_model else []),
        "weights": choice.label,
        "weights_root": str(choice.root),
        "standin_weights": choice.standin,
        "notes": notes,
    }


def main(request_path: str, outcome_path: str) -> int:
    import logging

    from radpath.logs import configure

    configure()
    try:
        outcome = _segment(json.loads(Path(request_path).read_text()))
    except WeightsMissing as err:
        outcome = {"weights_missing": str(err)}
    except Exception as err:  # reported to the parent, which fails this element only
        logging.getLogger("radpath.segmentation").debug("TotalSegmentator failed", exc_info=True)
        outcome = {"error": f"{type(err).__name__}: {err}"}
    Path(outcome_path).write_text(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
