"""Names radpath turns into paths: checked or made safe in this one place.

Two kinds of name become a folder or file under the run folder:

- layout names the platform (or a workflow form) hands over, such as ``BATCH_NAME`` or
  ``OPERATOR_OUT_DIR``: each must be one plain path component, or the run stops with a
  configuration error (:func:`check_component`); a value is never "repaired", because a
  repaired layout name would point at a folder nobody asked for;
- names derived from user data (slide file names, UIDs read from DICOM headers or a
  PACS): made safe, since the user's file still has to land somewhere: a user's folder
  and file names keep their letters in any script where the file system takes them
  (:func:`user_component`: ``Fall Müller 07`` becomes ``Fall_Müller_07``), names that also
  go into DICOM are plain ASCII (:func:`safe_component`).

Either way the result cannot contain a separator, be ``.`` or ``..``, or be longer than
a file system allows, so ``root / name`` stays under ``root``.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata

#: Longest derived name: well under the 255 bytes of ext4/xfs, leaving room for the
#: suffixes radpath adds (``.json``, ``.partial-…``).
MAX_NAME = 120

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_UNSAFE_USER = re.compile(r"[^\w.+-]+")  # \w: letters and digits of any script, and _
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def check_component(text: str) -> str:
    """``text`` when it is one plain path component; ValueError saying why otherwise."""
    if not text:
        raise ValueError("must be a folder name, not empty")
    if "/" in text or "\\" in text:
        raise ValueError("expected a single folder name, without / or \\")
    if text in (".", ".."):
        raise ValueError("expected a folder name, not . or ..")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError("expected a folder name without control characters")
    if len(text.encode("utf-8")) > MAX_NAME:
        raise ValueError(f"expected a folder name of at most {MAX_NAME} bytes")
    return text


def safe_component(text: str, fallback: str = "unnamed", max_len: int = MAX_NAME) -> str:
    """A file-system-safe form of ``text`` (letters, digits, ``._+-``), never hidden, never
    longer than ``max_len``: a long name keeps its start and end and gains a short digest
    of the whole, so two long names stay apart. Being plain ASCII without a backslash, it
    is also one valid DICOM LO value when ``max_len`` is 64."""
    return _shortened(_UNSAFE.sub("_", text).strip("._") or fallback, text, max_len)


def _shortened(name: str, text: str, max_len: int) -> str:
    """``name`` where it fits in ``max_len`` bytes (UTF-8); else its start, a short digest
    of ``text`` (two long names stay apart) and its suffix."""
    if len(name.encode("utf-8")) <= max_len:
        return name
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    stem, dot, suffix = name.rpartition(".")
    suffix = f".{suffix}" if dot and len(suffix) <= 12 else ""
    keep = (stem if suffix else name).encode("utf-8")[: max_len - len(digest) - len(suffix.encode("utf-8")) - 1]
    return f"{keep.decode('utf-8', 'ignore')}-{digest}{suffix}"


def user_component(text: str, fallback: str = "unnamed", max_len: int = MAX_NAME) -> str:
    """A file-system-safe form of a user's name that keeps its letters and digits in any
    script (NFC, as typed), where the file system's encoding can hold them; separators,
    spaces, control and other characters become ``_``; at most ``max_len`` bytes. Where
    the encoding cannot hold a letter (a C locale), the ASCII form of :func:`safe_component`."""
    text = unicodedata.normalize("NFC", text)
    name = _UNSAFE_USER.sub("_", text).strip("._") or fallback
    try:
        os.fsencode(name)
        name.encode("utf-8")
    except UnicodeError:
        return safe_component(text, fallback, max_len)
    return _shortened(name, text, max_len)


def is_uid(text: str) -> bool:
    """A DICOM UID (VR UI): dot-separated numbers without leading zeros, 64 characters at most."""
    return len(text) <= 64 and bool(_UID.match(text))
