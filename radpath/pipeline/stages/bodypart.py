"""The ``bodypart`` stage: which organ (and side) each element's slide shows.

Reads the slide's metadata (DICOM VL Whole Slide Microscopy files, or DICOM JSON) from
the element's input folder, resolves it through ``anatomy/master.json`` and writes the
answer into the manifest section ``bodypart`` for the stages after it. The workflow
form's ORGAN / LATERALITY override what the slide says (and the manifest says so).

Skipped, with the reason: no slide in the input; the slide names no organ; the organ is
one TotalSegmentator cannot segment on the element's modality.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pydicom.dataset import Dataset

from radpath.adapters.dicomfiles import read_metadata_under
from radpath.adapters.settings import Settings, SettingsError
from radpath.domain.anatomy import BodyPart, load_master, resolve_body_part
from radpath.domain.vocabulary import Modality
from radpath.pipeline.batch import BatchElement, ElementSkipped
from radpath.pipeline.sections import BodyPartFacts, PairFacts

log = logging.getLogger(__name__)


def _modality(element: BatchElement) -> Modality | None:
    """The radiology modality: from the pair stage's decision, else from files in the element."""
    pair = element.get(PairFacts)
    if pair is not None:
        return pair.modality
    modalities = {str(ds.get("Modality", "")) for _, ds in read_metadata_under(element.path)} & set(
        Modality.radiology())
    return Modality(modalities.pop()) if len(modalities) == 1 else None


def resolve_slide(datasets: list[Dataset]) -> BodyPart:
    """The most confident answer over a slide's instances (they share one specimen)."""
    results = [resolve_body_part(ds) for ds in datasets]
    with_organ = [r for r in results if r.organ]
    return max(with_organ, key=lambda r: r.confidence) if with_organ else results[0]


def run_bodypart(element: BatchElement, settings: Settings) -> BodyPartFacts:
    master = load_master()
    slides = []
    # In the DAG the input is the previous stage's output; the slide may lie elsewhere in
    # the element (wsi-dicomize's or pair's folder, or as GetInputOperator left it).
    for folder in dict.fromkeys(f for f in (element.in_dir, element.path) if f is not None):
        slides = [ds for _, ds in read_metadata_under(folder) if ds.get("Modality") == Modality.SM]
        if slides:
            break
    if not slides:
        raise ElementSkipped("no slide (DICOM SM) in the element")
    result = resolve_slide(slides)
    facts = BodyPartFacts(
        folder=None,  # writes no files
        resolved=result.to_json(),
        slide_series_instance_uid=str(slides[0].get("SeriesInstanceUID", "")),
        organ=result.organ,
        laterality=result.laterality,
        subpart=result.subpart,
        snomed=result.snomed,
    )
    options = settings.options
    if options.organ:
        if options.organ not in master.organs:
            raise SettingsError("ORGAN", f"unknown organ {options.organ!r} (a key of anatomy/master.json)")
        facts = replace(facts, organ=options.organ, snomed=master.concept_of(options.organ), subpart=None,
                        override="ORGAN")
    if options.laterality:
        facts = replace(facts, laterality=options.laterality, laterality_override="LATERALITY")
    organ = facts.organ
    if organ is None:
        raise ElementSkipped(f"slide names no organ: {result.reason}", facts)
    modality = _modality(element)
    if modality is not None:
        task = master.data["totalsegmentator_tasks"].get(modality)
        if task is None or not master.classes(organ, task):
            raise ElementSkipped(
                f"TotalSegmentator cannot segment {organ} on {modality} (no class for it in task {task})", facts
            )
        facts = replace(facts, modality=modality, task=task)
    side = f", {facts.laterality}" if facts.laterality else ""
    log.info("%s: %s%s (%s, %s)", element.name, organ, side, result.rule, result.source)
    return facts
