"""The ``wsi-dicomize`` stage: every slide file of an element → DICOM, linked to the patient.

Each slide gets its identity from a linkage source (sidecar, CSV manifest, run conf; see
:mod:`radpath.domain.slides.linkage`) and lands in ``<out>/<slide name>/`` as DICOM VL Whole
Slide Microscopy instances. A slide without a link is not imported unless the run allows
unlinked import (ALLOW_UNLINKED), which then creates a study of its own and says so.
Files that are DICOM already pass through unchanged.

A slide that cannot be read or linked is rejected on its own (named, with its format and
the reason, in the manifest and the run's final table) and the element goes on with the
others; it ends failed only when no slide could be used, skipped when no slide had a
link, done otherwise.
"""

from __future__ import annotations

import logging
from pathlib import Path

from radpath.adapters.headers import read_header
from radpath.adapters.settings import Settings
from radpath.adapters.slides.convert import (
    SLIDE_SUFFIXES,
    ConversionOptions,
    ConvertedSlide,
    SlideConversionError,
    dicomize_slide,
    is_dicom,
)
from radpath.adapters.slides.linkfiles import LinkSources, is_linkage_file
from radpath.domain.slides.linkage import SlideLink, SlideLinkError
from radpath.domain.vocabulary import Modality
from radpath.pipeline.batch import BatchElement, ElementSkipped, StageFailed
from radpath.pipeline.sections import ConvertedSlideRecord, SlideFailure, WsiDicomizeFacts

log = logging.getLogger(__name__)


def _is_dicom_slide(path: Path) -> bool:
    try:
        return read_header(path).get("Modality") == Modality.SM
    except Exception:  # unreadable DICOM is the conversion's to report, not ours
        return path.suffix.lower() == ".dcm"


def slide_files(folder: Path) -> list[Path]:
    """Slide files in ``folder``: vendor formats by suffix, DICOM only when it is a slide
    (Modality SM); the element's radiology series may lie in the same folder."""
    found = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.startswith(".") or is_linkage_file(p):
            continue
        if is_dicom(p):
            if _is_dicom_slide(p):
                found.append(p)
        elif p.suffix.lower() in SLIDE_SUFFIXES:
            found.append(p)
    return found


def conversion_options(settings: Settings) -> ConversionOptions:
    o = settings.options
    return ConversionOptions(
        workers=o.slide_workers,
        tile_size=o.slide_tile_size,
        include_label=o.include_label,
        include_overview=o.include_overview,
        transcoding=o.slide_transcoding,
    )


class SlidesFailed(StageFailed):
    """Some slides of the element could not be converted; each is named."""


def _record(slide: ConvertedSlide, link: SlideLink | None) -> ConvertedSlideRecord:
    return ConvertedSlideRecord(
        file=slide.source.name,
        folder=slide.folder.name,
        format=slide.format,
        instances=len(slide.files),
        series_instance_uid=slide.series_instance_uid,
        study_instance_uid=slide.study_instance_uid,
        passthrough=slide.passthrough,
        link_source=link.source if link else None,
        accession_number=link.accession_number if link else None,
        unlinked=link is None and not slide.passthrough,
        anatomy=slide.anatomy,
        notes=slide.notes,
    )


def run_wsi_dicomize(element: BatchElement, settings: Settings) -> WsiDicomizeFacts:
    in_dir = element.in_dir or element.path
    out_dir = element.output
    slides = slide_files(in_dir)
    if not slides:
        raise ElementSkipped(f"no slide file in {in_dir.name}/")
    conf_dir = settings.layout.conf_path.parent if settings.layout.workflow_dir else None
    sources = LinkSources.for_element(in_dir, conf_dir, settings.conf)
    options = conversion_options(settings)
    decided = WsiDicomizeFacts(folder=out_dir.name)
    for index, path in enumerate(slides, start=1):
        try:
            link = None if is_dicom(path) else sources.find(path)
            if link is None and not is_dicom(path) and not settings.options.allow_unlinked:
                decided.unlinked.append(path.name)
                continue
            result = dicomize_slide(path, out_dir, link, options)
        except (SlideLinkError, SlideConversionError) as err:
            decided.failed.append(SlideFailure(path.name, str(err)))
            log.error("%s: slide %d/%d failed: %s", element.name, index, len(slides), err)
            continue
        decided.slides.append(_record(result, link))
        how = "passed through" if result.passthrough else f"{len(result.files)} instances"
        if link is None and not result.passthrough:
            how += f", unlinked: created its own study {result.study_instance_uid}"
        log.info("%s: slide %d/%d %s → %s (%s)", element.name, index, len(slides), path.name, result.folder.name, how)
    if decided.failed and not decided.slides:
        raise SlidesFailed("; ".join(failure.reason for failure in decided.failed), decided)
    if not decided.slides:
        raise ElementSkipped("no patient link for " + ", ".join(decided.unlinked), decided)
    return decided
