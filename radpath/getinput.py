"""Standalone get-input: the run's selected series into the batch layout, as Kaapana's
GetInputOperator leaves them (``batch/<SeriesInstanceUID>/<out dir>/``).

The selection is the run conf's ``data_form.identifiers`` (SeriesInstanceUIDs, what the
data explorer posts); each series is found by QIDO-RS and retrieved by WADO-RS. A series
the PACS does not have is reported by UID and the others still arrive.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field

from radpath.dicomweb import TAG_STUDY_UID, DicomWeb, DicomWebError
from radpath.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class InputReport:
    fetched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "<uid>: why"


def selected_series(settings: Settings) -> list[str]:
    identifiers = (settings.conf.get("data_form") or {}).get("identifiers") or []
    return [str(uid) for uid in identifiers if str(uid).strip()]


def fetch_selection(settings: Settings, out_dir: str = "get-input") -> InputReport:
    """Retrieve every selected series into ``batch/<uid>/<out_dir>``."""
    report = InputReport()
    wanted = selected_series(settings)
    if not wanted:
        return report
    pacs = DicomWeb(settings.dicomweb)
    for number, series_uid in enumerate(wanted, start=1):
        target = settings.layout.batch_dir / series_uid / out_dir
        try:
            rows = pacs.find_series(SeriesInstanceUID=series_uid)
            if not rows:
                report.missing.append(f"{series_uid}: not in the PACS at {pacs.endpoint}")
                continue
            shutil.rmtree(target, ignore_errors=True)
            paths = pacs.retrieve_series(rows[0][TAG_STUDY_UID]["Value"][0], series_uid, target)
        except DicomWebError as err:
            report.missing.append(f"{series_uid}: {err}")
            continue
        report.fetched.append(series_uid)
        log.info("get-input [%d/%d] %s: %d instances", number, len(wanted), series_uid, len(paths))
    return report
