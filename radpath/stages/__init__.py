"""The pipeline's stages, registered by name.

A stage is a module under ``radpath.stages`` with a function of one batch element
(see :mod:`radpath.batch`). The registry maps the stage name (as in ``radpath stage
<name>`` and the container ``radpath-<name>``) to ``(module, function, summary)`` and
imports the module only when the stage runs, so listing stages or parsing a DAG never
pulls in torch or wsidicomizer.

:data:`PIPELINE` is the order of ``../DESIGN.md``; stages join :data:`REGISTRY` as they
are built, never as placeholders.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from radpath.batch import StageFunction

PIPELINE: tuple[str, ...] = (
    "wsi-dicomize",
    "pair",
    "bodypart",
    "nifti",
    "segment",
    "merge",
    "seg-encode",
    "store",
    "link",
)


@dataclass(frozen=True)
class StageSpec:
    name: str
    module: str
    function: str
    summary: str

    def load(self) -> StageFunction:
        return getattr(importlib.import_module(self.module), self.function)


REGISTRY: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            "wsi-dicomize",
            "radpath.stages.wsi_dicomize",
            "run_wsi_dicomize",
            "convert each element's slides to DICOM WSI carrying the patient's identity (wsidicomizer)",
        ),
        StageSpec(
            "pair",
            "radpath.stages.pair",
            "run_pair",
            "find the other side in the PACS (the slide's CT/MR study, or the study's slides)",
        ),
        StageSpec(
            "nifti",
            "radpath.stages.nifti",
            "run_nifti",
            "convert the element's chosen CT/MR series to NIfTI (dcm2niix), slices mapped to instances",
        ),
        StageSpec(
            "bodypart",
            "radpath.stages.bodypart",
            "run_bodypart",
            "resolve the organ and side of each element's slide (anatomy/master.json)",
        ),
        StageSpec(
            "segment",
            "radpath.stages.segment",
            "run_segment",
            "segment the slide's organ in the NIfTI series with TotalSegmentator (CT: total, MR: total_mr)",
        ),
        StageSpec(
            "merge",
            "radpath.stages.merge",
            "run_merge",
            "join the organ's class masks into one mask (union), or keep the side the slide names",
        ),
        StageSpec(
            "seg-encode",
            "radpath.stages.seg_encode",
            "run_seg_encode",
            "encode the mask as a DICOM SEG on the source series' slices (dcmqi; highdicom as second encoder)",
        ),
        StageSpec(
            "store",
            "radpath.stages.store",
            "run_store",
            "put the pair in the PACS, each instance once: source series, slide, SEG (STOW-RS, DIMSE or a folder)",
        ),
        StageSpec(
            "link",
            "radpath.stages.link",
            "run_link",
            "record the pair as a KOS in the radiology study; link.json, QC picture and split-view page",
        ),
    )
}


class UnknownStage(KeyError):
    def __str__(self) -> str:
        known = ", ".join(REGISTRY) or "none yet"
        return f"unknown stage {self.args[0]!r} (registered: {known})"


def get(name: str) -> StageSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownStage(name) from None


def in_pipeline_order() -> list[StageSpec]:
    """Registered stages in the pipeline's order."""
    return [REGISTRY[name] for name in PIPELINE if name in REGISTRY]
