"""``radpath view`` on the demo's output, in headless Chromium: the slide pane is SLIM (built
from its source in set-up, its own DOM, not OHIF's microscopy route) on the chosen slide; a
click inside the kidney in OHIF switches SLIM to the kidney's slide, a click beside every
organ leaves it where it was; the slide's bar leads back to its organ in OHIF. Click points
come from the demo's SEG and CT files (pydicom), not from the page's own mask code."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from conftest import skip_unless_ci
from ohif_pane import SCROLL_TO, TO_SCREEN, VIEWPORT, link_of, organ_slices, seg_of, world_point
from slide_pane import PANE, frames_of, slim_shows

from radpath.apps.viewer.assets import CHROMIUM
from radpath.apps.viewer.look import BrowserSession, seg_mask_for
from radpath.apps.viewer.slim import built_slim

pytestmark = [pytest.mark.pacs, pytest.mark.slow]

ACTIVE_SEG = f"""() => {{ {VIEWPORT} const a = s.segmentationService.getActiveSegmentation(id);
  return a ? (s.displaySetService.getDisplaySetByUID(a.segmentationId) || {{}}).SeriesInstanceUID : null; }}"""
PAGE = """() => ({ slide: document.getElementById('slide').getAttribute('src'),
  hits: document.getElementById('hits').textContent, fallback: document.getElementById('fallback').hidden,
  lastClick: document.body.dataset.lastClick ? JSON.parse(document.body.dataset.lastClick) : null,
  back: document.getElementById('slide-organ').textContent,
  back_at: (r => [r.left + r.width / 2, r.top + r.height / 2])(document.getElementById('slide-organ').getBoundingClientRect()) })"""


@pytest.fixture(scope="module")
def demo_view(demo_run):
    """``radpath view`` serving the demo's output: its patient view's URL and the demo's pairs."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: run `make setup`")
    if built_slim() is None:
        skip_unless_ci("SLIM is not built on this machine: `make setup` builds it (see its log)")
    output, run = demo_run
    assert run.returncode == 0, run.stderr[-2000:]
    view = subprocess.Popen([sys.executable, "-m", "radpath", "view", str(output)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = None
        for line in view.stdout:
            if line.startswith("patient view (study "):
                url = line.split("): ", 1)[1].strip()
            if line.startswith("serving on"):
                break
        assert url, view.stderr.read()[-2000:] if view.poll() is not None else "radpath view printed no patient view"
        elements = {p.parent.parent.name: p.parent.parent for p in sorted(output.glob("runs/*/batch/*/link/link.json"))}
        yield {"url": url, "elements": elements, "ct": {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p
                                                         for p in (output / "input" / "ct").iterdir()}}
    finally:
        view.terminate()
        view.wait(timeout=30)


def test_the_slide_opens_in_slim_and_a_click_in_the_kidney_switches_it(demo_view, tmp_path):
    kidney, liver = demo_view["elements"]["biopsy-kidney"], demo_view["elements"]["biopsy-liver"]
    kidney_slide, liver_slide = (link_of(e)["slide"]["series_instance_uid"] for e in (kidney, liver))
    segs = [seg_of(kidney), seg_of(liver)]
    with BrowserSession(tmp_path / "browser") as browser:
        browser.goto(demo_view["url"] + f"&pair={link_of(liver)['radiology']['seg_series_instance_uid']}")
        browser.wait("() => document.body.dataset.centred !== undefined", timeout_s=150)
        # The liver's slide, in SLIM: its own DOM (not OHIF's), frames of that series, H&E on screen.
        first = slim_shows(browser, liver_slide, tmp_path / "liver.png")
        assert first["slim"] and not first["ohif"] and "/microscopy" not in first["url"], first
        assert frames_of(first, liver_slide) and not frames_of(first, kidney_slide)
        assert first["pink"] > 5000, f"no H&E pixels in the slide pane: {tmp_path / 'liver.png'}"
        assert browser.evaluate(PAGE)["fallback"]  # SLIM is built: no fallback note
        # The kidney's fullest slice; points beside every organ there (10 voxels right of
        # the kidney, and in the body's far corner) change nothing.
        sop = max(organ_slices(segs[0]), key=lambda s: s[1])[0]
        browser.evaluate(SCROLL_TO, sop)
        browser.sleep(1)
        masks = [seg_mask_for(seg, sop) for seg in segs]
        rows, columns = np.nonzero(masks[0])
        middle = np.array([rows.mean(), columns.mean()])
        inside = min(zip(rows, columns), key=lambda rc: float(np.sum((np.array(rc) - middle) ** 2)))
        beside = [(int(inside[0]), int(columns[rows == inside[0]].max()) + 10), (4, 4)]
        assert not any(mask[point] for mask in masks for point in beside)
        for point in beside:
            browser.click(*browser.evaluate(TO_SCREEN, world_point(demo_view["ct"][sop], *point)))
            browser.sleep(1.5)
            page = browser.evaluate(PAGE)
            assert page["lastClick"] and page["lastClick"]["hits"] == [], page
            assert liver_slide in page["slide"]
        still = browser.evaluate(PANE, "slide")
        assert liver_slide in still["url"] and not frames_of(still, kidney_slide)  # SLIM stayed on its slide
        # Inside the kidney: SLIM on the kidney's slide.
        browser.click(*browser.evaluate(TO_SCREEN, world_point(demo_view["ct"][sop], *inside)))
        switched = slim_shows(browser, kidney_slide, tmp_path / "kidney.png")
        page = browser.evaluate(PAGE)
        assert page["hits"] == "left kidney" and kidney_slide in page["slide"], page
        assert switched["slim"] and frames_of(switched, kidney_slide) and switched["pink"] > 5000, tmp_path
        # The way back: the slide's bar shows its organ in OHIF, centred, its segment active.
        assert page["back"] == "show the left kidney in OHIF"
        kidney_seg = link_of(kidney)["radiology"]["seg_series_instance_uid"]
        browser.click(*page["back_at"])
        browser.wait("(seg) => document.body.dataset.centred === seg", kidney_seg, timeout_s=60)
        assert browser.evaluate(ACTIVE_SEG) == kidney_seg
