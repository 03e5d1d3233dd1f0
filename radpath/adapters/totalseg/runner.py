"""One TotalSegmentator run (its Python API) in a process of its own, whose main module
has TotalSegmentator imported.

Why a process, and why this main module: nnU-Net starts its preprocessing and export
workers with the *spawn* method, and a spawned worker first imports its parent's main
module. Under TotalSegmentator's own command line that module imports TotalSegmentator
(torch, nnU-Net), so the workers load it at start, while the parent is still busy; under
a main module that does not (``radpath`` or ``python -c``) each worker imports torch only
when its first job arrives, on the critical path: 4–5 s per model on a 2-core machine
(``bench/segment.py`` measured the stage at 1.16× the command line). Run as
``python -m radpath.adapters.totalseg.runner``, the workers preload TotalSegmentator as under
its command line. Each element's run also gets its memory back when it ends, and a crash
(e.g. out of memory) fails that element, not the batch.

The parent writes the request (:class:`SegmentRequest`) as JSON, the child writes the
outcome beside it (:class:`SegmentOutcome`: device, the resolution actually run, weights
used, notes; or the error to report): typed records on both sides of the boundary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Imported here, at module level, on purpose: spawned nnU-Net workers import this module
# as their main module and so load TotalSegmentator before their first job (see above).
if __name__ == "__main__":
    from totalsegmentator.python_api import totalsegmentator  # noqa: F401
elif __name__ == "__mp_main__":
    import totalsegmentator.python_api  # noqa: F401

from radpath.adapters.totalseg.weights import WeightsMissing
from radpath.domain.records import Record
from radpath.domain.vocabulary import Speed


class SegmentationFailed(RuntimeError):
    """TotalSegmentator's run ended with an error (message from the run's process)."""


@dataclass
class SegmentRequest(Record):
    """One TotalSegmentator run: the NIfTI, where the masks go, task and classes, options."""

    source: str
    out_dir: str
    task: str
    classes: list[str]
    speed: Speed
    full_on_cpu: bool
    allow_standin: bool
    robust_crop: bool
    threads: int


@dataclass
class SegmentOutcome(Record):
    """What the run did (``error``/``weights_missing`` set: what stopped it)."""

    device: str | None = None
    speed: Speed | None = None  # the resolution actually run
    models: list[int] = field(default_factory=list)
    weights: str | None = None
    weights_root: str | None = None
    standin_weights: bool = False
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    weights_missing: str | None = None


def segment_in_own_process(request: SegmentRequest, workdir: Path) -> SegmentOutcome:
    """Run :func:`_segment` with ``request`` in a fresh interpreter; its outcome."""
    request_path, outcome_path = workdir / ".totalseg-request.json", workdir / ".totalseg-outcome.json"
    request_path.write_text(json.dumps(request.to_json()))
    outcome_path.unlink(missing_ok=True)
    try:
        # stderr is inherited: the run's log lines land in the stage's (task) log.
        done = subprocess.run([sys.executable, "-m", "radpath.adapters.totalseg.runner", str(request_path),
                               str(outcome_path)], stdout=subprocess.DEVNULL, env=os.environ.copy())
        outcome = SegmentOutcome.from_json(json.loads(outcome_path.read_text())) if outcome_path.is_file() else None
    finally:
        request_path.unlink(missing_ok=True)
        outcome_path.unlink(missing_ok=True)
    if outcome is None:
        raise SegmentationFailed(f"TotalSegmentator's process ended with exit code {done.returncode} and no "
                                 "result (killed, e.g. out of memory?)")
    if outcome.weights_missing is not None:
        raise WeightsMissing(outcome.weights_missing)
    if outcome.error is not None:
        raise SegmentationFailed(outcome.error)
    return outcome


def choose_device() -> tuple[str, str]:
    """TotalSegmentator's device ("gpu" or "cpu") and why, in the order a platform decides it:
    Kaapana gives a pod its GPU through ``CUDA_VISIBLE_DEVICES`` (KaapanaBaseOperator sets it
    from the GPU its job scheduler assigned, and to "" where none was), then torch must find
    a CUDA device and be a CUDA build."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return "cpu", ("CPU: no GPU was assigned to this pod (CUDA_VISIBLE_DEVICES is empty: on Kaapana the "
                       "platform has no GPU support or its job scheduler gave this task none)")
    if torch.version.cuda is None:
        return "cpu", f"CPU: torch {torch.__version__} is a CPU build"
    if not torch.cuda.is_available():
        return "cpu", (f"CPU: torch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU here "
                       f"(CUDA_VISIBLE_DEVICES={visible if visible is not None else 'unset'})")
    return "gpu", (f"GPU: {torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda}, "
                   f"CUDA_VISIBLE_DEVICES={visible if visible is not None else 'unset'})")


def _segment(request: SegmentRequest) -> SegmentOutcome:
    """Device, resolution and weights chosen, then TotalSegmentator's API called."""
    from totalsegmentator.python_api import totalsegmentator

    from radpath.adapters.totalseg.standin import weights_path
    from radpath.adapters.totalseg.weights import choose_weights, disable_usage_stats

    (device, why), speed = choose_device(), request.speed
    notes = [why]
    if device == "cpu" and speed == Speed.FULL and not request.full_on_cpu:
        speed = Speed.FAST
        notes.append("CPU: fast mode instead of full resolution (set TOTALSEG_FULL_ON_CPU=true to insist)")
    _config_in_cache(notes)
    disable_usage_stats()  # before anything of TotalSegmentator's runs
    choice = choose_weights(request.task, speed, allow_standin=request.allow_standin, roi_subset=True,
                            robust_crop=request.robust_crop)
    notes.extend(choice.notes)
    with weights_path(choice.root):
        totalsegmentator(
            Path(request.source),
            Path(request.out_dir),
            task=request.task,
            roi_subset=request.classes,
            fast=choice.spec.speed == Speed.FAST,
            fastest=choice.spec.speed == Speed.FASTEST,
            device=device,
            robust_crop=request.robust_crop,
            nr_thr_resamp=request.threads,
            nr_thr_saving=request.threads,
            quiet=True,
        )
    spec = choice.spec
    return SegmentOutcome(
        device=device,
        speed=Speed(spec.speed),
        models=list(spec.task_ids) + ([spec.crop_model[0]] if spec.crop_model else []),
        weights=choice.label,
        weights_root=str(choice.root),
        standin_weights=choice.standin,
        notes=notes,
    )


def _config_in_cache(notes: list[str]) -> None:
    """TotalSegmentator rewrites its config.json (a prediction counter) on every run: into
    radpath's cache, not the user's home, unless TOTALSEG_HOME_DIR says where. The weights
    stay where they were looked for (TOTALSEG_WEIGHTS_PATH, set to that folder if unset).
    This process ends with the run, and its environment with it."""
    if "TOTALSEG_HOME_DIR" in os.environ:
        return
    from totalsegmentator.config import get_weights_dir

    from radpath.adapters.cache import cache_dir

    home = cache_dir() / "totalsegmentator"
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a pod without a writable home: TotalSegmentator's own default
        notes.append(f"TotalSegmentator's config stays in its default folder ({home}: {err.strerror})")
        return
    os.environ.setdefault("TOTALSEG_WEIGHTS_PATH", str(get_weights_dir()))
    os.environ["TOTALSEG_HOME_DIR"] = str(home)


def main(request_path: str, outcome_path: str) -> int:
    import logging

    from radpath.adapters.logs import configure

    configure()
    try:
        outcome = _segment(SegmentRequest.from_json(json.loads(Path(request_path).read_text())))
    except WeightsMissing as err:
        outcome = SegmentOutcome(weights_missing=str(err))
    except Exception as err:  # reported to the parent, which fails this element only
        logging.getLogger("radpath.adapters.totalseg").debug("TotalSegmentator failed", exc_info=True)
        outcome = SegmentOutcome(error=f"{type(err).__name__}: {err}")
    Path(outcome_path).write_text(json.dumps(outcome.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
