"""The stages in order, in-process, over one run folder (the main job without Airflow).

Each stage reads the previous stage's output folder and writes its own (named after the
stage), exactly as the DAG chains ``operator_in_dir`` to the upstream ``operator_out_dir``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from radpath.adapters.settings import Settings
from radpath.pipeline import stages
from radpath.pipeline.batch import BatchResult, iter_elements, run_stage
from radpath.pipeline.manifest import Manifest
from radpath.pipeline.sections import BodyPartFacts, WsiDicomizeFacts


def run_pipeline(settings: Settings, input_dir: str, until: str | None = None) -> list[BatchResult]:
    """Run every registered stage in pipeline order (up to and including ``until``);
    ``input_dir`` feeds the first."""
    if until is not None:
        stages.get(until)  # an unknown name fails here, not after hours of work
    results = []
    upstream = input_dir
    for spec in stages.in_pipeline_order():
        results.append(run_stage(spec.name, spec.load(), stage_settings(settings, spec.name, upstream)))
        upstream = spec.name
        if spec.name == until:
            break
    return results


def stage_settings(settings: Settings, stage: str, upstream: str) -> Settings:
    """``settings`` laid out for ``stage`` reading ``upstream``'s output folder."""
    layout = dataclasses.replace(settings.layout, operator_in_dir=upstream, operator_out_dir=stage, task_id=stage)
    return dataclasses.replace(settings, layout=layout)


@dataclass(frozen=True)
class ElementSummary:
    element: str
    status: str
    stage: str | None
    detail: str
    slide: str = ""  # the element's slide file(s)
    organ: str = ""  # the organ (and side) its slide shows


def summarize(settings: Settings) -> list[ElementSummary]:
    """Each element's final status, the stage it ended at and why (from its manifest),
    after the input files that never became part of an element and the slides rejected
    within an element that went on (named by file)."""
    from radpath.pipeline.localinput import read_rejected

    rows = [ElementSummary(r.file, "failed", "input", r.reason)
            for r in read_rejected(settings.layout.require_workflow_dir())]
    for element in iter_elements(settings.layout):
        manifest = Manifest.load(element.path)
        ended = manifest.ended_at()
        slides, bodypart = manifest.sections.get(WsiDicomizeFacts.stage), manifest.sections.get(BodyPartFacts.stage)
        shown = {
            "slide": ", ".join(s.file for s in slides.slides) if isinstance(slides, WsiDicomizeFacts) else "",
            "organ": bodypart.what if isinstance(bodypart, BodyPartFacts) else "",
        }
        # Slides rejected on their own while the rest of the element went on.
        if isinstance(slides, WsiDicomizeFacts) and (ended is None or ended[0] != slides.stage):
            rows += [ElementSummary(f"{element.name}/{failure.file}", "failed", slides.stage, failure.reason)
                     for failure in slides.failed]
        if ended is not None:
            name, rec = ended
            rows.append(ElementSummary(element.name, rec.status.value, name, rec.reason or rec.error or "", **shown))
        elif manifest.stages:
            last = list(manifest.stages)[-1]
            rows.append(ElementSummary(element.name, "done", last, "", **shown))
        else:
            rows.append(ElementSummary(element.name, "pending", None, "no stage has run on it"))
    return rows


def element_table(rows: list[ElementSummary], title: str):
    """The rows as a rich table (command line, task logs)."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("element", "status", "stage", "slide", "organ", "detail"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.element, row.status, row.stage or "-", row.slide, row.organ, row.detail)
    return table
