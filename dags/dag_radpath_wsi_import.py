"""radpath-wsi-import: slides uploaded as vendor files (SVS, NDPI, Philips TIFF, …) with a
sidecar or ``radpath-slides.csv`` naming each patient, converted to DICOM whole-slide
images carrying that identity, stored in the PACS, and then handed to ``radpath-map``
(one run per stored slide series, with this run's conf).

On Kaapana the slides come the way Kaapana's own upload DAGs take theirs: the user uploads
them in Kaapana's UI and picks them in this DAG's form (the uploads volume's files), and
``get-uploads`` (Kaapana's LocalVolumeMountOperator) copies them into the run folder, where
the ``get-slides`` pod finds them. Standalone, ``slides_folder`` names the folder.
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
from radpath_operators.RadpathBaseOperator import IN_KAAPANA
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
    tags=["radpath"],
    doc_md=__doc__,
)

if IN_KAAPANA:
    from kaapana.operators.LocalVolumeMountOperator import LocalVolumeMountOperator

    get_uploads = LocalVolumeMountOperator(dag=dag, name="get-uploads", mount_path=KAAPANA_UPLOADS, action="get",
                                           whitelisted_file_endings=UPLOAD_ENDINGS, operator_out_dir="uploads")
    get_slides = GetSlidesOperator(dag=dag, input_operator=get_uploads)
    get_uploads >> get_slides
else:
    get_slides = GetSlidesOperator(dag=dag)
wsi_dicomize = WsiDicomizeOperator(dag=dag, input_operator=get_slides)
store = StoreOperator(dag=dag, input_operator=wsi_dicomize)
trigger_map = TriggerMapOperator(dag=dag)
get_slides >> wsi_dicomize >> store >> trigger_map
verdict(dag, store)
