"""The ``segment`` stage: TotalSegmentator on the element's NIfTI, only the organ's classes.

Task from the modality (CT → ``total``, MR → ``total_mr``; anatomy/master.json),
``roi_subset`` = the organ's TotalSegmentator classes for that task. Device ``gpu`` when
CUDA is present, else ``cpu``, where the full-resolution models would take hours: CPU
runs use fast mode unless TOTALSEG_FULL_ON_CPU insists, and the log and manifest say so.
Weights are checked before the run (see :mod:`radpath.segmentation.weights`); with
TOTALSEG_STANDIN_WEIGHTS and no official weights, radpath's stand-in models run instead
(:mod:`radpath.segmentation.standin`), and the log and manifest say so.

Per-class masks land in the element's output folder as ``<class>.nii.gz``; the classes
and their voxel counts go into the manifest. An organ whose classes are all empty ends
skipped ("kidney not found in the field of view of series …"), never done.
"""

from __future__ import annotations

import logging
from importlib import metadata

from radpath.anatomy import load_master
from radpath.batch import BatchElement, ElementSkipped, MissingFact
from radpath.segmentation.standin import weights_path
from radpath.segmentation.weights import choose_weights, disable_usage_stats
from radpath.settings import Settings

log = logging.getLogger(__name__)


def _device() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def run_segment(element: BatchElement, settings: Settings) -> None:
    manifest = element.manifest()
    nifti, bodypart = manifest.facts.get("nifti"), manifest.facts.get("bodypart")
    if not nifti or not bodypart or not bodypart.get("organ"):
        raise MissingFact("the nifti and bodypart stages have not run on this element")
    master = load_master()
    organ, modality = bodypart["organ"], nifti["modality"]
    task = master.data["totalsegmentator_tasks"][modality]
    classes = [c["class"] for c in master.classes(organ, task)]
    if not classes:
        raise ElementSkipped(f"TotalSegmentator cannot segment {organ} on {modality} (no class in task {task})")
    options = settings.options
    device, speed, notes = _device(), options.totalseg_speed, []
    if device == "cpu" and speed == "full" and not options.totalseg_full_on_cpu:
        speed = "fast"
        notes.append("CPU: fast mode instead of full resolution (set TOTALSEG_FULL_ON_CPU=true to insist)")
    disable_usage_stats()  # before anything of TotalSegmentator's runs
    choice = choose_weights(
        task,
        speed,
        allow_standin=options.totalseg_standin_weights,
        roi_subset=True,
        robust_crop=options.totalseg_robust_crop,
    )
    spec, speed = choice.spec, choice.spec.speed
    notes.extend(choice.notes)
    if choice.standin:
        log.warning("%s: segmenting with radpath's STAND-IN weights from %s", element.name, choice.root)
    from totalsegmentator.python_api import totalsegmentator

    out_dir = element.out_dir or element.path / "segment"
    source = element.path / nifti["folder"] / nifti["path"]
    with weights_path(choice.root):
        totalsegmentator(
            source,
            out_dir,
            task=task,
            roi_subset=classes,
            fast=speed == "fast",
            fastest=speed == "fastest",
            device=device,
            robust_crop=options.totalseg_robust_crop,
            nr_thr_resamp=options.totalseg_threads,
            nr_thr_saving=options.totalseg_threads,
            quiet=True,
        )
    counts = _voxel_counts(out_dir, classes)
    manifest = element.manifest()
    manifest.update("segment", {
        "folder": out_dir.name,
        "task": task,
        "speed": speed,
        "device": device,
        "models": list(spec.task_ids) + ([spec.crop_model[0]] if spec.crop_model else []),
        "totalsegmentator": metadata.version("TotalSegmentator"),
        "weights": choice.label,
        "standin_weights": choice.standin,
        "classes": counts,
        "notes": notes,
    })
    manifest.save()
    for note in notes:
        log.info("%s: %s", element.name, note)
    if not any(counts.values()):
        raise ElementSkipped(
            f"{organ} not found in the field of view of series {nifti.get('series_description') or nifti['series_key']}"
        )
    present = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
    log.info("%s: %s on %s (%s, %s): %s voxels", element.name, organ, modality, speed, device, present)


def _voxel_counts(folder, classes: list[str]) -> dict[str, int]:
    import nibabel as nib
    import numpy as np

    counts = {}
    for name in classes:
        path = folder / f"{name}.nii.gz"
        counts[name] = int(np.count_nonzero(np.asanyarray(nib.load(str(path)).dataobj))) if path.exists() else 0
    return counts
