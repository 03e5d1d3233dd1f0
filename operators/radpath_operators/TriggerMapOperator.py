"""The end of radpath-wsi-import and radpath-batch: starts ``radpath-map`` on slide series,
as if a user had selected them in the data explorer.

The series come from the run folder as Airflow itself sees it (as Kaapana's
LocalDagTriggerOperator reads its run folder): the slides the ``store`` task recorded in the
elements' manifests (radpath-wsi-import), or the list ``find-unlinked`` wrote
(radpath-batch). One ``radpath-map`` run per series, as Kaapana's backend makes them for a
selection with ``single_execution``. Each child gets the parent's whole conf, as
LocalDagTriggerOperator passes it on (``project_form`` too: without it the child would run
as an admin run in the admin project), ``conf_defaults`` for what it lacks (radpath-batch's
project: a scheduled run has no conf), and ``data_form.identifiers`` naming its series.
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

MANIFEST_NAME = "radpath-manifest.json"  # radpath.pipeline.manifest.MANIFEST_NAME
FOUND_NAME = "unlinked-slides.json"  # radpath.pipeline.discovery.FOUND_NAME


def stored_slide_series(batch_dir: Path) -> list[str]:
    """SeriesInstanceUIDs of the slides the store task put into the PACS."""
    found = []
    for manifest_path in sorted(batch_dir.glob(f"*/{MANIFEST_NAME}")):
        facts = json.loads(manifest_path.read_text()).get("facts", {})
        for what, _study, series in (facts.get("store") or {}).get("series", []):
            if what == "slide" and series not in found:
                found.append(series)
    return found


def found_slide_series(found_dir: Path) -> list[str]:
    """The slide series ``radpath find-unlinked`` chose."""
    path = found_dir / FOUND_NAME
    return json.loads(path.read_text())["series"] if path.is_file() else []


def child_confs(parent: dict, series: list[str], defaults: dict | None = None) -> list[dict]:
    """One conf per series: the parent's whole conf (``defaults`` for the keys it lacks), its
    data_form naming that series."""
    confs = []
    for uid in series:
        conf = copy.deepcopy({**(defaults or {}), **parent})
        conf["data_form"] = {"identifiers": [uid]}
        confs.append(conf)
    return confs


class TriggerMapOperator(BaseOperator):
    """Triggers one ``radpath-map`` run per slide series, with the parent's conf.

    ``found_by``: the find-unlinked task whose list to take; without it, the slides this
    run's ``store`` task stored."""

    def __init__(self, dag, name="trigger-map", trigger_dag_id="radpath-map", batch_name="batch", found_by=None,
                 conf_defaults=None, **kwargs):
        super().__init__(dag=dag, task_id=name, **kwargs)
        self.trigger_dag_id, self.batch_name = trigger_dag_id, batch_name
        self.found_dir = found_by.operator_out_dir if found_by is not None else None
        self.conf_defaults = conf_defaults or {}

    def execute(self, context):
        run_dir = run_data_root() / context["run_id"]
        if self.found_dir:
            series = found_slide_series(run_dir / self.found_dir)
            nothing = f"find-unlinked listed no slide (looked in {run_dir / self.found_dir})"
        else:
            series = stored_slide_series(run_dir / self.batch_name)
            nothing = f"no slide of this run was stored (looked in {run_dir / self.batch_name})"
        if not series:
            raise AirflowSkipException(f"{nothing}: nothing to pair")
        parent = context["dag_run"].conf or {}
        confs = child_confs(parent, series, self.conf_defaults)
        project = (confs[0].get("project_form") or {}).get("name")
        for index, conf in enumerate(confs):
            run = trigger_dag(dag_id=self.trigger_dag_id, run_id=f"{self.trigger_dag_id}-{context['run_id']}-{index}",
                              conf=conf, replace_microseconds=False)
            self.log.info("triggered %s (slide series %d of %d, project %s)", run.run_id if run else "?",
                          index + 1, len(series), project or "none: an admin run")
        return len(series)
