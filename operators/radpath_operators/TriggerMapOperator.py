"""The end of radpath-wsi-import: starts ``radpath-map`` on the slide series this run
stored, as if a user had selected them in the data explorer.

It reads what the ``store`` task recorded in each element's manifest (the run folder as
Airflow itself sees it, as Kaapana's LocalDagTriggerOperator reads its run folder) and
triggers one ``radpath-map`` run per stored slide series, as Kaapana's backend does for a
selection with ``single_execution``. Each child gets the parent's whole conf, as
LocalDagTriggerOperator passes it on (``project_form`` too: without it the child would run
as an admin run in the admin project), with ``data_form.identifiers`` naming its series.
Plain Airflow code: it needs no image and no radpath package on the scheduler.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from airflow.api.common.trigger_dag import trigger_dag
from airflow.exceptions import AirflowSkipException
from airflow.models import BaseOperator
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


def child_confs(parent: dict, series: list[str]) -> list[dict]:
    """One conf per series: the parent's whole conf, its data_form naming that series."""
    confs = []
    for uid in series:
        conf = copy.deepcopy(parent)
        conf["data_form"] = {"identifiers": [uid]}
        confs.append(conf)
    return confs


class TriggerMapOperator(BaseOperator):
    """Triggers one ``radpath-map`` run per stored slide series, with the parent's conf."""

    def __init__(self, dag, name="trigger-map", trigger_dag_id="radpath-map", batch_name="batch", **kwargs):
        super().__init__(dag=dag, task_id=name, **kwargs)
        self.trigger_dag_id, self.batch_name = trigger_dag_id, batch_name

    def execute(self, context):
        batch_dir = run_data_root() / context["run_id"] / self.batch_name
        series = stored_slide_series(batch_dir)
        if not series:
            raise AirflowSkipException(f"no slide of this run was stored (looked in {batch_dir}): nothing to pair")
        parent = context["dag_run"].conf or {}
        project = (parent.get("project_form") or {}).get("name")
        for index, conf in enumerate(child_confs(parent, series)):
            run = trigger_dag(dag_id=self.trigger_dag_id, run_id=f"{self.trigger_dag_id}-{context['run_id']}-{index}",
                              conf=conf, replace_microseconds=False)
            self.log.info("triggered %s (slide series %d of %d, project %s)", run.run_id if run else "?",
                          index + 1, len(series), project or "none: an admin run")
        return len(series)
