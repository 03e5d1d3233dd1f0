"""The ``segment`` stage: TotalSegmentator on the element's NIfTI, only the organ's classes.

Task from the modality (CT → ``total``, MR → ``total_mr``; anatomy/master.json),
``roi_subset`` = the organ's TotalSegmentator classes for that task. Device ``gpu`` when
CUDA is present, else ``cpu``, where the full-resolution models would take hours: CPU
runs use fast mode unless TOTALSEG_FULL_ON_CPU insists, and the log and manifest say so.
Weights are checked before the run (see :mod:`radpath.adapters.totalseg.weights`); with
TOTALSEG_STANDIN_WEIGHTS and no official weights, radpath's stand-in models run instead
(:mod:`radpath.adapters.totalseg.standin`), and the log and manifest say so. Each run happens
in a process of its own (:mod:`radpath.adapters.totalseg.runner`, which explains why).

Per-class masks land in the element's output folder as ``<class>.nii.gz``; the classes
and their voxel counts go into the manifest. An organ whose classes are all empty ends
skipped ("kidney not found in the field of view of series …"), never done.
"""

from __future__ import annotations

import logging
from importlib import metadata

from radpath.adapters.masks import count_voxels
from radpath.adapters.settings import Settings
from radpath.adapters.totalseg.runner import SegmentRequest, segment_in_own_process
from radpath.domain.anatomy import load_master
from radpath.pipeline.batch import BatchElement, ElementSkipped, MissingFact
from radpath.pipeline.sections import BodyPartFacts, NiftiFacts, SegmentFacts

log = logging.getLogger(__name__)


def run_segment(element: BatchElement, settings: Settings) -> SegmentFacts:
    nifti, bodypart = element.need(NiftiFacts, BodyPartFacts)
    if bodypart.organ is None:
        raise MissingFact("the bodypart stage resolved no organ for this element")
    master, organ, modality = load_master(), bodypart.organ, nifti.modality
    task = master.data["totalsegmentator_tasks"][modality]
    classes = [c["class"] for c in master.classes(organ, task)]
    if not classes:
        raise ElementSkipped(f"TotalSegmentator cannot segment {organ} on {modality} (no class in task {task})")
    options = settings.options
    out_dir = element.output
    run = segment_in_own_process(SegmentRequest(
        source=str(element.folder_of(nifti) / nifti.path),
        out_dir=str(out_dir),
        task=task,
        classes=classes,
        speed=options.totalseg_speed,
        full_on_cpu=options.totalseg_full_on_cpu,
        allow_standin=options.totalseg_standin_weights,
        robust_crop=options.totalseg_robust_crop,
        threads=options.totalseg_threads,
    ), element.path)
    if run.standin_weights:
        log.warning("%s: segmenting with radpath's STAND-IN weights from %s", element.name, run.weights_root)
    counts = {name: count_voxels(out_dir / f"{name}.nii.gz") for name in classes}
    facts = SegmentFacts(
        folder=out_dir.name,
        task=task,
        speed=run.speed,
        device=run.device,
        models=run.models,
        totalsegmentator=metadata.version("TotalSegmentator"),
        weights=run.weights,
        standin_weights=run.standin_weights,
        classes=counts,
        notes=run.notes,
    )
    for note in run.notes:
        log.info("%s: %s", element.name, note)
    if not any(counts.values()):
        caveat = (" by radpath's stand-in weights (small models that may miss what TotalSegmentator's official "
                  "weights find)" if run.standin_weights else "")
        # A part the task has no class for (the appendix of the colon) is said here: merge,
        # which records it otherwise, is never reached by an empty organ.
        fallback = master.select_classes(organ, task, bodypart.laterality, bodypart.subpart).note
        raise ElementSkipped((f"{fallback}; " if fallback else "") + f"{organ} not found in the field of view of "
                             f"series {nifti.series_label}{caveat}", facts)
    present = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
    log.info("%s: %s on %s (%s, %s): %s voxels", element.name, organ, modality, run.speed, run.device, present)
    return facts
