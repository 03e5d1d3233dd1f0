"""The ``merge`` stage: the organ's class masks → one binary mask, as the slide names it.

No side named: the voxelwise union of every class of the organ (both kidneys, all lobes
of both lungs), or with MERGE_BILATERAL=false one mask per side of a paired organ. A
side or a lobe named: only that side's (lobe's) classes. The choice is
``anatomy/master.json``'s (:meth:`radpath.domain.anatomy.master.Master.select_classes`); the
manifest records the classes that went in and their voxel counts. An empty union ends
the element ``skipped``: an empty mask never reaches the encoder.
"""

from __future__ import annotations

import logging

import numpy as np

from radpath.adapters.masks import read_mask, write_mask
from radpath.adapters.settings import Settings
from radpath.domain.anatomy import load_master
from radpath.domain.vocabulary import Laterality
from radpath.pipeline.batch import BatchElement, ElementSkipped, MissingFact
from radpath.pipeline.sections import BodyPartFacts, MaskPart, MergeFacts, NiftiFacts, SegmentFacts

log = logging.getLogger(__name__)


class MaskGridMismatch(ValueError):
    """Class masks of one element do not share one voxel grid."""


def run_merge(element: BatchElement, settings: Settings) -> MergeFacts:
    segment, bodypart = element.need(SegmentFacts, BodyPartFacts)
    master, organ = load_master(), bodypart.organ
    side = bodypart.laterality if bodypart.laterality in Laterality.sides() else None
    sides: list[str | None] = [side]
    if side is None and not settings.options.merge_bilateral and master.organ(organ)["paired"]:
        sides = list(Laterality.sides())  # MERGE_BILATERAL=false: one segment per side
    folder = element.folder_of(segment)
    out_dir = element.output
    parts, notes = [], []
    for part_side in sides:
        selection = master.select_classes(organ, segment.task, part_side, bodypart.subpart)
        union, affine, counts = _union(folder, selection.classes)
        part = MaskPart(selection=selection, classes=counts, voxels=int(np.count_nonzero(union)))
        if selection.note:
            notes.append(selection.note)
        if part.voxels:
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / ("_".join(filter(None, (organ, selection.subpart, selection.laterality))) + ".nii.gz")
            write_mask(union, affine, path)
            part.path = path.name
        else:
            notes.append(f"{part.what}: no voxel in any of {', '.join(counts)}")
        parts.append(part)
    facts = MergeFacts(folder=out_dir.name, task=segment.task, parts=[p for p in parts if p.voxels], notes=notes)
    for note in notes:
        log.info("%s: %s", element.name, note)
    if not facts.parts:
        nifti = element.get(NiftiFacts)
        series = nifti.series_label if nifti else "?"
        raise ElementSkipped(f"{' and '.join(p.what for p in parts)} not found in the field of view of series "
                             f"{series}", facts)
    for part in facts.parts:
        log.info("%s: %s = %s: %d voxels", element.name, part.what, " ∪ ".join(part.classes), part.voxels)
    return facts


def _union(folder, classes: list[str]):
    """The voxelwise union of the class masks, their common affine and each one's count."""
    union, affine, counts = None, None, {}
    for name in classes:
        path = folder / f"{name}.nii.gz"
        if not path.exists():
            raise MissingFact(f"the segment stage wrote no mask for class {name} ({path})")
        mask, mask_affine = read_mask(path)
        if union is None:
            union, affine = mask.copy(), mask_affine
        elif mask.shape != union.shape or not np.allclose(mask_affine, affine, atol=1e-4):
            raise MaskGridMismatch(f"{name}.nii.gz is not on the grid of {classes[0]}.nii.gz")
        else:
            union |= mask
        counts[name] = int(np.count_nonzero(mask))
    return union, affine, counts
