"""radpath-map: slides and CT/MR of the selected patients, paired, segmented, stored, linked.

Launched from Kaapana's Workflow Launcher or its data explorer with selected series
(either side of a pair: slides or radiology), or from a plain Airflow with
``conf={"data_form": {"identifiers": [...]}, "workflow_form": {...}}``. One task per stage
(``../shared/DESIGN.md``); each element of the batch is one pair, and one that cannot go
on ends skipped or failed with its reason while the others continue. Parsing this file
imports Airflow and radpath's thin operators only.
"""

from airflow.models import DAG
from radpath_operators.chains import pair_segment_link, verdict
from radpath_operators.forms import DATASET_PICKER, MAP_FIELDS, SELECTION_FIELDS, default_args
from radpath_operators.RadpathGetInputOperator import RadpathGetInputOperator

args = default_args(DATASET_PICKER, **SELECTION_FIELDS, **MAP_FIELDS)

dag = DAG(
    dag_id="radpath-map",
    default_args=args,
    schedule=None,
    catchup=False,
    max_active_runs=5,
    max_active_tasks=10,
    tags=["radpath"],
    doc_md=__doc__,
)

verdict(dag, pair_segment_link(dag, RadpathGetInputOperator(dag=dag)), research_table=True)
