"""Which study pairs with a slide, and why (no I/O: :mod:`radpath.adapters.radiology.search`
asks the PACS for the candidates).

Among the patient's CT/MR studies (same PatientID), the study the slide's link named
(the slide then already sits in it), then the same AccessionNumber, then the closest
study dated on or before the slide, then the most recent. Every choice comes with its
reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radpath.domain.radiology.summary import SeriesSummary


@dataclass
class StudyCandidate:
    study_instance_uid: str
    accession_number: str | None
    study_date: str | None  # YYYYMMDD
    series: list[SeriesSummary] = field(default_factory=list)


def choose_study(
    candidates: list[StudyCandidate], linked_study: str | None, accession: str | None, slide_date: str | None
) -> tuple[StudyCandidate, str] | None:
    """The study to pair with a slide, and why."""
    if not candidates:
        return None
    for study in candidates:
        if linked_study and study.study_instance_uid == linked_study:
            return study, "the study the slide's link named"
    for study in candidates:
        if accession and study.accession_number == accession:
            return study, "same accession number as the slide"
    dated = [s for s in candidates if s.study_date]
    if slide_date:
        before = [s for s in dated if s.study_date <= slide_date]
        if before:
            return max(before, key=lambda s: s.study_date), "the closest study dated on or before the slide"
    if dated:
        return max(dated, key=lambda s: s.study_date), "the most recent study of the patient"
    return candidates[0], "the only kind of study found (no dates to compare)"
