"""The linked result in the real OHIF viewer (npm @ohif/app, fetched on first use), in
Debian's headless Chromium, served by the test Orthanc through radpath's same-origin
proxy: the SEG the pipeline wrote lies on the organ (CT and MR), a shifted copy does
not, and the slide the pipeline converted renders in SLIM (``radpath view``) and, where SLIM is
not built, in OHIF's microscopy mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pairs import link_into_pacs
from pydicom.uid import generate_uid

from radpath.adapters.dicomweb import DicomWeb
from radpath.adapters.orthanc import LocalOrthanc, free_port
from radpath.adapters.settings import Settings
from radpath.apps.demo import KIDNEY, write_demo_input
from radpath.apps.viewer.assets import CHROMIUM, ViewerUnavailable, node_modules, ohif_dist
from radpath.apps.viewer.look import as_displayed, look, overlay_check, seg_mask_for, slide_check
from radpath.apps.viewer.server import ViewerServer
from radpath.synthetic import SyntheticPatient

pytestmark = [pytest.mark.pacs, pytest.mark.slow]

SCREENSHOTS = "viewer-screenshots"  # under the test's tmp folder; the failure message names it


@pytest.fixture(scope="module")
def viewer_files():
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: run `make setup`")
    try:
        return ohif_dist(), node_modules()
    except ViewerUnavailable as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def served(tmp_path_factory, viewer_files):
    """An Orthanc holding what the pipeline stored for a CT and an MR patient (each with a
    left-kidney biopsy slide), and the viewer in front of it."""
    root = tmp_path_factory.mktemp("viewer")
    pacs = LocalOrthanc(storage=root / "orthanc").start()
    port = free_port()
    runs = {}
    try:
        for modality in ("CT", "MR"):
            folder = write_demo_input(root / f"input-{modality}", modality,
                                      SyntheticPatient(patient_id=f"RP-VIEW-{modality}", name=f"View^{modality}"),
                                      slides=(KIDNEY,))
            (element,) = link_into_pacs(root / f"run-{modality}", folder, pacs.dicomweb_url,
                                        f"http://127.0.0.1:{port}").values()
            runs[modality] = element
        with ViewerServer(viewer_files[0], ("127.0.0.1", pacs.port), port=port) as server:
            yield pacs, server, runs, root
    finally:
        pacs.stop()


def shifted_copy(seg_path: Path, out: Path, columns: int) -> Path:
    """The SEG moved ``columns`` voxels sideways: a new series, everything else the same."""
    seg = pydicom.dcmread(seg_path)
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    from pydicom.pixels import pack_bits

    seg.PixelData = pack_bits(np.roll(frames, columns, axis=2).astype(np.uint8).ravel())
    seg.SeriesInstanceUID, seg.SOPInstanceUID = generate_uid(), generate_uid()
    seg.file_meta.MediaStorageSOPInstanceUID = seg.SOPInstanceUID
    seg.SeriesDescription = "SHIFTED copy (negative control)"
    seg.save_as(out)
    return out


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_the_link_opens_the_seg_on_the_organ_and_a_shifted_copy_fails(served, modality):
    pacs, server, runs, root = served
    element = runs[modality]
    link = json.loads((element / "link/link.json").read_text())
    seg_path = next((element / "seg-encode").glob("*.seg.dcm"))
    shots = root / SCREENSHOTS / modality

    info = look("seg", link["viewers"]["ohif"], shots / "pipeline")
    assert "/viewer?" in info["finalUrl"]  # Kaapana's /ohif/viewer route reached OHIF
    mask = seg_mask_for(seg_path, info["sop"])
    result = overlay_check(mask, info, Path(f"{shots}/pipeline_seg.png"), Path(f"{shots}/pipeline_noseg.png"))
    assert result.passed, (result, f"screenshots in {shots}")

    negative = shifted_copy(seg_path, root / f"shifted-{modality}.dcm", columns=4)
    DicomWeb(Settings.from_env({"DICOMWEB_URL": pacs.dicomweb_url}).dicomweb).store([negative])
    url = link["viewers"]["ohif"].replace(link["radiology"]["seg_series_instance_uid"],
                                          pydicom.dcmread(negative, stop_before_pixels=True).SeriesInstanceUID)
    shifted = look("seg", url, shots / "shifted")
    # Checked against the pipeline's SEG, i.e. where the organ is: the shifted overlay is off it.
    off = overlay_check(seg_mask_for(seg_path, shifted["sop"]), shifted, Path(f"{shots}/shifted_seg.png"),
                        Path(f"{shots}/shifted_noseg.png"))
    assert not off.passed, (off, f"screenshots in {shots}")


def test_the_slide_opens_in_ohif_microscopy_as_its_thumbnail_shows(served):
    """Where SLIM is not built (this server is given none), SLIM's route falls back to OHIF's
    microscopy mode, which must still show the slide as it is."""
    pacs, server, runs, root = served
    element = runs["CT"]
    link = json.loads((element / "link/link.json").read_text())
    shots = root / SCREENSHOTS / "slide"
    facts = look("slide", link["viewers"]["slim"], shots / "slide")
    assert "/microscopy?" in facts["finalUrl"]  # SLIM's route reached OHIF's microscopy mode
    thumbnail = next(ds for ds in (pydicom.dcmread(p) for p in (element / "wsi-dicomize").rglob("*.dcm"))
                     if "THUMBNAIL" in ds.ImageType)
    shown_as = as_displayed(thumbnail.pixel_array, thumbnail.ImageOrientationSlide)
    result = slide_check(Path(f"{shots}/slide.png"), shown_as, facts)
    assert result.passed, (result, f"screenshot in {shots}")
    # A grey page does not pass as the slide.
    blank = root / "blank.png"
    from PIL import Image

    Image.new("RGB", (1400, 900), (40, 40, 40)).save(blank)
    assert not slide_check(blank, shown_as, facts).passed
    # Nor does the slide upside down: the layout must match, not only the colour.
    flipped = root / "flipped.png"
    Image.open(f"{shots}/slide.png").transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(flipped)
    assert not slide_check(flipped, shown_as, facts).passed


def test_radpath_view_serves_the_split_page_with_both_viewers_on_the_pair(served, tmp_path):
    import subprocess
    import sys

    from PIL import Image

    element = served[2]["CT"]
    link = json.loads((element / "link/link.json").read_text())
    shot = tmp_path / SCREENSHOTS / "split.png"
    run = subprocess.run([sys.executable, "-m", "radpath", "view", str(element / "link" / "link.json"),
                          "--screenshot", str(shot)], capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "split view: http://127.0.0.1:" in run.stdout
    facts = json.loads(run.stdout.strip().splitlines()[-1])
    ohif, slide = facts["frames"]
    assert "/viewer?" in ohif and link["radiology"]["seg_series_instance_uid"] in ohif
    assert facts["centred"] == link["extent"]["centre_sop_instance_uid"]  # OHIF on the organ, not its edge
    assert "/slim/studies/" in slide and link["slide"]["series_instance_uid"] in slide  # SLIM, built in set-up
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    left, right = pixels[120:, 290:610], pixels[120:, 640:]  # OHIF's viewport; SLIM's pane
    grey = (np.abs(left - left.mean(axis=-1, keepdims=True)).max(axis=-1) < 8) & (left.mean(axis=-1) > 40)
    pink = (right[..., 0] > 150) & (right[..., 2] > 120) & (right[..., 1] < right[..., 0] - 40)
    assert grey.sum() > 20000, f"no CT on the left of {shot}"  # the phantom's body in OHIF
    assert pink.sum() > 20000, f"no slide on the right of {shot}"  # H&E-coloured tissue
