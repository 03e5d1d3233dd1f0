"""Slides into DICOM: real vendor files, identity and anatomy from the link, clean failures."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from conftest import dicomweb_settings

from radpath.adapters.dciodvfy import verify
from radpath.adapters.dicomweb import TAG_SERIES_UID, DicomWeb
from radpath.adapters.slides.convert import ConversionOptions, SlideConversionError, dicomize_slide
from radpath.adapters.slides.linkfiles import LinkSources
from radpath.domain.anatomy import resolve_body_part
from radpath.domain.slides.linkage import SlideLink, SlideLinkError

pytestmark = pytest.mark.filterwarnings("ignore:get_frame_offsets is deprecated", "ignore:hamamatsu-format")

LINK = SlideLink(
    patient_id="RP-SLIDE-7",
    source="test",
    patient_name="Muster^Erika",
    patient_birth_date="19580312",
    patient_sex="F",
    study_instance_uid="1.2.826.0.1.3680043.10.1151.4711",
    accession_number="ACC-77",
    specimen_description="Stanzbiopsie",
    anatomic_site="Niere rechts",
)


@pytest.fixture(scope="module")
def converted(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("wsi")
    return {
        name: dicomize_slide(shared_data / "wsi" / name, out, LINK, ConversionOptions())
        for name in ("CMU-1-Small-Region.svs", "test3-DAPI-2-(387).ndpi")
    }


@pytest.mark.parametrize("name", ["CMU-1-Small-Region.svs", "test3-DAPI-2-(387).ndpi"])
def test_real_slides_convert_and_pass_dciodvfy(converted, name):
    slide = converted[name]
    assert slide.files, name
    for path in slide.files:
        result = verify(path)
        assert result.ok, f"{path.name}: {result.errors}"


@pytest.mark.parametrize("name", ["CMU-1-Small-Region.svs", "test3-DAPI-2-(387).ndpi"])
def test_every_level_matches_the_source_pixels(converted, shared_data, name):
    import tiffslide
    from wsidicom import WsiDicom

    wsi = WsiDicom.open(converted[name].folder)
    source = tiffslide.TiffSlide(shared_data / "wsi" / name)
    assert len(wsi.levels) == source.level_count
    for level in wsi.levels:
        index = source.get_best_level_for_downsample(2**level.level)
        assert source.level_dimensions[index] == level.size.to_tuple()
        size = (min(600, level.size.width), min(600, level.size.height))
        origin = ((level.size.width - size[0]) // 2, (level.size.height - size[1]) // 2)
        ours = np.asarray(wsi.read_region(origin, level.level, size).convert("RGB"), dtype=int)
        scale = round(source.level_downsamples[index])
        theirs = np.asarray(
            source.read_region((origin[0] * scale, origin[1] * scale), index, size).convert("RGB"), dtype=int
        )
        # Tiles are decoded on both sides (no bytes compared here): same decoder, same pixels.
        assert np.abs(ours - theirs).mean() < 1.0, f"level {level.level}"


def test_svs_tiles_are_copied_not_re_encoded(converted, shared_data):
    import opentile
    from wsidicom import WsiDicom
    from wsidicom.geometry import Point

    level = WsiDicom.open(converted["CMU-1-Small-Region.svs"].folder).levels[0]
    source = opentile.OpenTile.open(shared_data / "wsi/CMU-1-Small-Region.svs").get_level(0)
    tiles = 0
    for y in range(level.tiled_size.height):
        for x in range(level.tiled_size.width):
            ours = level.get_encoded_tile(Point(x, y), crop_to_image_boundary=False)
            theirs = source.get_tile((x, y))
            # DICOM fragments have even length: an odd JPEG gets one trailing pad byte.
            assert ours == theirs or (len(theirs) % 2 and ours == theirs + b"\x00"), (x, y)
            tiles += 1
    assert tiles == 130


def test_identity_and_anatomy_come_from_the_link(converted):
    slide = converted["CMU-1-Small-Region.svs"]
    assert slide.study_instance_uid == LINK.study_instance_uid
    for path in slide.files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate, ds.PatientSex) == (
            "RP-SLIDE-7", "Muster^Erika", "19580312", "F")
        assert (ds.StudyInstanceUID, ds.AccessionNumber) == (LINK.study_instance_uid, "ACC-77")
        specimen = ds.SpecimenDescriptionSequence[0]
        site = specimen.PrimaryAnatomicStructureSequence[0]
        assert (site.CodeValue, site.CodingSchemeDesignator) == ("64033007", "SCT")
        modifier = site.PrimaryAnatomicStructureModifierSequence[0]
        assert (modifier.CodeValue, modifier.CodeMeaning) == ("24028007", "Right")
        assert specimen.SpecimenShortDescription == "Stanzbiopsie"
        assert ds.ContainerIdentifier == "CMU-1-Small-Region"
        result = resolve_body_part(ds)
        assert (result.organ, result.laterality, result.rule) == ("kidney", "right", "coded-structure")
    assert not any("LABEL" in pydicom.dcmread(p, stop_before_pixels=True).ImageType for p in slide.files)


def test_name_with_spaces_and_parentheses_converts(converted):
    slide = converted["test3-DAPI-2-(387).ndpi"]
    assert slide.folder.name == "test3-DAPI-2-_387_.ndpi"
    assert len(slide.files) >= 4


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda src, dst: dst.write_bytes(src.read_bytes()[: len(src.read_bytes()) // 3]), "SVS (TIFF)"),
        (lambda src, dst: dst.write_text("this is a text file, not a slide\n"), "SVS (not a TIFF/DICOM container)"),
        (lambda src, dst: dst.write_bytes(b""), "SVS (empty file)"),
    ],
    ids=["truncated-svs", "text-renamed-svs", "empty-svs"],
)
def test_unreadable_slides_fail_clearly_and_leave_nothing(shared_data, tmp_path, make, fragment):
    bad = tmp_path / "in" / "broken.svs"
    bad.parent.mkdir()
    make(shared_data / "wsi/CMU-1-Small-Region.svs", bad)
    out = tmp_path / "out"
    with pytest.raises(SlideConversionError) as info:
        dicomize_slide(bad, out, LINK, ConversionOptions())
    assert str(info.value).startswith("broken.svs: cannot convert, format ")
    assert fragment in str(info.value)
    assert not out.exists() or not any(out.rglob("*"))


def test_stow_to_orthanc_and_found_under_the_radiology_patient(converted, orthanc):
    slide = converted["CMU-1-Small-Region.svs"]
    pacs = DicomWeb(dicomweb_settings(orthanc.dicomweb_url))
    pacs.store(slide.files)
    found = pacs.find_series(patient_id="RP-SLIDE-7", modality="SM")
    assert [s[TAG_SERIES_UID]["Value"][0] for s in found] == [slide.series_instance_uid]


# -- linkage ---------------------------------------------------------------------------


def test_link_sources_in_order_sidecar_csv_conf(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.svs", "b.svs", "c.svs", "d.svs"):
        (folder / name).write_bytes(b"")
    (folder / "a.svs.json").write_text(json.dumps({"patient_id": "P-A", "anatomic_site": "Leber"}))
    (folder / "radpath-slides.csv").write_text(
        "slide,patient_id,accession_number,study_instance_uid,specimen_description,anatomic_site,laterality\n"
        "a.svs,P-CSV,,,,,\nb.svs,P-B,ACC-B,,Resektat,Niere,left\n"
    )
    conf = {"slide_links": {"c.svs": {"patient_id": "P-C"}}}
    sources = LinkSources.for_element(folder, None, conf)
    a, b, c = (sources.find(folder / n) for n in ("a.svs", "b.svs", "c.svs"))
    assert (a.patient_id, a.source) == ("P-A", "sidecar a.svs.json")  # sidecar beats CSV
    assert (b.patient_id, b.accession_number, b.laterality) == ("P-B", "ACC-B", "left")
    assert (c.patient_id, c.source) == ("P-C", "run conf slide_links.c.svs")
    assert sources.find(folder / "d.svs") is None
    everyone = LinkSources.for_element(folder, None, {"slide_link": {"patient_id": "P-ALL"}})
    assert everyone.find(folder / "d.svs").patient_id == "P-ALL"


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ("{not json", "sidecar x.svs.json: not valid JSON"),
        ('{"accession_number": "A"}', "sidecar x.svs.json: patient_id is missing"),
        ('{"patient_id": "P", "patient_sex": "X"}', "sidecar x.svs.json: patient_sex must be M, F or O"),
        ('{"patient_id": "P", "studyuid": "1.2"}', "sidecar x.svs.json: unknown field(s) studyuid"),
        ('{"patient_id": "P", "study_instance_uid": "1.2.abc"}',
         "sidecar x.svs.json: study_instance_uid (StudyInstanceUID, UI) is not a valid UI value"),
        # each field checked against the VR it is written as, the value never quoted when it identifies
        ('{"patient_id": "REL\\\\BS^X"}',
         "sidecar x.svs.json: patient_id (PatientID, LO) must be a single value: a backslash would make it several"),
        ('{"patient_id": "%s"}' % ("7" * 70),
         "sidecar x.svs.json: patient_id (PatientID, LO) the value length (70) exceeds the maximum length of 64"),
        ('{"patient_id": "P", "accession_number": "ACC-2026-000000042"}',
         "sidecar x.svs.json: accession_number (AccessionNumber, SH) the value length (18) exceeds"),
        ('{"patient_id": "P", "patient_name": "A^B^C^D^E^F"}',
         "sidecar x.svs.json: patient_name (PatientName, PN) a person name has at most 5"),
        ('{"patient_id": "P", "patient_birth_date": "19991332"}',
         "sidecar x.svs.json: patient_birth_date (PatientBirthDate, DA) is not a valid DA value; got a value of 8"),
        ('{"patient_id": "P\\u0007"}', "sidecar x.svs.json: patient_id (PatientID, LO) must not contain control"),
    ],
)
def test_bad_links_are_named(tmp_path, sidecar, message):
    (tmp_path / "x.svs").write_bytes(b"")
    (tmp_path / "x.svs.json").write_text(sidecar)
    with pytest.raises(SlideLinkError) as info:
        LinkSources.for_element(tmp_path, None, {}).find(tmp_path / "x.svs")
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("kind", ["svs", "tiff"])
def test_synthetic_vendor_slides_convert_through_radpath(tmp_path, kind):
    from radpath.synthetic import write_pyramidal_tiff, write_svs

    make = write_svs if kind == "svs" else write_pyramidal_tiff
    made = make(tmp_path / f"phantom.{'svs' if kind == 'svs' else 'tif'}", width=1024, height=768, levels=2)
    slide = dicomize_slide(made.path, tmp_path / "out", LINK, ConversionOptions(tile_size=256))
    from wsidicom import WsiDicom

    wsi = WsiDicom.open(slide.folder)
    assert wsi.levels[0].size.to_tuple() == made.level_sizes[0]
    assert len(wsi.levels) == len(made.level_sizes)
    for path in slide.files:
        result = verify(path)
        assert result.ok, f"{kind} {path.name}: {result.errors}"
        assert pydicom.dcmread(path, stop_before_pixels=True).PatientID == "RP-SLIDE-7"


def test_converting_again_writes_the_same_uids(tmp_path):
    """A re-run must not put a second copy of the slide into the PACS."""
    import dataclasses

    from radpath.synthetic import write_svs

    made = write_svs(tmp_path / "again.svs", width=512, height=384, levels=2)

    def uids(out: str, link=LINK) -> list[tuple[str, str, str]]:
        slide = dicomize_slide(made.path, tmp_path / out, link, ConversionOptions(tile_size=256))
        read = [pydicom.dcmread(p, stop_before_pixels=True) for p in slide.files]
        return sorted((str(d.StudyInstanceUID), str(d.SeriesInstanceUID), str(d.SOPInstanceUID)) for d in read)

    first, second = uids("first"), uids("second")
    assert first == second
    assert len({sop for _, _, sop in first}) == len(first) >= 2
    other = uids("other", dataclasses.replace(LINK, patient_id="RP-SLIDE-8"))
    assert not {sop for *_, sop in other} & {sop for *_, sop in first}


def test_dicomize_command(shared_data, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "radpath", "dicomize", str(shared_data / "wsi/CMU-1-Small-Region.svs"),
         "--patient-id", "RP-CLI-1", "--accession", "ACC-9", "--anatomy", "Lunge links Oberlappen", "-o", str(out)],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "specimen lung, left" in run.stdout
    files = list((out / "CMU-1-Small-Region.svs").glob("*.dcm"))
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert (ds.PatientID, ds.AccessionNumber) == ("RP-CLI-1", "ACC-9")
    bad = tmp_path / "notes.svs"
    bad.write_text("not a slide")
    run = subprocess.run([sys.executable, "-m", "radpath", "dicomize", str(bad), "--patient-id", "P", "-o", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "notes.svs: cannot convert, format SVS (not a TIFF/DICOM container)" in run.stderr


def test_converting_a_slide_leaves_pydicom_as_it_was(tmp_path):
    """wsidicomizer's import-time pydicom.config.future_behavior() must not leak into the process."""
    import subprocess
    import sys

    script = (
        "import pydicom.config, numpy\n"
        "from radpath.adapters.slides.convert import load_wsidicomizer\n"
        "load_wsidicomizer()\n"
        "from radpath.synthetic import write_series, SliceGeometry\n"
        f"s = write_series(r'{tmp_path}', geometry=SliceGeometry(8, 8, 1, (1.0, 1.0), 1.0))\n"
        "import pydicom; ds = pydicom.dcmread(s.paths[0])\n"
        "assert ds.pixel_array.shape == (8, 8)\n"
        "assert pydicom.config._use_future is False\n"
        "assert pydicom.config.settings.reading_validation_mode == pydicom.config.WARN\n"
        "assert pydicom.config.settings.writing_validation_mode == pydicom.config.WARN\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
