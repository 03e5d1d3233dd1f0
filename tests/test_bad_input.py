"""Bad and hostile input, as a careful user and an attacker would try it: one matrix.

Each case is one row of :data:`CASES`: what the user did, the exit code, the rows the
terminal table must show (element or file, status, stage, a piece of the reason) and any
further check a user would make (the SEG is there, the code is right). Every case also
checks that nothing was written outside the run and nothing half-stored in a PACS.

The cases that need the pipeline share one ``radpath run --input`` over a folder with one
patient per case (:func:`folder_run`); the others are runs of their own, each stopping
before any work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest
import tifffile
from conftest import dicomweb_settings
from pairs import modalities, put_patient
from tables import squash, table_cells, table_rows

from radpath.adapters.dicomweb import TAG_SERIES_UID, TAG_STUDY_UID, DicomWeb
from radpath.pipeline.manifest import Manifest
from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series, write_svs

pytestmark = [pytest.mark.slow]

CT = SliceGeometry(128, 128, 60, (3.0, 3.0), 5.0, center=(0.0, 0.0, 10.0))
LONG_NAME = "Niere-links-Stanzbiopsie-" + "x" * 215 + ".svs"  # 244 characters
QUICK_PACS = {"DICOMWEB_RETRIES": "1", "DICOMWEB_BACKOFF": "0.05", "DICOMWEB_TIMEOUT": "10"}


# ---------------------------------------------------------------- what a run left behind


@dataclass
class Outcome:
    """One command's result, and what it did to the folders around it."""

    returncode: int
    stdout: str
    stderr: str
    outside_before: dict[str, str]
    outside_after: dict[str, str]
    output: Path | None = None
    facts: dict = field(default_factory=dict)  # case name → what that case's check needs

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    def rows(self) -> list[tuple[str, str, str, str]]:
        return table_rows(self.stdout)


def listing(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every path under ``root`` (outside ``skip``) with a digest of its bytes."""
    found = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = "link→" + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found


def radpath(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DICOMWEB_", "ORGAN", "LATERALITY"))}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "radpath", *args], capture_output=True, text=True,
                          env=environ, cwd=cwd, timeout=1800)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def instance_count(pacs: DicomWeb) -> int:
    """Every instance the PACS holds (to show that a failed run stored nothing)."""
    count = 0
    for study in pacs.find_studies():
        study_uid = study[TAG_STUDY_UID]["Value"][0]
        for series in pacs.find_series(study_instance_uid=study_uid):
            count += len(pacs.find_instances(study_uid, series[TAG_SERIES_UID]["Value"][0]))
    return count


# ---------------------------------------------------------------- the shared folder run


def _patient_study(patient_id: str) -> SyntheticStudy:
    return SyntheticStudy(patient=SyntheticPatient(patient_id=patient_id, name=f"Phantom^{patient_id}"),
                          accession_number=f"ACC-{patient_id}"[:16])


def _slide(folder: Path, name: str, **sidecar: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    slide = write_svs(folder / name, width=2048, height=1536, levels=2).path
    (folder / f"{name}.json").write_text(json.dumps(sidecar))
    return slide


def _ct(folder: Path, patient_id: str):
    return write_series(folder, modality="CT", geometry=CT, study=_patient_study(patient_id))


def build_input(folder: Path) -> dict:
    """One patient per case, each in a folder of its own; returns each case's element name
    (its folder's: what the user knows it by) and the user's name of the truncated slice."""
    elements = {}
    # 2 and 10a: a good slide with a 244-character name beside a zero-byte one.
    _ct(folder / "two-slides" / "ct", "BAD-TWO")
    _slide(folder / "two-slides", LONG_NAME, patient_id="BAD-TWO", anatomic_site="Niere links")
    (folder / "two-slides" / "zero.svs").write_bytes(b"")
    (folder / "two-slides" / "zero.svs.json").write_text(json.dumps({"patient_id": "BAD-TWO"}))
    elements["two-slides"] = "two-slides"
    # 3: identity a DICOM attribute cannot hold.
    _slide(folder / "identity", "backslash.svs", patient_id="REL\\BS^X", anatomic_site="Niere links")
    _slide(folder / "identity", "too-long.svs", patient_id="P" * 70, anatomic_site="Niere links")
    # 6: the appendix, a part of the colon that the master knows by its own code.
    _ct(folder / "appendix" / "ct", "BAD-APPX")
    _slide(folder / "appendix", "appendix.svs", patient_id="BAD-APPX", anatomic_site="appendix")
    elements["appendix"] = "appendix"
    # 7: a slide whose patient has no CT/MR in the input (and no PACS is set).
    _slide(folder / "slide-only", "lonely.svs", patient_id="BAD-LONELY", anatomic_site="Niere links")
    elements["slide-only"] = "slide-only"
    # 8: every slice copied under another name, one copy edited (same SOPInstanceUID).
    ct = _ct(folder / "duplicates" / "ct", "BAD-DUP")
    _slide(folder / "duplicates", "dup.svs", patient_id="BAD-DUP", anatomic_site="Niere links")
    copies = folder / "duplicates" / "copies"
    copies.mkdir()
    for index, path in enumerate(ct.paths):
        shutil.copy2(path, copies / f"copy-{index:03d}.dcm")
    edited = pydicom.dcmread(copies / "copy-000.dcm")
    edited.ImageComments = "edited after export"
    edited.save_as(copies / "copy-000.dcm")
    elements["duplicates"] = "duplicates"
    # 9: a slice cut short while copying (the last one, so the rest stays a regular stack).
    ct = _ct(folder / "truncated" / "ct", "BAD-TRUNC")
    _slide(folder / "truncated", "trunc.svs", patient_id="BAD-TRUNC", anatomic_site="Niere links")
    last = ct.paths[-1]
    last.write_bytes(last.read_bytes()[: last.stat().st_size * 2 // 3])
    elements["truncated"] = "truncated"
    # 10b: a TIFF header claiming a slide three billion pixels wide.
    (folder / "absurd").mkdir()
    huge = write_svs(folder / "absurd" / "huge.svs", width=1024, height=768, levels=1, label=False,
                     macro=False).path
    (folder / "absurd" / "huge.svs.json").write_text(json.dumps({"patient_id": "BAD-HUGE"}))
    with tifffile.TiffFile(huge, mode="r+b") as tiff:
        tiff.pages[0].tags["ImageWidth"].overwrite(3_000_000_000)
    elements["absurd"] = "absurd"
    return {"elements": elements, "truncated_slice": last.relative_to(folder).as_posix()}


@pytest.fixture(scope="session")
def folder_run(tmp_path_factory) -> Outcome:
    """One ``radpath run --input`` over a patient per case (the pipeline runs once)."""
    root = tmp_path_factory.mktemp("bad-input")
    facts = build_input(root / "input")
    output = root / "out"
    before = listing(root)
    run = radpath("run", "--input", str(root / "input"), "--output", str(output), "--standin-weights",
                  "--no-airflow")
    return Outcome(run.returncode, run.stdout, run.stderr, before, listing(root, skip=output), output, facts)


# ---------------------------------------------------------------- runs of their own


def _stage_escape(tmp: Path, **layout: str) -> Outcome:
    """`radpath stage bodypart` on a real run folder, with a layout variable aimed outside it."""
    root = tmp / "deep" / "down"
    run_dir = root / "run"
    (run_dir / "batch" / "element-1" / "pair").mkdir(parents=True)
    for neighbour in ("neighbour-a", "neighbour-b"):
        (tmp / neighbour).mkdir()
        (tmp / neighbour / "their-file.txt").write_text("not radpath's")
    before = listing(tmp, skip=run_dir)
    env = {"WORKFLOW_DIR": str(run_dir), "BATCH_NAME": "batch", "OPERATOR_IN_DIR": "pair",
           "OPERATOR_OUT_DIR": "bodypart", **layout}
    run = radpath("stage", "bodypart", env=env)
    return Outcome(run.returncode, run.stdout, run.stderr, before, listing(tmp, skip=run_dir))


def _folder_run_with(tmp: Path, env: dict[str, str]) -> Outcome:
    folder = tmp / "input"
    _ct(folder / "ct", "BAD-AUTH")
    before = listing(tmp)
    run = radpath("run", "--input", str(folder), "--output", str(tmp / "out"), "--standin-weights",
                  "--no-airflow", env=env)
    return Outcome(run.returncode, run.stdout, run.stderr, before, listing(tmp, skip=tmp / "out"), tmp / "out")


def _dicomweb_run(tmp: Path, url: str, env: dict[str, str] | None = None, *extra: str) -> Outcome:
    before = listing(tmp)
    run = radpath("run", "--dicomweb", url, "--patient", "BAD-PACS", "--output", str(tmp / "out"),
                  "--standin-weights", "--no-airflow", *extra, env={**QUICK_PACS, **(env or {})})
    return Outcome(run.returncode, run.stdout, run.stderr, before, listing(tmp, skip=tmp / "out"), tmp / "out")


def _html_login_page(method, path):
    return 200, "text/html", b"<html><body><form>Sign in to the hospital network</form></body></html>"


# ---------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Row:
    """A row the terminal table must show: ``who`` is a case's element or a file's name."""

    who: str
    status: str
    stage: str
    reason: str = ""


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    exit_code: int
    rows: tuple[Row, ...] = ()
    message: str = ""  # on the terminal, outside the table (settings and PACS errors stop before it)
    check: Callable[[Outcome], None] | None = None
    #: A run of its own (given the test's request and tmp_path); None: the shared folder run.
    run: Callable[[pytest.FixtureRequest, Path], Outcome] | None = None


def _element(outcome: Outcome, case: str) -> Path:
    (run_dir,) = (outcome.output / "runs").iterdir()
    return run_dir / "batch" / outcome.facts["elements"][case]


def _stored(outcome: Outcome, patient_id: str) -> dict[str, list[pydicom.Dataset]]:
    found: dict[str, list[pydicom.Dataset]] = {}
    for path in (outcome.output / "store").rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.PatientID == patient_id:
            found.setdefault(ds.Modality, []).append(ds)
    return found


def check_two_slides(outcome: Outcome) -> None:
    stored = _stored(outcome, "BAD-TWO")
    assert len(stored.get("SEG", [])) == 1 and len(stored.get("KO", [])) == 1, sorted(stored)
    assert len({ds.SeriesInstanceUID for ds in stored["SM"]}) == 1  # the good slide, converted
    facts = Manifest.load(_element(outcome, "two-slides")).facts["wsi-dicomize"]
    (slide,) = facts["slides"]  # staged under a shortened name (a digest keeps it apart), converted
    assert slide["file"].startswith("Niere-links-Stanzbiopsie-x") and len(slide["file"]) <= 120, slide
    assert slide["file"] != LONG_NAME and slide["file"].endswith(".svs")


def check_appendix(outcome: Outcome) -> None:
    element = _element(outcome, "appendix")
    (slide_file, *_) = sorted((element / "wsi-dicomize").rglob("*.dcm"))
    site = pydicom.dcmread(slide_file, stop_before_pixels=True).SpecimenDescriptionSequence[0]
    code = site.PrimaryAnatomicStructureSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("66754008", "SCT"), code  # Appendix, not Colon
    assert Manifest.load(element).facts["bodypart"]["subpart"] == "appendix"


def check_duplicates(outcome: Outcome) -> None:
    nifti = Manifest.load(_element(outcome, "duplicates")).facts["nifti"]
    assert len(nifti["slices"]) == nifti["shape"][2] == CT.slices - 1, nifti["shape"]  # each once, the clash left out
    assert len({s["sop_instance_uid"] for s in nifti["slices"]}) == CT.slices - 1


def check_truncated(outcome: Outcome) -> None:
    assert "radpath-dcm2niix-" not in outcome.text  # no scratch copy named anywhere


def check_absurd(outcome: Outcome) -> None:
    (run_dir,) = (outcome.output / "runs").iterdir()
    assert not (run_dir / "batch" / outcome.facts["elements"]["absurd"]).exists()  # no empty folder left


def check_no_identity_quoted(outcome: Outcome) -> None:
    assert "REL\\BS" not in outcome.text and "P" * 64 not in outcome.text


def _wrong_password_run(request, tmp: Path) -> Outcome:
    pacs = request.getfixturevalue("orthanc_auth")
    held = instance_count(DicomWeb(_auth_settings(pacs.dicomweb_url)))
    result = _dicomweb_run(tmp, pacs.dicomweb_url, {"DICOMWEB_PASSWORD": "wrong-pw"}, "--user", "radpath")
    assert instance_count(DicomWeb(_auth_settings(pacs.dicomweb_url))) == held  # nothing half-stored
    assert "wrong-pw" not in result.text
    return result


def _http_500_run(request, tmp: Path) -> Outcome:
    base, requests = request.getfixturevalue("stub_server")(lambda method, path: (500, "text/plain", b"oops"))
    result = _dicomweb_run(tmp, f"{base}/dicom-web")
    assert len(requests) == 2  # the request and one retry (DICOMWEB_RETRIES=1), no storm
    return result


def _login_page_run(request, tmp: Path) -> Outcome:
    base, _ = request.getfixturevalue("stub_server")(_html_login_page)
    return _dicomweb_run(tmp, f"{base}/dicom-web")


CASES = (
    Case("1-batch-name-escape", "BATCH_NAME=../../.. aims a stage at the folders above the run", 2,
         message="BATCH_NAME", run=lambda request, tmp: _stage_escape(tmp, BATCH_NAME="../../..")),
    Case("1-out-dir-escape", "OPERATOR_OUT_DIR=../../../escaped writes beside the run", 2,
         message="OPERATOR_OUT_DIR",
         run=lambda request, tmp: _stage_escape(tmp, OPERATOR_OUT_DIR="../../../escaped")),
    Case("2-bad-slide-beside-good", "a zero-byte slide beside the patient's good one", 1,
         rows=(Row("two-slides/zero.svs", "failed", "input", "empty file (0 bytes)"),
               Row("two-slides", "done", "link")),
         check=check_two_slides),
    Case("3-identity-backslash", "a sidecar patient_id with a backslash (two values)", 1,
         rows=(Row("identity/backslash.svs", "failed", "input", "patient_id (PatientID, LO) must be a single value"),),
         check=check_no_identity_quoted),
    Case("3-identity-too-long", "a 70-character sidecar patient_id (LO holds 64)", 1,
         rows=(Row("identity/too-long.svs", "failed", "input", "patient_id (PatientID, LO) the value length (70)"),),
         check=check_no_identity_quoted),
    Case("4-half-basic-auth", "DICOMWEB_PASSWORD without a user, on a folder run", 2,
         message="DICOMWEB_USERNAME: basic auth needs both",
         run=lambda request, tmp: _folder_run_with(tmp, {"DICOMWEB_PASSWORD": "not-shown-anywhere"})),
    Case("5-html-200", "a DICOMweb URL answering 200 with an HTML login page", 2, message="the answer is not DICOMweb",
         run=_login_page_run),
    # TotalSegmentator has no appendix class: the colon is segmented whole, and the row says so
    # (the phantom has no colon: skipped, or done where a model finds one).
    Case("6-appendix", "a sidecar naming the appendix", 1, check=check_appendix,
         rows=(Row("appendix", "skipped", "segment", "task total has no class for the appendix of the colon: "
                   "the colon is segmented whole; colon not found"),)),
    Case("7-slide-only", "a slide whose patient has no CT/MR in the input, no PACS set", 1,
         rows=(Row("slide-only", "skipped", "pair", "no CT/MR series of the patient in the input folder, and no PACS"),)),
    Case("8-duplicate-slices", "every slice copied under another name, one copy edited", 1,
         rows=(Row("duplicates/copies/copy-000.dcm", "failed", "input", "same SOPInstanceUID as duplicates/ct/"),
               Row("duplicates/ct/", "failed", "input", "as duplicates/copies/copy-000.dcm but different content"),
               Row("duplicates", "done", "link")),
         check=check_duplicates),
    Case("9-truncated-slice", "a CT slice cut short while copying", 1,
         rows=(Row("truncated_slice", "failed", "input", "pixel data cut short"), Row("truncated", "done", "link")),
         check=check_truncated),
    Case("10-long-name", "a slide name of 244 characters", 1, rows=(Row("two-slides", "done", "link"),),
         check=check_two_slides),
    Case("10-absurd-tiff", "an SVS whose TIFF header claims 3 000 000 000 pixels", 1,
         rows=(Row("absurd/huge.svs", "failed", "input", "claims 3000000000 × 768 pixels"),), check=check_absurd),
    Case("pacs-down", "a PACS that does not answer (closed port)", 2, message="cannot connect after 1 retries",
         run=lambda request, tmp: _dicomweb_run(tmp, f"http://127.0.0.1:{free_port()}/dicom-web")),
    Case("pacs-401", "wrong credentials", 2, message="HTTP 401", run=_wrong_password_run),
    Case("pacs-500", "a PACS answering HTTP 500", 2, message="500", run=_http_500_run),
)


@pytest.fixture
def outcome(request, tmp_path):
    """The outcome for the case under test: a run of its own, or the shared folder run."""
    case: Case = request.param
    return case.run(request, tmp_path) if case.run else request.getfixturevalue("folder_run")


def _auth_settings(url: str):
    return dicomweb_settings(url, DICOMWEB_USERNAME="radpath", DICOMWEB_PASSWORD="s3cret-pw")


@pytest.mark.parametrize("outcome", CASES, ids=[c.name for c in CASES], indirect=True)
def test_bad_input(outcome: Outcome, request):
    case: Case = request.node.callspec.params["outcome"]
    assert outcome.returncode == case.exit_code, outcome.text[-4000:]
    assert "Traceback" not in outcome.text, outcome.text[-4000:]
    # Nothing written outside the run (or the output folder): every other path is as it was.
    before, after = outcome.outside_before, outcome.outside_after
    assert after == before, sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))[:20]
    if case.message:
        assert case.message in squash(outcome.text, keep_spaces=True), outcome.text[-3000:]
    if case.exit_code == 2:  # stopped before any work: no run folder, no table
        assert outcome.output is None or not (outcome.output / "runs").exists()
    rows = outcome.rows()
    for expected in case.rows:
        who = outcome.facts.get("elements", {}).get(expected.who) or outcome.facts.get(expected.who, expected.who)
        matching = [row for row in rows if squash(row[0]).startswith(squash(who))
                    and row[1:3] == (expected.status, expected.stage)
                    and squash(expected.reason) in squash(row[3])]
        assert matching, (expected, who, rows)
    if case.check:
        case.check(outcome)


def test_a_rerun_against_the_pacs_stores_nothing_twice(orthanc, tmp_path):
    """The re-run case of the matrix: a second run over the same patient leaves one SEG and one KOS."""
    pacs = DicomWeb(dicomweb_settings(orthanc.dicomweb_url))
    uids = put_patient(pacs, tmp_path, "BAD-RERUN", slide_site="Niere links")
    results = []
    for attempt in ("first", "second"):
        before = listing(tmp_path)
        run = radpath("run", "--dicomweb", orthanc.dicomweb_url, "--patient", "BAD-RERUN", "--output",
                      str(tmp_path / f"out-{attempt}"), "--standin-weights", "--no-airflow", env=QUICK_PACS)
        results.append(run)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert set(listing(tmp_path, skip=tmp_path / f"out-{attempt}")) == set(before)
    found = modalities(pacs, uids["ct_study"])
    assert len(found.get("SEG", [])) == 1 and len(found.get("KO", [])) == 1, found


def test_the_matrix_notices_a_write_outside_the_run(tmp_path):
    """Negative control: the listing comparison the matrix relies on sees a stray file."""
    before = listing(tmp_path)
    (tmp_path / "stray").write_text("x")
    assert listing(tmp_path) != before


def test_the_table_reader_finds_a_wrapped_row():
    """Negative control for the row matching: a long reason wrapped over lines is read whole."""
    table = ("┃ element ┃ status ┃ stage ┃ slide    ┃ organ  ┃ detail ┃\n"
             "│ a/b.svs │ failed │ input │          │        │ empty file │\n"
             "│         │        │       │          │        │ (0 bytes)  │\n"
             "│ c       │ done   │ link  │ c-long-n │ left   │            │\n"
             "│         │        │       │ ame.svs  │ kidney │            │\n")
    assert table_rows(table) == [("a/b.svs", "failed", "input", "empty file (0 bytes)"), ("c", "done", "link", "")]
    assert table_cells(table)[1]["slide"] == "c-long-name.svs" and table_cells(table)[1]["organ"] == "left kidney"
