"""The main job on one machine (``radpath run``, ``radpath demo``): the ``radpath-map`` DAG
under a local Airflow (:mod:`radpath.apps.airflow_local`), or the same stages in-process with
``--no-airflow``; progress bars per stage while it runs, the full log in a file, and at
the end a table of every element with its status and reason, and where the results are.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from radpath.adapters.settings import Settings
from radpath.pipeline.events import EventTail, ProgressEvent, emit
from radpath.pipeline.research import research_folder, write_research_table
from radpath.pipeline.resume import RESUME_FROM, resumable_run
from radpath.pipeline.runlock import output_lock
from radpath.pipeline.runner import (ElementSummary, element_table, interruption, run_failed, run_pipeline,
                                     summarize)

log = logging.getLogger(__name__)

INPUT_STAGE = "get-input"


def wide_console() -> Console:
    """The terminal's width, or 160 columns in a log file (element UIDs stay whole)."""
    import sys

    return Console() if sys.stdout.isatty() else Console(width=160)


@dataclass
class MainJob:
    """One run of the main job: its run conf, the stages' environment, where it writes."""

    output: Path
    conf: dict
    env: dict[str, str] = field(default_factory=dict)
    use_airflow: bool = True
    fresh: bool = False  # start over, even where an earlier run of the same selection can be resumed
    wait: bool = False  # wait for another run into the same output, instead of stopping


@dataclass
class JobResult:
    workflow_dir: Path
    rows: list[ElementSummary]
    log_file: Path

    @property
    def exit_code(self) -> int:
        return 1 if not self.rows or run_failed(self.rows) else 0


class StageProgress:
    """Rich progress bars fed by the stages' progress events (:mod:`radpath.pipeline.events`,
    from Airflow's tasks or in-process alike), one bar per stage in pipeline order."""

    def __init__(self, console: Console):
        self.progress = Progress(TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[tally]}"), TimeElapsedColumn(), console=console)
        self.tasks: dict[str, int] = {}
        self.tallies: dict[str, dict[str, int]] = {}
        self.seen: set[tuple[str, str, str]] = set()

    def __enter__(self) -> StageProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def _bar(self, stage: str, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total, tally="")
            self.tallies[stage] = {}

    def feed(self, event: ProgressEvent) -> None:
        if event.started:  # the bar appears (and its clock starts) with the stage
            self._bar(event.stage, event.total)
            return
        if event.element is None:  # a stage through its batch, or the run's end
            return
        key = (event.stage, str(event.index), event.element or "")
        if key in self.seen:  # a task retried, or a file read twice
            return
        self.seen.add(key)
        self._bar(event.stage, event.total)
        tally = self.tallies[event.stage]
        tally[event.status or "?"] = tally.get(event.status or "?", 0) + 1
        self.progress.update(self.tasks[event.stage], advance=1,
                             tally=", ".join(f"{n} {s}" for s, n in tally.items()))


class _LogFile(logging.FileHandler):
    """A log file that, once it cannot be written (a full disk), says so once on the
    terminal, not with a traceback per line (what logging does by default)."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.failed:
            self.failed = True
            import sys

            cause = sys.exc_info()[1]
            print(f"radpath: the log file {self.baseFilename} cannot be written ({cause}): "
                  "its lines from here on are lost", file=sys.stderr)


@contextlib.contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """radpath's log lines into ``path``; only warnings and errors still reach the
    terminal while the bars run."""
    logger = logging.getLogger("radpath")
    to_file = _LogFile(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    terminal = [h for h in logger.handlers if getattr(h, "_radpath", False)]
    levels = [h.level for h in terminal]
    for handler in terminal:
        handler.setLevel(logging.WARNING)
    logger.addHandler(to_file)
    try:
        yield
    finally:
        logger.removeHandler(to_file)
        to_file.close()
        for handler, level in zip(terminal, levels):
            handler.setLevel(level)


def run_main_job(job: MainJob, console: Console | None = None) -> JobResult:
    """Run the pipeline once over ``job``'s input, holding its output folder
    (:mod:`radpath.pipeline.runlock`); the result table is printed."""
    console = console or wide_console()
    output = job.output.resolve()
    with output_lock(output, job.wait, lambda line: console.print(escape(line), soft_wrap=True)):
        return _run_locked(job, output, console)


def _run_locked(job: MainJob, output: Path, console: Console) -> JobResult:
    (output / "logs").mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    log_file = output / "logs" / f"radpath-run-{stamp}.log"
    progress = StageProgress(console)
    runs = output / "runs"
    runs.mkdir(exist_ok=True)
    conf = job.conf
    earlier = None if job.fresh else resumable_run(runs, conf)
    if earlier is not None:
        conf = {**conf, "data_form": {**conf["data_form"], RESUME_FROM: str(earlier)}}
        console.print(escape(f"resuming {earlier.name}: what it finished for an unchanged input is carried over "
                             "(--fresh starts over)"), soft_wrap=True)
    events = EventTail(runs, progress.feed)
    if job.use_airflow:
        from radpath.apps.airflow_local import LocalAirflow

        airflow = LocalAirflow(home=output / "airflow", data_dir=runs)
        console.print(escape(f"running radpath-map under a local Airflow ({airflow.home}); full log: {log_file}"),
                      soft_wrap=True)
        with _LineLog(log_file, console) as on_line, progress, events:
            outcome = airflow.run("radpath-map", conf, {**job.env, "RADPATH_LOG_LEVEL": "INFO"}, on_line)
        workflow_dir = airflow.data_dir / outcome.run_id
    else:
        workflow_dir = _new_run_folder(runs, f"local__{stamp}")  # after the tail began: its events are new
        (workflow_dir / "conf").mkdir()
        (workflow_dir / "conf" / "conf.json").write_text(json.dumps(conf, indent=2))
        settings = Settings.from_env({**os.environ, **job.env, "WORKFLOW_DIR": str(workflow_dir),
                                      "BATCH_NAME": "batch"})
        console.print(escape(f"running the stages in this process; full log: {log_file}"), soft_wrap=True)
        with _logs_to(log_file), progress, events:
            _fill_input(settings)
            run_pipeline(settings, INPUT_STAGE)
    emit(workflow_dir, ProgressEvent.run_ended())
    settings = Settings.from_env({"WORKFLOW_DIR": str(workflow_dir), "BATCH_NAME": "batch"})
    rows = summarize(settings, running=False) if workflow_dir.is_dir() else []
    console.print(element_table(rows, f"radpath: elements of {workflow_dir}"))
    note = interruption(settings) if workflow_dir.is_dir() else None
    if note is not None:
        console.print(escape(note), soft_wrap=True)
    _print_results(console, workflow_dir, job.env.get("STORE_FOLDER"))
    table = write_research_table(settings, research_folder(settings)) if workflow_dir.is_dir() else None
    if table is not None:
        console.print(escape(f"research table (volumes, radiomics; {table.summary()}): {table.csv}"), soft_wrap=True)
    return JobResult(workflow_dir, rows, log_file)


def _new_run_folder(runs: Path, name: str) -> Path:
    """``runs/name``, or ``name-2`` … where a run of the same second has it."""
    for n in range(1, 1000):
        folder = runs / (name if n == 1 else f"{name}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{runs}: no free run folder name for {name}")


class _LineLog:
    """The local Airflow's lines into the log file (errors also on the terminal); a log
    file that cannot be written any more (a full disk) is said once and the run goes on."""

    def __init__(self, path: Path, console: Console):
        self.path, self.console, self.failed = path, console, False

    def __enter__(self) -> Callable[[str], None]:
        self.handle = open(self.path, "w", encoding="utf-8")
        return self.on_line

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()

    def on_line(self, line: str) -> None:
        if not self.failed:
            try:
                self.handle.write(line + "\n")
            except OSError as err:
                self.failed = True
                self.console.print(escape(f"radpath: the log file {self.path} cannot be written ({err.strerror}): "
                                          "its lines from here on are lost"), soft_wrap=True)
        if " ERROR radpath" in line or line.startswith("ERROR radpath"):
            self.console.print(line[line.index("ERROR radpath"):], markup=False, highlight=False)


def _fill_input(settings: Settings) -> None:
    """get-input in this process (what the DAG's first task does)."""
    from radpath.pipeline.getinput import fetch_selection

    report = fetch_selection(settings, INPUT_STAGE)
    for line in report.missing:
        log.error("get-input: %s", line)


def _print_results(console: Console, workflow_dir: Path, store_folder: str | None) -> None:
    links = sorted(workflow_dir.glob("batch/*/link/link.json"))
    for link in links:
        # soft_wrap: a path is never broken across lines (people copy it)
        console.print(f"result: [bold]{escape(str(link.parent))}[/]: split view index.html, QC picture qc.png, link.json",
                      soft_wrap=True)
    if store_folder:
        console.print(escape(f"DICOM written (SEG, SR, KOS, slides, sources): {store_folder}"), soft_wrap=True)
    if links:
        # shell-quoted, so that the command pastes as it is (spaces, umlauts, brackets); the
        # markup escaped, so that rich prints a bracket in a path as a bracket
        command = escape(f"radpath view {shlex.quote(str(workflow_dir))}")
        console.print(f"to open the pairs (click an organ, get its slide): {command}", soft_wrap=True)


def selection_conf(input_folder: Path | None = None, series: list[str] | None = None,
                   workflow_form: dict | None = None) -> dict:
    """The run conf a Workflow Launcher would post for this selection."""
    data_form: dict = {"input_folder": str(input_folder.resolve())} if input_folder else {"identifiers": series or []}
    return {"data_form": data_form, "workflow_form": workflow_form or {}}
