"""radpath-batch: on a schedule, the slides in the PACS that have radiology and no radpath
link yet, each handed to ``radpath-map`` (one run per slide, as a data-explorer selection
with single execution).

The schedule is the Airflow Variable ``radpath_batch_schedule`` (a cron expression or
preset; default ``@daily``), read when the scheduler parses this file; set it to ``None``
to pause scheduling without disabling the DAG. Each run takes at most ``batch_limit``
slides (workflow form, default 20), oldest first, so a backlog of hundreds drains over
several runs; one run at a time, so two runs never pick the same slide.

A run starts at each tick of the schedule, its logical date that tick (Airflow's
CronTriggerTimetable, in UTC), and once when the DAG is unpaused (the latest tick).
Kaapana's operators give their tasks the start date "today, 00:00" when the file is
parsed, and Airflow makes no task instance for a task that starts after the run's
logical date: under the classic schedule, whose logical date is the start of the
interval (yesterday, for ``@daily``), a scheduled run would get no find-unlinked task
and fail at once ("Task deadlock"), as the Kaapana box in the tests showed.

On Kaapana a scheduled run belongs to no project (it has no conf), so its project is the
Airflow Variable ``radpath_batch_project``: the project's form as Kaapana's UI sends it,
as JSON, e.g. ``{"id": "<uuid>", "name": "radpath", "kubernetes_namespace":
"project-radpath", "s3_bucket": "project-radpath", "opensearch_index": "project_radpath"}``.
find-unlinked runs in that project's namespace and each radpath-map run carries it, so the
results are stored, filed and published in that project. Without it, on Kaapana, the DAG
is not scheduled (its runs would be admin runs) and says so here.

On Kaapana a scheduled run's id (``scheduled__<date>``) is no name Kubernetes accepts, and
each pod needs a ConfigMap named after it: the scheduled run's one task, ``hand-over``,
starts the same DAG under Kaapana's own run id with the project as conf, and that run does
the work (radpath_operators/HandOverOperator.py).
"""

import logging

from airflow.models import DAG, Variable
from airflow.timetables.trigger import CronTriggerTimetable
from radpath_operators.chains import clean_up
from radpath_operators.FindUnlinkedOperator import FindUnlinkedOperator
from radpath_operators.forms import BATCH_FIELDS, MAP_FIELDS, NO_DATASET, default_args
from radpath_operators.RadpathBaseOperator import IN_KAAPANA
from radpath_operators.TriggerMapOperator import TriggerMapOperator

SCHEDULE_VARIABLE = "radpath_batch_schedule"
PROJECT_VARIABLE = "radpath_batch_project"
schedule = Variable.get(SCHEDULE_VARIABLE, default_var="@daily")
project = Variable.get(PROJECT_VARIABLE, default_var=None, deserialize_json=True)
if schedule in ("", "None", "none"):
    schedule = None
if IN_KAAPANA and project is None and schedule is not None:
    logging.getLogger(__name__).warning(
        "radpath-batch is not scheduled: set the Airflow Variable %s to the project's form (JSON)", PROJECT_VARIABLE)
    schedule = None

dag = DAG(
    dag_id="radpath-batch",
    default_args=default_args(NO_DATASET, **BATCH_FIELDS, **MAP_FIELDS),
    # Kaapana's operators take the pods' namespace from params.project_form (a run's conf
    # overrides it, as for a run started from the UI in a project).
    params={"project_form": project} if project else {},
    schedule=CronTriggerTimetable(schedule, timezone="UTC") if schedule else None,
    catchup=False,
    max_active_runs=1,
    tags=["radpath"],
    doc_md=__doc__,
)

find_unlinked = FindUnlinkedOperator(dag=dag)
if IN_KAAPANA:
    from radpath_operators.HandOverOperator import HandOverOperator

    HandOverOperator(dag=dag, conf={"project_form": project} if project else {}) >> find_unlinked
trigger_map = TriggerMapOperator(dag=dag, found_by=find_unlinked,
                                 conf_defaults={"project_form": project} if project else None)
find_unlinked >> trigger_map
clean_up(dag, trigger_map)
