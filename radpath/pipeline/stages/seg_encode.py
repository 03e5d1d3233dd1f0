"""The ``seg-encode`` stage: the merged mask(s) → one DICOM SEG referencing the source series.

The masks are moved onto the source series' own grid through the affines
(:mod:`radpath.domain.dicomseg.geometry`), described from ``anatomy/master.json``
(:mod:`radpath.domain.dicomseg.description`) and written by dcmqi (SEG_ENCODER, default) or highdicom.
Every SEG is checked before the stage says done: ``dciodvfy`` finds no error, and every
frame lies on the slice it references with the source's orientation. A SEG that fails a
check is removed, never left for the store stage.

UIDs are derived from the source series and the segments, so a retried run writes the
same SEG (the PACS keeps one copy); the SeriesNumber is the first free one above every
series the element holds.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from radpath.adapters.dciodvfy import dciodvfy_available, verify
from radpath.adapters.dicomseg.encoders import DcmqiEncoder, HighdicomEncoder, SegEncodeError
from radpath.adapters.dicomseg.readback import FrameCheck, check_frames
from radpath.adapters.dicomseg.sources import complete_sources
from radpath.adapters.masks import nifti_mask
from radpath.adapters.settings import Settings
from radpath.domain.anatomy import load_master
from radpath.domain.dicomseg.description import SegSeries, describe_segment, series_description
from radpath.domain.dicomseg.geometry import SourceGrid, mask_on_source
from radpath.domain.link.page import ExtentSlice
from radpath.domain.uids import derived_uid
from radpath.domain.vocabulary import SegEncoder
from radpath.pipeline.batch import BatchElement, ElementSkipped
from radpath.pipeline.sections import EncodedSegment, MergeFacts, NiftiFacts, SegEncodeFacts, SegmentFacts

log = logging.getLogger(__name__)

#: Folder (in the stage's output) of source copies with their missing UIDs filled in.
SOURCES_FOLDER = "sources"
#: SEG series numbers start here when the study's own are lower: clear of acquisitions.
FIRST_SEG_SERIES_NUMBER = 300


class SegValidationError(SegEncodeError):
    """The written SEG failed dciodvfy or the geometry check; it was removed."""


def next_series_number(used: set[int]) -> int:
    return max(used | {FIRST_SEG_SERIES_NUMBER - 1}) + 1


def run_seg_encode(element: BatchElement, settings: Settings) -> SegEncodeFacts:
    nifti, segment, merge = element.need(NiftiFacts, SegmentFacts, MergeFacts)
    parts = [p for p in merge.parts if p.voxels]
    if not parts:
        raise ElementSkipped("the merge stage left no mask to encode")
    master = load_master()
    algorithm = segment.algorithm
    source = element.source_series(nifti.series_key)
    numbers = {s.summary.series_number for s in element.series() if s.summary.series_number is not None}
    grid = source.source_grid()
    masks, segments = [], []
    for part in parts:
        mask, affine = nifti_mask(element.folder_of(merge) / part.path)
        on_source = mask_on_source(mask, affine, grid)
        if not on_source.any():
            raise ElementSkipped(f"the {part.what} mask lies outside every slice of the source series")
        masks.append(on_source)
        segments.append(describe_segment(master, part.selection, algorithm))
    organ = parts[0].organ
    # Named by the source series, the organ and side of each segment, and the algorithm:
    # a re-run writes the same SEG, a new TotalSegmentator version a new one beside it.
    identity = (nifti.series_key, algorithm.name, algorithm.version,
                *(f"{s.property_type.value}/{s.modifier.value if s.modifier else ''}" for s in segments))
    series = SegSeries(
        series_instance_uid=derived_uid("seg-series", *identity),
        sop_instance_uid=derived_uid("seg-instance", *identity),
        series_number=next_series_number(numbers),
        series_description=series_description(segments),
        body_part=master.organ(organ).get("body_part_examined"),
    )
    out_dir = element.output
    out = out_dir / f"{organ}.seg.dcm"
    notes: list[str] = []
    # Completed copies of sources that lack UIDs stay beside the SEG: the store stage
    # stores them, or the SEG's references would name instances no PACS holds.
    shutil.rmtree(out_dir / SOURCES_FOLDER, ignore_errors=True)
    grid, filled = complete_sources(grid, out_dir / SOURCES_FOLDER, nifti.series_key)
    if filled:
        notes.append("the source lacks " + ", ".join(filled) + f": filled in for the SEG (copies in {SOURCES_FOLDER}/)")
    encoder = _encoder(settings.options.seg_encoder, grid, notes)
    encoder.encode(masks, segments, grid, series, out)
    checked, problems = _validate(out, grid, notes)
    if problems:
        out.unlink(missing_ok=True)
        raise SegValidationError(f"{encoder.name} wrote a SEG that fails its checks (removed): {'; '.join(problems[:5])}")
    for note in notes:
        log.info("%s: %s", element.name, note)
    log.info("%s: SEG %s (%s, %d frames, series %d) by %s", element.name, out.name, series.series_description,
             checked.frames, series.series_number, encoder.name)
    return SegEncodeFacts(
        folder=out_dir.name,
        path=out.name,
        encoder=SegEncoder(encoder.name),
        series_instance_uid=series.series_instance_uid,
        sop_instance_uid=series.sop_instance_uid,
        series_number=series.series_number,
        series_description=series.series_description,
        body_part_examined=series.body_part,
        segments=[
            EncodedSegment(s.label, s.property_type.value, s.modifier.value if s.modifier else None, int(m.sum()))
            for s, m in zip(segments, masks)
        ],
        frames=checked.frames,
        extent=[ExtentSlice(k + 1, float(grid.positions[k][2]), grid.frames[k].sop_instance_uid)
                for k in sorted(set(checked.referenced))],
        source_slices=len(grid.frames),
        bytes=out.stat().st_size,
        source_uids=filled,
        sources_folder=SOURCES_FOLDER if filled else None,
        notes=notes,
    )


def _encoder(choice: SegEncoder, grid: SourceGrid, notes: list[str]):
    if choice == SegEncoder.HIGHDICOM:
        return HighdicomEncoder()
    dcmqi = DcmqiEncoder()
    if not dcmqi.available:
        notes.append("dcmqi's itkimage2segimage is not installed: highdicom wrote the SEG")
        return HighdicomEncoder()
    if not grid.regular:
        notes.append("the source slices are unevenly spaced, which dcmqi cannot encode: highdicom wrote the SEG")
        return HighdicomEncoder()
    return dcmqi


def _validate(path: Path, grid: SourceGrid, notes: list[str]) -> tuple[FrameCheck, list[str]]:
    """The SEG's frames checked against the source grid, and dciodvfy's errors and the
    frame geometry's problems (empty when the SEG is sound)."""
    checked = check_frames(path, grid)
    problems = list(checked.problems)
    if dciodvfy_available():
        result = verify(path)
        problems.extend(f"dciodvfy: {e}" for e in result.errors)
        if result.warnings:
            notes.append(f"dciodvfy: {len(result.warnings)} warnings")
    else:
        notes.append("dciodvfy is not installed: the SEG was not validated against the standard")
    return checked, problems
