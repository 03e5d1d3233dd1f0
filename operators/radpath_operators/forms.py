"""The workflow-form fields radpath's DAGs offer (Kaapana renders them in the Workflow
Launcher; each arrives in the stages upper-cased, e.g. ``organ`` → ``ORGAN``)."""

import os

from radpath_operators.RadpathBaseOperator import IN_KAAPANA


def platform_url() -> str:
    """This platform's address for the viewer links: on Kaapana the scheduler's HOSTDOMAIN
    and HTTPS_PORT (scheduler_deployment.yaml; pods do not get them); standalone the
    address ``radpath view`` serves on."""
    host = os.environ.get("HOSTDOMAIN") if IN_KAAPANA else None
    if not host:
        return "http://localhost"
    port = os.environ.get("HTTPS_PORT", "443")
    return f"https://{host}" + ("" if port in ("", "443") else f":{port}")

#: Options of the pairing and segmentation run (radpath-map; passed on by the others).
MAP_FIELDS = {
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
    "viewer_base_url": {
        "title": "Viewer address",
        "description": "Where OHIF and SLIM are served, for the links of each result: this platform's address.",
        "type": "string",
        "default": platform_url(),
    },
    "allow_unlinked": {
        "title": "Allow unlinked slides",
        "description": "Import slides without a patient link into a study of their own.",
        "type": "boolean",
        "default": False,
    },
}

if IN_KAAPANA:
    # Only CTP on Kaapana: dicom-web-filter files a STOW-RS into the admin project, not the
    # run's (radpath's settings refuse dicomweb there, saying so).
    MAP_FIELDS["store_target"] = {**MAP_FIELDS["store_target"], "enum": ["dimse"],
                                  "description": "CTP, so results appear in the data explorer in this project."}

#: radpath-map on a selection: Kaapana's backend makes one run per selected series when
#: single_execution is true (workflows/crud.py), so hundreds of series become hundreds of
#: runs the platform spreads over its nodes, each stage pod handling one pair under its own
#: timeout, instead of one run whose every pod handles all of them. Fixed, as Kaapana's
#: total-segmentator-v2 fixes it.
SELECTION_FIELDS = {
    "single_execution": {
        "title": "Single execution",
        "description": "Each selected series is a run of its own.",
        "type": "boolean",
        "default": True,
        "readOnly": True,
    },
}

BATCH_FIELDS = {
    "batch_limit": {
        "title": "Slides per run",
        "description": "At most this many unlinked slides per scheduled run; the rest wait for the next.",
        "type": "integer",
        "default": 20,
        "minimum": 1,
    },
}

#: What a user may pick from Kaapana's uploads for radpath-wsi-import: the slide formats
#: radpath hands to wsidicomizer (radpath.adapters.slides.convert.SLIDE_SUFFIXES, checked by the
#: tests) and the patient links beside them (sidecar ``<slide>.json``, ``radpath-slides.csv``).
UPLOAD_ENDINGS = (".svs", ".ndpi", ".tif", ".tiff", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".czi", ".isyntax",
                  ".svslide", ".qptiff", ".dcm", ".json", ".csv")


def upload_form() -> dict:
    """The data_form of radpath-wsi-import on Kaapana: Kaapana's own upload form
    (json_schema_templates.schema_upload_form: the files of the uploads volume, by ending).
    It asks Kaapana's backend for the list while the scheduler parses the file; when the
    backend does not answer, the form takes the file names as text, and the DAG still loads."""
    from kaapana.blueprints.json_schema_templates import schema_upload_form

    try:
        return schema_upload_form(whitelisted_file_formats=UPLOAD_ENDINGS)["data_form"]
    except Exception:  # noqa: BLE001 - any failure of that request: a form without the list
        return {"type": "object", "properties": {"action_files": {
            "title": "Objects from uploads directory", "description": "Names of files in the uploads directory",
            "type": "array", "items": {"type": "string"}}}}


IMPORT_FIELDS = {
    "slides_folder": {
        "title": "Folder of uploaded slides",
        "description": "Slide files with a sidecar (<slide>.json) or a radpath-slides.csv naming each patient.",
        "type": "string",
        "default": "",
    },
}


#: The data_form of a DAG that takes no dataset (radpath-batch finds its own input): Kaapana
#: drops an empty data_form and then adds no dataset picker (kaapana_utils.parse_ui_dict).
NO_DATASET: dict = {}
#: The data_form of a DAG run on a selection (radpath-map): none of its own, so Kaapana
#: adds its dataset picker (parse_ui_dict, json_schema_templates.schema_dataset_form), and
#: the data explorer passes the selected series as data_form.identifiers.
DATASET_PICKER = None


def default_args(data_form: dict | None, **fields: dict) -> dict:
    """The DAG's ``default_args`` as Kaapana's UI reads them: ``data_form`` (one of the
    above, or an upload form) and a workflow form of ``fields``."""
    from datetime import datetime, timedelta

    return {
        "ui_visible": True,
        "ui_forms": ui_forms(data_form, **fields),
        "owner": "kaapana",
        "start_date": datetime(2026, 1, 1),
        "retries": 0,
        "retry_delay": timedelta(seconds=30),
    }


def ui_forms(data_form: dict | None, **fields: dict) -> dict:
    """Kaapana's ``ui_forms``. No documentation_form: its path would point into Kaapana's
    own documentation site, which has no page on radpath."""
    forms: dict = {"workflow_form": {"type": "object", "properties": fields}}
    if data_form is not None:
        forms["data_form"] = data_form
    return forms
