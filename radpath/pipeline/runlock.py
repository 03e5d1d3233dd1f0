"""One run at a time per output folder.

``radpath run`` holds an exclusive lock on ``<output>/.radpath-run.lock`` (``flock``: the
kernel lets go when the process ends, killed or not, so no stale lock outlives a crash)
for as long as it runs. A second run into the same output stops at once naming the first,
or waits for it (``--wait``): two runs would otherwise share the store and the run folders,
each storing part of an element's objects.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

LOCK_NAME = ".radpath-run.lock"


class OutputBusy(RuntimeError):
    """Another run holds the output folder; the message names it."""


@contextlib.contextmanager
def output_lock(output: Path, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``output``'s run lock for the duration; :class:`OutputBusy` where another run
    holds it, unless ``wait``."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / LOCK_NAME
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not wait:
                raise OutputBusy(f"{output} is in use by another radpath run ({holder}): let it end, give "
                                 "another --output, or --wait for it") from None
            if on_wait is not None:
                on_wait(f"waiting for the other radpath run into {output} ({holder}) to end")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                 "command": " ".join(["radpath", *sys.argv[1:]])}))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_in_progress(output: Path) -> bool:
    """Whether a run holds ``output``'s lock now."""
    path = output / LOCK_NAME
    if not path.is_file():
        return False
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _holder(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {data['pid']} on {data['host']} since {data['since']}: {data['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its details unreadable"
