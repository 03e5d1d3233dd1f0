"""Reading DICOM metadata from a Part-10 file or from DICOM JSON (PS3.18 F.2).

DICOM JSON comes as one dataset object, an array of them, or wrapped by a tool in an
object of arrays (viewer fixtures, ``{"images": [...]}``): every object whose keys are
tags is taken as a dataset. Bulk data (``BulkDataURI``, ``InlineBinary``) is dropped
first: metadata is all the callers need, and ``Dataset.from_json`` cannot fetch URIs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from radpath.adapters.headers import read_header

_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")


class UnreadableDicom(ValueError):
    """The file is neither a DICOM Part-10 file nor DICOM JSON."""


def _is_dataset(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(_TAG.match(k) for k in obj)


def _strip_bulk(obj: dict[str, Any]) -> dict[str, Any]:
    clean = {}
    for tag, element in obj.items():
        if not isinstance(element, dict) or "BulkDataURI" in element or "InlineBinary" in element:
            continue
        if element.get("vr") == "SQ" and isinstance(element.get("Value"), list):
            element = {**element, "Value": [_strip_bulk(item) for item in element["Value"] if isinstance(item, dict)]}
        clean[tag] = element
    return clean


def _collect(obj: Any, out: list[dict[str, Any]]) -> None:
    if _is_dataset(obj):
        out.append(obj)
    elif isinstance(obj, list):
        for item in obj:
            _collect(item, out)
    elif isinstance(obj, dict):
        for value in obj.values():
            _collect(value, out)


def datasets_from_json(data: Any) -> list[Dataset]:
    found: list[dict[str, Any]] = []
    _collect(data, found)
    return [Dataset.from_json(_strip_bulk(item)) for item in found]


def read_metadata_under(folder: Path) -> list[tuple[Path, Dataset]]:
    """Every dataset in the files below ``folder`` (hidden and non-DICOM files skipped)."""
    found = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            found.extend((path, ds) for ds in read_metadata(path))
        except UnreadableDicom:
            continue
    return found


def read_metadata(path: Path) -> list[Dataset]:
    """Every dataset in ``path`` (Part-10: one; DICOM JSON: one or more), without pixels."""
    path = Path(path)
    try:
        head = path.read_bytes()[:1024].lstrip()
    except OSError as err:
        raise UnreadableDicom(f"{path}: cannot read ({err.strerror})") from None
    if head[:1] in (b"{", b"["):
        try:
            datasets = datasets_from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError, KeyError) as err:
            raise UnreadableDicom(f"{path}: invalid DICOM JSON ({err})") from None
        if not datasets:
            raise UnreadableDicom(f"{path}: JSON holds no DICOM dataset")
        return datasets
    try:
        return [read_header(path)]
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise UnreadableDicom(f"{path}: not a DICOM file ({type(err).__name__}: {err})") from None
