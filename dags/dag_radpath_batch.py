"""radpath-batch: on a schedule, the slides in the PACS that have radiology and no radpath
link yet, paired, segmented, stored and linked.

The schedule is the Airflow Variable ``radpath_batch_schedule`` (a cron expression or
preset; default ``@daily``), read when the scheduler parses this file; set it to ``None``
to pause scheduling without disabling the DAG. Each run takes at most ``batch_limit``
slides (workflow form, default 20), oldest first, so a backlog of hundreds drains over
several runs; one run at a time, so two runs never pick the same slide.
"""

from airflow.models import DAG, Variable
from radpath_operators.chains import pair_segment_link, verdict
from radpath_operators.FindUnlinkedOperator import FindUnlinkedOperator
from radpath_operators.forms import BATCH_FIELDS, MAP_FIELDS, NO_DATASET, default_args

SCHEDULE_VARIABLE = "radpath_batch_schedule"
schedule = Variable.get(SCHEDULE_VARIABLE, default_var="@daily")

args = default_args(NO_DATASET, **BATCH_FIELDS, **MAP_FIELDS)

dag = DAG(
    dag_id="radpath-batch",
    default_args=args,
    schedule=None if schedule in ("", "None", "none") else schedule,
    catchup=False,
    max_active_runs=1,
    max_active_tasks=10,
    tags=["radpath"],
    doc_md=__doc__,
)

verdict(dag, pair_segment_link(dag, FindUnlinkedOperator(dag=dag)))
