"""Kaapana's batch layout and the loop that runs one stage over every element.

``$WORKFLOW_DIR/$BATCH_NAME/<element>/`` is one radiology/pathology pair; a stage reads
``<element>/$OPERATOR_IN_DIR`` and writes ``<element>/$OPERATOR_OUT_DIR``.

A stage is a function of one :class:`BatchElement` (:mod:`radpath.pipeline.workspace`: its
folders and the sections earlier stages decided). It returns its own section (or
nothing) when the element is done, raises :class:`ElementSkipped` with a reason a person
understands when there is nothing to do for it, and any other exception marks the
element failed; a skip or a :class:`StageFailed` may carry what the stage decided on the
way. This loop loads each element's manifest once, hands the stage its sections, and
saves the stage's section with its outcome: stages never touch the manifest. One failing
element never stops the others. Exit codes follow Kaapana: 0 when any element is done,
126 nothing to do (Kaapana marks the task skipped), 1 when elements failed and none is
done. A batch with some failed elements still exits 0 so the next task carries on with
the others (a failing task would stop the whole chain); the failures are logged as
errors here and the ``report`` task at the end fails the run for them.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from radpath.adapters.headers import header_index
from radpath.adapters.settings import RunLayout, Settings
from radpath.pipeline.events import ProgressEvent, emit
from radpath.pipeline.manifest import Manifest, ManifestError, StageRecord, Status, now_iso
from radpath.pipeline.sections import Section
from radpath.pipeline.workspace import BatchElement, MissingFact

__all__ = ["BatchElement", "ElementSkipped", "MissingFact", "StageFailed", "run_stage", "iter_elements",
           "split_element"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOTHING_TO_DO = 126
#: The progress status of an element an earlier stage ended.
PASSED_OVER = "passed over"
#: The progress status of an element whose stage a resumed run carried over.
DONE_BEFORE = "done before"


class ElementSkipped(Exception):
    """Raised by a stage when an element has nothing to do; the message is the reason.
    ``decided``: the stage's section as far as it got (kept in the manifest)."""

    def __init__(self, reason: str, decided: Section | None = None):
        super().__init__(reason)
        self.decided = decided


class StageFailed(RuntimeError):
    """A stage's failure that comes with what it decided before it failed."""

    def __init__(self, message: str, decided: Section | None = None):
        super().__init__(message)
        self.decided = decided


def iter_elements(layout: RunLayout) -> Iterator[BatchElement]:
    """Every element folder of the batch, in name order."""
    folders = layout.element_folders()
    if layout.workflow_dir is not None and layout.batch_dir.is_dir():
        for link in sorted(p for p in layout.batch_dir.iterdir() if p.is_symlink() and p.is_dir()):
            log.error("%s: a link to a folder elsewhere, not an element: passed over", link.name)
    for path in folders:
        yield BatchElement(
            name=path.name,
            path=path,
            in_dir=path / layout.operator_in_dir if layout.operator_in_dir else None,
            out_dir=path / layout.operator_out_dir if layout.operator_out_dir else None,
        )


StageFunction = Callable[[BatchElement, Settings], "Section | None"]


@dataclass(frozen=True)
class ElementResult:
    element: str
    status: Status
    detail: str | None = None


@dataclass(frozen=True)
class BatchResult:
    stage: str
    elements: list[ElementResult]

    @property
    def exit_code(self) -> int:
        if any(r.status is Status.DONE for r in self.elements):
            return EXIT_OK
        if any(r.status is Status.FAILED for r in self.elements):
            return EXIT_FAILED
        return EXIT_NOTHING_TO_DO

    @property
    def failed(self) -> list[ElementResult]:
        return [r for r in self.elements if r.status is Status.FAILED]

    def counts(self) -> dict[str, int]:
        return {s.value: sum(r.status is s for r in self.elements) for s in Status}


def run_stage(stage: str, function: StageFunction, settings: Settings) -> BatchResult:
    """Run ``function`` over every element of the batch and record each outcome.

    Elements that an earlier stage already ended (skipped or failed) are passed over and
    keep their reason; they count towards neither done nor failed for this stage. A stage
    that a resumed run carried over (:mod:`radpath.pipeline.resume`) is not done again; it
    counts as done.
    """
    elements = list(iter_elements(settings.layout))
    results: list[ElementResult] = []
    workflow_dir, total = settings.layout.workflow_dir, len(elements)
    log.info("%s: %d element(s) in %s", stage, total, settings.layout.batch_dir)
    emit(workflow_dir, ProgressEvent(stage, total))
    for index, element in enumerate(elements, start=1):
        prefix = f"{stage} [{index}/{total}] {element.name}"
        try:
            manifest = Manifest.load(element.path)
        except ManifestError as err:
            log.error("%s: failed: %s", prefix, err)
            results.append(ElementResult(element.name, Status.FAILED, str(err)))
            emit(workflow_dir, ProgressEvent(stage, total, index, element.name, Status.FAILED.value))
            continue
        carried = manifest.stages.get(stage)
        if carried is not None and carried.status is Status.DONE and carried.carried:
            log.info("%s: done before, in %s (resumed)", prefix, carried.carried)
            emit(workflow_dir, ProgressEvent(stage, total, index, element.name, DONE_BEFORE))
            results.append(ElementResult(element.name, Status.DONE, DONE_BEFORE))
            continue
        ended = manifest.ended_at()
        if ended is not None and ended[0] != stage:
            log.info("%s: passed over, ended at %s (%s)", prefix, ended[0], ended[1].status.value)
            emit(workflow_dir, ProgressEvent(stage, total, index, element.name, PASSED_OVER))
            continue
        result = _run_one(stage, function, element, settings, manifest)
        detail = f": {result.detail}" if result.detail else ""
        level = logging.ERROR if result.status is Status.FAILED else logging.INFO
        log.log(level, "%s: %s%s", prefix, result.status.value, detail)
        emit(workflow_dir, ProgressEvent(stage, total, index, element.name, result.status.value))
        results.append(result)
    emit(workflow_dir, ProgressEvent.stage_through(stage, total))
    batch = BatchResult(stage, results)
    log.info("%s: %s", stage, ", ".join(f"{n} {s}" for s, n in batch.counts().items()))
    return batch


def _run_one(
    stage: str, function: StageFunction, element: BatchElement, settings: Settings, manifest: Manifest
) -> ElementResult:
    started, t0 = now_iso(), time.perf_counter()
    view = replace(element, stage=stage, sections=dict(manifest.sections))
    decided: Section | None = None
    try:
        if element.out_dir is not None:
            # A re-run starts clean (as Kaapana's delete_output_on_start): no stale half-output.
            shutil.rmtree(element.out_dir, ignore_errors=True)
            element.out_dir.mkdir(parents=True, exist_ok=True)
        with header_index():
            decided = function(view, settings)
        record = StageRecord(Status.DONE)
    except ElementSkipped as skip:
        decided, record = skip.decided, StageRecord(Status.SKIPPED, reason=str(skip))
    except Exception as err:  # one element's failure must not stop the batch
        log.debug("%s %s: traceback", stage, element.name, exc_info=True)
        decided = getattr(err, "decided", None)
        record = StageRecord(Status.FAILED, error=failure_text(err))
    record.started, record.seconds = started, round(time.perf_counter() - t0, 3)
    if decided is not None:
        manifest.put(decided)
    manifest.record(stage, record)
    try:
        manifest.save()
    except OSError as err:
        # The outcome is lost with the file (the manifest on disk keeps the stages before
        # this one, so the element is not taken as done): say so, and go on with the others.
        return ElementResult(element.name, Status.FAILED,
                             f"{record.reason or record.error or record.status.value}; the outcome could not be "
                             f"recorded in {manifest.path.name}: {failure_text(err)}")
    return ElementResult(element.name, record.status, record.reason or record.error)


def failure_text(err: BaseException) -> str:
    """A failure in words: an operating system's error as its cause and file ("no space left
    on device: /out/store/…"), which a traceback's type name would only hide; anything else
    with its type, as Python names it."""
    if isinstance(err, OSError) and err.errno in errno.errorcode:
        where = f": {err.filename}" if err.filename else ""
        return f"{os.strerror(err.errno).lower()}{where}"
    return f"{type(err).__name__}: {err}"


def split_element(path: Path, decided: Section) -> None:
    """Record a new element at ``path`` (its files put there by the caller) on which
    ``decided``'s stage is done already: the pair stage's one element per further slide."""
    manifest = Manifest.load(path)
    manifest.put(decided)
    manifest.record(decided.stage, StageRecord(Status.DONE, started=now_iso()))
    manifest.save()
