"""The workflow-form fields radpath's DAGs offer (Kaapana renders them in the Workflow
Launcher; each arrives in the stages upper-cased, e.g. ``organ`` → ``ORGAN``)."""

from radpath_operators.RadpathBaseOperator import IN_KAAPANA

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
    "allow_unlinked": {
        "title": "Allow unlinked slides",
        "description": "Import slides without a patient link into a study of their own.",
        "type": "boolean",
        "default": False,
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

IMPORT_FIELDS = {
    "slides_folder": {
        "title": "Folder of uploaded slides",
        "description": "Slide files with a sidecar (<slide>.json) or a radpath-slides.csv naming each patient.",
        "type": "string",
        "default": "",
    },
}


def default_args(**fields: dict) -> dict:
    """The DAG's ``default_args`` as Kaapana's UI reads them, with a workflow form of ``fields``."""
    from datetime import datetime, timedelta

    return {
        "ui_visible": True,
        "ui_forms": ui_forms(**fields),
        "owner": "kaapana",
        "start_date": datetime(2026, 1, 1),
        "retries": 0,
        "retry_delay": timedelta(seconds=30),
    }


def ui_forms(**fields: dict) -> dict:
    """Kaapana's ``ui_forms`` with a workflow form of ``fields``."""
    return {
        "documentation_form": {"path": "/radpath/README.md"},
        "workflow_form": {"type": "object", "properties": fields},
    }
