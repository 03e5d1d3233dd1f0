"""The operator base where Kaapana is absent: ``radpath stage <name>`` in a subprocess,
with the environment and folder conventions of Kaapana's KaapanaBaseOperator.

The signature mirrors Kaapana's (``../shared/KAAPANA.md``), so the stage operators are
the same code in both places: task id = name (``-<parallel_id>``), ``operator_out_dir``
defaults to the task id, ``operator_in_dir`` comes from ``input_operator``; the run folder
is ``<data root>/<run_id>`` with the run conf at ``conf/conf.json`` and the batch under
``batch/``; the ``workflow_form`` reaches the stage through the run conf, over the
operator's defaults as on Kaapana; exit code 126 marks the task skipped. Resource hints
are kept (and shown in the task's docs) but a local run cannot enforce them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from airflow.exceptions import AirflowException, AirflowSkipException
from airflow.models import BaseOperator
from airflow.utils.trigger_rule import TriggerRule

#: Exit code of a stage that had nothing to do (Kaapana: task skipped).
EXIT_NOTHING_TO_DO = 126


def data_root() -> Path:
    """Where run folders live: $RADPATH_DATA_DIR, else $AIRFLOW_HOME/radpath-data."""
    configured = os.environ.get("RADPATH_DATA_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow")) / "radpath-data"


class LocalStageOperator(BaseOperator):
    """Runs one radpath stage over the run's batch folder."""

    template_fields = ("env_vars",)

    def __init__(
        self,
        dag,
        name: str,
        image: str | None = None,
        input_operator: BaseOperator | None = None,
        operator_in_dir: str | None = None,
        operator_out_dir: str | None = None,
        task_id: str | None = None,
        parallel_id: str | None = None,
        env_vars: dict[str, str] | None = None,
        cmds: list[str] | None = None,
        arguments: list[str] | None = None,
        execution_timeout: timedelta = timedelta(minutes=90),
        ram_mem_mb: int = 500,
        ram_mem_mb_lmt: int | None = None,
        cpu_millicores: int | None = None,
        gpu_mem_mb: int | None = None,
        retries: int = 1,
        retry_delay: timedelta = timedelta(seconds=30),
        trigger_rule: str = TriggerRule.ALL_SUCCESS,
        batch_name: str | None = None,
        delete_output_on_start: bool = True,
        labels: dict[str, str] | None = None,
        display_name: str | None = None,
        **kwargs,
    ):
        if input_operator is not None and operator_in_dir is not None:
            raise ValueError(f"{name}: give input_operator or operator_in_dir, not both")
        task_id = task_id or (f"{name}-{parallel_id}" if parallel_id else name)
        self.name, self.image = name, image
        self.operator_in_dir = input_operator.operator_out_dir if input_operator is not None else operator_in_dir
        self.operator_out_dir = operator_out_dir or task_id
        self.env_vars = dict(env_vars or {})
        self.cmds, self.arguments = cmds, arguments
        self.ram_mem_mb, self.ram_mem_mb_lmt = ram_mem_mb, ram_mem_mb_lmt
        self.cpu_millicores, self.gpu_mem_mb = cpu_millicores, gpu_mem_mb
        self.batch_name = batch_name or "batch"
        self.delete_output_on_start = delete_output_on_start
        self.labels = labels or {}
        super().__init__(
            dag=dag,
            task_id=task_id,
            execution_timeout=execution_timeout,
            retries=retries,
            retry_delay=retry_delay,
            trigger_rule=trigger_rule,
            task_display_name=display_name,
            **kwargs,
        )

    def command(self) -> list[str]:
        """What the stage's container runs (its CMD), here with this interpreter."""
        return [*(self.cmds or [sys.executable, "-m", "radpath", "stage", self.name]), *(self.arguments or [])]

    def environment(self, run_id: str, workflow_dir: Path) -> dict[str, str]:
        """The stage's environment: this process's under the operator's defaults, and the
        run layout over both. The workflow form is not put in here: radpath's settings
        read it from the run conf by the one rule every runtime shares (Kaapana's order,
        ``radpath.adapters.settings.stage_environment``)."""
        env = {
            **os.environ,
            **{key: str(value) for key, value in self.env_vars.items()},
            "WORKFLOW_DIR": str(workflow_dir),
            "BATCH_NAME": self.batch_name,
            "OPERATOR_OUT_DIR": self.operator_out_dir,
            "RUN_ID": run_id,
            "DAG_ID": self.dag_id,
            "TASK_ID": self.task_id,
        }
        if self.operator_in_dir:
            env["OPERATOR_IN_DIR"] = self.operator_in_dir
        return env

    def execute(self, context):
        run_id = context["run_id"]
        workflow_dir = data_root() / run_id
        conf = context["dag_run"].conf or {}
        conf_path = workflow_dir / "conf" / "conf.json"
        if not conf_path.exists():  # Kaapana mounts it; here the first task writes it
            conf_path.parent.mkdir(parents=True, exist_ok=True)
            conf_path.write_text(json.dumps(conf, indent=2))
        env = self.environment(run_id, workflow_dir)
        self.log.info("%s: %s in %s", self.task_id, " ".join(self.command()[-3:]), workflow_dir)
        process = subprocess.Popen(self.command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        assert process.stdout is not None
        for line in process.stdout:  # the stage's own per-element lines, into the task log
            self.log.info("%s", line.rstrip())
        code = process.wait()
        if code == EXIT_NOTHING_TO_DO:
            raise AirflowSkipException(f"{self.task_id}: nothing to do for any element (exit {code})")
        if code != 0:
            raise AirflowException(f"{self.task_id}: radpath stage exited with {code} (see the lines above)")
