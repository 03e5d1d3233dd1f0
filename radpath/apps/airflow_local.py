"""A local Airflow on one machine: radpath's own DAGs under their own ``AIRFLOW_HOME``
(SQLite, migrated on first use), each run through ``dag.test()``.

The same DAG files and operators that Kaapana schedules, run here without scheduler,
webserver or Kubernetes: each task runs its stage in a subprocess (see
``operators/radpath_operators/LocalStageOperator.py``) and its log lines reach the caller
as they are written. The run happens in a child interpreter because Airflow reads its
configuration (home, database) once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radpath.domain.records import Record

#: The checkout holding radpath: its ``dags/`` are what Kaapana installs. The operators
#: they import (``radpath_operators``) are installed with radpath itself.
REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO_ROOT / "dags"
#: The child's last line: the run's outcome as JSON after this prefix.
RESULT_PREFIX = "radpath-airflow-result: "


class LocalAirflowError(RuntimeError):
    """Airflow could not be set up or the DAG could not be loaded (not: a task failed)."""


@dataclass
class DagRunRecord(Record):
    """One run as the child reports it: its state and each task's."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str | None]
    conf: dict[str, Any]


@dataclass
class ChildResult(Record):
    """The child's last line: the runs it made, or why it made none."""

    runs: list[DagRunRecord] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class DagRunOutcome:
    """What a finished run left: its state, run id and each task's state."""

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str | None]
    log: list[str] = field(default_factory=list)
    #: Runs this one triggered (radpath-wsi-import → radpath-map), run here in turn.
    triggered: list[DagRunOutcome] = field(default_factory=list)
    #: The conf the run was given (for a triggered run: what its parent passed on).
    conf: dict = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.state == "success"


@dataclass(frozen=True)
class LocalAirflow:
    """An Airflow home for radpath's DAGs; run folders go to ``data_dir/<run_id>``."""

    home: Path
    data_dir: Path

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        if not DAGS_FOLDER.is_dir():
            raise LocalAirflowError(
                f"radpath's DAGs are not beside the package ({DAGS_FOLDER}): a local Airflow run needs a "
                "checkout of radpath (pip install -e .); run the stages without Airflow instead (--no-airflow)"
            )
        return {
            **os.environ,
            **(extra or {}),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "RADPATH_DATA_DIR": str(self.data_dir),
        }

    def migrate(self) -> None:
        """Create (or upgrade) the SQLite metadata database; a no-op once done."""
        import airflow

        marker = self.home / f".radpath-migrated-{airflow.__version__}"
        if marker.exists():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=self.environment(),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise LocalAirflowError(f"airflow db migrate in {self.home} failed: {done.stderr.strip()[-1500:]}")
        marker.touch()

    def run(self, dag_id: str, conf: dict, env: dict[str, str] | None = None,
            on_line: Callable[[str], None] | None = None) -> DagRunOutcome:
        """Run ``dag_id`` once with ``conf`` (as the Workflow Launcher would post it)."""
        self.migrate()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen([sys.executable, "-m", "radpath.apps.airflow_local", dag_id, json.dumps(conf)],
                                   env=self.environment(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        assert process.stdout is not None
        lines, result = [], None
        for raw in process.stdout:
            line = raw.rstrip("\n")
            if line.startswith(RESULT_PREFIX):
                result = ChildResult.from_json(json.loads(line[len(RESULT_PREFIX):]))
                continue
            lines.append(line)
            if on_line is not None:
                on_line(line)
        code = process.wait()
        if result is None:
            tail = "\n".join(lines[-30:])
            raise LocalAirflowError(f"the local Airflow run of {dag_id} ended (exit {code}) without a result:\n{tail}")
        if result.error is not None:
            raise LocalAirflowError(result.error)
        first, *then = [DagRunOutcome(r.dag_id, r.run_id, r.state, r.task_states, lines, conf=r.conf)
                        for r in result.runs]
        return DagRunOutcome(first.dag_id, first.run_id, first.state, first.task_states, lines, then, first.conf)


def _run_in_child(dag_id: str, conf: dict) -> ChildResult:
    """Run ``dag_id``, then every run it triggered (no scheduler here would start them)."""
    from airflow.models import DagBag, DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    # LocalAirflow sets it to the checkout's dags/; a Kaapana-like Airflow has a DAG folder of its own.
    folder = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    bag = DagBag(dag_folder=folder, include_examples=False)
    if bag.import_errors:
        errors = "; ".join(f"{path}: {error.strip().splitlines()[-1]}" for path, error in bag.import_errors.items())
        return ChildResult(error=f"the DAG folder {folder} has import errors: {errors}")
    if bag.get_dag(dag_id) is None:
        return ChildResult(error=f"no DAG {dag_id!r} in {folder} (there are: {', '.join(sorted(bag.dag_ids))})")
    bag.sync_to_db()  # a DAG that another triggers must be known to the metadata database
    pending, runs = [(dag_id, conf)], []
    while pending:
        next_id, next_conf = pending.pop(0)
        dag_run = bag.get_dag(next_id).test(run_conf=next_conf)
        runs.append(DagRunRecord(
            dag_id=next_id,
            run_id=dag_run.run_id,
            state=str(dag_run.state),
            task_states={ti.task_id: (str(ti.state) if ti.state else None) for ti in dag_run.get_task_instances()},
            conf=next_conf,
        ))
        with create_session() as session:  # queued by a trigger (trigger-map): run it here instead
            queued = session.query(DagRun).filter(DagRun.state == DagRunState.QUEUED)
            pending.extend((run.dag_id, dict(run.conf or {})) for run in queued.all())
            # A bulk delete: the ORM's would need Airflow's web-UI user tables mapped.
            queued.delete(synchronize_session=False)
    return ChildResult(runs=runs)


if __name__ == "__main__":
    outcome = _run_in_child(sys.argv[1], json.loads(sys.argv[2]))
    print(RESULT_PREFIX + json.dumps(outcome.to_json()), flush=True)
