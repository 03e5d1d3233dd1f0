"""The end of radpath-wsi-import and radpath-batch: starts ``radpath-map`` on slide series,
as if a user had selected them in the data explorer.

The series come from the run folder: the slides the ``store`` task recorded in the
elements' manifests (radpath-wsi-import), or the list ``find-unlinked`` wrote
(radpath-batch). One ``radpath-map`` run per series, as Kaapana's backend makes them for a
selection with ``single_execution``. Each child gets the parent's whole conf, as
LocalDagTriggerOperator passes it on (``project_form`` too: without it the child would run
as an admin run in the admin project), ``conf_defaults`` for what it lacks (radpath-batch's
project: a scheduled run has no conf), and ``data_form.identifiers`` naming its series.

Where it runs decides what it sees. On Kaapana it is a KaapanaPythonBaseOperator, so it
runs where the run's files are: in a DAG tagged ``import`` (radpath-wsi-import) on the
scheduler's LocalExecutor, beside the services namespace's run folders its pods wrote; in
any other DAG as a KubernetesExecutor worker pod in the run's project namespace, which
mounts that project's run folders (Kaapana's pod template and pod_mutation_hook). A plain
``BaseOperator`` would run inside the scheduler and read the services namespace's folder,
where a project's pods never write. On Kaapana a child starts only once Kaapana knows its
slide: Kaapana's GetInputOperator, the child's first task, finds a series only in the
project's OpenSearch index, which the incoming pipeline (service-process-incoming-dcm)
fills after CTP received the series; trigger-map waits for it, bounded
(``index_timeout``), and names the series it gave up on. Child run ids are Kaapana's own
(``kaapana_utils.generate_run_id``: ``radpath-map-<yymmddHHMMSSffffff>``), names Kubernetes
accepts in the ConfigMap ``<run_id>-config`` every pod of the child needs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from airflow.exceptions import AirflowSkipException

from radpath_operators.RadpathBaseOperator import IN_KAAPANA, run_data_root

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


#: How long trigger-map waits for Kaapana's incoming pipeline to index the slides, and how often it asks.
INDEX_TIMEOUT_S, INDEX_POLL_S = 900, 5


def indexed_series(series: list[str], conf: dict, timeout_s: float, log) -> list[str]:
    """Those of ``series`` that are in the project's OpenSearch index within ``timeout_s``
    (kaapanapy's HelperOpensearch, as GetInputOperator asks it), in their order."""
    import time

    from kaapanapy.helper.HelperOpensearch import HelperOpensearch

    index = (conf.get("project_form") or {}).get("opensearch_index")
    if not index:
        log.warning("no project in the run's conf: not waiting for Kaapana's metadata of the slides")
        return series
    helper, found, deadline = HelperOpensearch(), set(), time.monotonic() + timeout_s
    while True:
        pending = [uid for uid in series if uid not in found]
        hits = helper.get_dcm_uid_objects(index=index, series_instance_uids=pending) if pending else []
        found |= {hit["dcm-uid"]["series-uid"] for hit in hits}
        if set(series) <= found or time.monotonic() > deadline:
            return [uid for uid in series if uid in found]
        log.info("waiting for Kaapana's incoming pipeline to index %d of %d slide series in %s",
                 len(set(series) - found), len(series), index)
        time.sleep(INDEX_POLL_S)


def map_trigger(trigger_dag_id: str, batch_name: str, found_by, conf_defaults: dict | None):
    """The task's callable: trigger one ``trigger_dag_id`` run per slide series of the run
    (see the module's doc). ``found_by``: the find-unlinked task whose list to take; without
    it, the slides this run's ``store`` task stored."""
    found_dir = found_by.operator_out_dir if found_by is not None else None

    def trigger(**context) -> int:
        return trigger_map_runs(context, trigger_dag_id, batch_name, found_dir, conf_defaults or {})
    return trigger


def trigger_map_runs(context, trigger_dag_id: str, batch_name: str, found_dir: str | None, conf_defaults: dict) -> int:
    from airflow.api.common.trigger_dag import trigger_dag

    run_dir = run_data_root() / context["run_id"]
    if found_dir:
        series = found_slide_series(run_dir / found_dir)
        nothing = f"find-unlinked listed no slide (looked in {run_dir / found_dir})"
    else:
        series = stored_slide_series(run_dir / batch_name)
        nothing = f"no slide of this run was stored (looked in {run_dir / batch_name})"
    if not series:
        raise AirflowSkipException(f"{nothing}: nothing to pair")
    parent = context["dag_run"].conf or {}
    unindexed = []
    if IN_KAAPANA:
        ready = indexed_series(series, {**conf_defaults, **parent}, INDEX_TIMEOUT_S, context["ti"].log)
        series, unindexed = ready, [uid for uid in series if uid not in ready]
    confs = child_confs(parent, series, conf_defaults)
    project = (confs[0].get("project_form") or {}).get("name")
    for index, conf in enumerate(confs):
        run = trigger_dag(dag_id=trigger_dag_id, run_id=child_run_id(trigger_dag_id, context["run_id"], index),
                          conf=conf, replace_microseconds=False)
        context["ti"].log.info("triggered %s (slide series %d of %d, project %s)", run.run_id if run else "?",
                               index + 1, len(series), project or "none: an admin run")
    if unindexed:
        raise RuntimeError(
            f"{len(unindexed)} stored slide series were not in Kaapana's metadata after {INDEX_TIMEOUT_S} s, so "
            f"radpath-map was not started on them: {', '.join(unindexed)}. Kaapana indexes a series once its "
            "service-process-incoming-dcm run for it has finished; look there, then start radpath-map on them "
            "from the data explorer")
    return len(series)


if IN_KAAPANA:
    from radpath_operators.RadpathBaseOperator import KaapanaPythonBaseOperator, generate_run_id

    def child_run_id(dag_id: str, parent_run_id: str, index: int) -> str:
        return generate_run_id(dag_id)

    class TriggerMapOperator(KaapanaPythonBaseOperator):
        """Triggers one ``radpath-map`` run per slide series, with the parent's conf."""

        def __init__(self, dag, name="trigger-map", trigger_dag_id="radpath-map", batch_name="batch", found_by=None,
                     conf_defaults=None, **kwargs):
            super().__init__(dag=dag, name=name, batch_name=batch_name, **kwargs,
                             python_callable=map_trigger(trigger_dag_id, batch_name, found_by, conf_defaults))

else:
    from airflow.operators.python import PythonOperator

    def child_run_id(dag_id: str, parent_run_id: str, index: int) -> str:
        return f"{dag_id}-{parent_run_id}-{index}"

    class TriggerMapOperator(PythonOperator):
        """Triggers one ``radpath-map`` run per slide series, with the parent's conf (plain
        Airflow: in the scheduler's own worker, which sees the run folders)."""

        def __init__(self, dag, name="trigger-map", trigger_dag_id="radpath-map", batch_name="batch", found_by=None,
                     conf_defaults=None, **kwargs):
            super().__init__(dag=dag, task_id=name, **kwargs,
                             python_callable=map_trigger(trigger_dag_id, batch_name, found_by, conf_defaults))
