"""What a scheduled run should take on: slides in the PACS whose patient has CT or MR and
that no radpath link references yet.

A slide counts as linked when a Key Object Selection written by the link stage (series
description ``radpath link: …``) in one of the patient's studies lists the slide's series
in its CurrentRequestedProcedureEvidenceSequence (0040,A375), i.e. when a previous run
finished it. Slides are taken oldest study first, at most ``limit`` per run, so a backlog
drains over several runs instead of one run that never ends.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from radpath.adapters.dicomfiles import datasets_from_json
from radpath.adapters.dicomweb import TAG_MODALITY, TAG_PATIENT_ID, TAG_SERIES_UID, TAG_STUDY_UID, DicomWeb, first_value
from radpath.domain.vocabulary import Modality

log = logging.getLogger(__name__)

TAG_STUDY_DATE = "00080020"
TAG_SERIES_DESCRIPTION = "0008103E"
#: SeriesDescription prefix of the link stage's KOS (radpath.domain.link.kos).
LINK_SERIES_PREFIX = "radpath link"
#: What ``radpath find-unlinked`` writes into its output folder: {"series": [...], "summary": ...}
#: (read by radpath-batch's trigger-map task, operators/radpath_operators/TriggerMapOperator.py).
FOUND_NAME = "unlinked-slides.json"


def _value(item: dict, tag: str) -> str:
    return str(first_value(item, tag) or "")


@dataclass
class Discovery:
    """Slides to process now, and counts of what was passed over (no patient identities)."""

    chosen: list[str] = field(default_factory=list)  # SeriesInstanceUIDs of slide series
    linked: int = 0
    without_radiology: int = 0
    left_for_later: int = 0

    def summary(self) -> str:
        return (f"{len(self.chosen)} slide series to pair; passed over: {self.linked} already linked, "
                f"{self.without_radiology} whose patient has no CT/MR, {self.left_for_later} left for a later run")


def linked_slide_series(pacs: DicomWeb, patient_series: list[dict]) -> set[str]:
    """Slide series that a radpath KOS among the patient's series references."""
    linked: set[str] = set()
    for row in patient_series:
        if _value(row, TAG_MODALITY) != "KO" or not _value(row, TAG_SERIES_DESCRIPTION).startswith(LINK_SERIES_PREFIX):
            continue
        for kos in datasets_from_json(pacs.series_metadata(_value(row, TAG_STUDY_UID), _value(row, TAG_SERIES_UID))):
            for study in kos.get("CurrentRequestedProcedureEvidenceSequence") or []:
                linked.update(str(s.SeriesInstanceUID) for s in study.get("ReferencedSeriesSequence") or [])
    return linked


def find_unlinked_slides(pacs: DicomWeb, limit: int) -> Discovery:
    """Up to ``limit`` slide series, oldest study first, that have radiology and no link."""
    if limit < 1:
        raise ValueError(f"the batch limit must be at least 1, not {limit}")
    by_patient: dict[str, list[dict]] = defaultdict(list)
    for row in pacs.find_all_series(Modality.SM):
        by_patient[_value(row, TAG_PATIENT_ID)].append(row)
    found = Discovery()
    candidates: list[tuple[str, str]] = []  # (study date, series uid)
    for patient_id, slides in by_patient.items():
        # the patient's series once (study by study), for both questions asked of them
        patient_series = pacs.find_patient_series(patient_id) if patient_id else []
        if not any(_value(row, TAG_MODALITY) in Modality.radiology() for row in patient_series):
            found.without_radiology += len(slides)
            continue
        linked = linked_slide_series(pacs, patient_series)
        for row in slides:
            if _value(row, TAG_SERIES_UID) in linked:
                found.linked += 1
            else:
                candidates.append((_value(row, TAG_STUDY_DATE), _value(row, TAG_SERIES_UID)))
    candidates.sort()
    found.chosen = [uid for _, uid in candidates[:limit]]
    found.left_for_later = max(0, len(candidates) - limit)
    log.info("find-unlinked: %s", found.summary())
    return found


def series_for_selection(pacs: DicomWeb, studies: list[str], series: list[str], patients: list[str]) -> list[str]:
    """What ``radpath run --dicomweb`` hands to get-input: the series given; of a study, its
    slide series if it has any, else its CT/MR series; of a patient, their slide series,
    else their CT/MR series (pair finds the other side, one element per pair)."""
    chosen = list(series)

    def slides_else_radiology(rows: list[dict]) -> list[str]:
        by_modality = defaultdict(list)
        for row in rows:
            by_modality[_value(row, "00080060")].append(_value(row, TAG_SERIES_UID))
        return by_modality[Modality.SM] or [s for m in Modality.radiology() for s in by_modality[m]]

    for study in studies:
        chosen += slides_else_radiology(pacs.find_series(study_instance_uid=study))
    for patient in patients:
        chosen += slides_else_radiology(pacs.find_patient_series(patient))
    return list(dict.fromkeys(uid for uid in chosen if uid))
