"""The patient view in the real OHIF (npm @ohif/app 3.13) in headless Chromium: a generated
patient with a left-kidney slide and a liver slide, both run through the pipeline into the
test Orthanc; the view reads the pairs back from the PACS. Click points come from the
SEG files (pydicom), not from the page's own mask code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from ohif_pane import VIEWPORT, link_of, organ_slices, seg_of
from pairs import link_into_pacs
from slide_pane import pink_pixels

from radpath.adapters.dicomweb import DicomWeb
from radpath.adapters.orthanc import LocalOrthanc, free_port
from radpath.adapters.settings import Settings
from radpath.apps.demo import KIDNEY, LIVER, DemoSlide, write_demo_input, write_demo_slide
from radpath.apps.viewer.assets import CHROMIUM, ViewerUnavailable, node_modules, ohif_dist
from radpath.apps.viewer.look import BrowserSession, overlay_check, seg_mask_for
from radpath.apps.viewer.server import ViewerServer
from radpath.domain.link.page import PATIENT_VIEW_FILE, patient_view_html
from radpath.synthetic import SliceGeometry, SyntheticPatient, SyntheticStudy, write_series

pytestmark = [pytest.mark.pacs, pytest.mark.slow]

PATIENT = SyntheticPatient(patient_id="RP-PATIENT-VIEW", name="Patient^View")
KIDNEY_2 = DemoSlide("biopsy-kidney-2.svs", "Niere links, Nachbiopsie", "Nachbiopsie Niere links", 2)

# -- what the browser is asked (JavaScript functions of one argument) -------------------------

#: What OHIF displays: the image's SOP, its plane, where its pixel centres land on the
#: screenshot, and the active segmentation's SEG series.
DISPLAYED = f"""() => {{ {VIEWPORT}
  const cs = w.cornerstone, imageId = vp.getCurrentImageId(), plane = cs.metaData.get('imagePlaneModule', imageId);
  const frame = f.getBoundingClientRect(), canvas = vp.canvas.getBoundingClientRect();
  const world = (r, c) => [0, 1, 2].map(k => plane.imagePositionPatient[k]
    + c * plane.columnPixelSpacing * plane.rowCosines[k] + r * plane.rowPixelSpacing * plane.columnCosines[k]);
  const toScreen = (r, c) => {{ const p = vp.worldToCanvas(world(r, c));
    return [frame.left + canvas.left + p[0], frame.top + canvas.top + p[1]]; }};
  const active = s.segmentationService.getActiveSegmentation(id);
  const activeSeries = active ? (s.displaySetService.getDisplaySetByUID(active.segmentationId) || {{}}).SeriesInstanceUID : null;
  return {{ sop: (/instances\\/([0-9.]+)/.exec(imageId) || [])[1] || null, position: plane.imagePositionPatient,
    rows: plane.rows, columns: plane.columns, origin: toScreen(0, 0), alongRow: toScreen(0, plane.columns - 1),
    alongColumn: toScreen(plane.rows - 1, 0), activeSeries,
    canvas: {{ left: frame.left + canvas.left, top: frame.top + canvas.top, width: canvas.width, height: canvas.height }} }}; }}"""
#: The segmentations shown in OHIF, by SEG series, and their visibility switched.
SEGMENTS_VISIBLE = f"""(visible) => {{ {VIEWPORT}
  for (const r of s.segmentationService.getSegmentationRepresentations(id))
    s.segmentationService.setSegmentVisibility(id, r.segmentationId, 1, visible);
  return s.segmentationService.getSegmentationRepresentations(id).length; }}"""
PAGE = """() => ({ pairs: document.body.dataset.pairs, status: document.getElementById('status').textContent,
  fallback: document.getElementById('fallback').hidden ? null : document.getElementById('fallback').textContent,
  slide: document.getElementById('slide').getAttribute('src'), hits: document.getElementById('hits').textContent,
  lastClick: document.body.dataset.lastClick ? JSON.parse(document.body.dataset.lastClick) : null,
  list: [...document.querySelectorAll('#pairs a')].map(a => ({ text: a.textContent, href: a.getAttribute('href'),
    current: a.getAttribute('aria-current') })) })"""


# -- the patient, through the pipeline into the test PACS ---------------------------------------


def _run_pipeline(root: Path, name: str, folder: Path, pacs: LocalOrthanc, port: int) -> dict[str, Path]:
    return link_into_pacs(root / f"run-{name}", folder, pacs.dicomweb_url, f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def patient_view(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: run `make setup`")
    try:
        www = ohif_dist()
        node_modules()
    except ViewerUnavailable as err:
        pytest.fail(str(err))
    root = tmp_path_factory.mktemp("patient-view")
    pacs = LocalOrthanc(storage=root / "orthanc").start()
    port = free_port()
    try:
        folder = write_demo_input(root / "input", "CT", PATIENT, slides=(KIDNEY, LIVER))
        elements = _run_pipeline(root, "first", folder, pacs, port)
        pages = root / "pages"
        pages.mkdir()
        # No SLIM given: the local viewer's fallback (OHIF's microscopy mode), which the page names;
        # SLIM itself: tests/test_slim_view.py
        with ViewerServer(www, ("127.0.0.1", pacs.port), pages=pages, port=port) as server:
            (pages / PATIENT_VIEW_FILE).write_text(patient_view_html(server.site))
            yield {"pacs": pacs, "server": server, "root": root, "folder": folder, "port": port,
                   "elements": elements, "ct": {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p
                                                for p in (folder / "ct").iterdir()}}
    finally:
        pacs.stop()


def _url(view: dict, element: Path | None = None) -> str:
    any_link = link_of(next(iter(view["elements"].values())))
    base = f"{view['server'].base_url}/radpath/"
    if element is None:
        return f"{base}{PATIENT_VIEW_FILE}?study={any_link['radiology']['study_instance_uid']}"
    return base + link_of(element)["viewers"]["patient"]


def _open(browser: BrowserSession, url: str, centred_on: str | None = None) -> dict:
    browser.goto(url)
    browser.wait("() => document.body.dataset.pairs !== undefined", timeout_s=60)
    if centred_on:
        browser.wait("(seg) => document.body.dataset.centred === seg", centred_on, timeout_s=120)
        browser.sleep(1)
    return browser.evaluate(PAGE)


def _still_screenshot(browser: BrowserSession, shot: Path, tries: int = 12) -> None:
    """A screenshot once the page stopped changing: two taken half a second apart agree (on
    a loaded machine OHIF may still be drawing the image when the overlay is already there)."""
    previous = None
    for _ in range(tries):
        browser.screenshot(shot)
        current = shot.read_bytes()
        if current == previous:
            return
        previous = current
        browser.sleep(0.5)


# -- the acceptance -----------------------------------------------------------------------------


def test_the_view_lists_the_patients_two_pairs_read_from_the_pacs(patient_view, tmp_path):
    elements = patient_view["elements"]
    with BrowserSession(tmp_path / "browser") as browser:
        page = _open(browser, _url(patient_view))
        by_patient = _open(browser, f"{patient_view['server'].base_url}/radpath/{PATIENT_VIEW_FILE}"
                                    f"?patient={PATIENT.patient_id}")
    assert page["pairs"] == "2", page
    # Served without SLIM, the page says where slides open instead.
    assert page["fallback"] == ("SLIM is not built on this machine: slides open in OHIF microscopy "
                                "(make setup builds SLIM)"), page
    # By the patient too: the same pairs.
    assert sorted(i["text"] for i in by_patient["list"]) == sorted(i["text"] for i in page["list"]), by_patient
    labels = sorted(item["text"] for item in page["list"])
    assert labels[0].startswith("left kidney") and "biopsy-kidney" in labels[0], labels
    assert labels[1].startswith("liver") and "biopsy-liver" in labels[1], labels
    # Each pair has a plain URL that opens the view with it selected (and keyboard focus reaches it).
    hrefs = {item["href"] for item in page["list"]}
    assert {link_of(e)["viewers"]["patient"] for e in elements.values()} == hrefs


def test_choosing_the_liver_pair_centres_ohif_on_the_liver_with_its_segment_active(patient_view, tmp_path):
    kidney, liver = patient_view["elements"]["biopsy-kidney"], patient_view["elements"]["biopsy-liver"]
    liver_series = link_of(liver)["radiology"]["seg_series_instance_uid"]
    with BrowserSession(tmp_path / "browser") as browser:
        _open(browser, _url(patient_view, kidney), centred_on=link_of(kidney)["radiology"]["seg_series_instance_uid"])
        item = browser.evaluate(f"""() => {{ const r = document.querySelector('#pairs a[data-seg="{liver_series}"]')
                    .getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }}""")
        browser.click(*item)  # the pair in the list, as a user chooses it
        browser.wait("(seg) => document.body.dataset.centred === seg", liver_series, timeout_s=120)
        browser.sleep(1)
        shown = browser.evaluate(DISPLAYED)
    assert shown["activeSeries"] == liver_series, shown
    # The displayed slice lies within the liver's extent, within one slice of its centre.
    normal = np.cross(*np.array(pydicom.dcmread(seg_of(liver), stop_before_pixels=True)
                                .SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
                                .ImageOrientationPatient, float).reshape(2, 3))
    offsets = sorted(float(np.dot(normal, pydicom.dcmread(patient_view["ct"][sop], stop_before_pixels=True)
                                  .ImagePositionPatient)) for sop, pixels in organ_slices(seg_of(liver)) if pixels)
    spacing = float(np.min(np.diff(offsets)))
    displayed = float(np.dot(normal, shown["position"]))
    assert offsets[0] <= displayed <= offsets[-1]
    assert abs(displayed - (offsets[0] + offsets[-1]) / 2) <= spacing + 1e-3, (displayed, offsets)


def test_a_pairs_url_shows_the_organ_overlay_on_first_paint(patient_view, tmp_path):
    liver = patient_view["elements"]["biopsy-liver"]
    with BrowserSession(tmp_path / "browser") as browser:
        _open(browser, _url(patient_view, liver), centred_on=link_of(liver)["radiology"]["seg_series_instance_uid"])
        _still_screenshot(browser, tmp_path / "first.png")
        shown = browser.evaluate(DISPLAYED)
        browser.evaluate(SEGMENTS_VISIBLE, False)
        browser.sleep(1.5)
        _still_screenshot(browser, tmp_path / "hidden.png")
    mask = seg_mask_for(seg_of(liver), shown["sop"])
    result = overlay_check(mask, shown, tmp_path / "first.png", tmp_path / "hidden.png")
    assert result.changed_pixels > 0 and result.passed, (result, tmp_path)
    # Negative control: the same comparison against the mask moved 10 voxels sideways fails.
    assert not overlay_check(np.roll(mask, 10, axis=1), shown, tmp_path / "first.png", tmp_path / "hidden.png").passed


def test_a_slide_linked_after_the_view_was_built_appears_on_reload(patient_view, tmp_path):
    kidney = patient_view["elements"]["biopsy-kidney"]
    url = _url(patient_view, kidney)
    with BrowserSession(tmp_path / "browser") as browser:
        assert _open(browser, url)["pairs"] == "2"
        # A second kidney biopsy of the same patient goes through the pipeline meanwhile.
        later = tmp_path / "later"
        shutil.copytree(patient_view["folder"] / "ct", later / "ct")
        study = SyntheticStudy(patient=PATIENT, study_instance_uid=link_of(kidney)["radiology"]["study_instance_uid"])
        write_demo_slide(later, study, KIDNEY_2)
        _run_pipeline(tmp_path, "later", later, patient_view["pacs"], patient_view["port"])
        page = _open(browser, url)
    assert page["pairs"] == "3", page
    kidney_pairs = [item for item in page["list"] if item["text"].startswith("left kidney")]
    assert len(kidney_pairs) == 2 and any("biopsy-kidney-2" in item["text"] for item in kidney_pairs)


def test_a_study_radpath_has_linked_nothing_to_says_so(patient_view, tmp_path):
    study = SyntheticStudy(patient=SyntheticPatient(patient_id="RP-NO-LINKS"))
    series = write_series(tmp_path / "ct", geometry=SliceGeometry(32, 32, 4, (4.0, 4.0), 5.0), study=study)
    DicomWeb(Settings.from_env({"DICOMWEB_URL": patient_view["pacs"].dicomweb_url}).dicomweb).store(series.paths)
    with BrowserSession(tmp_path / "browser") as browser:
        page = _open(browser, f"{patient_view['server'].base_url}/radpath/{PATIENT_VIEW_FILE}"
                              f"?study={study.study_instance_uid}")
        browser.wait("() => document.getElementById('status').textContent.includes('no slide')", timeout_s=30)
        page = browser.evaluate(PAGE)
    assert page["pairs"] == "0" and page["list"] == []
    assert page["status"] == "radpath has linked no slide to this study yet"
    # Whatever the URL names goes into DICOMweb paths only as a UID.
    with BrowserSession(tmp_path / "browser") as browser:
        browser.goto(f"{patient_view['server'].base_url}/radpath/{PATIENT_VIEW_FILE}?study=../../studies")
        browser.wait("() => document.getElementById('status').textContent.startsWith('cannot')", timeout_s=30)
        assert browser.evaluate(PAGE)["status"] == "cannot read the links: not a DICOM UID: ../../studies"


#: OHIF's display sets of the study (what its study browser lists) and the browser's text.
OHIF_SERIES = """() => ({ sets: window.services.displaySetService.getActiveDisplaySets().map(d => ({
  modality: d.Modality, series: d.SeriesInstanceUID, description: d.SeriesDescription })),
  text: document.body.innerText })"""


def _ohif_lists(browser: BrowserSession, view: dict, study: str) -> dict:
    browser.goto(f"{view['server'].base_url}/viewer?StudyInstanceUIDs={study}")
    browser.wait("() => { try { return window.services.displaySetService.getActiveDisplaySets().length > 0; }"
                 " catch (e) { return false; } }", timeout_s=90)
    browser.sleep(3)
    return browser.evaluate(OHIF_SERIES)


def test_ohif_lists_each_pairs_measurement_report_in_the_study(patient_view, tmp_path):
    links = [link_of(e) for e in patient_view["elements"].values()]
    study = links[0]["radiology"]["study_instance_uid"]
    with BrowserSession(tmp_path / "browser") as browser:
        shown = _ohif_lists(browser, patient_view, study)
        # Negative control: a study radpath measured nothing in lists no report.
        other = SyntheticStudy(patient=SyntheticPatient(patient_id="RP-NO-SR"))
        series = write_series(tmp_path / "ct", geometry=SliceGeometry(32, 32, 4, (4.0, 4.0), 5.0), study=other)
        DicomWeb(Settings.from_env({"DICOMWEB_URL": patient_view["pacs"].dicomweb_url}).dicomweb).store(series.paths)
        plain = _ohif_lists(browser, patient_view, other.study_instance_uid)
    reports = {d["series"]: d for d in shown["sets"] if d["modality"] == "SR"}
    for link in links:
        sr = link["measurements"]["sr"]["series_instance_uid"]
        assert sr in reports, (sr, shown["sets"])
        organ = next(iter(link["measurements"]["volumes_ml"]))
        assert reports[sr]["description"] == f"radpath measurements: {organ}"
        assert reports[sr]["description"] in shown["text"]  # in the study browser, for a person to see
    assert not [d for d in plain["sets"] if d["modality"] == "SR"] and plain["sets"], plain["sets"]


def test_radpath_view_on_a_run_folder_serves_its_patient_view(patient_view, tmp_path):
    import subprocess
    import sys

    from PIL import Image

    run_folder = patient_view["root"] / "run-first"
    shot = tmp_path / "patient-view.png"
    run = subprocess.run([sys.executable, "-m", "radpath", "view", str(run_folder), "--screenshot", str(shot)],
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-2000:]
    study = link_of(patient_view["elements"]["biopsy-kidney"])["radiology"]["study_instance_uid"]
    assert f"patient view (study {study}): http://127.0.0.1:" in run.stdout
    facts = json.loads(run.stdout.strip().splitlines()[-1])
    ohif, slide = facts["frames"]
    assert "/viewer?" in ohif and "/slim/studies/" in slide  # SLIM, built in set-up
    assert facts["centred"] in {link_of(e)["radiology"]["seg_series_instance_uid"]
                                for e in patient_view["elements"].values()}
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    middle = pixels[120:, 480:730]  # OHIF's viewport, right of its study browser
    grey = (np.abs(middle - middle.mean(axis=-1, keepdims=True)).max(axis=-1) < 8) & (middle.mean(axis=-1) > 40)
    assert grey.sum() > 5000, f"no CT in the OHIF pane of {shot}"
    assert pink_pixels(shot, [740, 120, pixels.shape[1], pixels.shape[0]]) > 5000, f"no slide in {shot}"
