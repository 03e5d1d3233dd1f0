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
from radpath.pipeline.events import RunState, run_state
from radpath.pipeline.manifest import Manifest, ManifestError, Status
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


#: The status of an element whose run stopped before it was through (killed, crashed).
INTERRUPTED = "interrupted"
#: The status of an element whose run is still going (it holds its output's lock).
RUNNING = "running"


@dataclass(frozen=True)
class ElementSummary:
    element: str
    status: str  # a manifest Status's value, or INTERRUPTED
    stage: str | None
    detail: str
    slide: str = ""  # the element's slide file(s)
    organ: str = ""  # the organ (and side) its slide shows


def summarize(settings: Settings, running: bool | None = None) -> list[ElementSummary]:
    """Each element's status, the stage it ended at and why (from its manifest and the
    run's events), after the input files that never became part of an element and the
    slides rejected within an element that went on (named by file).

    An element is done only when every stage its run started is done for it and the run
    ended; where the run stopped half-way (killed, crashed) the element is interrupted at
    the first stage it lacks, or running where ``running`` (by default: whether a process
    holds the run's output folder). A manifest that cannot be read is that element's failed
    row.
    """
    from radpath.pipeline.localinput import read_rejected
    from radpath.pipeline.runlock import run_in_progress

    workflow_dir = settings.layout.require_workflow_dir()
    state = run_state(workflow_dir)
    if running is None:
        running = workflow_dir.parent.name == "runs" and run_in_progress(workflow_dir.parent.parent)
    state = dataclasses.replace(state, running=running)
    rows = [ElementSummary(r.file, "failed", "input", r.reason) for r in read_rejected(workflow_dir)]
    for element in iter_elements(settings.layout):
        try:
            manifest = Manifest.load(element.path)
        except ManifestError as err:
            rows.append(ElementSummary(element.name, "failed", None, str(err)))
            continue
        rows += _element_rows(element.name, manifest, state)
    return rows


def _element_rows(name: str, manifest: Manifest, state: RunState) -> list[ElementSummary]:
    ended = manifest.ended_at()
    slides, bodypart = manifest.sections.get(WsiDicomizeFacts.stage), manifest.sections.get(BodyPartFacts.stage)
    shown = {
        "slide": ", ".join(s.file for s in slides.slides) if isinstance(slides, WsiDicomizeFacts) else "",
        "organ": bodypart.what if isinstance(bodypart, BodyPartFacts) else "",
    }
    rows = []
    # Slides rejected on their own while the rest of the element went on.
    if isinstance(slides, WsiDicomizeFacts) and (ended is None or ended[0] != slides.stage):
        rows += [ElementSummary(f"{name}/{failure.file}", "failed", slides.stage, failure.reason)
                 for failure in slides.failed]
    if ended is not None:
        stage, rec = ended
        return [*rows, ElementSummary(name, rec.status.value, stage, rec.reason or rec.error or "", **shown)]
    if not manifest.stages and not state.stages:
        return [*rows, ElementSummary(name, "pending", None, "no stage has run on it")]
    # From the element's first stage on: an element the pair stage split off begins there.
    first = next((i for i, stage in enumerate(state.stages) if stage in manifest.stages), 0)
    lacking = [stage for stage in state.stages[first:] if stage not in manifest.stages]
    if state.recorded and (lacking or not state.complete) and state.running:
        return [*rows, ElementSummary(name, RUNNING, lacking[0] if lacking else None,
                                      "its run is still going (radpath run holds the output folder)", **shown)]
    if state.recorded and (lacking or not state.complete):
        stopped = state.interrupted_at or (state.stages[-1] if state.stages else None)
        how = (f"the run stopped during {stopped} (killed or crashed)" if state.interrupted_at
               else "the run stopped without its end (killed or crashed)")
        so_far = "" if lacking else f"{list(manifest.stages)[-1]} done; "
        return [*rows, ElementSummary(name, INTERRUPTED, lacking[0] if lacking else stopped,
                                      f"{so_far}{how}: run it again to resume", **shown)]
    last = list(manifest.stages)[-1] if manifest.stages else None
    return [*rows, ElementSummary(name, "done", last, "", **shown)]


def interruption(settings: Settings) -> str | None:
    """The run's own line where it stopped half-way ("interrupted at segment …"), else None."""
    state = run_state(settings.layout.require_workflow_dir())
    if state.interrupted_at is not None:
        return (f"run interrupted at {state.interrupted_at} (killed or crashed): run it again to resume, "
                "done work is carried over")
    if state.recorded and not state.ended:
        last = state.stages[-1] if state.stages else "its start"
        return f"run interrupted after {last} (killed or crashed): run it again to resume, done work is carried over"
    return None


def run_failed(rows: list[ElementSummary]) -> bool:
    """The run's verdict: failed where any element failed or was left interrupted."""
    return any(row.status in (Status.FAILED.value, INTERRUPTED) for row in rows)


def element_table(rows: list[ElementSummary], title: str):
    """The rows as a rich table (command line, task logs)."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("element", "status", "stage", "slide", "organ", "detail"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.element, row.status, row.stage or "-", row.slide, row.organ, row.detail)
    return table
