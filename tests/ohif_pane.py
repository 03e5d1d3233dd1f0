"""The OHIF pane of radpath's pages, asked in the browser, and where to aim at it from the
files (pydicom): the pipeline's link record and SEG of an element, the slices a SEG covers,
a CT pixel as a patient-space point. Shared by the patient view's and SLIM's tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom

#: The OHIF pane's viewport, from the page (the start of a JavaScript function's body).
VIEWPORT = """const f = document.getElementById('ohif'), w = f.contentWindow, s = w.services;
  const id = s.viewportGridService.getActiveViewportId();
  const vp = s.cornerstoneViewportService.getCornerstoneViewport(id);"""
#: A patient-space point → the screen point it is drawn at.
TO_SCREEN = f"""(world) => {{ {VIEWPORT}
  const c = vp.worldToCanvas(world), canvas = vp.canvas.getBoundingClientRect(), frame = f.getBoundingClientRect();
  return [frame.left + canvas.left + c[0], frame.top + canvas.top + c[1]]; }}"""
#: Scroll OHIF to the image of a SOP Instance UID, as a user's scroll would.
SCROLL_TO = f"""async (sop) => {{ {VIEWPORT}
  const index = vp.getImageIds().findIndex(id => id.includes('/instances/' + sop + '/'));
  await vp.setImageIdIndex(index); vp.render(); return index; }}"""


def link_of(element: Path) -> dict:
    """The element's link record (``link/link.json``)."""
    return json.loads((element / "link" / "link.json").read_text())


def seg_of(element: Path) -> Path:
    """The element's SEG file."""
    return next((element / "seg-encode").glob("*.seg.dcm"))


def world_point(ct_file: Path, row: float, column: float) -> list[float]:
    """Patient-space point of pixel (row, column) of the CT image ``ct_file``."""
    ds = pydicom.dcmread(ct_file, stop_before_pixels=True)
    origin = np.array(ds.ImagePositionPatient, float)
    orientation = np.array(ds.ImageOrientationPatient, float)
    between_rows, between_columns = (float(v) for v in ds.PixelSpacing)
    return list(origin + column * between_columns * orientation[:3] + row * between_rows * orientation[3:])


def organ_slices(seg: Path) -> list[tuple[str, int]]:
    """(source SOP, mask pixels) of each source image the SEG covers, in frame order."""
    ds = pydicom.dcmread(seg)
    frames = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    return [(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID, int(frame.sum()))
            for item, frame in zip(ds.PerFrameFunctionalGroupsSequence, frames)]
