"""Synthetic whole-slide images: tissue content, vendor layout, and conversion by wsidicomizer."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from opentile import OpenTile
from PIL import Image
from pydicom.encaps import generate_frames
from tiffslide import TiffSlide
from wsidicom import WsiDicom
from wsidicomizer import WsiDicomizer
from wsidicomizer.sources import OpenTileSource, TiffSlideSource

from radpath.synthetic.slides import SyntheticSlide, tissue_image, write_pyramidal_tiff, write_svs

WIDTH, HEIGHT, SEED = 2048, 1536, 7


def tissue_mask(rgb: np.ndarray) -> np.ndarray:
    """Stained pixels: clearly darker than the ~243 glass background."""
    return rgb.astype(np.int16).sum(axis=2) < 3 * 225


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks."""
    return float((a & b).sum() / (a | b).sum())


def decode_jpeg(frame: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(frame)).convert("RGB"))


def dicom_volume_files(folder: Path) -> list[pydicom.Dataset]:
    """The pyramid-level instances of a converted slide, largest first."""
    datasets = [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]
    volumes = [ds for ds in datasets if "VOLUME" in ds.ImageType]
    return sorted(volumes, key=lambda ds: -int(ds.TotalPixelMatrixColumns))


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return tissue_image(WIDTH, HEIGHT, SEED)


@pytest.fixture(scope="module")
def svs(tmp_path_factory) -> SyntheticSlide:
    return write_svs(tmp_path_factory.mktemp("svs") / "synthetic.svs", width=WIDTH, height=HEIGHT, seed=SEED)


@pytest.fixture(scope="module")
def tiff(tmp_path_factory) -> SyntheticSlide:
    path = tmp_path_factory.mktemp("tiff") / "synthetic.tiff"
    return write_pyramidal_tiff(path, width=WIDTH, height=HEIGHT, seed=SEED)


@pytest.fixture(scope="module")
def svs_dicom(svs, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("svs-dicom")
    WsiDicomizer.convert(svs.path, output_path=output, include_label=True)
    return output


@pytest.fixture(scope="module")
def tiff_dicom(tiff, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("tiff-dicom")
    WsiDicomizer.convert(tiff.path, output_path=output, include_label=True)
    return output


# ---------------------------------------------------------------------------------------------
# tissue_image


def test_tissue_image_is_deterministic_rgb_and_seed_dependent():
    first = tissue_image(640, 480, seed=3)
    assert first.dtype == np.uint8 and first.shape == (480, 640, 3)
    assert np.array_equal(first, tissue_image(640, 480, seed=3))
    other = tissue_image(640, 480, seed=4)
    assert overlap(tissue_mask(first), tissue_mask(other)) < 0.6  # another seed, another layout


@pytest.mark.parametrize("size", [(1024, 768), (600, 900), (333, 211)])
def test_tissue_covers_a_fifth_to_a_half_and_stays_off_the_border(size):
    width, height = size
    for seed in range(6):
        rgb = tissue_image(width, height, seed)
        mask = tissue_mask(rgb)
        assert 0.2 <= mask.mean() <= 0.5, (seed, mask.mean())
        margin = max(2, min(width, height) // 50)
        strips = (mask[:margin], mask[-margin:], mask[:, :margin], mask[:, -margin:])
        border = np.concatenate([strip.ravel() for strip in strips])
        assert border.mean() < 0.01, seed
        background = rgb[~mask].astype(np.float32).mean(axis=0)
        assert np.all((background > 232) & (background < 250)), background


def test_tissue_is_non_uniform_pink_with_purple_nuclei():
    rgb = tissue_image(1024, 768, seed=1)
    mask = tissue_mask(rgb)
    blocks = mask.reshape(8, 96, 8, 128).mean(axis=(1, 3))
    assert (blocks < 0.02).sum() >= 8 and (blocks > 0.98).sum() >= 4  # glass and solid tissue regions
    assert blocks.std() > 0.3
    tissue = rgb[mask].astype(np.int16)
    pink = tissue[:, 0] > tissue[:, 1] + 30  # red over green: eosin
    nuclei = (tissue.sum(axis=1) < 3 * 150) & (tissue[:, 2] > tissue[:, 1])  # dark, blue over green
    assert pink.mean() > 0.7
    assert 0.02 < nuclei.mean() < 0.3


def test_tissue_layout_does_not_depend_on_image_size():
    large = tissue_mask(tissue_image(2048, 1536, seed=5))
    small = tissue_mask(tissue_image(512, 384, seed=5))
    large_at_small_size = large.reshape(384, 4, 512, 4).mean(axis=(1, 3)) > 0.5
    assert overlap(large_at_small_size, small) > 0.9


def test_tissue_image_is_fast():
    started = time.perf_counter()
    tissue_image(4096, 4096, seed=0)
    assert time.perf_counter() - started < 2.0


# ---------------------------------------------------------------------------------------------
# SVS


def test_write_svs_describes_what_it_wrote(svs):
    assert svs.format == "svs" and svs.path.is_file()
    assert svs.level_sizes == [(2048, 1536), (512, 384), (128, 96)]  # 4x per level, like Aperio
    assert (svs.tile_size, svs.mpp, svs.has_label, svs.has_macro) == (256, 0.5, True, True)


def test_svs_pages_are_in_aperio_order(svs):
    with tifffile.TiffFile(svs.path) as tif:
        assert tif.is_svs
        assert [series.name for series in tif.series] == ["Baseline", "Thumbnail", "Label", "Macro"]
        pages = list(tif.pages)
        level0, thumbnail, level1, level2, label, macro = pages
        for page in pages:
            assert page.description.startswith("Aperio ")
        assert [page.is_tiled for page in pages] == [True, False, True, True, False, False]
        assert [page.subfiletype for page in pages] == [0, 0, 0, 0, 1, 9]
        for page in (level0, level1, level2, thumbnail, macro):
            assert page.compression == tifffile.COMPRESSION.JPEG
            assert page.photometric == tifffile.PHOTOMETRIC.YCBCR
            assert page.jpegtables is None  # every tile a complete JPEG stream
        assert label.compression == tifffile.COMPRESSION.LZW
        assert "|MPP = 0.5|" in level0.description and "|AppMag = 20|" in level0.description


def test_svs_associated_images_are_named_the_way_openslide_names_them(svs):
    """OpenSlide splits the description on any of CR/LF and takes line 1's first word."""
    with tifffile.TiffFile(svs.path) as tif:
        names = [re.split(r"[\r\n]", page.description)[1].split(" ")[0] for page in list(tif.pages)[4:]]
    assert names == ["label", "macro"]


def test_opentile_reads_svs_with_level0_tiles_unchanged(svs, reference):
    with tifffile.TiffFile(svs.path) as tif:
        page = tif.pages[0]
        with open(svs.path, "rb") as file:
            file.seek(page.dataoffsets[0])
            raw_tile = file.read(page.databytecounts[0])
    with OpenTile.open(svs.path) as tiler:
        assert tiler.format.name == "SVS"
        assert [level.image_size.to_tuple() for level in tiler.levels] == svs.level_sizes
        assert [level.pyramid_index for level in tiler.levels] == [0, 2, 4]
        assert tiler.metadata.mpp == 0.5 and tiler.metadata.magnification == 20
        assert (len(tiler.thumbnails), len(tiler.labels), len(tiler.overviews)) == (1, 1, 1)
        level0 = tiler.get_level(0)
        assert level0.get_tile((0, 0)) == raw_tile
        assert mean_abs_diff(decode_jpeg(level0.get_tile((0, 0))), reference[:256, :256]) < 6
        assert mean_abs_diff(decode_jpeg(level0.get_tile((3, 2))), reference[512:768, 768:1024]) < 6
        macro = decode_jpeg(tiler.overviews[0].get_tile((0, 0)))
        assert macro.shape[1] > 2 * macro.shape[0]  # a whole slide, landscape


def test_tiffslide_reads_svs_like_a_real_aperio_file(svs, reference):
    assert TiffSlide.detect_format(svs.path) == "aperio"
    slide = TiffSlide(svs.path)
    assert slide.properties["tiffslide.vendor"] == "aperio"
    assert slide.properties["tiffslide.mpp-x"] == 0.5
    assert [tuple(size) for size in slide.level_dimensions] == svs.level_sizes
    assert set(slide.associated_images) == {"thumbnail", "label", "macro"}
    region = slide.read_region((0, 0), 0, (WIDTH, HEIGHT), as_array=True)
    assert mean_abs_diff(region, reference) < 6


def test_wsidicomizer_reads_svs_through_opentile(svs, tiff):
    # wsidicomizer tries OpenTile first, then TiffSlide
    assert OpenTileSource.is_supported(svs.path)
    assert not OpenTileSource.is_supported(tiff.path) and TiffSlideSource.is_supported(tiff.path)


def test_svs_converts_to_dicom_without_re_encoding_level0(svs, svs_dicom):
    with WsiDicom.open(svs_dicom) as wsi:
        assert len(wsi.levels) == 3
        assert wsi.levels[0].size.to_tuple() == svs.level_sizes[0]
        assert [level.size.to_tuple() for level in wsi.levels] == svs.level_sizes
        assert wsi.labels is not None and wsi.overviews is not None
        encoded = wsi.read_encoded_tile(0, (0, 0))
    with OpenTile.open(svs.path) as tiler:
        native_tile = tiler.get_level(0).get_tile((0, 0))
    level0 = dicom_volume_files(svs_dicom)[0]
    assert level0.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    first_frame = next(generate_frames(level0.PixelData, number_of_frames=int(level0.NumberOfFrames)))
    assert first_frame == native_tile
    assert encoded == native_tile


# ---------------------------------------------------------------------------------------------
# Generic pyramidal TIFF


def test_write_pyramidal_tiff_describes_what_it_wrote(tiff):
    assert tiff.format == "tiff" and tiff.path.is_file()
    assert tiff.level_sizes == [(2048, 1536), (1024, 768), (512, 384)]  # 2x per level
    assert (tiff.tile_size, tiff.mpp, tiff.has_label, tiff.has_macro) == (256, 0.5, False, False)


def test_pyramidal_tiff_levels_are_successive_reduced_pages(tiff):
    with tifffile.TiffFile(tiff.path) as tif:
        pages = list(tif.pages)
        assert [page.is_tiled for page in pages] == [True, True, True]
        assert [page.subfiletype for page in pages] == [0, 1, 1]  # OpenSlide needs the reduced flag
        assert all(page.compression == tifffile.COMPRESSION.JPEG for page in pages)
        assert not any(page.subifds for page in pages)


def test_tiffslide_reads_pyramidal_tiff_as_one_multilevel_slide(tiff, reference):
    assert TiffSlide.detect_format(tiff.path) == "generic-tiff"
    slide = TiffSlide(tiff.path)
    assert slide.properties["tiffslide.mpp-x"] == pytest.approx(0.5)
    assert slide.properties["tiffslide.mpp-y"] == pytest.approx(0.5)
    assert [tuple(size) for size in slide.level_dimensions] == tiff.level_sizes
    region = slide.read_region((0, 0), 0, (WIDTH, HEIGHT), as_array=True)
    assert mean_abs_diff(region, reference) < 6


def test_pyramidal_tiff_converts_to_dicom(tiff, tiff_dicom, reference):
    with WsiDicom.open(tiff_dicom) as wsi:
        assert len(wsi.levels) == 3
        assert wsi.levels[0].size.to_tuple() == tiff.level_sizes[0]
        assert [level.size.to_tuple() for level in wsi.levels] == tiff.level_sizes
        assert wsi.mpp.width == pytest.approx(0.5)
        region = np.asarray(wsi.read_region((0, 0), 0, (WIDTH, HEIGHT)).convert("RGB"))
    assert mean_abs_diff(region, reference) < 6  # decoded and re-encoded once more


@pytest.mark.parametrize("compression", ["lzw", "deflate", "none"])
def test_pyramidal_tiff_other_compressions_read_back_exactly(tmp_path, compression):
    path = tmp_path / "s.tiff"
    slide = write_pyramidal_tiff(path, width=512, height=384, levels=2, compression=compression)
    region = TiffSlide(slide.path).read_region((0, 0), 0, (512, 384), as_array=True)
    assert np.array_equal(region, tissue_image(512, 384))


# ---------------------------------------------------------------------------------------------
# Both formats through OpenSlide, where it is installed


@pytest.mark.parametrize("kind", ["svs", "tiff"])
def test_openslide_reads_both_formats(kind, svs, tiff, reference):
    openslide = pytest.importorskip("openslide", reason="openslide-python / openslide-bin not installed")
    slide = {"svs": svs, "tiff": tiff}[kind]
    with openslide.OpenSlide(str(slide.path)) as opened:
        assert [tuple(size) for size in opened.level_dimensions] == slide.level_sizes
        assert float(opened.properties[openslide.PROPERTY_NAME_MPP_X]) == pytest.approx(0.5)
        if kind == "svs":
            assert set(opened.associated_images) == {"thumbnail", "label", "macro"}
        region = np.asarray(opened.read_region((0, 0), 0, (WIDTH, HEIGHT)).convert("RGB"))
    assert mean_abs_diff(region, reference) < 6


# ---------------------------------------------------------------------------------------------
# Arguments


def test_svs_without_thumbnail_is_only_allowed_for_a_single_page(tmp_path):
    with pytest.raises(ValueError, match="thumbnail"):
        write_svs(tmp_path / "a.svs", thumbnail=False)
    slide = write_svs(
        tmp_path / "b.svs", width=512, height=384, levels=1, thumbnail=False, label=False, macro=False
    )
    with OpenTile.open(slide.path) as tiler:
        assert len(tiler.levels) == 1 and not tiler.thumbnails


def test_invalid_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="multiple of 16"):
        write_svs(tmp_path / "a.svs", tile_size=100)
    with pytest.raises(ValueError, match="power of two"):
        write_svs(tmp_path / "b.svs", width=2047, levels=3)  # 2047 -> 511 -> 127 is not 16x
    with pytest.raises(ValueError, match="compression"):
        write_pyramidal_tiff(tmp_path / "c.tiff", compression="webp")
    with pytest.raises(ValueError):
        tissue_image(0, 10)
