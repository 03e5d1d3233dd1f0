"""DICOM headers read from disk once: the header index of the element a stage works on.

Several parts of one stage need the same files' headers (series grouping, the source
grid, the store's UIDs, the KOS's references). Within :func:`header_index` (the runner
opens one per element and stage) every :func:`read_header` of a file reads it once and
hands out the same dataset after; a file rewritten since (other size or modification
time) is read again. Outside an index each call reads the file.

The datasets are shared: callers read them and never change them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydicom takes ~0.3 s to import: not for a stage that finds its headers indexed
    from pydicom.dataset import Dataset

_Key = tuple[str, int, int]
#: Each file's dataset, or the error reading it gave (a file that is not DICOM is tried once).
_index: ContextVar[dict[_Key, Dataset | Exception] | None] = ContextVar("radpath_header_index", default=None)


@contextlib.contextmanager
def header_index() -> Iterator[None]:
    """Headers read within this block are read once (one element's stage)."""
    token = _index.set({})
    try:
        yield
    finally:
        _index.reset(token)


def read_header(path: Path | str) -> Dataset:
    """``path``'s dataset without pixel data (pydicom's errors for what is not DICOM)."""
    import pydicom

    index = _index.get()
    if index is None:
        return pydicom.dcmread(path, stop_before_pixels=True)
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in index:
        try:
            index[key] = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as err:
            index[key] = err
    found = index[key]
    if isinstance(found, Exception):
        raise found
    return found
