"""radpath-map: slides and CT/MR of the selected patients, paired, segmented, stored, linked.

Launched from Kaapana's Workflow Launcher or its data explorer with selected series
(either side of a pair: slides or radiology), or from a plain Airflow with
``conf={"data_form": {"identifiers": [...]}, "workflow_form": {...}}``. One task per stage
(``../shared/DESIGN.md``); each element of the batch is one pair, and one that cannot go
on ends skipped or failed with its reason while the others continue. Parsing this file
imports Airflow and radpath's thin operators only.
"""

from datetime import datetime, timedelta

from airflow.models import DAG
from radpath_operators.BodypartOperator import BodypartOperator
from radpath_operators.LinkOperator import LinkOperator
from radpath_operators.MergeOperator import MergeOperator
from radpath_operators.NiftiOperator import NiftiOperator
from radpath_operators.PairOperator import PairOperator
from radpath_operators.RadpathBaseOperator import IN_KAAPANA
from radpath_operators.RadpathGetInputOperator import RadpathGetInputOperator
from radpath_operators.ReportOperator import ReportOperator
from radpath_operators.SegEncodeOperator import SegEncodeOperator
from radpath_operators.SegmentOperator import SegmentOperator
from radpath_operators.StoreOperator import StoreOperator
from radpath_operators.WsiDicomizeOperator import WsiDicomizeOperator

ui_forms = {
    "documentation_form": {"path": "/radpath/README.md"},
    "workflow_form": {
        "type": "object",
        "properties": {
            "organ": {
                "title": "Organ (override)",
                "description": "A key of anatomy/master.json, e.g. kidney; empty: read it from the slide.",
                "type": "string",
                "default": "",
            },
            "laterality": {
                "title": "Side (override)",
                "description": "Empty: read it from the slide.",
                "type": "string",
                "enum": ["", "left", "right", "bilateral"],
                "default": "",
            },
            "totalseg_speed": {
                "title": "TotalSegmentator resolution",
                "description": "fast (3 mm) or full; CPU-only nodes run fast and say so.",
                "type": "string",
                "enum": ["fast", "full"],
                "default": "fast",
            },
            "merge_bilateral": {
                "title": "Merge left and right",
                "description": "When the slide names no side, one mask for both (e.g. both kidneys).",
                "type": "boolean",
                "default": True,
            },
            "store_target": {
                "title": "Store results via",
                "description": "dimse: CTP, so results appear in the data explorer; dicomweb: STOW-RS.",
                "type": "string",
                "enum": ["dimse", "dicomweb"],
                "default": "dimse" if IN_KAAPANA else "dicomweb",
            },
            "allow_unlinked": {
                "title": "Allow unlinked slides",
                "description": "Import slides without a patient link into a study of their own.",
                "type": "boolean",
                "default": False,
            },
        },
    },
}

args = {
    "ui_visible": True,
    "ui_forms": ui_forms,
    "owner": "kaapana",
    "start_date": datetime(2026, 1, 1),
    "retries": 0,
    "retry_delay": timedelta(seconds=30),
}

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

get_input = RadpathGetInputOperator(dag=dag)
wsi_dicomize = WsiDicomizeOperator(dag=dag, input_operator=get_input)
pair = PairOperator(dag=dag, input_operator=wsi_dicomize)
bodypart = BodypartOperator(dag=dag, input_operator=pair)
nifti = NiftiOperator(dag=dag, input_operator=bodypart)
segment = SegmentOperator(dag=dag, input_operator=nifti)
merge = MergeOperator(dag=dag, input_operator=segment)
seg_encode = SegEncodeOperator(dag=dag, input_operator=merge)
store = StoreOperator(dag=dag, input_operator=seg_encode)
link = LinkOperator(dag=dag, input_operator=store)
report = ReportOperator(dag=dag, input_operator=link)

get_input >> wsi_dicomize >> pair >> bodypart >> nifti >> segment >> merge >> seg_encode >> store >> link >> report
