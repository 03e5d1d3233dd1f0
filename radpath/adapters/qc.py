"""The QC picture of a linked pair: three orthogonal slices through the organ with the
mask outlined, next to the slide's thumbnail, under a title naming organ, side, series
and algorithm. A person sees at a glance whether the mask sits on the organ the slide
names; nothing is read back from a viewer.

Slices are shown as radiologists read them (patient's right on the left, anterior and
superior up) with square millimetres, whatever the voxel spacing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from radpath.domain.vocabulary import Modality

log = logging.getLogger(__name__)

#: Outline colour: no grey value of the slices has it, so a test (or a person) can find it.
OUTLINE = (255, 220, 0)
PANEL = 256  # pixels, each panel's height and width
CT_WINDOW = (-160.0, 240.0)  # HU, abdominal soft tissue


def _canonical(image: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    canonical = nib.as_closest_canonical(image)
    return np.asanyarray(canonical.dataobj), np.asarray(canonical.header.get_zooms()[:3], float)


def _mask_on(image: nib.Nifti1Image, masks: Sequence[nib.Nifti1Image]) -> nib.Nifti1Image:
    """The union of the masks on the image's grid (TotalSegmentator writes them there;
    anything else is resampled through the affines)."""
    from nibabel.processing import resample_from_to

    union = np.zeros(image.shape[:3], bool)
    for mask in masks:
        if mask.shape[:3] != image.shape[:3] or not np.allclose(mask.affine, image.affine, atol=1e-3):
            mask = resample_from_to(mask, (image.shape[:3], image.affine), order=0)
        union |= np.asanyarray(mask.dataobj) > 0
    return nib.Nifti1Image(union.astype(np.uint8), image.affine)


def _display(plane: np.ndarray) -> np.ndarray:
    """(first axis, second axis) of a RAS plane → rows, columns as a radiologist reads them."""
    return plane.T[::-1, ::-1]


def _window(values: np.ndarray, modality: str) -> tuple[float, float]:
    if modality == Modality.CT:
        return CT_WINDOW
    low, high = np.percentile(values, [1, 99])
    return float(low), float(max(high, low + 1))


def _panel(plane: np.ndarray, mask: np.ndarray, spacing: tuple[float, float], window) -> Image.Image:
    """One slice scaled to square millimetres in a PANEL x PANEL tile, the mask outlined."""
    from scipy.ndimage import binary_erosion

    rows_mm, cols_mm = plane.shape[0] * spacing[0], plane.shape[1] * spacing[1]
    scale = PANEL / max(rows_mm, cols_mm)
    size = (max(1, round(cols_mm * scale)), max(1, round(rows_mm * scale)))
    low, high = window
    grey = np.clip((plane.astype(np.float32) - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    picture = Image.fromarray(grey).resize(size, Image.BILINEAR).convert("RGB")
    scaled = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)) > 0
    edge = scaled & ~binary_erosion(scaled, iterations=1)
    pixels = np.asarray(picture).copy()
    pixels[edge] = OUTLINE
    tile = Image.new("RGB", (PANEL, PANEL))
    tile.paste(Image.fromarray(pixels), ((PANEL - size[0]) // 2, (PANEL - size[1]) // 2))
    return tile


def qc_picture(
    image_path: Path,
    mask_paths: Sequence[Path],
    modality: str,
    title: str,
    thumbnail: Image.Image | None,
) -> Image.Image:
    """Axial, coronal and sagittal slices through the mask's centre, then the slide."""
    image = nib.load(str(image_path))
    mask = _mask_on(image, [nib.load(str(p)) for p in mask_paths])
    data, zooms = _canonical(image)
    labels, _ = _canonical(mask)
    if not labels.any():
        raise ValueError("the mask is empty: nothing to show")
    i, j, k = (int(round(c)) for c in np.argwhere(labels).mean(axis=0))
    window = _window(data, modality)
    planes = [  # (slice, mask slice, (row mm, column mm) after _display)
        (data[:, :, k], labels[:, :, k], (zooms[1], zooms[0]), "axial"),
        (data[:, j, :], labels[:, j, :], (zooms[2], zooms[0]), "coronal"),
        (data[i, :, :], labels[i, :, :], (zooms[2], zooms[1]), "sagittal"),
    ]
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=12)
    tiles = [(_panel(_display(p), _display(m), spacing, window), name) for p, m, spacing, name in planes]
    if thumbnail is not None:
        slide = thumbnail.convert("RGB")
        slide.thumbnail((PANEL, PANEL))
        tile = Image.new("RGB", (PANEL, PANEL), "white")
        tile.paste(slide, ((PANEL - slide.width) // 2, (PANEL - slide.height) // 2))
        tiles.append((tile, "slide"))
    header, footer, gap = 30, 20, 6
    canvas = Image.new("RGB", (len(tiles) * (PANEL + gap) + gap, header + PANEL + footer), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    draw.text((gap, 7), title, fill="white", font=font)
    for n, (tile, name) in enumerate(tiles):
        x = gap + n * (PANEL + gap)
        canvas.paste(tile, (x, header))
        draw.text((x + 4, header + PANEL + 3), name, fill=(200, 200, 200), font=small)
    return canvas


def slide_thumbnail(files: Sequence[Path], size: int = PANEL) -> Image.Image | None:
    """The slide's thumbnail from its DICOM WSI instances (wsidicom), or None when the
    instances hold no readable pyramid."""
    from radpath.adapters.slides.convert import load_wsidicomizer

    load_wsidicomizer()  # wsidicom under the same guard of pydicom's settings
    from wsidicom import WsiDicom

    try:
        with WsiDicom.open([Path(f) for f in files]) as wsi:
            return wsi.read_thumbnail((size, size))
    except Exception as err:  # wsidicom raises many types for incomplete pyramids
        log.warning("no thumbnail of the slide (%s): the QC picture shows the radiology side only", err)
        return None
