"""radpath-wsi-import: slides uploaded as vendor files (SVS, NDPI, MRXS, …) with a
sidecar or ``radpath-slides.csv`` naming each patient, converted to DICOM whole-slide
images carrying that identity, stored in the PACS, and then handed to ``radpath-map``
(triggered on the stored slide series with this run's workflow form).

``slides_folder`` names the upload folder; on Kaapana a folder the processing containers
mount (e.g. below ``/kaapana/mounted/data``).
"""

from airflow.models import DAG
from radpath_operators.chains import verdict
from radpath_operators.forms import IMPORT_FIELDS, MAP_FIELDS, NO_DATASET, default_args
from radpath_operators.GetSlidesOperator import GetSlidesOperator
from radpath_operators.StoreOperator import StoreOperator
from radpath_operators.TriggerMapOperator import TriggerMapOperator
from radpath_operators.WsiDicomizeOperator import WsiDicomizeOperator

args = default_args(NO_DATASET, **IMPORT_FIELDS, **MAP_FIELDS)

dag = DAG(
    dag_id="radpath-wsi-import",
    default_args=args,
    schedule=None,
    catchup=False,
    max_active_runs=3,
    tags=["radpath"],
    doc_md=__doc__,
)

get_slides = GetSlidesOperator(dag=dag)
wsi_dicomize = WsiDicomizeOperator(dag=dag, input_operator=get_slides)
store = StoreOperator(dag=dag, input_operator=wsi_dicomize)
trigger_map = TriggerMapOperator(dag=dag)
get_slides >> wsi_dicomize >> store >> trigger_map
verdict(dag, store)
