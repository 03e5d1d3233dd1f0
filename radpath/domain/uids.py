"""UIDs derived from what an object was made from, so a re-run writes the same objects.

A PACS keys instances by SOP Instance UID: when radpath names a result after its sources
(the source series, the slide, organ, side, algorithm and version), running a DAG twice
leaves one copy, and the store stage can ask whether a result is already there.
"""

from __future__ import annotations

from pydicom.uid import generate_uid


def derived_uid(kind: str, *identity: str) -> str:
    """A UID that is the same whenever the same thing is named (``kind`` + identity)."""
    return generate_uid(entropy_srcs=["radpath", kind, *identity])
