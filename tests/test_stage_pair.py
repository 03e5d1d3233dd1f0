"""The pair stage against a real Orthanc: the right study for a slide, all slides for a study."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from conftest import dicomweb_settings

from radpath.adapters.dicomweb import DicomWeb
from radpath.adapters.settings import Settings
from radpath.adapters.slides.convert import ConversionOptions, dicomize_slide
from radpath.domain.slides.linkage import SlideLink
from radpath.pipeline.batch import run_stage
from radpath.pipeline.manifest import Manifest, Status
from radpath.pipeline.stages.pair import run_pair
from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series, write_svs

pytestmark = [pytest.mark.pacs, pytest.mark.filterwarnings("ignore:get_frame_offsets is deprecated")]

GEOMETRY = SliceGeometry(16, 16, 10, (10.0, 10.0), 10.0)


@pytest.fixture(scope="module")
def slide_template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("slide")
    svs = write_svs(folder / "tiny.svs", width=512, height=384, levels=1, label=False, macro=False)
    link = SlideLink(patient_id="TEMPLATE", source="test")
    return dicomize_slide(svs.path, folder / "dicom", link, ConversionOptions(tile_size=256)).folder


def make_slide(template: Path, folder: Path, patient_id: str, *, study_uid: str | None = None,
               accession: str = "", date: str = "20240401") -> list[Path]:
    """A copy of the template slide, re-identified: patient, study, accession, date."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or pydicom.uid.generate_uid()
    series_uid = pydicom.uid.generate_uid()
    paths = []
    for source in sorted(template.glob("*.dcm")):
        ds = pydicom.dcmread(source)
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient_id, study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.AccessionNumber, ds.StudyDate, ds.ContentDate = accession, date, date
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def pacs_with_studies(orthanc, tmp_path_factory):
    """Patient RP-PAIR-A with three CT studies; RP-PAIR-B with one, dated in between."""
    pacs = DicomWeb(dicomweb_settings(orthanc.dicomweb_url))
    root = tmp_path_factory.mktemp("studies")
    studies = {}
    for name, patient, date, accession in (
        ("jan", "RP-PAIR-A", "20240110", "ACC-1"),
        ("mar", "RP-PAIR-A", "20240301", "ACC-2"),
        ("jun", "RP-PAIR-A", "20240601", "ACC-3"),
        ("other", "RP-PAIR-B", "20240320", "ACC-9"),
    ):
        study = SyntheticStudy(patient=SyntheticPatient(patient_id=patient), study_date=date, accession_number=accession)
        series = write_series(root / name, study=study, geometry=GEOMETRY)
        pacs.store(series.paths)
        studies[name] = series
    return studies


def element_with(root: Path, name: str, files: list[Path]) -> None:
    folder = root / "batch" / name / "get-input"
    folder.mkdir(parents=True)
    for path in files:
        shutil.copy(path, folder / path.name)


def settings_for(root: Path, url: str) -> Settings:
    return Settings.from_env({"WORKFLOW_DIR": str(root), "OPERATOR_IN_DIR": "get-input", "OPERATOR_OUT_DIR": "pair",
                              "DICOMWEB_URL": url, "DICOMWEB_RETRIES": "1"})


def test_slide_finds_the_right_study(orthanc, pacs_with_studies, slide_template, tmp_path):
    studies = pacs_with_studies
    root = tmp_path / "run"
    cases = {
        "by-date": (make_slide(slide_template, tmp_path / "s1", "RP-PAIR-A", date="20240401"), "mar",
                    "the closest study dated on or before the slide"),
        "by-accession": (make_slide(slide_template, tmp_path / "s2", "RP-PAIR-A", accession="ACC-3"), "jun",
                         "same accession number as the slide"),
        "by-link": (make_slide(slide_template, tmp_path / "s3", "RP-PAIR-A",
                               study_uid=studies["jan"].study.study_instance_uid), "jan",
                    "the study the slide's link named"),
        "before-all": (make_slide(slide_template, tmp_path / "s4", "RP-PAIR-A", date="20230101"), "jun",
                       "the most recent study of the patient"),
    }
    for name, (files, _, _) in cases.items():
        element_with(root, name, files)
    result = run_stage("pair", run_pair, settings_for(root, orthanc.dicomweb_url))
    assert result.exit_code == 0, [r.detail for r in result.elements]
    for name, (_, expected, why) in cases.items():
        facts = Manifest.load(root / "batch" / name).facts["pair"]
        assert facts["radiology_study_instance_uid"] == studies[expected].study.study_instance_uid, name
        assert facts["study_reason"] == why
        assert facts["studies_considered"] == 3  # the other patient's study is never a candidate
        fetched = list((root / "batch" / name / facts["radiology_dir"]).glob("*.dcm"))
        assert sorted(pydicom.dcmread(p).SOPInstanceUID for p in fetched) == sorted(studies[expected].sop_instance_uids)


def test_ct_finds_the_patients_two_slides_as_two_elements(orthanc, slide_template, tmp_path):
    pacs = DicomWeb(dicomweb_settings(orthanc.dicomweb_url))
    study = SyntheticStudy(patient=SyntheticPatient(patient_id="RP-PAIR-C"))
    ct = write_series(tmp_path / "ct", study=study, geometry=GEOMETRY)
    slide_uids = set()
    for index in range(2):
        files = make_slide(slide_template, tmp_path / f"slide{index}", "RP-PAIR-C", study_uid=study.study_instance_uid)
        pacs.store(files)
        slide_uids.add(pydicom.dcmread(files[0]).SeriesInstanceUID)
    root = tmp_path / "run"
    element_with(root, "ct", ct.paths)
    result = run_stage("pair", run_pair, settings_for(root, orthanc.dicomweb_url))
    assert result.exit_code == 0
    elements = sorted(p for p in (root / "batch").iterdir())
    assert len(elements) == 2
    paired = set()
    for element in elements:
        manifest = Manifest.load(element)
        assert manifest.stages["pair"].status is Status.DONE
        facts = manifest.facts["pair"]
        assert facts["series_key"] == ct.series_instance_uid
        paired.add(facts["slide_series_instance_uid"])
        slide_files = list((element / "pair" / "slide").glob("*.dcm"))
        assert {pydicom.dcmread(p).SeriesInstanceUID for p in slide_files} == {facts["slide_series_instance_uid"]}
        assert len(list((element / "get-input").glob("*.dcm"))) == len(ct.paths)  # radiology beside each slide
    assert paired == slide_uids


def test_no_counterpart_is_skipped_with_what_was_searched(orthanc, slide_template, tmp_path):
    root = tmp_path / "run"
    element_with(root, "lonely-slide", make_slide(slide_template, tmp_path / "s", "RP-PAIR-NOBODY"))
    ct = write_series(tmp_path / "ct", study=SyntheticStudy(patient=SyntheticPatient(patient_id="RP-PAIR-NOSLIDE")),
                      geometry=GEOMETRY)
    element_with(root, "lonely-ct", ct.paths)
    result = run_stage("pair", run_pair, settings_for(root, orthanc.dicomweb_url))
    reasons = {r.element: (r.status, r.detail) for r in result.elements}
    assert reasons["lonely-slide"] == (
        Status.SKIPPED, "no CT or MR study of the slide's patient in the PACS (searched by PatientID, modalities CT and MR)")
    assert reasons["lonely-ct"] == (
        Status.SKIPPED, "no slide (SM series) of the patient in the PACS (searched by PatientID, modality SM)")
    assert result.exit_code == 126


def test_pacs_down_fails_the_element_with_the_endpoint(slide_template, tmp_path):
    root = tmp_path / "run"
    element_with(root, "slide", make_slide(slide_template, tmp_path / "s", "RP-PAIR-A"))
    from radpath.adapters.orthanc import free_port

    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    result = run_stage("pair", run_pair, settings_for(root, url))
    (element,) = result.elements
    assert element.status is Status.FAILED
    assert f"at {url}: cannot connect after 1 retries" in element.detail
