"""Where radpath finds the command-line tools its Python wheels ship (dcm2niix, dcmqi)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def wheel_tool(name: str) -> str | None:
    """The tool installed beside this Python (by its PyPI wheel), else one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)
