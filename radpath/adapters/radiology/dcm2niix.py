"""dcm2niix, the tool: a conversion of a folder in the background.

A stage may start one before it knows whether the folder holds just the series it wants
(:meth:`Dcm2niixRun.ahead`): the nifti stage's command starts dcm2niix on its first
element before Python has imported pydicom, and the stage claims the run once it has read
the headers (:func:`claim`). Nothing here imports more than the standard library.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

from radpath.adapters.executables import wheel_tool

#: Larger files (whole-slide images, big multi-frame objects) are not worth converting on
#: speculation: dcm2niix would read them before we know whether they are wanted.
SPECULATION_MAX_FILE_BYTES = 64 * 2**20


class NiftiConversionError(RuntimeError):
    """dcm2niix could not convert the series into a usable volume."""


def dcm2niix_binary() -> str:
    """The dcm2niix from the PyPI wheel (beside this Python), else one on PATH."""
    found = wheel_tool("dcm2niix")
    if not found:
        raise NiftiConversionError("dcm2niix not found: install radpath's nifti extra (pip install dcm2niix)")
    return found


#: Scratch folders start so: hidden, so no series grouping looks into one.
SCRATCH_PREFIX = ".radpath-dcm2niix-"


def scratch_folder(beside: Path) -> Path:
    """A new scratch folder in ``beside`` (the element's folder), else in the system's
    temporary folder. Beside the element, the volume is moved into the stage's output by
    a rename; from the system's /tmp (on Kaapana the container's own file system, not the
    workflow volume) the move is a copy of the whole volume."""
    try:
        return Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=beside))
    except OSError:  # a read-only element folder
        return Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))


class Dcm2niixRun:
    """dcm2niix converting every series in a folder, in the background.

    Started before the folder's headers are read: when the folder turns out to hold only
    the chosen series (as every Kaapana batch element does), its output is used and the
    header reading cost no extra time. Otherwise :meth:`cancel` it. Without ``out_dir``
    the run writes into a scratch folder of its own beside ``source_dir``, removed by
    :meth:`cancel`.
    """

    def __init__(self, source_dir: Path, out_dir: Path | None = None, compress: bool = False):
        if out_dir is None:
            out_dir = scratch_folder(source_dir.parent)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.source_dir, self.out_dir = source_dir, out_dir
        command = [
            dcm2niix_binary(), "-z", "y" if compress else "n", "-b", "y", "-ba", "y",
            "-f", "%s_%j", "-o", str(out_dir), str(source_dir),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def result(self) -> list[Path]:
        output, _ = self.process.communicate()
        written = sorted(self.out_dir.glob("*.nii*"))
        if self.process.returncode != 0 and not written:
            lines = output.decode(errors="replace").splitlines()
            tail = " | ".join(line for line in lines[-4:] if line.strip())
            raise NiftiConversionError(f"dcm2niix failed (exit {self.process.returncode}): {tail}")
        return written

    def cancel(self) -> None:
        """Stop the run if its result was not taken, and remove what is left of its output."""
        if self.process.returncode is None:
            self.process.kill()
            self.process.communicate()
        shutil.rmtree(self.out_dir, ignore_errors=True)


def run_dcm2niix(source_dir: Path, out_dir: Path, compress: bool = False) -> list[Path]:
    """Convert every series in ``source_dir``; returns the NIfTI files written."""
    return Dcm2niixRun(source_dir, out_dir, compress).result()


def only_small_files(folder: Path) -> bool:
    """Whether converting all of ``folder`` on speculation is cheap enough."""
    return all(p.stat().st_size <= SPECULATION_MAX_FILE_BYTES for p in folder.rglob("*") if p.is_file())


#: Runs started ahead of their stage, by source folder.
_AHEAD: dict[Path, Dcm2niixRun] = {}


def start_ahead(source_dir: Path) -> None:
    """Convert ``source_dir`` from now on, for :func:`claim` (when its files are small).
    A run nobody claims (its element had ended at an earlier stage) is stopped and its
    output removed when the process ends."""
    if source_dir.is_dir() and source_dir not in _AHEAD and only_small_files(source_dir):
        if not _AHEAD:
            atexit.register(_cancel_unclaimed)
        _AHEAD[source_dir] = Dcm2niixRun(source_dir)


def _cancel_unclaimed() -> None:
    while _AHEAD:
        _AHEAD.popitem()[1].cancel()


def claim(source_dir: Path) -> Dcm2niixRun | None:
    """The run :func:`start_ahead` started on ``source_dir``, if any (once)."""
    return _AHEAD.pop(source_dir, None)
