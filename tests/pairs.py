"""A patient's radiology and slide, made for the end-to-end tests (phantom CT, a converted
Aperio-style slide), stored into a PACS or any target with ``store(paths)``."""

from __future__ import annotations

import json
from pathlib import Path

from radpath.adapters.dicomweb import TAG_MODALITY, TAG_SERIES_UID, DicomWeb
from radpath.adapters.settings import Settings
from radpath.adapters.slides.convert import ConversionOptions, dicomize_slide
from radpath.domain.slides.linkage import SlideLink
from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series, write_svs


class Files:
    """A ``store`` target that only collects the paths (to seed a PACS the test cannot reach)."""

    def __init__(self):
        self.paths: list = []

    def store(self, paths):
        self.paths.extend(paths)


def put_patient(pacs: DicomWeb, tmp, patient_id: str, *, ct: bool = True, slide_site: str | None = None,
                slide: bool = True) -> dict[str, str]:
    """Store a phantom CT and/or a converted slide of one patient; returns their UIDs."""
    study = SyntheticStudy(patient=SyntheticPatient(patient_id=patient_id, name=f"Phantom^{patient_id}"),
                           accession_number=f"ACC-{patient_id}")
    uids = {"ct_study": study.study_instance_uid}
    if ct:
        geometry = SliceGeometry(128, 128, 60, (3.0, 3.0), 5.0, center=(0.0, 0.0, 10.0))
        series = write_series(tmp / f"{patient_id}-ct", modality="CT", geometry=geometry, study=study)
        pacs.store(series.paths)
        uids["ct_series"] = series.series_instance_uid
    if slide:
        svs = write_svs(tmp / f"{patient_id}-slide.svs", width=2048, height=1536, levels=2)
        # A pathology system's own study: same patient, no reference to the CT's study.
        link = SlideLink(patient_id=patient_id, source="test", patient_name=f"Phantom^{patient_id}",
                         anatomic_site=slide_site, specimen_description=slide_site or "Biopsie")
        converted = dicomize_slide(svs.path, tmp / f"{patient_id}-dicom", link, ConversionOptions(workers=2))
        pacs.store(converted.files)
        uids["slide_series"], uids["slide_study"] = converted.series_instance_uid, converted.study_instance_uid
    return uids


def modalities(pacs: DicomWeb, study: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in pacs.find_series(study_instance_uid=study):
        found.setdefault(row[TAG_MODALITY]["Value"][0], []).append(row[TAG_SERIES_UID]["Value"][0])
    return found


def link_into_pacs(workflow_dir: Path, folder: Path, dicomweb_url: str, viewer_base_url: str) -> dict[str, Path]:
    """The pipeline in this process on a user's ``folder`` (get-input to link, stand-in
    weights), storing into the PACS at ``dicomweb_url``; the run's elements by name."""
    from radpath.pipeline.getinput import fetch_selection
    from radpath.pipeline.runner import run_pipeline

    (workflow_dir / "conf").mkdir(parents=True)
    (workflow_dir / "conf" / "conf.json").write_text(json.dumps({"data_form": {"input_folder": str(folder)}}))
    settings = Settings.from_env({
        "WORKFLOW_DIR": str(workflow_dir), "TOTALSEG_STANDIN_WEIGHTS": "true", "STORE_TARGET": "dicomweb",
        "DICOMWEB_URL": dicomweb_url, "VIEWER_BASE_URL": viewer_base_url})
    fetch_selection(settings, "get-input")
    results = run_pipeline(settings, "get-input")
    assert all(r.exit_code == 0 for r in results), [(r.stage, r.elements) for r in results]
    return {element.name: element for element in (workflow_dir / "batch").iterdir()}
