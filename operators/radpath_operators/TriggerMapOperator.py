"""The end of radpath-wsi-import: starts ``radpath-map`` on the slide series this run
stored, as if a user had selected them in the data explorer.

It reads what the ``store`` task recorded in each element's manifest (the run folder as
Airflow itself sees it) and triggers one ``radpath-map`` run for all of them, passing the
import's workflow form on. Plain Airflow code (Airflow's own TriggerDagRunOperator
underneath): it needs no image and no radpath package on the scheduler.
"""

from __future__ import annotations

import json
from pathlib import Path

from airflow.exceptions import AirflowSkipException
from airflow.operators.trigger_dagrun import TriggerDagRunOperator
from radpath_operators.RadpathBaseOperator import run_data_root

MANIFEST_NAME = "radpath-manifest.json"  # radpath.manifest.MANIFEST_NAME


def stored_slide_series(batch_dir: Path) -> list[str]:
    """SeriesInstanceUIDs of the slides the store task put into the PACS."""
    found = []
    for manifest_path in sorted(batch_dir.glob(f"*/{MANIFEST_NAME}")):
        facts = json.loads(manifest_path.read_text()).get("facts", {})
        for what, _study, series in (facts.get("store") or {}).get("series", []):
            if what == "slide" and series not in found:
                found.append(series)
    return found


class TriggerMapOperator(TriggerDagRunOperator):
    """Triggers ``radpath-map`` with ``data_form.identifiers`` = the stored slide series."""

    def __init__(self, dag, name="trigger-map", trigger_dag_id="radpath-map", batch_name="batch", **kwargs):
        super().__init__(dag=dag, task_id=name, trigger_dag_id=trigger_dag_id, **kwargs)
        self.batch_name = batch_name

    def execute(self, context):
        batch_dir = run_data_root() / context["run_id"] / self.batch_name
        series = stored_slide_series(batch_dir)
        if not series:
            raise AirflowSkipException(f"no slide of this run was stored (looked in {batch_dir}): nothing to pair")
        form = (context["dag_run"].conf or {}).get("workflow_form") or {}
        self.conf = {"data_form": {"identifiers": series}, "workflow_form": form}
        self.log.info("triggering %s on %d stored slide series", self.trigger_dag_id, len(series))
        return super().execute(context)
