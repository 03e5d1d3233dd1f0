"""radpath-wsi-import: slides uploaded as vendor files (SVS, NDPI, Philips TIFF, …) with a
sidecar or ``radpath-slides.csv`` naming each patient, converted to DICOM whole-slide
images carrying that identity, stored in the PACS, and then handed to ``radpath-map``
(one run per stored slide series, with this run's conf).

On Kaapana the slides come the way Kaapana's own slide import (the wsiconv extension's
``import-wsi``) takes its uploads: the DAG is of kind ``import`` (its tag), so the Data
Upload page offers it and its Python tasks run on the scheduler's LocalExecutor, which
mounts the uploads; ``get-uploads`` (Kaapana's LocalVolumeMountOperator) copies the picked
files into the services namespace's run folder, and the pods run in the services namespace,
whose run folders those are. The slides go to the PACS through CTP, filed under the
project of the run's conf. ``trigger-map`` then reads what was stored, and only after it
the run folder is cleaned. Standalone, ``slides_folder`` names the folder.
"""

from airflow.models import DAG
from radpath_operators.chains import verdict
from radpath_operators.forms import (
    IMPORT_FIELDS,
    MAP_FIELDS,
    NO_DATASET,
    UPLOAD_ENDINGS,
    default_args,
    upload_form,
)
from radpath_operators.GetSlidesOperator import GetSlidesOperator
from radpath_operators.RadpathBaseOperator import IN_KAAPANA, services_namespace
from radpath_operators.StoreOperator import StoreOperator
from radpath_operators.TriggerMapOperator import TriggerMapOperator
from radpath_operators.WsiDicomizeOperator import WsiDicomizeOperator

#: Where Kaapana's scheduler mounts the uploads volume (its dag_import_dicoms_from_data_upload).
KAAPANA_UPLOADS = "/kaapana/app/uploads"

if IN_KAAPANA:
    args = default_args(upload_form(), **MAP_FIELDS)
else:
    args = default_args(NO_DATASET, **IMPORT_FIELDS, **MAP_FIELDS)

dag = DAG(
    dag_id="radpath-wsi-import",
    default_args=args,
    schedule=None,
    catchup=False,
    max_active_runs=3,
    # "import": offered on Kaapana's Data Upload page; its Python tasks on the LocalExecutor
    tags=["radpath", "import"],
    doc_md=__doc__,
)

#: On Kaapana the pods run beside the scheduler's run folder (see the module's doc).
pods = {"namespace": services_namespace()} if IN_KAAPANA else {}
if IN_KAAPANA:
    from kaapana.operators.LocalVolumeMountOperator import LocalVolumeMountOperator

    get_uploads = LocalVolumeMountOperator(dag=dag, name="get-uploads", mount_path=KAAPANA_UPLOADS, action="get",
                                           whitelisted_file_endings=UPLOAD_ENDINGS, operator_out_dir="uploads")
    get_slides = GetSlidesOperator(dag=dag, input_operator=get_uploads, **pods)
    get_uploads >> get_slides
else:
    get_slides = GetSlidesOperator(dag=dag)
wsi_dicomize = WsiDicomizeOperator(dag=dag, input_operator=get_slides, **pods)
store = StoreOperator(dag=dag, input_operator=wsi_dicomize, **pods)
trigger_map = TriggerMapOperator(dag=dag)
get_slides >> wsi_dicomize >> store >> trigger_map
verdict(dag, store, clean_after=[trigger_map], **pods)
