"""The stages in order, in-process, over one run folder (the main job without Airflow).

Each stage reads the previous stage's output folder and writes its own (named after the
stage), exactly as the DAG chains ``operator_in_dir`` to the upstream ``operator_out_dir``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from radpath import stages
from radpath.batch import BatchResult, iter_elements, run_stage
from radpath.manifest import Manifest
from radpath.settings import Settings


def run_pipeline(settings: Settings, input_dir: str) -> list[BatchResult]:
    """Run every registered stage in pipeline order; ``input_dir`` feeds the first."""
    results = []
    upstream = input_dir
    for spec in stages.in_pipeline_order():
        layout = dataclasses.replace(
            settings.layout, operator_in_dir=upstream, operator_out_dir=spec.name, task_id=spec.name
        )
        results.append(run_stage(spec.name, spec.load(), dataclasses.replace(settings, layout=layout)))
        upstream = spec.name
    return results


@dataclass(frozen=True)
class ElementSummary:
    element: str
    status: str
    stage: str | None
    detail: str


def summarize(settings: Settings) -> list[ElementSummary]:
    """Each element's final status, the stage it ended at and why (from its manifest)."""
    rows = []
    for element in iter_elements(settings.layout):
        manifest = Manifest.load(element.path)
        ended = manifest.ended_at()
        if ended is not None:
            name, rec = ended
            rows.append(ElementSummary(element.name, rec.status.value, name, rec.reason or rec.error or ""))
        elif manifest.stages:
            last = list(manifest.stages)[-1]
            rows.append(ElementSummary(element.name, "done", last, ""))
        else:
            rows.append(ElementSummary(element.name, "pending", None, "no stage has run on it"))
    return rows
