"""``radpath demo``: a generated patient through the main job, no server needed.

The demo input comes from the project's own generators only (no third-party data ships
in the package): a phantom CT series of one fictitious patient and an Aperio-style slide
of the same patient whose sidecar says "Niere links, Stanzbiopsie", written as a user's
input folder. Then the main job runs on it exactly as ``radpath run --input`` would
(``radpath-map`` under a local Airflow, or in-process with ``--no-airflow``), with
radpath's stand-in TotalSegmentator weights unless official ones are installed, results
in a file store beside the run, and a table of each element's status.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from radpath.domain.vocabulary import Modality, StoreTarget
from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series, write_svs

INPUT_DIR = "get-input"


def write_demo_input(folder: Path, modality: str = Modality.CT, patient: SyntheticPatient | None = None) -> Path:
    """The demo patient's files as a user would bring them: CT (or MR) series, slide, sidecar."""
    shutil.rmtree(folder, ignore_errors=True)
    study = SyntheticStudy(patient=patient or SyntheticPatient(),
                           description=f"{modality} ABDOMEN (radpath demo phantom)")
    geometry = SliceGeometry(128, 128, 60, (3.0, 3.0), 5.0, center=(0.0, 0.0, 10.0))
    write_series(folder / modality.lower(), modality=modality, geometry=geometry, study=study,
                 description=f"Phantom {modality}")
    slide = write_svs(folder / "biopsy-kidney.svs", width=2048, height=1536, levels=2)
    sidecar = {
        "patient_id": study.patient.patient_id,
        "patient_name": study.patient.name,
        "study_instance_uid": study.study_instance_uid,
        "accession_number": study.accession_number,
        "anatomic_site": "Niere links, Stanzbiopsie",
        "specimen_description": "Stanzbiopsie Niere links",
    }
    (folder / f"{slide.path.name}.json").write_text(json.dumps(sidecar, indent=2))
    return folder


def make_demo_run(output: Path) -> Path:
    """The demo run folder (conf + one batch element, get-input done) under ``output``."""
    from radpath.pipeline.localinput import stage_input_folder

    workflow_dir = output / "run"
    shutil.rmtree(workflow_dir, ignore_errors=True)
    folder = write_demo_input(output / "input")
    staged = stage_input_folder(folder, workflow_dir / "batch", INPUT_DIR)
    assert len(staged.elements) == 1 and not staged.rejected, staged
    (workflow_dir / "conf").mkdir()
    (workflow_dir / "conf" / "conf.json").write_text(json.dumps({"data_form": {"input_folder": str(folder)}}))
    return workflow_dir


def run_demo(output: Path, use_airflow: bool = True) -> int:
    from radpath.apps.mainjob import MainJob, run_main_job, selection_conf, wide_console

    console = wide_console()
    output = output.resolve()
    folder = write_demo_input(output / "input")
    console.print(f"demo input: phantom CT and kidney biopsy slide of one patient in [bold]{folder}[/]",
                  soft_wrap=True)
    # No official TotalSegmentator weights on a fresh machine: the demo opts in to radpath's
    # stand-ins (official weights still win where installed; the log says which ran).
    # No server either: results go to a file store beside the run (STORE_TARGET=folder).
    env = {"TOTALSEG_STANDIN_WEIGHTS": "true", "STORE_TARGET": StoreTarget.FOLDER.value, "STORE_FOLDER": str(output / "store")}
    result = run_main_job(MainJob(output, selection_conf(input_folder=folder), env, use_airflow), console)
    return result.exit_code
