"""The first task of a scheduled radpath-batch run on Kaapana: hands the run over to a run
of the same DAG whose id Kubernetes accepts, and ends.

Airflow names a scheduled run ``scheduled__<logical date>`` (``scheduled__2026-12-07T00:00:00+00:00``).
Every pod of a run needs the ConfigMap ``<run_id>-config`` (KaapanaBaseOperator), and
Kubernetes refuses that name (RFC 1123: lower case, digits, ``-`` and ``.``), so such a run
cannot start a single pod. This task runs as a KubernetesExecutor worker pod, whose name and
labels Airflow makes safe itself; it triggers the same DAG with Kaapana's own run id
(``kaapana_utils.generate_run_id``) and the batch's project as conf, and skips the rest of
the scheduled run. A run started any other way passes straight on.
"""

from __future__ import annotations

from airflow.exceptions import AirflowSkipException
from radpath_operators.RadpathBaseOperator import KaapanaPythonBaseOperator, generate_run_id


def hand_over_scheduled_run(conf: dict):
    def hand_over(**context) -> str | None:
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.utils.types import DagRunType

        dag_run = context["dag_run"]
        if dag_run.run_type != DagRunType.SCHEDULED:
            return None
        run = trigger_dag(dag_id=dag_run.dag_id, run_id=generate_run_id(dag_run.dag_id), conf=conf,
                          replace_microseconds=False)
        raise AirflowSkipException(f"scheduled run handed over to {run.run_id}: Kubernetes refuses the name "
                                   f"{dag_run.run_id}-config that each pod of this run needs")
    return hand_over


class HandOverOperator(KaapanaPythonBaseOperator):
    """Hands a scheduled run over to a run with a Kubernetes-valid id (see the module's doc)."""

    def __init__(self, dag, conf: dict, name="hand-over", **kwargs):
        super().__init__(dag=dag, name=name, python_callable=hand_over_scheduled_run(conf), **kwargs)
