"""A researcher's own folder of de-identified data, as it is: the public abdominal CT with
empty PatientID and UIDs (``../shared/data/ct-abdomen-totalseg``) and the CMU slide with
a sidecar naming the patient, laid out one folder per patient (the README's way), and
not laid out so."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from tables import table_cells

from radpath.pipeline.localinput import NO_PATIENT, stage_input_folder
from radpath.pipeline.manifest import Manifest
from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series

SIDECAR = {"patient_id": "ANON", "anatomic_site": "Liver, segment 6, core biopsy"}
UID_LIKE = set("0123456789.")


def _slide(shared_data: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    slide = folder / "CMU-1-Small-Region.svs"
    shutil.copy2(shared_data / "wsi" / "CMU-1-Small-Region.svs", slide)
    (folder / "CMU-1-Small-Region.svs.json").write_text(json.dumps(SIDECAR))
    return slide


def laid_out(shared_data: Path, root: Path) -> Path:
    """``root/in/ANON/``: the CT (files unchanged) and the slide with its sidecar."""
    shutil.copytree(shared_data / "ct-abdomen-totalseg", root / "in" / "ANON" / "ct")
    _slide(shared_data, root / "in" / "ANON")
    return root / "in"


def not_laid_out(shared_data: Path, root: Path) -> Path:
    """The same files with the CT slices loose at the input's top level."""
    shutil.copytree(shared_data / "ct-abdomen-totalseg", root / "in")
    _slide(shared_data, root / "in")
    return root / "in"


def listing(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


# -- whose files are whose (no conversion) ---------------------------------------------------


@pytest.mark.shared_data
def test_a_patient_folder_claims_the_files_that_name_nobody(shared_data: Path, tmp_path: Path):
    folder = laid_out(shared_data, tmp_path)
    before = listing(folder)
    staged = stage_input_folder(folder, tmp_path / "batch", "get-input")
    assert staged.rejected == [] and staged.elements == ["ANON"]
    files = sorted(p.name for p in (tmp_path / "batch" / "ANON" / "get-input").iterdir())
    assert len(files) == 22 and "CMU-1-Small-Region.svs" in files  # 20 slices, the slide, its sidecar
    assert listing(folder) == before  # nothing of the user's changed


@pytest.mark.shared_data
def test_slices_that_name_nobody_outside_a_patient_folder_are_one_row_saying_what_to_do(shared_data: Path,
                                                                                        tmp_path: Path):
    folder = not_laid_out(shared_data, tmp_path)
    staged = stage_input_folder(folder, tmp_path / "batch", "get-input")
    (row,) = staged.rejected
    assert row.file == "in/ (20 files)" and row.reason == NO_PATIENT
    assert "folder of their own under the input folder" in row.reason
    assert staged.elements == ["CMU-1-Small-Region"]  # the slide alone; none of the slices


def test_the_folder_takes_the_patient_its_other_files_name_and_refuses_to_guess_between_two(tmp_path: Path):
    """Negative control for the folder rule: where a folder's files name two patients, a
    slice naming nobody belongs to neither."""
    folder = tmp_path / "in"
    geometry = SliceGeometry(16, 16, 3, (2.0, 2.0), 3.0)
    for patient in ("P1", "P2"):
        write_series(folder / "mixed" / patient, geometry=geometry,
                     study=SyntheticStudy(patient=SyntheticPatient(patient_id=patient)))
    anonymous = write_series(folder / "mixed" / "anon", geometry=geometry)
    for path in anonymous.paths:
        ds = pydicom.dcmread(path)
        ds.PatientID = ""
        ds.save_as(path)
    write_series(folder / "alone" / "named", geometry=geometry,
                 study=SyntheticStudy(patient=SyntheticPatient(patient_id="P3")))
    write_series(folder / "alone" / "anon", geometry=geometry)  # synthetic PatientID is set…
    for path in (folder / "alone" / "anon").iterdir():  # … and removed, as de-identification does
        ds = pydicom.dcmread(path)
        ds.PatientID = ""
        ds.save_as(path)
    staged = stage_input_folder(folder, tmp_path / "batch", "get-input")
    (row,) = staged.rejected
    assert row.file == "mixed/anon/ (3 files)" and "name 2 patients" in row.reason
    assert sorted(staged.elements) == ["alone", "mixed", "mixed-2"]
    assert len(list((tmp_path / "batch" / "alone" / "get-input").iterdir())) == 6  # P3's and the nameless
    for name in staged.elements:
        assert name and not set(name) <= UID_LIKE


# -- the whole run ---------------------------------------------------------------------------


def _run(folder: Path, output: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radpath", "run", "--input", str(folder), "--output", str(output),
                           "--standin-weights", "--no-airflow", *options], capture_output=True, text=True,
                          timeout=1200)


@pytest.fixture(scope="module")
def own_folder_runs(shared_data: Path, tmp_path_factory):
    """The laid-out folder run twice into one output (the second time all over again, not
    resumed), and the other one once."""
    root = tmp_path_factory.mktemp("own-folder")
    folder = laid_out(shared_data, root / "a")
    first = _run(folder, root / "out")
    stored = listing(root / "out" / "store")
    second = _run(folder, root / "out", "--fresh")
    loose = _run(not_laid_out(shared_data, root / "b"), root / "out-b")
    return root, first, stored, second, loose


@pytest.mark.shared_data
@pytest.mark.slow
def test_the_laid_out_folder_links_the_liver_to_the_slide_and_a_second_run_writes_nothing(own_folder_runs):
    root, first, stored, second, _ = own_folder_runs
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    runs = sorted((root / "out" / "runs").iterdir())
    (element,) = (runs[0] / "batch").iterdir()
    assert element.name == "ANON"
    manifest = Manifest.load(element)
    assert manifest.ended_at() is None and list(manifest.stages)[-1] == "link", manifest.stages
    (row,) = [r for r in table_cells(first.stdout) if r["element"] == "ANON"]
    assert (row["status"], row["stage"], row["slide"], row["organ"]) == (
        "done", "link", "CMU-1-Small-Region.svs", "liver"), row
    # The SEG is the liver's, on the CT's own slices, by the UIDs radpath derived for them.
    seg_facts = manifest.facts["seg-encode"]
    seg = pydicom.dcmread(element / "seg-encode" / seg_facts["path"])
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"  # Liver
    derived_series = seg_facts["source_uids"]["SeriesInstanceUID"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == derived_series
    slices = {pydicom.dcmread(p, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID
              for p in (root / "a" / "in" / "ANON" / "ct").iterdir()}
    referenced = {source.ReferencedSOPInstanceUID for frame in seg.PerFrameFunctionalGroupsSequence
                  for derivation in frame.DerivationImageSequence for source in derivation.SourceImageSequence}
    assert referenced and referenced <= slices
    store = root / "out" / "store"
    modalities = {pydicom.dcmread(p, stop_before_pixels=True).Modality for p in store.rglob("*.dcm")}
    assert modalities == {"CT", "SM", "SEG", "SR", "KO"}
    # The liver measured on the real CT (the source copies with their derived UIDs).
    quantify = manifest.facts["quantify"]
    assert quantify["reason"] is None and quantify["segments"][0]["features"], quantify.get("notes")
    assert (element / "link" / "index.html").is_file()
    # Again, into the same output: the same UIDs, nothing new stored.
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert listing(store) == stored
    (element_again,) = (runs[1] / "batch").iterdir()
    counts = Manifest.load(element_again).facts["store"]["counts"]
    assert counts and all(c["sent"] == 0 for c in counts.values()), counts


@pytest.mark.shared_data
@pytest.mark.slow
def test_without_the_layout_the_slices_are_one_row_with_the_fix_and_nothing_runs_for_them(own_folder_runs):
    root, *_, loose = own_folder_runs
    assert loose.returncode == 1, loose.stdout[-3000:] + loose.stderr[-3000:]
    rows = table_cells(loose.stdout)
    (sliced,) = [r for r in rows if "files)" in r["element"]]
    assert sliced["element"] == "in/ (20 files)" and sliced["status"] == "failed" and sliced["stage"] == "input"
    assert "folder of their own under the input folder" in sliced["detail"], sliced
    (run,) = (root / "out-b" / "runs").iterdir()
    (element,) = (run / "batch").iterdir()  # the slide's, skipped at pair: no CT/MR of its patient
    assert element.name == "CMU-1-Small-Region" and not (element / "nifti").exists()
    (row,) = [r for r in rows if r["element"] == element.name]
    assert (row["status"], row["stage"]) == ("skipped", "pair") and "input folder" in row["detail"], row


def test_each_slide_of_a_patient_is_an_element_with_the_patients_radiology(tmp_path: Path):
    """Two biopsies of one patient are two pairs: an element per slide, each with the CT;
    named by the slide (no folder), or by the folder and the slide."""
    from radpath.apps.demo import KIDNEY, LIVER, write_demo_input

    folder = write_demo_input(tmp_path / "in", slides=(KIDNEY, LIVER))
    staged = stage_input_folder(folder, tmp_path / "batch", "get-input")
    assert staged.rejected == [] and staged.elements == ["biopsy-kidney", "biopsy-liver"]
    for name, slide in (("biopsy-kidney", KIDNEY), ("biopsy-liver", LIVER)):
        files = {p.name for p in (tmp_path / "batch" / name / "get-input").iterdir()}
        assert slide.file in files and f"{slide.file}.json" in files
        assert len([f for f in files if f.endswith(".svs")]) == 1 and len(files) == 60 + 2  # the CT's 60 slices
    nested = tmp_path / "nested"
    shutil.copytree(folder, nested / "case-07")
    assert stage_input_folder(nested, tmp_path / "batch-2", "get-input").elements == [
        "case-07+biopsy-kidney", "case-07+biopsy-liver"]
