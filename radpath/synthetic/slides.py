"""Small vendor-format whole-slide images with tissue-like content, for tests and the demo.

The files are meant to be converted to DICOM by wsidicomizer, so they follow what its readers
expect of real files:

* ``write_svs`` writes an Aperio SVS as opentile (the reader wsidicomizer picks for SVS) and
  tifffile/tiffslide/OpenSlide parse it: page 0 the tiled base level, page 1 a stripped JPEG
  thumbnail, then the lower levels tiled (each a 4x downsample of the one before, as Aperio
  scanners write), then the label (LZW, ``NewSubfileType`` 1) and the macro (JPEG,
  ``NewSubfileType`` 9), each ImageDescription starting with ``"Aperio "``. Tiles are complete
  JPEG streams in YCbCr (4:2:0), without a shared JPEGTables tag, so opentile hands them on
  byte for byte and wsidicomizer copies them into the DICOM frames without re-encoding.
* ``write_pyramidal_tiff`` writes a generic tiled pyramid (no vendor metadata): levels as
  successive pages, each a 2x downsample of the one before (``NewSubfileType`` 1 on the lower
  levels), resolution tags giving the pixel size. opentile does not claim such a file, so
  wsidicomizer reads it through tiffslide (OpenSlide's "generic-tiff" reads the same layout)
  and re-encodes its tiles.

The slide content comes from ``tissue_image``: a few irregular pink tissue pieces with purple
nuclei on a near-white background, deterministic for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageDraw, ImageFont

__all__ = ["SyntheticSlide", "tissue_image", "write_pyramidal_tiff", "write_svs"]

_SVS_LEVEL_DOWNSAMPLE = 4  # Aperio scanners write each level 4x smaller than the one before
_TIFF_LEVEL_DOWNSAMPLE = 2  # the usual step of generic pyramids (vips, bfconvert)

_APERIO_HEADER = "Aperio Image Library v12.0.15 "
_TILE_MULTIPLE = 16  # TIFF tiles are multiples of 16; also the JPEG 4:2:0 MCU
_PYRAMID_INDEX_TOLERANCE = 0.01  # opentile's limit on |log2(downsample) - integer|
_THUMBNAIL_MAX_SIDE = 1024
_LABEL_SIZE = (320, 384)  # (width, height), portrait like Aperio labels
_MACRO_SIZE = (768, 256)  # (width, height): a 75 x 25 mm slide photographed whole
_TIFF_COMPRESSIONS = {"jpeg": "jpeg", "lzw": "lzw", "deflate": "zlib", "none": None}

_BACKGROUND_RGB = np.array([243, 241, 245], np.float32)  # unstained glass in bright field
_EOSIN_LIGHT_RGB = np.array([238, 188, 214], np.float32)  # pale stroma
_EOSIN_DENSE_RGB = np.array([204, 104, 166], np.float32)  # dense cytoplasm / collagen
_HEMATOXYLIN_RGB = np.array([70, 42, 118], np.float32)  # nuclei
_LAYOUT_LONG_SIDE = 512  # grid on which the tissue outline is drawn, whatever the image size
_NUCLEUS_CELL = 16  # pixels per nucleus slot (about 8 um at 0.5 um/pixel)
_BAND_ROWS = 256  # rows rendered at a time; a multiple of _NUCLEUS_CELL


@dataclass(frozen=True)
class SyntheticSlide:
    """What was written: the file and the pyramid a reader should find in it."""

    path: Path
    format: str  # "svs" or "tiff"
    level_sizes: list[tuple[int, int]]  # (width, height) per pyramid level, level 0 first
    tile_size: int
    mpp: float  # microns per pixel at level 0
    has_label: bool
    has_macro: bool


# --------------------------------------------------------------------------------------------
# Tissue content


def tissue_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An H&E-like RGB image (uint8, shape (height, width, 3)), deterministic for ``seed``.

    Three to five irregular pink tissue pieces (together 25-40 % of the area, kept off the
    image border, with a few round vacuoles), fibrous eosin texture and darker purple nuclei
    whose density varies across the tissue, on a near-white (~243) background. The outline is
    drawn on a grid fixed relative to the image, so a seed gives the same layout at any size.
    Everything random is drawn at coarse resolution first; full-size pixels are then rendered
    in bands of rows, which keeps memory traffic (and so run time) low.
    """
    _check_image_size(width, height)
    plan = _plan_tissue(width, height, seed)
    rgb = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, _BAND_ROWS):
        bottom = min(height, top + _BAND_ROWS)
        rgb[top:bottom] = _render_band(plan, seed, top, bottom)
    return rgb


@dataclass(frozen=True)
class _TissuePlan:
    """The coarse, random part of a tissue image, from which any band of rows is rendered."""

    width: int
    height: int
    layout: Image.Image  # tissue field on the layout grid (PIL mode "F")
    threshold: float  # layout value at the tissue edge
    stain: Image.Image  # eosin density on the fibre grid (PIL mode "F")
    stamps: np.ndarray  # (count, cell, cell) nucleus opacities; stamp 0 is empty
    chosen: np.ndarray  # (rows, columns) stamp index per nucleus slot


def _plan_tissue(width: int, height: int, seed: int) -> _TissuePlan:
    """Draw the layout, stain and nuclei at coarse resolution, each from its own seeded stream."""
    layout, threshold = _tissue_layout(width, height, seed)
    stamps, chosen = _nuclei_plan(width, height, seed)
    return _TissuePlan(width, height, layout, threshold, _stain_density(width, height, seed), stamps, chosen)


def _render_band(plan: _TissuePlan, seed: int, top: int, bottom: int) -> np.ndarray:
    """Full-resolution RGB rows ``top:bottom``."""
    tissue = _resize_rows(plan.layout, plan.width, plan.height, top, bottom)
    tissue -= plan.threshold
    tissue *= 1.0 / (0.03 * plan.threshold)  # edge ramp a few pixels wide
    tissue += 0.5
    np.clip(tissue, 0.0, 1.0, out=tissue)
    stain = _resize_rows(plan.stain, plan.width, plan.height, top, bottom)
    nuclei = _nuclei_rows(plan.stamps, plan.chosen, plan.width, top, bottom)
    nuclei *= tissue
    grain = np.random.default_rng([seed, 4, top]).random((bottom - top, plan.width), dtype=np.float32)
    grain -= 0.5
    grain *= 6.0
    return _compose_rgb(tissue, stain, nuclei, grain)


def _check_image_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def _layout_grid_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the coarse layout grid: the image's aspect ratio, 512 on the long side."""
    scale = _LAYOUT_LONG_SIDE / max(width, height)
    return max(16, round(width * scale)), max(16, round(height * scale))


def _float_image(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))


def _resize_float(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a 2-D float array (PIL mode "F")."""
    resized = _float_image(values).resize((width, height), Image.Resampling.BILINEAR)
    return np.array(resized, dtype=np.float32)


def _resize_rows(image: Image.Image, width: int, height: int, top: int, bottom: int) -> np.ndarray:
    """Rows ``top:bottom`` of ``image`` bilinearly resized to width x height (same pixels as a
    full resize, since PIL samples the box at the same centres)."""
    scale = image.height / height
    box = (0.0, top * scale, float(image.width), bottom * scale)
    resized = image.resize((width, bottom - top), Image.Resampling.BILINEAR, box=box)
    return np.array(resized, dtype=np.float32)


def _value_noise(rng: np.random.Generator, cells: tuple[int, int], width: int, height: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random (rows, columns) grid, interpolated to width x height."""
    rows, columns = cells
    return _resize_float(rng.random((rows + 1, columns + 1), dtype=np.float32), width, height)


def _fractal_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Sum of four octaves of value noise, roughly in [-1, 1]."""
    total = np.zeros((height, width), np.float32)
    weights = 0.0
    for octave, cells in enumerate((4, 8, 16, 32)):
        weight = 0.5**octave
        total += weight * (2.0 * _value_noise(rng, (cells, cells), width, height) - 1.0)
        weights += weight
    return total / weights


def _spread_points(
    rng: np.random.Generator, count: int, extent: tuple[float, float], min_distance: float
) -> list[tuple[float, float]]:
    """Up to ``count`` points in the middle 60 % of ``extent``, at least ``min_distance`` apart."""
    points: list[tuple[float, float]] = []
    for _ in range(200):
        x, y = rng.uniform(0.2, 0.8) * extent[0], rng.uniform(0.2, 0.8) * extent[1]
        if all(math.hypot(x - px, y - py) >= min_distance for px, py in points):
            points.append((x, y))
            if len(points) == count:
                break
    return points


def _ellipse_bump(
    xs: np.ndarray, ys: np.ndarray, centre: tuple[float, float], sigmas: tuple[float, float], angle: float
) -> np.ndarray:
    """A rotated anisotropic Gaussian, 1 at ``centre``."""
    dx, dy = xs - centre[0], ys - centre[1]
    along = (dx * math.cos(angle) + dy * math.sin(angle)) / sigmas[0]
    across = (dy * math.cos(angle) - dx * math.sin(angle)) / sigmas[1]
    return np.exp(-0.5 * (along * along + across * across))


def _tissue_field(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """On the layout grid: the max of a few elliptic pieces, warped and roughened, with vacuoles.

    Coordinates are in units of the long side (so pieces keep their shape on any aspect ratio)
    and displaced by smooth noise, which turns the ellipses' outlines into wavy, lobulated ones.
    """
    long_side = max(width, height)
    extent = (width / long_side, height / long_side)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs = (xs + 0.5) / long_side + 0.05 * _fractal_noise(rng, width, height)
    ys = (ys + 0.5) / long_side + 0.05 * _fractal_noise(rng, width, height)
    field = np.zeros((height, width), np.float32)
    centres = _spread_points(rng, int(rng.integers(3, 6)), extent, min_distance=0.2 * min(extent) + 0.1)
    for centre in centres:
        major = rng.uniform(0.05, 0.1)
        sigmas = (major, major * rng.uniform(0.45, 0.9))
        bump = _ellipse_bump(xs, ys, centre, sigmas, rng.uniform(0.0, math.pi))
        np.maximum(field, rng.uniform(0.8, 1.0) * bump, out=field)
        for _ in range(int(rng.integers(0, 3))):
            hole = (centre[0] + rng.normal(0, 0.5) * major, centre[1] + rng.normal(0, 0.5) * major)
            radius = rng.uniform(0.01, 0.02)
            field *= 1.0 - 0.9 * _ellipse_bump(xs, ys, hole, (radius, radius), 0.0)
    field += 0.12 * _fractal_noise(rng, width, height)
    return field * _border_taper(width, height)


def _border_taper(width: int, height: int, margin: float = 0.1) -> np.ndarray:
    """1 inside, falling smoothly to 0 at the image edge over ``margin`` of the short side."""
    ramp_length = margin * min(width, height)
    ramp_x = np.minimum(np.arange(width) + 0.5, width - np.arange(width) - 0.5) / ramp_length
    ramp_y = np.minimum(np.arange(height) + 0.5, height - np.arange(height) - 0.5) / ramp_length
    ramp = np.clip(np.minimum(ramp_y[:, None], ramp_x[None, :]), 0.0, 1.0).astype(np.float32)
    return ramp * ramp * (3.0 - 2.0 * ramp)


def _tissue_layout(width: int, height: int, seed: int) -> tuple[Image.Image, float]:
    """The tissue field on the layout grid and the threshold that makes its tissue edge.

    The threshold is the quantile that leaves a seed-chosen 25-40 % of the area as tissue, so
    the fraction holds whatever the pieces look like; it is applied after upsampling the
    field, which keeps the outline smooth at any size.
    """
    rng = np.random.default_rng([seed, 1])
    field = _tissue_field(rng, *_layout_grid_size(width, height))
    tissue_fraction = rng.uniform(0.25, 0.40)
    threshold = max(float(np.quantile(field, 1.0 - tissue_fraction)), 1e-3)
    return _float_image(field), threshold


def _stain_density(width: int, height: int, seed: int) -> Image.Image:
    """Eosin density in [0, 1] on the fibre grid (a third of the height, a twelfth of the
    width): patchy staining plus fine fibres, which upsampling streaks horizontally."""
    rng = np.random.default_rng([seed, 2])
    fibre_columns, fibre_rows = max(2, width // 12), max(2, height // 3)
    density = _value_noise(rng, (max(1, height // 64), max(1, width // 64)), fibre_columns, fibre_rows)
    density *= 0.6
    density += 0.4 * rng.random((fibre_rows, fibre_columns), dtype=np.float32)
    return _float_image(density)


def _nucleus_stamps(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` 16x16 opacity stamps, each one soft-edged jittered ellipse; stamp 0 is empty."""
    cell = _NUCLEUS_CELL
    shape = (count, 1, 1)
    radius_major = rng.uniform(2.5, 4.5, shape)
    radius_minor = radius_major * rng.uniform(0.55, 1.0, shape)
    angle = rng.uniform(0.0, math.pi, shape)
    centre_y, centre_x = rng.uniform(4.5, cell - 4.5, shape), rng.uniform(4.5, cell - 4.5, shape)
    local = np.arange(cell) + 0.5
    dy, dx = local[None, :, None] - centre_y, local[None, None, :] - centre_x
    along = (dx * np.cos(angle) + dy * np.sin(angle)) / radius_major
    across = (dy * np.cos(angle) - dx * np.sin(angle)) / radius_minor
    stamps = np.clip(3.0 * (1.0 - along * along - across * across), 0.0, 1.0)  # edge ~1/3 radius
    stamps *= rng.uniform(0.6, 0.95, shape)
    stamps[0] = 0.0
    return stamps.astype(np.float32)


def _nuclei_plan(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Nucleus stamps and the stamp chosen for each 16-pixel slot (0: no nucleus).

    Cellularity (the chance a slot holds a nucleus) varies smoothly from 25 % to 85 %, so some
    regions look denser and more purple than others.
    """
    rng = np.random.default_rng([seed, 3])
    rows, columns = -(-height // _NUCLEUS_CELL), -(-width // _NUCLEUS_CELL)
    stamps = _nucleus_stamps(rng, 256)
    cellularity = 0.25 + 0.6 * _value_noise(rng, (6, 6), columns, rows)
    chosen = rng.integers(1, len(stamps), (rows, columns))
    chosen[rng.random((rows, columns), dtype=np.float32) >= cellularity] = 0
    return stamps, chosen


def _nuclei_rows(stamps: np.ndarray, chosen: np.ndarray, width: int, top: int, bottom: int) -> np.ndarray:
    """Nucleus opacity for image rows ``top:bottom`` (``top`` a multiple of the slot size)."""
    cell = _NUCLEUS_CELL
    slots = stamps[chosen[top // cell : -(-bottom // cell)]]  # (rows, columns, cell, cell)
    rows, columns = slots.shape[:2]
    return slots.transpose(0, 2, 1, 3).reshape(rows * cell, columns * cell)[: bottom - top, :width]


def _compose_rgb(tissue: np.ndarray, stain: np.ndarray, nuclei: np.ndarray, grain: np.ndarray) -> np.ndarray:
    """Mix background, eosin and hematoxylin colours channel by channel into uint8 RGB."""
    height, width = tissue.shape
    rgb = np.empty((height, width, 3), np.uint8)
    value = np.empty((height, width), np.float32)
    for channel in range(3):
        background = _BACKGROUND_RGB[channel]
        light, dense = _EOSIN_LIGHT_RGB[channel], _EOSIN_DENSE_RGB[channel]
        np.multiply(stain, dense - light, out=value)
        value += light - background
        value *= tissue
        value += background
        value += nuclei * (_HEMATOXYLIN_RGB[channel] - value)
        value += grain
        value += 0.5
        np.clip(value, 0.0, 255.0, out=value)
        rgb[..., channel] = value
    return rgb


# --------------------------------------------------------------------------------------------
# Pyramid helpers


def _level_sizes(width: int, height: int, levels: int, downsample: int) -> list[tuple[int, int]]:
    """(width, height) per level, each the previous one floor-divided by ``downsample``."""
    if levels < 1:
        raise ValueError(f"levels must be at least 1, got {levels}")
    sizes = [(width, height)]
    for _ in range(levels - 1):
        previous_width, previous_height = sizes[-1]
        sizes.append((max(1, previous_width // downsample), max(1, previous_height // downsample)))
    return sizes


def _check_tile_size(tile_size: int) -> None:
    if tile_size < _TILE_MULTIPLE or tile_size % _TILE_MULTIPLE:
        raise ValueError(f"tile_size must be a positive multiple of {_TILE_MULTIPLE}, got {tile_size}")


def _check_power_of_two_scales(level_sizes: list[tuple[int, int]]) -> None:
    """opentile rejects levels whose width ratio to level 0 is not close to a power of two."""
    base_width = level_sizes[0][0]
    for index, (width, _) in enumerate(level_sizes):
        scale = math.log2(base_width / width)
        if abs(scale - round(scale)) > _PYRAMID_INDEX_TOLERANCE:
            raise ValueError(
                f"level {index} ({width} px wide) is {base_width / width:.3f}x smaller than level 0, "
                "too far from a power of two for opentile: use fewer levels or a width divisible "
                "by the total downsample"
            )


def _resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-averaging (box filter) resize of a uint8 RGB array."""
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BOX))


def _pyramid(base: np.ndarray, level_sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Level 0 followed by each lower level, every one box-filtered from the one before."""
    levels = [base]
    for width, height in level_sizes[1:]:
        levels.append(_resize_rgb(levels[-1], width, height))
    return levels


def _thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """At least 8x smaller than level 0 and at most 1024 pixels on the long side."""
    factor = max(8, math.ceil(max(width, height) / _THUMBNAIL_MAX_SIDE))
    return max(1, width // factor), max(1, height // factor)


# --------------------------------------------------------------------------------------------
# Associated images


def _label_image(seed: int, title: str) -> np.ndarray:
    """A slide label: a barcode and a few lines of large text on a white sticker."""
    width, height = _LABEL_SIZE
    rng = np.random.default_rng([seed, 5])
    label = np.full((height, width, 3), 250, np.uint8)
    bar_widths = rng.integers(1, 4, 64) * 3
    bars = np.repeat(np.arange(bar_widths.size) % 2 == 0, bar_widths)[: width - 40]
    label[24:110, 20 : 20 + bars.size][:, bars] = 20
    text = Image.new("L", (width // 3, (height - 130) // 3), 255)
    draw = ImageDraw.Draw(text)
    font = ImageFont.load_default()
    for line_index, line in enumerate(("RADPATH", title[:16], f"SEED {seed}", "H&E")):
        draw.text((4, 4 + 20 * line_index), line, fill=0, font=font)
    text_rgb = np.asarray(text.resize((text.width * 3, text.height * 3), Image.Resampling.NEAREST))
    label[130 : 130 + text_rgb.shape[0], : text_rgb.shape[1]] = text_rgb[..., None]
    return label


def _macro_image(base: np.ndarray, seed: int, title: str) -> np.ndarray:
    """An overview photo of the whole glass slide: label at the left end, the tissue beside it.

    The scanned area is composited as light transmitted through the stained tissue (glass
    colour times the slide's transmission), so it blends into the glass like a real photo.
    """
    width, height = _MACRO_SIZE
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    glass = (np.array([214, 218, 222], np.float32) - 10.0 * rows) * np.ones((1, width, 1), np.float32)
    glass[:3], glass[-3:], glass[:, :3], glass[:, -3:] = 90.0, 90.0, 90.0, 90.0  # slide edges
    label_width = height - 16
    label = _resize_rgb(_label_image(seed, title), label_width - 8, height - 16)
    glass[8 : height - 8, 8:label_width] = label
    area_left, area_width, area_height = label_width + 16, width - label_width - 28, height - 24
    scale = min(area_width / base.shape[1], area_height / base.shape[0])
    scan_width, scan_height = max(1, int(base.shape[1] * scale)), max(1, int(base.shape[0] * scale))
    scan = _resize_rgb(base, scan_width, scan_height).astype(np.float32) / _BACKGROUND_RGB
    top = (height - scan_height) // 2
    left = area_left + (area_width - scan_width) // 2
    glass[top : top + scan_height, left : left + scan_width] *= np.minimum(scan, 1.0)
    return np.clip(glass + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Aperio SVS


def _svs_base_description(
    level_sizes: list[tuple[int, int]], tile_size: int, mpp: float, quality: int, title: str
) -> str:
    """Level-0 ImageDescription in Aperio's layout: header line, then ``|key = value`` fields."""
    width, height = level_sizes[0]
    magnification = max(1, round(10.0 / mpp))
    fields = {
        "AppMag": magnification,
        "StripeWidth": 1000,
        "ScanScope ID": "SS-SYNTHETIC",
        "Filename": title,
        "Date": "01/15/24",
        "Time": "10:30:00",
        "Time Zone": "GMT+00:00",
        "User": "radpath-synthetic",
        "MPP": format(mpp, ".6g"),
        "Left": "20.000000",
        "Top": "8.000000",
        "ImageID": "1",
    }
    header = (
        f"{_APERIO_HEADER}\r\n{width}x{height} [0,0 {width}x{height}] ({tile_size}x{tile_size}) "
        f"JPEG/YCC Q={quality}"
    )
    return header + "".join(f"|{key} = {value}" for key, value in fields.items())


def _svs_level_description(
    base_size: tuple[int, int], size: tuple[int, int], tile_size: int, quality: int
) -> str:
    """ImageDescription of a lower level: the base geometry ``-> size``."""
    (base_width, base_height), (width, height) = base_size, size
    return (
        f"{_APERIO_HEADER}\r\n{base_width}x{base_height} [0,0 {base_width}x{base_height}] "
        f"({tile_size}x{tile_size}) -> {width}x{height} JPEG/YCC Q={quality}"
    )


def _svs_thumbnail_description(base_size: tuple[int, int], rgb: np.ndarray) -> str:
    """ImageDescription of the thumbnail, as Aperio writes it (LF, ``WxH -> wxh - ``)."""
    return f"{_APERIO_HEADER}\n{base_size[0]}x{base_size[1]} -> {rgb.shape[1]}x{rgb.shape[0]} - "


def _associated_description(kind: str, rgb: np.ndarray) -> str:
    """ImageDescription of the label or macro: second line ``label WxH`` / ``macro WxH``.

    A bare LF, as in real files: OpenSlide names the image after the first word of the second
    line when splitting on any of CR and LF, so a CRLF would leave it an empty name and drop it.
    """
    return f"{_APERIO_HEADER}\n{kind} {rgb.shape[1]}x{rgb.shape[0]}"


def _write_page(tiff: tifffile.TiffWriter, rgb: np.ndarray, description: str, **options) -> None:
    """One RGB page with only the tags a scanner would write (no tifffile JSON metadata)."""
    tiff.write(rgb, photometric="rgb", description=description, metadata=None, software=False, **options)


def _jpeg_options(quality: int) -> dict:
    """JPEG in YCbCr 4:2:0, each segment a complete JPEG stream (no JPEGTables tag)."""
    return {"compression": "jpeg", "compressionargs": {"level": quality}, "subsampling": (2, 2)}


def write_svs(
    path: str | Path,
    *,
    width: int = 2048,
    height: int = 1536,
    tile_size: int = 256,
    levels: int = 3,
    mpp: float = 0.5,
    label: bool = True,
    macro: bool = True,
    thumbnail: bool = True,
    jpeg_quality: int = 90,
    seed: int = 0,
) -> SyntheticSlide:
    """Write an Aperio SVS of ``tissue_image(width, height, seed)`` and describe it.

    Page order as Aperio writes it and tifffile/opentile expect it: level 0 (tiled JPEG),
    thumbnail (one JPEG strip), levels 1.. (tiled JPEG, each 4x smaller), label (LZW strips,
    NewSubfileType 1), macro (one JPEG strip, NewSubfileType 9). tifffile takes page 1 as the
    thumbnail whatever it holds, so ``thumbnail=False`` is only allowed for a single-page file.
    """
    path = Path(path)
    _check_tile_size(tile_size)
    level_sizes = _level_sizes(width, height, levels, _SVS_LEVEL_DOWNSAMPLE)
    _check_power_of_two_scales(level_sizes)
    if not thumbnail and (levels > 1 or label or macro):
        raise ValueError(
            "an SVS without thumbnail can only hold level 0: tifffile (and so opentile and "
            "tiffslide) reads page 1 as the thumbnail whatever it is"
        )
    base = tissue_image(width, height, seed)
    pyramid = _pyramid(base, level_sizes)
    title = path.stem
    jpeg = _jpeg_options(jpeg_quality)
    tiled = {"tile": (tile_size, tile_size), "subfiletype": 0, **jpeg}
    with tifffile.TiffWriter(path, bigtiff=False) as tiff:
        description = _svs_base_description(level_sizes, tile_size, mpp, jpeg_quality, title)
        _write_page(tiff, base, description, **tiled)
        if thumbnail:
            small = _resize_rgb(base, *_thumbnail_size(width, height))
            description = _svs_thumbnail_description(level_sizes[0], small)
            _write_page(tiff, small, description, rowsperstrip=small.shape[0], subfiletype=0, **jpeg)
        for size, level in zip(level_sizes[1:], pyramid[1:], strict=True):
            description = _svs_level_description(level_sizes[0], size, tile_size, jpeg_quality)
            _write_page(tiff, level, description, **tiled)
        if label:
            label_rgb = _label_image(seed, title)
            _write_page(
                tiff, label_rgb, _associated_description("label", label_rgb), compression="lzw", subfiletype=1
            )
        if macro:
            macro_rgb = _macro_image(base, seed, title)
            _write_page(
                tiff,
                macro_rgb,
                _associated_description("macro", macro_rgb),
                rowsperstrip=macro_rgb.shape[0],
                subfiletype=9,
                **jpeg,
            )
    return SyntheticSlide(path, "svs", level_sizes, tile_size, mpp, label, macro)


# --------------------------------------------------------------------------------------------
# Generic pyramidal TIFF


def write_pyramidal_tiff(
    path: str | Path,
    *,
    width: int = 2048,
    height: int = 1536,
    tile_size: int = 256,
    levels: int = 3,
    mpp: float = 0.5,
    compression: str = "jpeg",
    seed: int = 0,
) -> SyntheticSlide:
    """Write a generic tiled pyramidal TIFF of ``tissue_image(width, height, seed)``.

    Levels are successive pages (level 0 first, lower levels NewSubfileType 1, each 2x smaller),
    which both tifffile/tiffslide and OpenSlide's generic-tiff reader take as one pyramid; SubIFDs
    would be lost on OpenSlide. Each page carries X/YResolution in pixels per centimetre, from
    which the readers derive ``mpp``. ``compression``: "jpeg" (YCbCr 4:2:0), "lzw", "deflate"
    or "none".
    """
    path = Path(path)
    _check_tile_size(tile_size)
    if compression not in _TIFF_COMPRESSIONS:
        raise ValueError(f"compression must be one of {sorted(_TIFF_COMPRESSIONS)}, got {compression!r}")
    level_sizes = _level_sizes(width, height, levels, _TIFF_LEVEL_DOWNSAMPLE)
    pyramid = _pyramid(tissue_image(width, height, seed), level_sizes)
    if compression == "jpeg":
        codec = _jpeg_options(90)
    else:
        codec = {"compression": _TIFF_COMPRESSIONS[compression]}
    with tifffile.TiffWriter(path, bigtiff=False) as tiff:
        for index, level in enumerate(pyramid):
            pixels_per_cm_x = 1e4 / (mpp * width / level.shape[1])
            pixels_per_cm_y = 1e4 / (mpp * height / level.shape[0])
            tiff.write(
                level,
                photometric="rgb",
                tile=(tile_size, tile_size),
                subfiletype=0 if index == 0 else 1,
                resolution=(pixels_per_cm_x, pixels_per_cm_y),
                resolutionunit="CENTIMETER",
                metadata=None,
                software="radpath.synthetic",
                **codec,
            )
    return SyntheticSlide(path, "tiff", level_sizes, tile_size, mpp, False, False)
