"""radpath's own cache on this machine: what it fetches once (OHIF, Playwright) and what
tools insist on writing between runs (TotalSegmentator's config, matplotlib's font list),
never the home folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$RADPATH_CACHE`` or ``~/.cache/radpath``."""
    return Path(os.environ.get("RADPATH_CACHE") or Path.home() / ".cache" / "radpath")


def keep_tool_caches_in_cache() -> None:
    """Point the tools that otherwise fill the home folder on first use at radpath's cache
    (for this process and what it starts): matplotlib's font list and config
    (``MPLCONFIGDIR``), used by the QC picture and TotalSegmentator. A choice the user made
    in the environment stays."""
    if "MPLCONFIGDIR" not in os.environ:
        folder = cache_dir() / "matplotlib"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # no writable cache (a pod's read-only home): matplotlib picks a temporary folder
        os.environ["MPLCONFIGDIR"] = str(folder)
