"""The ``pair`` stage: whatever the user selected, find the other side and choose the series.

- slide(s) and CT/MR both in the element: choose the series to segment among them;
- slide only: the patient's CT/MR study in the PACS (see
  :func:`radpath.domain.radiology.pairing.choose_study`), its best series fetched into
  ``<out>/radiology/``;
- CT/MR only: the patient's slides in the PACS; the first is fetched into
  ``<out>/slide/``, every further slide becomes an element of its own (the radiology
  files linked beside it), so each slide gets its own organ and SEG.

No counterpart: skipped, saying what was searched (never whom: patient IDs stay out of
logs and reasons).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

from radpath.adapters.dicomweb import TAG_SERIES_UID, TAG_STUDY_UID, DicomWeb
from radpath.adapters.headers import read_header
from radpath.adapters.radiology.search import radiology_studies, slide_series
from radpath.adapters.radiology.series import SeriesFiles
from radpath.adapters.settings import Settings
from radpath.domain.names import is_uid, safe_component
from radpath.domain.radiology.pairing import choose_study
from radpath.domain.radiology.selection import select_series
from radpath.domain.vocabulary import Modality
from radpath.pipeline.batch import BatchElement, ElementSkipped, split_element
from radpath.pipeline.sections import PairFacts

log = logging.getLogger(__name__)


def _first_dataset(series: SeriesFiles):
    return read_header(series.instances[0].path)


def _slide_date(ds) -> str | None:
    for keyword in ("StudyDate", "ContentDate", "AcquisitionDate", "SeriesDate"):
        value = str(ds.get(keyword) or "")
        if len(value) >= 8:
            return value[:8]
    value = str(ds.get("AcquisitionDateTime") or "")
    return value[:8] if len(value) >= 8 else None


def _choose_local(radiology: list[SeriesFiles], folder: str, slide_uid: str | None) -> PairFacts:
    selection = select_series([s.summary for s in radiology])
    if selection.chosen is None:
        reasons = "; ".join(selection.reasons.values())
        raise ElementSkipped(f"no CT/MR series to segment in the element ({reasons})")
    return PairFacts(
        folder=folder,
        series_key=selection.chosen.key,
        modality=Modality(selection.chosen.modality),
        radiology_study_instance_uid=selection.chosen.study_instance_uid,
        slide_series_instance_uid=slide_uid,
        selection=selection.to_json(),
    )


def _from_slide(element: BatchElement, slide: SeriesFiles, pacs: DicomWeb, out_dir: Path) -> PairFacts:
    ds = _first_dataset(slide)
    patient_id = str(ds.get("PatientID") or "")
    if not patient_id:
        raise ElementSkipped("the slide has no PatientID: nothing to pair it with")
    studies = radiology_studies(pacs, patient_id)
    choice = choose_study(studies, str(ds.get("StudyInstanceUID") or ""), str(ds.get("AccessionNumber") or ""),
                          _slide_date(ds))
    if choice is None:
        raise ElementSkipped(
            "no CT or MR study of the slide's patient in the PACS (searched by PatientID, modalities CT and MR)"
        )
    study, why = choice
    selection = select_series(study.series)
    if selection.chosen is None:
        reasons = "; ".join(selection.reasons.values())
        raise ElementSkipped(f"the paired study {study.study_instance_uid} has no series to segment ({reasons})")
    chosen = selection.chosen
    pacs.retrieve_series(study.study_instance_uid, chosen.key, out_dir / "radiology")
    log.info("%s: paired with study %s (%s), series %r", element.name, study.study_instance_uid, why,
             chosen.description)
    return PairFacts(
        folder=out_dir.name,
        series_key=chosen.key,
        modality=Modality(chosen.modality),
        radiology_study_instance_uid=study.study_instance_uid,
        radiology_dir=str((out_dir / "radiology").relative_to(element.path)),
        study_reason=why,
        studies_considered=len(studies),
        slide_series_instance_uid=slide.summary.series_instance_uid,
        selection=selection.to_json(),
    )


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link ``source``'s files under ``target`` (copy where links are not possible)."""
    for path in source.rglob("*"):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, destination)
            except OSError:
                shutil.copy2(path, destination)


def _from_radiology(
    element: BatchElement, radiology: list[SeriesFiles], pacs: DicomWeb, out_dir: Path
) -> PairFacts:
    local = _choose_local(radiology, out_dir.name, None)
    chosen = next(s for s in radiology if s.summary.key == local.series_key)
    patient_id = str(_first_dataset(chosen).get("PatientID") or "")
    slides = slide_series(pacs, patient_id) if patient_id else []
    if not slides:
        raise ElementSkipped("no slide (SM series) of the patient in the PACS (searched by PatientID, modality SM)")
    source_dir = chosen.instances[0].path.parent
    first, *others = slides
    for item in others:  # one element per further slide, with the radiology beside it
        series_uid = item[TAG_SERIES_UID]["Value"][0]
        if not is_uid(series_uid):  # the PACS's answer becomes a folder name: check it
            raise ValueError(f"the PACS names a slide series {series_uid[:80]!r}, which is not a UID")
        sibling = element.path.parent / safe_component(f"{element.name}+{series_uid}")
        _link_tree(source_dir, sibling / source_dir.relative_to(element.path))
        pacs.retrieve_series(item[TAG_STUDY_UID]["Value"][0], series_uid, sibling / out_dir.name / "slide")
        split_element(sibling, replace(local, slide_series_instance_uid=series_uid, split_from=element.name))
        log.info("%s: further slide %s becomes element %s", element.name, series_uid, sibling.name)
    series_uid = first[TAG_SERIES_UID]["Value"][0]
    pacs.retrieve_series(first[TAG_STUDY_UID]["Value"][0], series_uid, out_dir / "slide")
    return replace(local, slide_series_instance_uid=series_uid, slides_found=len(slides))


def run_pair(element: BatchElement, settings: Settings) -> PairFacts:
    everything = element.series()
    slides = [s for s in everything if s.summary.modality == Modality.SM]
    radiology = [s for s in everything if s.summary.modality in Modality.radiology()]
    out_dir = element.output
    if bool(slides) != bool(radiology) and settings.dicomweb.url is None:
        # A folder run without a PACS: the input folder was all there was to search.
        have, missing = ("a slide", "CT/MR series") if slides else ("CT/MR", "slide")
        raise ElementSkipped(f"{have} but no {missing} of the patient in the input folder, and no PACS to "
                             "search (DICOMWEB_URL not set); a patient's files go together by their PatientID, "
                             "a slide's link, or lying in one folder of the input")
    if slides and radiology:
        return _choose_local(radiology, out_dir.name, slides[0].summary.series_instance_uid)
    if slides:
        return _from_slide(element, slides[0], DicomWeb(settings.dicomweb), out_dir)
    if radiology:
        return _from_radiology(element, radiology, DicomWeb(settings.dicomweb), out_dir)
    raise ElementSkipped("neither a slide nor a CT/MR series in the element")
