"""Validation of written DICOM objects with ``dciodvfy`` (Debian's dicom3tools).

Every object radpath writes is checked with it in the tests; the pipeline can check its
own output too. Only ``Error`` lines count as failures: warnings are reported apart
because dciodvfy warns about many legal, common choices.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

DCIODVFY = "dciodvfy"


class DciodvfyMissing(RuntimeError):
    """dciodvfy is not installed (Debian package ``dicom3tools``)."""


@dataclass(frozen=True)
class Verification:
    path: Path
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def dciodvfy_available() -> bool:
    return shutil.which(DCIODVFY) is not None


def verify(path: Path, timeout_s: float = 120.0) -> Verification:
    """Run ``dciodvfy`` on one file; its ``Error`` lines become ``errors``."""
    if not dciodvfy_available():
        raise DciodvfyMissing("dciodvfy not found: install Debian's dicom3tools (make setup does)")
    run = subprocess.run(
        [DCIODVFY, str(path)], capture_output=True, text=True, errors="replace", timeout=timeout_s
    )
    lines = [line.strip() for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [line for line in lines if line.startswith("Warning")]
    if run.returncode != 0 and not errors:
        errors.append(f"dciodvfy exited with {run.returncode}: {' | '.join(lines[-3:])}")
    return Verification(Path(path), errors, warnings)


def remove_unless_valid(path: Path, what: str, notes: list[str]) -> list[str]:
    """dciodvfy's errors on the object radpath just wrote at ``path`` (removed when there are
    any, so nothing invalid is stored); without dciodvfy, none and a note saying so."""
    if not dciodvfy_available():
        notes.append(f"dciodvfy is not installed: the {what} was not validated against the standard")
        return []
    errors = verify(path).errors
    if errors:
        path.unlink()
    return list(errors)
