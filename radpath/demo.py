"""``radpath demo``: a generated patient through the main job, no server needed.

The demo input comes from the project's own generators only (no third-party data ships
in the package): a phantom CT series of one fictitious patient and an Aperio-style slide
of the same patient whose sidecar says "Niere links, Stanzbiopsie", laid out as Kaapana's
GetInputOperator leaves a selected series (``batch/<SeriesInstanceUID>/get-input/``).
Then every stage runs in pipeline order, results go to a file store beside the run, and a
table shows each element's status.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rich.console import Console

from radpath import stages
from radpath.pipeline import element_table, run_pipeline, summarize
from radpath.settings import Settings
from radpath.synthetic import SliceGeometry, SyntheticStudy, write_series, write_svs

INPUT_DIR = "get-input"


def make_demo_run(output: Path) -> Path:
    """Write the demo run folder (conf + one batch element) under ``output``; returns it."""
    workflow_dir = output / "run"
    shutil.rmtree(workflow_dir, ignore_errors=True)
    study = SyntheticStudy(description="CT ABDOMEN (radpath demo phantom)")
    geometry = SliceGeometry(128, 128, 60, (3.0, 3.0), 5.0, center=(0.0, 0.0, 10.0))
    tmp = workflow_dir / "tmp-ct"
    series = write_series(tmp, modality="CT", geometry=geometry, study=study, description="Phantom CT")
    element = workflow_dir / "batch" / series.series_instance_uid / INPUT_DIR
    element.parent.mkdir(parents=True)
    tmp.rename(element)
    slide = write_svs(element / "biopsy-kidney.svs", width=2048, height=1536, levels=2)
    sidecar = {
        "patient_id": study.patient.patient_id,
        "patient_name": study.patient.name,
        "study_instance_uid": study.study_instance_uid,
        "accession_number": study.accession_number,
        "anatomic_site": "Niere links, Stanzbiopsie",
        "specimen_description": "Stanzbiopsie Niere links",
    }
    (element / f"{slide.path.name}.json").write_text(json.dumps(sidecar, indent=2))
    (workflow_dir / "conf").mkdir()
    (workflow_dir / "conf" / "conf.json").write_text(
        json.dumps({"data_form": {"identifiers": [series.series_instance_uid]}, "workflow_form": {}}, indent=2)
    )
    return workflow_dir


def run_demo(output: Path) -> int:
    console = Console(stderr=False)
    output = output.resolve()
    workflow_dir = make_demo_run(output)
    console.print(f"demo input: phantom CT and kidney biopsy slide of one patient in [bold]{workflow_dir / 'batch'}[/]")
    # No official TotalSegmentator weights on a fresh machine: the demo opts in to radpath's
    # stand-ins (official weights still win where installed; the log says which ran).
    # No server either: results go to a file store beside the run (STORE_TARGET=folder).
    settings = Settings.from_env({
        "WORKFLOW_DIR": str(workflow_dir), "BATCH_NAME": "batch", "TOTALSEG_STANDIN_WEIGHTS": "true",
        "STORE_TARGET": "folder", "STORE_FOLDER": str(output / "store"),
    })
    results = run_pipeline(settings, INPUT_DIR)
    missing = [name for name in stages.PIPELINE if name not in stages.REGISTRY]
    console.print(element_table(summarize(settings), "radpath demo: elements"))
    for link in sorted((workflow_dir / "batch").glob("*/link/link.json")):
        console.print(f"result: [bold]{link.parent}[/]: split view index.html, QC picture qc.png, link.json; "
                      f"DICOM (SEG, KOS, slide, CT) in {output / 'store'}")
    if missing:
        console.print(f"stages not built yet: {', '.join(missing)}")
    worst = max((r.exit_code for r in results if r.exit_code != 126), default=0)
    return worst
