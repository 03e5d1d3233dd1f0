"""Progress as structured events: one JSON line per event in the run folder.

The batch runner appends a :class:`ProgressEvent` to ``$WORKFLOW_DIR/radpath-events.jsonl``
when a stage starts and when it ends an element; whoever shows progress reads that
file (:class:`EventTail`), so the command line's bars are the same under a local Airflow
(tasks in other processes) and in-process, and do not depend on how log messages read.
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


@dataclass
class ProgressEvent(Record):
    """A stage started on ``total`` elements (``element`` None), or ended one element
    (``index`` of ``total``) with ``status``: done, skipped, failed, or passed over."""

    stage: str
    total: int
    index: int | None = None
    element: str | None = None
    status: str | None = None

    @property
    def started(self) -> bool:
        return self.element is None


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
