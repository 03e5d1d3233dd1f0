"""The ``nifti`` stage: the element's chosen radiology series → NIfTI, slices mapped to instances.

The series is the one the pair stage chose (manifest ``pair.series_key``); run alone on
an element that holds only DICOM files (as Kaapana's GetInputOperator leaves them), the
stage applies the series selection itself and records the choice and every rejection.
The manifest section ``nifti`` carries the volume's file, shape, affine (voxel → LPS)
and, per NIfTI slice, the SOPInstanceUID (and frame) it came from: the SEG stage
references exactly those.
"""

from __future__ import annotations

import logging

from radpath.adapters.radiology.dcm2niix import Dcm2niixRun, claim, only_small_files
from radpath.adapters.radiology.series import SeriesFiles
from radpath.adapters.radiology.volumes import convert_series
from radpath.adapters.settings import Settings
from radpath.domain.radiology.selection import select_series
from radpath.domain.vocabulary import Modality
from radpath.pipeline.batch import BatchElement, ElementSkipped
from radpath.pipeline.sections import NiftiFacts, PairFacts, SliceSource

log = logging.getLogger(__name__)


def _radiology(element: BatchElement) -> tuple[list[SeriesFiles], Dcm2niixRun | None, bool]:
    """CT/MR series of the element: in its input folder, else anywhere in the element.

    Returns the series, a dcm2niix run started on the input folder while its headers
    were read (or before, by :func:`radpath.pipeline.headstart.nifti`), and whether that folder
    holds nothing but one CT/MR series' images (then the run's output is the conversion).
    """
    started = None
    if element.in_dir is not None and element.in_dir.is_dir():
        started = claim(element.in_dir)
        if started is None and only_small_files(element.in_dir):
            started = Dcm2niixRun(element.in_dir)
    for folder in (element.in_dir, element.path):
        if folder is not None and folder.is_dir():
            everything = element.series(folder)
            found = [s for s in everything if s.summary.modality in Modality.radiology()]
            if found:
                alone = folder == element.in_dir and len(everything) == 1 and not any(
                    not i.is_image for i in everything[0].instances
                )
                return found, started, alone
    return [], started, False


def run_nifti(element: BatchElement, settings: Settings) -> NiftiFacts:
    series, started, alone = _radiology(element)
    try:
        return _convert(element, series, started if alone else None)
    finally:
        if started is not None:  # its chosen volume has been moved out; the rest goes
            started.cancel()


def _convert(element: BatchElement, series: list[SeriesFiles], started: Dcm2niixRun | None) -> NiftiFacts:
    if not series:
        raise ElementSkipped("no CT or MR series in the element")
    pair = element.get(PairFacts)
    wanted = pair.series_key if pair else None
    selection = None
    if wanted:
        chosen = next((s for s in series if s.summary.key == wanted), None)
        if chosen is None:
            raise ElementSkipped(f"the paired series {wanted} is not in the element")
    else:
        selection = select_series([s.summary for s in series])
        if selection.chosen is None:
            reasons = "; ".join(f"{key}: {why}" for key, why in selection.reasons.items())
            raise ElementSkipped(f"no series to segment ({reasons})")
        chosen = next(s for s in series if s.summary.key == selection.chosen.key)
    out_dir = element.output
    conversion = convert_series(chosen, out_dir, started)
    summary, volume = chosen.summary, conversion.volume
    notes = volume.notes + conversion.others
    if summary.series_instance_uid is None:
        notes.append("the series has no SeriesInstanceUID in its datasets (de-identified)")
    log.info(
        "%s: %s series %r → %s %s, %d/%d slices mapped to instances",
        element.name, summary.modality, summary.description, volume.path.name,
        "x".join(map(str, volume.shape)), volume.matched, len(volume.slices),
    )
    return NiftiFacts(
        folder=out_dir.name,
        path=volume.path.name,
        shape=list(volume.shape),
        grid_aligned=volume.grid_aligned,
        affine_lps=[[round(float(v), 6) for v in row] for row in volume.affine_lps],
        slices=[SliceSource(f.sop_instance_uid, f.frame_number) if f else None for f in volume.slices],
        series_key=summary.key,
        series_instance_uid=summary.series_instance_uid,
        study_instance_uid=summary.study_instance_uid,
        frame_of_reference_uid=summary.frame_of_reference_uid,
        modality=Modality(summary.modality),
        series_description=summary.description,
        orientation=list(summary.orientation or []),
        notes=notes,
        ignored_non_image_instances=conversion.ignored_instances,
        selection=selection.to_json() if selection is not None else None,
    )
