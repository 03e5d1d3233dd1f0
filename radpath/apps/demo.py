"""``radpath demo``: a generated patient through the main job, no server needed.

The demo input comes from the project's own generators only (no third-party data ships
in the package): a phantom CT series of one fictitious patient and two Aperio-style
slides of the same patient, a kidney biopsy whose sidecar says "Niere links,
Stanzbiopsie" and a liver biopsy ("Leber, Stanzbiopsie"), written as a user's input
folder: two pairs, one patient view. Then the main job runs on it exactly as ``radpath run --input`` would
(``radpath-map`` under a local Airflow, or in-process with ``--no-airflow``), with
radpath's stand-in TotalSegmentator weights unless official ones are installed, results
in a file store beside the run, and a table of each element's status.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from radpath.domain.vocabulary import Modality, StoreTarget
from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series, write_svs

INPUT_DIR = "get-input"


@dataclass(frozen=True)
class DemoSlide:
    """A biopsy slide of the demo patient: its file and what its sidecar says."""

    file: str
    anatomic_site: str
    description: str
    seed: int  # a tissue pattern of its own


KIDNEY = DemoSlide("biopsy-kidney.svs", "Niere links, Stanzbiopsie", "Stanzbiopsie Niere links", 0)
LIVER = DemoSlide("biopsy-liver.svs", "Leber, Stanzbiopsie", "Stanzbiopsie Leber", 1)


def write_demo_input(folder: Path, modality: str = Modality.CT, patient: SyntheticPatient | None = None,
                     slides: tuple[DemoSlide, ...] = (KIDNEY, LIVER)) -> Path:
    """The demo patient's files as a user would bring them: CT (or MR) series, slides, sidecars."""
    shutil.rmtree(folder, ignore_errors=True)
    study = SyntheticStudy(patient=patient or SyntheticPatient(),
                           description=f"{modality} ABDOMEN (radpath demo phantom)")
    geometry = SliceGeometry(128, 128, 60, (3.0, 3.0), 5.0, center=(0.0, 0.0, 10.0))
    write_series(folder / modality.lower(), modality=modality, geometry=geometry, study=study,
                 description=f"Phantom {modality}")
    for slide in slides:
        write_demo_slide(folder, study, slide)
    return folder


def write_demo_slide(folder: Path, study: SyntheticStudy, slide: DemoSlide) -> Path:
    """One biopsy slide of the study's patient, with its sidecar, into ``folder``."""
    written = write_svs(folder / slide.file, width=2048, height=1536, levels=2, seed=slide.seed)
    sidecar = {
        "patient_id": study.patient.patient_id,
        "patient_name": study.patient.name,
        "study_instance_uid": study.study_instance_uid,
        "accession_number": study.accession_number,
        "anatomic_site": slide.anatomic_site,
        "specimen_description": slide.description,
    }
    (folder / f"{written.path.name}.json").write_text(json.dumps(sidecar, indent=2))
    return written.path


def make_demo_run(output: Path, slides: tuple[DemoSlide, ...] = (KIDNEY,)) -> Path:
    """A demo run folder (conf, get-input done: one batch element per slide) under ``output``."""
    from radpath.pipeline.localinput import stage_input_folder

    workflow_dir = output / "run"
    shutil.rmtree(workflow_dir, ignore_errors=True)
    folder = write_demo_input(output / "input", slides=slides)
    staged = stage_input_folder(folder, workflow_dir / "batch", INPUT_DIR)
    assert len(staged.elements) == len(slides) and not staged.rejected, staged
    (workflow_dir / "conf").mkdir()
    (workflow_dir / "conf" / "conf.json").write_text(json.dumps({"data_form": {"input_folder": str(folder)}}))
    return workflow_dir


def run_demo(output: Path, use_airflow: bool = True) -> int:
    from radpath.apps.mainjob import MainJob, run_main_job, selection_conf, wide_console

    console = wide_console()
    output = output.resolve()
    folder = write_demo_input(output / "input")
    console.print(f"demo input: phantom CT, kidney and liver biopsy slides of one patient in [bold]{folder}[/]",
                  soft_wrap=True)
    # No official TotalSegmentator weights on a fresh machine: the demo opts in to radpath's
    # stand-ins (official weights still win where installed; the log says which ran).
    # No server either: results go to a file store beside the run (STORE_TARGET=folder).
    env = {"TOTALSEG_STANDIN_WEIGHTS": "true", "STORE_TARGET": StoreTarget.FOLDER.value,
           "STORE_FOLDER": str(output / "store")}
    # fresh: the demo writes its input anew each time, so there is nothing to resume.
    result = run_main_job(MainJob(output, selection_conf(input_folder=folder), env, use_airflow, fresh=True), console)
    return result.exit_code
