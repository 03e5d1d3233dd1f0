"""Where radpath finds the command-line tools its Python wheels ship (dcm2niix, dcmqi)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

#: The packages whose wheels carry the tools, each binary in the package's folder or its
#: ``bin/``. The console script of the same name beside Python is a shim that starts an
#: interpreter to run the binary: about 30 ms and a core taken on every call.
_WHEEL_PACKAGES = ("dcm2niix", "dcmqi")


def wheel_tool(name: str) -> str | None:
    """The wheel's own binary, else the tool installed beside this Python, else one on PATH."""
    for package in _WHEEL_PACKAGES:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for binary in (Path(folder) / name, Path(folder) / "bin" / name):
                if binary.is_file() and binary.stat().st_mode & 0o111:
                    return str(binary)
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)
