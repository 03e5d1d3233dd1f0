"""Looking at results in the real viewer, and checking what it shows against the SEG.

:func:`look` drives Debian's Chromium (``look.js``). :func:`overlay_check` compares the
pixels OHIF's overlay changes on the displayed slice (screenshot with the SEG shown vs
hidden) with the SEG's own mask for that slice, projected onto the screen through the
viewer's own image-to-canvas mapping: the overlay must lie on the mask and cover it. A
SEG a few voxels off fails; image brightness plays no part.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radpath.apps.viewer.assets import node_modules

LOOK_JS = Path(__file__).with_name("look.js")


class LookFailed(RuntimeError):
    """The browser could not show the page (the message carries its last log lines)."""


def look(mode: str, url: str, out_prefix: Path, timeout_s: float = 240, **extra) -> dict:
    """Open ``url`` in headless Chromium; screenshots at ``out_prefix*.png``; facts as a dict."""
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    job = {"mode": mode, "url": url, "out": str(out_prefix), "modules": str(node_modules()),
           "scratch": str(out_prefix.parent), **extra}
    done = subprocess.run(["node", str(LOOK_JS), json.dumps(job)], capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        log = Path(f"{out_prefix}.log")
        tail = log.read_text()[-1500:] if log.is_file() else ""
        raise LookFailed(f"{mode} view of {url} failed: {done.stderr.strip()[-1500:]}\nbrowser log:\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class BrowserSession:
    """One headless Chromium (``look.js``'s session mode), driven a step at a time:
    ``goto``, ``wait``, ``evaluate`` (a JavaScript function of one argument, in the page or
    in one of its iframes, by name), ``click`` (a real mouse click at a screen point),
    ``screenshot``. Use as a context manager; the browser's log lands at ``log``."""

    def __init__(self, scratch: Path, timeout_s: float = 180, ignore_https_errors: bool = False):
        scratch.mkdir(parents=True, exist_ok=True)
        self.log, self.timeout_s = scratch / "session.log", timeout_s
        job = {"mode": "session", "url": "", "out": str(scratch / "session"), "modules": str(node_modules()),
               "scratch": str(scratch), "ignoreHTTPSErrors": ignore_https_errors}
        self._process = subprocess.Popen(["node", str(LOOK_JS), json.dumps(job)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, bufsize=1)

    def __enter__(self) -> BrowserSession:
        return self

    def __exit__(self, *exc) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()

    def _do(self, **command):
        assert self._process.stdin and self._process.stdout
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise LookFailed(f"the browser ended at {command}: see {self.log}")
        answer = json.loads(line)
        if "error" in answer:
            raise LookFailed(f"{sorted(command)}: {answer['error']}")
        return answer["ok"]

    def goto(self, url: str) -> None:
        self._do(goto=url)

    def wait(self, function: str, arg=None, frame: str | None = None, timeout_s: float = 90) -> None:
        self._do(wait=function, arg=arg, frame=frame, timeout=timeout_s)

    def evaluate(self, function: str, arg=None, frame: str | None = None):
        return self._do(eval=function, arg=arg, frame=frame)

    def click(self, x: float, y: float) -> None:
        self._do(click=[x, y])

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._do(screenshot=str(path))
        return path

    def sleep(self, seconds: float) -> None:
        self._do(sleep=seconds)


def seg_mask_for(seg_path: Path, sop_instance_uid: str) -> np.ndarray:
    """The SEG's mask (union of its segments) on the source image ``sop_instance_uid``."""
    import pydicom

    seg = pydicom.dcmread(seg_path)
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    mask = np.zeros((seg.Rows, seg.Columns), dtype=bool)
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        source = group.DerivationImageSequence[0].SourceImageSequence[0]
        if source.ReferencedSOPInstanceUID == sop_instance_uid:
            mask |= frame.astype(bool)
    return mask


@dataclass(frozen=True)
class OverlayCheck:
    changed_pixels: int  # screenshot pixels the overlay changes
    mask_pixels: int  # screenshot pixels the SEG's mask covers on this slice
    on_mask: float  # share of the changed pixels on the mask (2 px of tolerance)
    covered: float  # share of the mask's pixels the overlay changes

    @property
    def passed(self) -> bool:
        return self.mask_pixels > 200 and self.on_mask >= 0.9 and self.covered >= 0.7


def overlay_check(mask: np.ndarray, info: dict, shown: Path, hidden: Path) -> OverlayCheck:
    """Compare the overlay in ``shown`` vs ``hidden`` with ``mask`` (source image rows ×
    columns) mapped through ``info`` (look.js: where pixel centres land on the screen)."""
    from PIL import Image
    from scipy import ndimage

    with_seg = np.asarray(Image.open(shown).convert("RGB")).astype(int)
    without = np.asarray(Image.open(hidden).convert("RGB")).astype(int)
    changed = np.abs(with_seg - without).max(axis=-1) > 24
    # Screen point = origin + col * d_col + row * d_row (pixel centres), so invert per pixel.
    origin = np.array(info["origin"], dtype=float)
    d_col = (np.array(info["alongRow"]) - origin) / max(info["columns"] - 1, 1)
    d_row = (np.array(info["alongColumn"]) - origin) / max(info["rows"] - 1, 1)
    inverse = np.linalg.inv(np.column_stack([d_col, d_row]))
    ys, xs = np.mgrid[0:changed.shape[0], 0:changed.shape[1]]
    offsets = np.stack([xs + 0.5 - origin[0], ys + 0.5 - origin[1]], axis=-1)
    col_row = offsets @ inverse.T
    cols, rows = np.rint(col_row[..., 0]).astype(int), np.rint(col_row[..., 1]).astype(int)
    inside = (rows >= 0) & (rows < mask.shape[0]) & (cols >= 0) & (cols < mask.shape[1])
    expected = np.zeros_like(changed)
    expected[inside] = mask[rows[inside], cols[inside]]
    canvas = info["canvas"]
    # Only the displayed image counts: not OHIF's panels, nor the slice scrollbar, whose
    # marks of segmented slices come and go with the overlay.
    view = inside.copy()
    top, left = int(canvas["top"]), int(canvas["left"])
    view[:top], view[:, :left] = False, False
    view[top + int(canvas["height"]):], view[:, left + int(canvas["width"]):] = False, False
    changed &= view
    near = ndimage.binary_dilation(expected, iterations=2)
    changed_count, mask_count = int(changed.sum()), int(expected.sum())
    return OverlayCheck(
        changed_pixels=changed_count,
        mask_pixels=mask_count,
        on_mask=round(float((changed & near).sum() / changed_count), 3) if changed_count else 0.0,
        covered=round(float((changed & expected).sum() / mask_count), 3) if mask_count else 0.0,
    )


@dataclass(frozen=True)
class SlideCheck:
    tissue_pixels: int  # screenshot pixels of the slide's tissue colour
    layout_iou: float  # tissue layout on screen vs in the slide's thumbnail (bounding boxes aligned)

    @property
    def passed(self) -> bool:
        return self.tissue_pixels > 5000 and self.layout_iou >= 0.6


def as_displayed(image: np.ndarray, orientation: list[float]) -> np.ndarray:
    """A slide image (rows × columns) turned as slide viewers show it: slide coordinate Y
    to the right and X downwards, from ImageOrientationSlide (0048,0102). Seen in OHIF's
    microscopy mode: wsidicomizer's default orientation (0, -1, 0, -1, 0, 0) is the image
    turned by 180 degrees."""
    row_x, row_y, _, col_x, col_y, _ = (float(v) for v in orientation)
    if abs(row_y) >= abs(col_y):  # screen x follows the image's columns: no transpose
        out = image[:, ::-1] if row_y < 0 else image
        return out[::-1] if col_x < 0 else out
    out = np.swapaxes(image, 0, 1)
    out = out[:, ::-1] if col_y < 0 else out
    return out[::-1] if row_x < 0 else out


def _tissue(rgb: np.ndarray, reference: np.ndarray, tolerance: int) -> np.ndarray:
    return np.abs(rgb.astype(int) - reference).sum(axis=-1) < tolerance


def slide_check(screenshot: Path, thumbnail: np.ndarray, facts: dict | None = None) -> SlideCheck:
    """Is the slide drawn, as its thumbnail lays it out? Tissue = the thumbnail's tissue
    colour (nuclei closed over); both masks are cut to their tissue's bounding box and
    compared at one size. ``facts`` (look.js) bound the slide's view and name the
    overview inset to leave out."""
    from PIL import Image
    from scipy import ndimage

    thumb = thumbnail.astype(int)
    background = np.median(np.concatenate([thumb[0], thumb[-1], thumb[:, 0], thumb[:, -1]]), axis=0)
    thumb_tissue = np.abs(thumb - background).sum(axis=-1) > 60
    if not thumb_tissue.any():
        return SlideCheck(0, 0.0)
    reference = np.median(thumb[thumb_tissue], axis=0)
    shot = np.asarray(Image.open(screenshot).convert("RGB"))
    on_screen = _tissue(shot, reference, 60)
    keep = np.zeros_like(on_screen) if facts and facts.get("viewport") else np.ones_like(on_screen)
    for name, value in (("viewport", True), ("overview", False)):
        rect = (facts or {}).get(name)
        if rect:
            keep[int(rect["top"]):int(rect["bottom"]), int(rect["left"]):int(rect["right"])] = value
    on_screen = ndimage.binary_opening(ndimage.binary_closing(on_screen & keep, iterations=4), iterations=2)
    if on_screen.sum() == 0:
        return SlideCheck(0, 0.0)

    def cut(mask: np.ndarray) -> np.ndarray:
        rows, cols = np.nonzero(mask)
        return mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]

    size = (64, 64)
    a = np.asarray(Image.fromarray(cut(_tissue(thumb, reference, 60)).astype(np.uint8) * 255).resize(size)) > 127
    b = np.asarray(Image.fromarray(cut(on_screen).astype(np.uint8) * 255).resize(size)) > 127
    union = (a | b).sum()
    return SlideCheck(int(on_screen.sum()), round(float((a & b).sum() / union), 3) if union else 0.0)
