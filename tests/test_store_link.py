"""store and link against a real Orthanc: the pair lands once, the KOS in the radiology
study references what is stored, failures name what failed, and the QC picture and
split-view page show what a person expects."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from radpath.adapters.dciodvfy import verify
from radpath.adapters.dicomweb import TAG_MODALITY, TAG_SERIES_UID, TAG_SOP_UID, DicomWeb
from radpath.adapters.orthanc import LocalOrthanc, free_port
from radpath.adapters.qc import OUTLINE, PANEL
from radpath.adapters.settings import Settings
from radpath.apps.demo import INPUT_DIR, make_demo_run
from radpath.domain.link.kos import referenced_instances
from radpath.pipeline.batch import run_stage
from radpath.pipeline.manifest import Manifest, Status
from radpath.pipeline.runner import run_pipeline, stage_settings
from radpath.pipeline.stages.link import run_link
from radpath.pipeline.stages.store import run_store

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def made_run(tmp_path_factory) -> Path:
    """The demo's patient (phantom CT, kidney slide saying "Niere links") through the
    pipeline up to seg-encode, with the slide in a study of its own (its sidecar names
    the patient but not the CT's study), as a pathology system would send it."""
    root = tmp_path_factory.mktemp("made")
    workflow_dir = make_demo_run(root)
    (element,) = (workflow_dir / "batch").iterdir()
    (sidecar,) = (element / INPUT_DIR).glob("*.json")
    link = json.loads(sidecar.read_text())
    del link["study_instance_uid"]
    sidecar.write_text(json.dumps(link))
    settings = Settings.from_env({"WORKFLOW_DIR": str(workflow_dir), "TOTALSEG_STANDIN_WEIGHTS": "true"})
    results = run_pipeline(settings, INPUT_DIR, until="seg-encode")
    assert all(r.exit_code == 0 for r in results), [(r.stage, r.elements) for r in results]
    return workflow_dir


def fresh_copy(made_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    workflow_dir = tmp_path / "run"
    shutil.copytree(made_run, workflow_dir, symlinks=True)
    (element,) = (workflow_dir / "batch").iterdir()
    return workflow_dir, element


def store_and_link(workflow_dir: Path, **env: str):
    base = {"WORKFLOW_DIR": str(workflow_dir), "DICOMWEB_RETRIES": "2", "DICOMWEB_BACKOFF": "0.05",
            "DICOMWEB_TIMEOUT": "10", "VIEWER_BASE_URL": "https://kaapana.example"}
    settings = Settings.from_env({**base, **env})
    stored = run_stage("store", run_store, stage_settings(settings, "store", "seg-encode"))
    linked = run_stage("link", run_link, stage_settings(settings, "link", "store"))
    return stored, linked


def series_in(pacs: DicomWeb, study: str) -> dict[str, list[str]]:
    """Modality → series UIDs of the study."""
    found: dict[str, list[str]] = {}
    for row in pacs.find_series(study_instance_uid=study):
        found.setdefault(row[TAG_MODALITY]["Value"][0], []).append(row[TAG_SERIES_UID]["Value"][0])
    return found


def test_store_and_link_leave_one_seg_and_one_kos_in_the_radiology_study(orthanc, made_run, tmp_path):
    workflow_dir, element = fresh_copy(made_run, tmp_path)
    env = {"DICOMWEB_URL": orthanc.dicomweb_url}
    stored, linked = store_and_link(workflow_dir, **env)
    assert stored.exit_code == 0 and linked.exit_code == 0, (stored.elements, linked.elements)
    link = json.loads((element / "link/link.json").read_text())
    radiology, slide = link["radiology"], link["slide"]
    assert radiology["study_instance_uid"] != slide["study_instance_uid"]  # two studies, one patient

    pacs = DicomWeb(Settings.from_env(env).dicomweb)
    for _ in range(2):  # the same twice: nothing more in the PACS
        found = series_in(pacs, radiology["study_instance_uid"])
        assert found["SEG"] == [radiology["seg_series_instance_uid"]]
        assert found["KO"] == [link["kos"]["series_instance_uid"]]
        for modality in ("SEG", "KO"):
            assert len(pacs.find_instances(radiology["study_instance_uid"], found[modality][0])) == 1
        again_stored, again_linked = store_and_link(workflow_dir, **env)
        assert again_stored.exit_code == 0 and again_linked.exit_code == 0
    facts = Manifest.load(element).facts
    assert all(c["sent"] == 0 for c in facts["store"]["counts"].values()), facts["store"]
    assert facts["link"]["kos_sent"] is False

    # The KOS as the PACS holds it: valid, and every reference resolves to a stored instance.
    (kos_path,) = pacs.retrieve_series(radiology["study_instance_uid"], link["kos"]["series_instance_uid"],
                                       tmp_path / "kos")
    assert verify(kos_path).ok, verify(kos_path).errors
    kos = pydicom.dcmread(kos_path)
    references = referenced_instances(kos)
    studies = {study for study, _, _ in references}
    assert studies == {radiology["study_instance_uid"], slide["study_instance_uid"]}
    for study, series, sop in references:
        assert sop in {row[TAG_SOP_UID]["Value"][0] for row in pacs.find_instances(study, series)}
    referenced = {sop for *_, sop in references}
    assert radiology["seg_sop_instance_uid"] in referenced and set(slide["sop_instance_uids"]) <= referenced
    assert kos.ConceptNameCodeSequence[0].CodeMeaning == "For Research"
    texts = [item.TextValue for item in kos.ContentSequence if item.ValueType == "TEXT"]
    assert any("left kidney" in text for text in texts), texts

    extent = link["extent"]
    assert extent["first_slice"] < extent["centre_slice"] < extent["last_slice"]  # opens on the organ's middle
    assert link["viewers"]["ohif"] == (
        f"https://kaapana.example/ohif/viewer?StudyInstanceUIDs={radiology['study_instance_uid']}"
        f"&initialSeriesInstanceUID={radiology['seg_series_instance_uid']}")
    assert link["viewers"]["patient"] == (f"patient.html?study={radiology['study_instance_uid']}"
                                          f"&pair={radiology['seg_series_instance_uid']}"
                                          f"&slide={slide['series_instance_uid']}")
    assert link["viewers"]["slim"] == (f"https://kaapana.example/slim/studies/{slide['study_instance_uid']}"
                                       f"/series/{slide['series_instance_uid']}")


def test_an_instance_the_pacs_refuses_fails_the_element_with_its_uid_and_reason(made_run, tmp_path):
    workflow_dir, element = fresh_copy(made_run, tmp_path)
    refuse_segs = ("function ReceivedInstanceFilter(dicom, origin, info)\n"
                   "  return dicom.Modality ~= 'SEG'\nend\n")
    with LocalOrthanc(storage=tmp_path / "pacs", lua_script=refuse_segs) as pacs:
        stored, linked = store_and_link(workflow_dir, DICOMWEB_URL=pacs.dicomweb_url)
        (outcome,) = stored.elements
        seg_uid = Manifest.load(element).facts["seg-encode"]["sop_instance_uid"]
        assert outcome.status is Status.FAILED
        assert f"SEG {seg_uid}: confirmed by STOW-RS but not found by QIDO-RS" in outcome.detail
        assert linked.elements == []  # the failed element is passed over: no KOS without its SEG
        client = DicomWeb(Settings.from_env({"DICOMWEB_URL": pacs.dicomweb_url}).dicomweb)
        modalities = {row[TAG_MODALITY]["Value"][0] for row in client.find_series()}
        assert modalities == {"CT", "SM"}  # what the SEG would reference, nothing referring to a missing SEG
    assert "store" not in Manifest.load(element).facts  # nothing reported as stored


def test_a_full_pacs_fails_the_element_naming_what_was_not_stored(made_run, tmp_path):
    """Orthanc with a full storage area answers STOW-RS without confirming or refusing."""
    workflow_dir, element = fresh_copy(made_run, tmp_path)
    quota = {"MaximumStorageSize": 1, "MaximumStorageMode": "Reject"}  # 1 MB: part of the CT fits
    with LocalOrthanc(storage=tmp_path / "pacs", extra_config=quota) as pacs:
        stored, linked = store_and_link(workflow_dir, DICOMWEB_URL=pacs.dicomweb_url)
    (outcome,) = stored.elements
    assert outcome.status is Status.FAILED
    assert "not confirmed in the STOW-RS response" in outcome.detail
    assert "source " in outcome.detail  # which instances, by kind and SOP Instance UID
    assert linked.elements == [] and "store" not in Manifest.load(element).facts


def test_an_unreachable_pacs_fails_after_bounded_retries(made_run, tmp_path):
    workflow_dir, element = fresh_copy(made_run, tmp_path)
    stored, _ = store_and_link(workflow_dir, DICOMWEB_URL=f"http://127.0.0.1:{free_port()}/dicom-web")
    (outcome,) = stored.elements
    assert outcome.status is Status.FAILED
    assert "cannot connect after 2 retries" in outcome.detail
    assert "store" not in Manifest.load(element).facts


def test_dimse_to_a_pacs_sends_each_instance_once(made_run, tmp_path):
    workflow_dir, element = fresh_copy(made_run, tmp_path)
    conf = workflow_dir / "conf" / "conf.json"
    conf.write_text(json.dumps({**json.loads(conf.read_text()), "project_form": {"name": "admin"},
                                "data_form": {"dataset_name": "radpath-test"}}))
    with LocalOrthanc(storage=tmp_path / "pacs", dicom_port=free_port()) as pacs:
        env = {"STORE_TARGET": "dimse", "DIMSE_HOST": "127.0.0.1", "DIMSE_PORT": str(pacs.dicom_port),
               "DICOMWEB_URL": pacs.dicomweb_url}
        stored, linked = store_and_link(workflow_dir, **env)
        assert stored.exit_code == 0 and linked.exit_code == 0, (stored.elements, linked.elements)
        facts = Manifest.load(element).facts
        # Kaapana's CTP files by the kp- AE titles: project "admin", dataset "radpath-test"
        assert facts["store"]["target"] == f"DIMSE kp-radpath-test → kp-admin@127.0.0.1:{pacs.dicom_port}"
        assert facts["store"]["counts"]["SEG"] == {"sent": 1, "present": 0}
        client = DicomWeb(Settings.from_env({"DICOMWEB_URL": pacs.dicomweb_url}).dicomweb)
        assert {"CT", "SM", "SEG", "KO"} <= {row[TAG_MODALITY]["Value"][0] for row in client.find_series()}
        store_and_link(workflow_dir, **env)
        assert all(c["sent"] == 0 for c in Manifest.load(element).facts["store"]["counts"].values())


def forward_later(receiver: LocalOrthanc, pacs: LocalOrthanc, after_s: float) -> threading.Timer:
    """What Kaapana's CTP does with what it received, late: after ``after_s`` every instance
    the receiving peer holds goes on to the PACS (CTP's incoming pipeline sends it on, and maps
    it to the project, only once its run for the series got there)."""
    import requests

    def forward():
        for instance in requests.get(f"{receiver.url}/instances", timeout=30).json():
            data = requests.get(f"{receiver.url}/instances/{instance}/file", timeout=30).content
            requests.post(f"{pacs.url}/instances", data=data, timeout=30).raise_for_status()

    timer = threading.Timer(after_s, forward)
    timer.start()
    return timer


@pytest.mark.parametrize("settle_s, linked_state", [(60, Status.DONE), (1, Status.FAILED)])
def test_the_link_waits_until_what_ctp_received_shows_in_the_pacs(made_run, tmp_path, settle_s, linked_state):
    """CTP answers a C-STORE at once and files it later: the PACS shows the SEG only after
    Kaapana's incoming pipeline ran. The link asks the PACS again until everything it will
    reference is there (DIMSE_SETTLE_TIMEOUT); the negative control, given 1 s for what comes
    after 4, fails naming what the PACS lacks and stores no KOS."""
    workflow_dir, element = fresh_copy(made_run, tmp_path)
    with LocalOrthanc(storage=tmp_path / "ctp", dicom_port=free_port()) as ctp, \
            LocalOrthanc(storage=tmp_path / "pacs") as pacs:
        env = {"STORE_TARGET": "dimse", "DIMSE_HOST": "127.0.0.1", "DIMSE_PORT": str(ctp.dicom_port),
               "DIMSE_CALLED_AE": "kp-admin", "DICOMWEB_URL": pacs.dicomweb_url,
               "DIMSE_SETTLE_TIMEOUT": str(settle_s)}
        settings = Settings.from_env({"WORKFLOW_DIR": str(workflow_dir), "VIEWER_BASE_URL": "https://k", **env})
        stored = run_stage("store", run_store, stage_settings(settings, "store", "seg-encode"))
        assert stored.exit_code == 0, stored.elements
        timer = forward_later(ctp, pacs, after_s=4)
        linked = run_stage("link", run_link, stage_settings(settings, "link", "store"))
        timer.join()
        (outcome,) = linked.elements
        assert outcome.status is linked_state, outcome.detail
        client = DicomWeb(Settings.from_env({"DICOMWEB_URL": pacs.dicomweb_url}).dicomweb)
        study = Manifest.load(element).facts["store"]["series"][0][1]
        if linked_state is Status.FAILED:
            assert "lacks" in outcome.detail and "run the store stage first" in outcome.detail
            assert "KO" not in series_in(client, study) and "KO" not in series_in(
                DicomWeb(Settings.from_env({"DICOMWEB_URL": ctp.dicomweb_url}).dicomweb), study)
        else:
            assert "SEG" in series_in(client, study)


def test_a_dimse_refusal_names_the_instance_and_the_status(made_run, tmp_path):
    """CTP cannot be queried: what dcmsend's report says is all there is (no DICOMWEB_URL).
    Orthanc with a full storage area refuses C-STOREs with a status."""
    workflow_dir, element = fresh_copy(made_run, tmp_path)
    quota = {"MaximumStorageSize": 1, "MaximumStorageMode": "Reject"}  # 1 MB: part of the CT fits
    with LocalOrthanc(storage=tmp_path / "pacs", dicom_port=free_port(), extra_config=quota) as pacs:
        stored, _ = store_and_link(workflow_dir, STORE_TARGET="dimse", DIMSE_HOST="127.0.0.1",
                                   DIMSE_PORT=str(pacs.dicom_port), DIMSE_CALLED_AE="ORTHANC")
        modalities = {row[TAG_MODALITY]["Value"][0] for row in
                      DicomWeb(Settings.from_env({"DICOMWEB_URL": pacs.dicomweb_url}).dicomweb).find_series()}
    (outcome,) = stored.elements
    assert outcome.status is Status.FAILED
    # Refused instances by kind, SOP Instance UID and C-STORE status; the slide and the
    # SEG never went out after their source was refused.
    assert re.search(r"source [0-9.]+: 0xa700 \(Refused: OutOfResources\)", outcome.detail), outcome.detail
    assert "and " in outcome.detail and "SEG" not in outcome.detail
    assert modalities == {"CT"} and "store" not in Manifest.load(element).facts


@pytest.fixture(scope="module")
def viewers():
    stand_ins = StandInViewers()
    stand_ins.start()
    yield stand_ins
    stand_ins.server.shutdown()


@pytest.fixture(scope="module")
def linked_to_folder(made_run, viewers, tmp_path_factory) -> Path:
    """The pair stored in a folder (the embedded default) and linked; the element."""
    workflow_dir, element = fresh_copy(made_run, tmp_path_factory.mktemp("folder"))
    stored, linked = store_and_link(workflow_dir, STORE_TARGET="folder", STORE_FOLDER=str(workflow_dir / "store"),
                                    VIEWER_BASE_URL=viewers.url)
    assert stored.exit_code == 0 and linked.exit_code == 0, (stored.elements, linked.elements)
    return element


def test_the_qc_picture_outlines_the_mask_beside_the_slide(linked_to_folder):
    picture = np.asarray(Image.open(linked_to_folder / "link/qc.png").convert("RGB"))
    outline = (picture == OUTLINE).all(axis=2)
    gap, header = 6, 30
    panels = [picture[header:header + PANEL, gap + n * (PANEL + gap): gap + n * (PANEL + gap) + PANEL]
              for n in range(4)]
    marked = [(p == OUTLINE).all(axis=2).sum() for p in panels]
    assert all(count >= 20 for count in marked[:3]), marked  # axial, coronal, sagittal
    assert marked[3] == 0 and panels[3].std() > 10  # the slide: tissue, no outline
    assert outline.sum() == sum(marked)
    # The outline sits on the phantom's left kidney: patient's left is the axial panel's right half.
    axial = (panels[0] == OUTLINE).all(axis=2)
    assert np.argwhere(axial)[:, 1].mean() > PANEL / 2


class StandInViewers:
    """Serves a page for any /ohif/… and /slim/… URL, each filled with its own colour, and
    records the requested paths: stand-ins for OHIF and SLIM (Kaapana hosts the real ones;
    issue 11 puts the real OHIF in front of the browser)."""

    COLOURS = {"ohif": (20, 120, 220), "slim": (220, 60, 140)}

    def __init__(self):
        self.requests: list[str] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        viewers = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                viewers.requests.append(self.path)
                name = self.path.strip("/").split("/")[0]
                r, g, b = viewers.COLOURS.get(name, (0, 0, 0))
                body = (f"<html><body style='margin:0;background:rgb({r},{g},{b})'>"
                        f"<p style='color:white'>{name}</p></body></html>").encode()
                self.send_response(200 if name in viewers.COLOURS else 404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), partial(Handler))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_the_split_view_page_shows_both_viewers_on_the_pair(linked_to_folder, viewers, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run `make setup`")
    link = json.loads((linked_to_folder / "link/link.json").read_text())
    shot = tmp_path / "split-view.png"
    viewers.requests.clear()
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1200,700", "--virtual-time-budget=5000", f"--screenshot={shot}",
         (linked_to_folder / "link/index.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )
    base = len(viewers.url)
    assert link["viewers"]["ohif"][base:] in viewers.requests
    assert link["viewers"]["slim"][base:] in viewers.requests
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    body = pixels[120:]  # below the header
    left, right = body[:, : body.shape[1] // 2], body[:, body.shape[1] // 2:]
    for half, name in ((left, "ohif"), (right, "slim")):
        share = (np.abs(half - np.array(StandInViewers.COLOURS[name])).sum(axis=2) < 30).mean()
        assert share > 0.8, (name, share)
    page = (linked_to_folder / "link/index.html").read_text()
    extent = link["extent"]
    assert f"slices {extent['first_slice']}&ndash;{extent['last_slice']} of {extent['slices']}" in page
