"""UIDs derived from what an object was made from, so a re-run writes the same objects.

A PACS keys instances by SOP Instance UID: when radpath names a result after its sources
(the source series, the slide, organ, side, algorithm and version), running a DAG twice
leaves one copy, and the store stage can ask whether a result is already there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydicom.uid import generate_uid


def derived_uid(kind: str, *identity: str) -> str:
    """A UID that is the same whenever the same thing is named (``kind`` + identity)."""
    return generate_uid(entropy_srcs=["radpath", kind, *identity])


#: How much of a file its fingerprint reads: slides are gigabytes, their heads and tails
#: (headers, tile offsets, the vendor's slide ID) tell them apart.
_HEAD_BYTES = 8 * 2**20
_TAIL_BYTES = 2**20


def file_fingerprint(path: Path) -> str:
    """SHA-256 of a file's name, size, first 8 MiB and last 1 MiB."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f"{path.name}\0{size}\0".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_HEAD_BYTES))
        if size > _HEAD_BYTES:
            handle.seek(max(size - _TAIL_BYTES, _HEAD_BYTES))
            digest.update(handle.read(_TAIL_BYTES))
    return digest.hexdigest()
