"""Asking the PACS (QIDO-RS, WADO-RS metadata) for the other side of a pair: the patient's
CT/MR studies for a slide, the patient's slides for a CT/MR series. The choice among
them is :mod:`radpath.domain.radiology.pairing`'s."""

from __future__ import annotations

from typing import Any

from radpath.adapters.dicomfiles import datasets_from_json
from radpath.adapters.dicomweb import TAG_MODALITY, TAG_SERIES_UID, TAG_STUDY_UID, DicomWeb, first_value
from radpath.domain.radiology.pairing import StudyCandidate
from radpath.domain.radiology.summary import SeriesSummary
from radpath.domain.vocabulary import Modality

TAG_STUDY_DATE = "00080020"
TAG_ACCESSION = "00080050"


def radiology_studies(pacs: DicomWeb, patient_id: str) -> list[StudyCandidate]:
    """The patient's CT and MR series, grouped by study, summarised for selection."""
    studies: dict[str, StudyCandidate] = {}
    found = pacs.find_patient_series(patient_id)  # once, study by study; CT before MR as before
    for modality in Modality.radiology():
        for item in (row for row in found if first_value(row, TAG_MODALITY) == modality):
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



def slide_series(pacs: DicomWeb, patient_id: str) -> list[dict[str, Any]]:
    """The patient's slide (SM) series, oldest study first."""
    found = pacs.find_patient_series(patient_id, Modality.SM)
    return sorted(found, key=lambda item: (first_value(item, TAG_STUDY_DATE) or "", first_value(item, TAG_SERIES_UID)))
