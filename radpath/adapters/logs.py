"""One way to report: concise log lines for Airflow task logs and the terminal.

Patient names, IDs and birth dates are never logged at info level; modules log UIDs and
file names, and anything identifying only at debug level.
"""

from __future__ import annotations

import logging
import os
import sys


def configure(level: str | None = None) -> None:
    """Log ``radpath.*`` to stderr as ``LEVEL radpath.module: message`` (idempotent)."""
    name = (level or os.environ.get("RADPATH_LOG_LEVEL") or "INFO").upper()
    logger = logging.getLogger("radpath")
    logger.setLevel(getattr(logging, name, logging.INFO))
    if not any(getattr(h, "_radpath", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._radpath = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
