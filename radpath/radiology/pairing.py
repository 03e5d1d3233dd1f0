"""Finding the other side in the PACS: a slide's radiology study, or a study's slides.

From a slide: the patient's CT/MR studies (same PatientID), preferring the study the
slide's link named (the slide then already sits in it), then the same AccessionNumber,
then the closest study dated on or before the slide, then the most recent. From a CT/MR
series: the patient's slide (SM) series. Every choice comes with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from radpath.dicomfiles import datasets_from_json
from radpath.dicomweb import TAG_SERIES_UID, TAG_STUDY_UID, DicomWeb, first_value
from radpath.radiology.series import SeriesSummary

TAG_STUDY_DATE = "00080020"
TAG_ACCESSION = "00080050"


@dataclass
class StudyCandidate:
    study_instance_uid: str
    accession_number: str | None
    study_date: str | None  # YYYYMMDD
    series: list[SeriesSummary] = field(default_factory=list)


def radiology_studies(pacs: DicomWeb, patient_id: str) -> list[StudyCandidate]:
    """The patient's CT and MR series, grouped by study, summarised for selection."""
    studies: dict[str, StudyCandidate] = {}
    for modality in ("CT", "MR"):
        for item in pacs.find_series(patient_id=patient_id, modality=modality):
            study_uid, series_uid = first_value(item, TAG_STUDY_UID), first_value(item, TAG_SERIES_UID)
            study = studies.setdefault(
                study_uid, StudyCandidate(study_uid, first_value(item, TAG_ACCESSION), first_value(item, TAG_STUDY_DATE))
            )
            instances = pacs.find_instances(study_uid, series_uid)
            if not instances:
                continue
            first = pacs.instance_metadata(study_uid, series_uid, first_value(instances[0], "00080018"))
            (ds,) = datasets_from_json(first)
            frames = int(ds.get("NumberOfFrames") or 1)
            count = len(instances) if frames == 1 else frames * len(instances)
            study.series.append(SeriesSummary.from_dataset(ds, series_uid, count))
    return list(studies.values())


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


def slide_series(pacs: DicomWeb, patient_id: str) -> list[dict[str, Any]]:
    """The patient's slide (SM) series, oldest study first."""
    found = pacs.find_series(patient_id=patient_id, modality="SM")
    return sorted(found, key=lambda item: (first_value(item, TAG_STUDY_DATE) or "", first_value(item, TAG_SERIES_UID)))
