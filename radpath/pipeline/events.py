"""Progress as structured events: one JSON line per event in the run folder.

The batch runner appends a :class:`ProgressEvent` to ``$WORKFLOW_DIR/radpath-events.jsonl``
when a stage starts, when it ends an element and when it is through the batch; whoever
shows progress reads that file (:class:`EventTail`), so the command line's bars are the
same under a local Airflow (tasks in other processes) and in-process, and do not depend
on how log messages read.

The same file is the run's own account of how far it got (:func:`run_state`): a stage
started and never through, or a run without its end (written by ``radpath run`` and by
the report task that ends every DAG), was killed or crashed, whatever the manifests say.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from radpath.domain.records import Record, RecordError

log = logging.getLogger(__name__)

EVENTS_FILE = "radpath-events.jsonl"


#: ``status`` of the event that says a stage is through its batch (``element`` None).
STAGE_THROUGH = "through"
#: The ``stage`` of the event that ends a run (``status`` :data:`STAGE_THROUGH`).
RUN = "run"


@dataclass
class ProgressEvent(Record):
    """A stage started on ``total`` elements (``element`` and ``status`` None), ended one
    element (``index`` of ``total``) with ``status``: done, skipped, failed, or passed over,
    or is through its batch (``element`` None, ``status`` :data:`STAGE_THROUGH`)."""

    stage: str
    total: int
    index: int | None = None
    element: str | None = None
    status: str | None = None

    @property
    def started(self) -> bool:
        return self.element is None and self.status is None

    @property
    def through(self) -> bool:
        return self.element is None and self.status == STAGE_THROUGH

    @classmethod
    def stage_through(cls, stage: str, total: int) -> ProgressEvent:
        return cls(stage, total, status=STAGE_THROUGH)

    @classmethod
    def run_ended(cls) -> ProgressEvent:
        return cls(RUN, 0, status=STAGE_THROUGH)


def emit(workflow_dir: Path | None, event: ProgressEvent) -> None:
    """Append ``event`` to the run's event file (nothing without a run folder)."""
    if workflow_dir is None or not workflow_dir.is_dir():
        return
    line = json.dumps(event.to_json()) + "\n"
    try:
        with open(workflow_dir / EVENTS_FILE, "a", encoding="utf-8") as handle:
            handle.write(line)  # one short write per line: concurrent tasks do not interleave
    except OSError as err:  # progress is a convenience: never fail a stage for it
        log.debug("progress event not written: %s", err)


@dataclass(frozen=True)
class RunState:
    """How far a run got, by its own events."""

    stages: tuple[str, ...]  # the stages that started, in order
    interrupted_at: str | None  # the stage that started and never got through its batch
    ended: bool  # the run's end was written
    running: bool = False  # a process still holds the run's output (set by whoever can tell)

    @property
    def recorded(self) -> bool:
        """Whether the run kept events at all (a run folder filled by hand has none)."""
        return bool(self.stages) or self.ended

    @property
    def complete(self) -> bool:
        return self.ended and self.interrupted_at is None


def read_events(workflow_dir: Path) -> list[ProgressEvent]:
    """The run's events; a line that is not one (cut short by a kill) is left out."""
    path = workflow_dir / EVENTS_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(ProgressEvent.from_json(json.loads(line)))
        except (ValueError, RecordError, TypeError, AttributeError):
            continue
    return events


def run_state(workflow_dir: Path) -> RunState:
    """The stages the run started, the one it never got through (the last such), and
    whether it ended."""
    started: list[str] = []
    open_stages: set[str] = set()
    ended = False
    for event in read_events(workflow_dir):
        if event.stage == RUN:
            ended = ended or event.through
        elif event.started:
            if event.stage not in started:
                started.append(event.stage)
            open_stages.add(event.stage)
        elif event.through:
            open_stages.discard(event.stage)
    interrupted = next((stage for stage in reversed(started) if stage in open_stages), None)
    return RunState(tuple(started), interrupted, ended)


class EventTail:
    """Feeds every new event of the event files below ``root`` to ``on_event`` (from a
    thread, every ``interval`` s, and once more at :meth:`stop`); files already there
    when the tail starts are skipped (earlier runs into the same folder)."""

    def __init__(self, root: Path, on_event: Callable[[ProgressEvent], None], interval: float = 0.2):
        self.root, self.on_event, self.interval = root, on_event, interval
        self._offsets: dict[Path, int] = {path: -1 for path in self._files()}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="radpath-events", daemon=True)
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted({*self.root.glob(EVENTS_FILE), *self.root.glob(f"*/{EVENTS_FILE}")})

    def __enter__(self) -> EventTail:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self.poll()

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        with self._lock:
            for path in self._files():
                offset = self._offsets.setdefault(path, 0)
                if offset < 0:
                    continue
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
                complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
                self._offsets[path] = offset + len(complete)
                for line in complete.decode("utf-8", "replace").splitlines():
                    try:
                        event = ProgressEvent.from_json(json.loads(line))
                    except (ValueError, RecordError):
                        continue
                    self.on_event(event)
