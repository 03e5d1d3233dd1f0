"""A DICOM file's header record, and the element's index of them kept on disk.

A :class:`HeaderRecord` is what series grouping needs of a file's header (its SOP
instance, frames and positions, its series' summary).

The stages of one element run one after another, each in a process of its own (on
Kaapana in a container of its own), and most of them group the element's files into
series. The first to read a file's header writes down its :class:`HeaderRecord`; the
next ones take it from here instead of reading the file again, and need not import
pydicom for it. An entry holds while the file keeps its size, modification time and
inode; a file rewritten since, or new, is read again. An index that cannot be read is started
afresh: it only ever saves work.

The index is ``.radpath-headers.json`` in the element folder (a dot file: series
grouping never takes it for input), paths relative to that folder.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from radpath.adapters.headers import read_header
from radpath.domain.radiology.summary import (
    PLANE_POSITION,
    Frame,
    SeriesSummary,
    float_tuple,
    functional_attribute,
)
from radpath.domain.records import Record, RecordError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

INDEX_NAME = ".radpath-headers.json"
#: Increased when what a record holds changes; an index of another schema is started afresh.
SCHEMA = 1

#: (st_size, st_mtime_ns, st_ino): the inode too, so that a file written anew (a stage's
#: output re-run) is never taken for the one before, even on a file system whose clock
#: is coarser than the time between the two.
_Stamp = tuple[int, int, int]


def _sop_uid(ds: Dataset) -> str:
    uid = str(ds.get("SOPInstanceUID") or "")
    if not uid and hasattr(ds, "file_meta"):
        uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID") or "")
    return uid


def _frames(ds: Dataset, sop_uid: str) -> tuple[Frame, ...]:
    count = int(ds.get("NumberOfFrames") or 1)
    if count > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        return tuple(
            Frame(sop_uid, i + 1, float_tuple(functional_attribute(ds, PLANE_POSITION, i)))  # type: ignore[arg-type]
            for i in range(count)
        )
    return (Frame(sop_uid, None, float_tuple(ds.get("ImagePositionPatient"))),)  # type: ignore[arg-type]


@dataclass(frozen=True)
class HeaderRecord(Record):
    """What series grouping keeps of one DICOM file's header (and the header index saves)."""

    sop_instance_uid: str  # SOPInstanceUID, else the file meta's MediaStorageSOPInstanceUID
    is_image: bool  # has Rows and a position (ImagePositionPatient or per-frame groups)
    frames: tuple[Frame, ...]  # empty for non-image objects
    summary: SeriesSummary  # the series as this file describes it (key: its SeriesInstanceUID)

    @classmethod
    def of(cls, ds: Dataset) -> HeaderRecord:
        sop_uid = _sop_uid(ds)
        is_image = bool(ds.get("Rows")) and (
            "ImagePositionPatient" in ds or "PerFrameFunctionalGroupsSequence" in ds
        )
        summary = SeriesSummary.from_dataset(ds, str(ds.get("SeriesInstanceUID") or ""), 1)
        return cls(sop_uid, is_image, _frames(ds, sop_uid) if is_image else (), summary)


def read_record(path: Path) -> HeaderRecord | None:
    """``path``'s header record; None for a file that is not DICOM."""
    from pydicom.errors import InvalidDicomError

    try:
        return HeaderRecord.of(read_header(path))
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError):
        return None


@dataclass(frozen=True)
class _StoredHeader(Record):
    """A :class:`HeaderRecord` as the index file keeps it: the series' summary, the same
    for all of a series' files, by its number in the file's list of summaries."""

    sop_instance_uid: str
    is_image: bool
    frames: tuple[Frame, ...]
    summary: int


class HeaderIndex:
    """The header records of the files below ``root`` (one batch element)."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / INDEX_NAME
        self._entries: dict[str, tuple[_Stamp, HeaderRecord | None]] | None = None
        self._changed = False

    def record(self, path: Path) -> HeaderRecord | None:
        """``path``'s record: from the index while the file is unchanged, else read (and
        kept). None for a file that is not DICOM (remembered too: it is not tried again)."""
        try:
            name = path.relative_to(self.root).as_posix()
        except ValueError:  # not in this element: not the index's to keep
            return read_record(path)
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        entries = self._load()
        known = entries.get(name)
        if known is not None and known[0] == stamp:
            return known[1]
        record = read_record(path)
        entries[name] = (stamp, record)
        self._changed = True
        return record

    def save(self) -> None:
        """Write the index if records were added (atomically: a reader never sees half)."""
        if not self._changed or self._entries is None:
            return
        summaries: dict[str, int] = {}  # a summary's JSON → its number
        files = {}
        for name, ((size, mtime, inode), record) in self._entries.items():
            stored = None
            if record is not None:
                summary = json.dumps(record.summary.to_json(), sort_keys=True)
                stored = _StoredHeader(record.sop_instance_uid, record.is_image, record.frames,
                                       summaries.setdefault(summary, len(summaries))).to_json()
            files[name] = {"size": size, "mtime_ns": mtime, "inode": inode, "header": stored}
        index = {"schema": SCHEMA, "summaries": [json.loads(s) for s in summaries], "files": files}
        try:
            descriptor, temporary = tempfile.mkstemp(dir=self.root, prefix=INDEX_NAME, suffix=".tmp")
            with os.fdopen(descriptor, "w") as out:
                json.dump(index, out, separators=(",", ":"))
            os.replace(temporary, self.path)
            self._changed = False
        except OSError as err:  # a read-only element still runs; the next stage reads again
            log.warning("could not save the header index %s: %s", self.path, err)

    def _load(self) -> dict[str, tuple[_Stamp, HeaderRecord | None]]:
        if self._entries is None:
            self._entries = {}
            try:
                data = json.loads(self.path.read_text())
                if data.get("schema") == SCHEMA:
                    summaries = [SeriesSummary.from_json(s) for s in data["summaries"]]
                    for name, entry in data["files"].items():
                        record = None
                        if entry["header"] is not None:
                            stored = _StoredHeader.from_json(entry["header"])
                            record = HeaderRecord(stored.sop_instance_uid, stored.is_image, stored.frames,
                                                  summaries[stored.summary])
                        self._entries[name] = ((entry["size"], entry["mtime_ns"], entry["inode"]), record)
            except FileNotFoundError:
                pass
            except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, RecordError) as err:
                log.warning("header index %s unreadable (%s): headers are read again", self.path, err)
                self._entries = {}
        return self._entries
