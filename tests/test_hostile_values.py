"""Property-based: no layout variable radpath accepts can make it write outside the run,
and no link field it accepts can make it write an invalid DICOM value.

Each property runs at least 500 generated examples (``RADPATH_HYPOTHESIS_EXAMPLES`` raises
it); the link property runs five times as many, since most generated links are refused. The values are drawn to hit what an attacker or a sloppy export would send: path
separators, ``.`` and ``..``, control characters, backslashes (DICOM's value separator),
non-ASCII text, values just over each VR's length.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom import config as pydicom_config
from pydicom.dataset import FileMetaDataset
from pydicom.uid import generate_uid

from radpath.adapters.settings import Settings, SettingsError
from radpath.adapters.slides.convert import _metadata, code_anatomic_site, finish_dataset
from radpath.domain.slides.linkage import SlideLink, SlideLinkError
from radpath.pipeline import stages
from radpath.pipeline.batch import run_stage

EXAMPLES = max(500, int(os.environ.get("RADPATH_HYPOTHESIS_EXAMPLES", "500")))
ENOUGH = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Pieces an attacker puts in a name: separators, traversal, controls, DICOM's own separator.
HOSTILE = st.sampled_from(["/", "\\", "..", ".", "~", "\x00", "\n", "\x1b", "^", "=", "*", "%2e%2e", " ",
                           "é", "患者", "\u202e", "A" * 63, "1.2.840", "0"])
TEXT = st.one_of(st.text(max_size=80), st.lists(st.one_of(HOSTILE, st.text(max_size=6)), max_size=8).map("".join))


def _listing(root: Path, skip: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size if p.is_file() else -1)
            for p in root.rglob("*") if p != skip and skip not in p.parents}


#: A layout name: a plain folder name one time in two, hostile text otherwise.
LAYOUT = st.integers(1, 2).flatmap(lambda draw: TEXT if draw == 1 else st.from_regex(r"\A[A-Za-z0-9_-]{1,24}\Z"))


@ENOUGH
@given(batch=LAYOUT, in_dir=LAYOUT, out_dir=LAYOUT)
def test_no_layout_variable_makes_a_stage_write_outside_the_run(batch, in_dir, out_dir):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_dir = root / "runs" / "run-1"
        (run_dir / "batch" / "element-1" / "pair").mkdir(parents=True)
        for neighbour in ("runs/run-0/batch/other", "elsewhere/data"):
            (root / neighbour).mkdir(parents=True)
            (root / neighbour / "keep.txt").write_text("not radpath's")
        before = _listing(root, run_dir)
        env = {"WORKFLOW_DIR": str(run_dir), "BATCH_NAME": batch, "OPERATOR_IN_DIR": in_dir,
               "OPERATOR_OUT_DIR": out_dir}
        try:
            run_settings = Settings.from_env(env)
        except SettingsError as err:
            event(f"refused: {err.variable}")
            assert err.variable in ("BATCH_NAME", "OPERATOR_IN_DIR", "OPERATOR_OUT_DIR"), err
        else:
            event("accepted: the stage ran")
            logging.disable(logging.CRITICAL)  # 500 runs' worth of stage logs say nothing here
            try:
                run_stage("bodypart", stages.get("bodypart").load(), run_settings)
            finally:
                logging.disable(logging.NOTSET)
        assert _listing(root, run_dir) == before, (batch, in_dir, out_dir)


def test_the_layout_property_sees_an_escape():
    """Negative control: an unchecked layout (as before issue 23) writes beside the run,
    and the listing the property compares catches it."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run_dir = root / "runs" / "run-1"
        (run_dir / "batch" / "element-1").mkdir(parents=True)
        before = _listing(root, run_dir)
        (run_dir / "batch" / "element-1" / ".." / ".." / ".." / "escaped").mkdir()
        assert _listing(root, run_dir) != before
    with pytest.raises(SettingsError, match="OPERATOR_OUT_DIR"):
        Settings.from_env({"WORKFLOW_DIR": "/tmp/x", "BATCH_NAME": "batch", "OPERATOR_OUT_DIR": "../../../escaped"})


#: What a real export holds: names in any script, with punctuation, up to past each VR's length.
PLAUSIBLE = st.builds(lambda first, rest: first + rest, st.characters(categories=("L", "N")),
                      st.text(st.characters(categories=("L", "M", "N", "P", "Zs")), max_size=69))


def mostly(good, bad=TEXT, bad_in: int = 10):
    """``bad`` one time in ``bad_in``, ``good`` otherwise: most values are accepted and
    used, and every field is often hostile."""
    return st.integers(1, bad_in).flatmap(lambda draw: bad if draw == 1 else good)


VALUE = mostly(PLAUSIBLE)

#: The link fields as a sidecar, CSV row or run conf gives them.
FIELDS = st.fixed_dictionaries(
    {"patient_id": VALUE},
    optional={
        "patient_name": VALUE,
        "patient_birth_date": mostly(st.dates().map(lambda d: d.strftime("%Y%m%d"))),
        "patient_sex": mostly(st.sampled_from(["M", "f", "O", "male"])),
        "accession_number": mostly(st.text("ABC0123456789-", max_size=18), VALUE),
        "study_instance_uid": mostly(st.from_regex(r"\A[1-9][0-9]{0,3}(\.[0-9]{1,5}){1,20}\Z")),
        "specimen_description": st.one_of(VALUE, st.text(min_size=60, max_size=200)),
        "anatomic_site": mostly(st.sampled_from(["Niere links", "appendix", "Prostatabiopsie"]), VALUE),
        "laterality": mostly(st.sampled_from(["left", "Right", "bilateral"]), st.just("up")),
        "container_identifier": VALUE,
    },
)


def _slide_dataset(link: SlideLink):
    """The identity and specimen attributes a converted slide gets from ``link``: the same
    metadata model, wsidicom serialiser and post-processor the conversion uses."""
    from wsidicom.metadata.image import ImageType
    from wsidicom.metadata.schema.dicom import WsiMetadataDicomSchema
    from wsidicom.metadata.uid_generator import CallableUidGenerator
    from wsidicomizer.uid_resolver import MetadataUidResolver

    site = code_anatomic_site(link.anatomic_site, link.laterality)
    container = link.container_identifier or "slide"
    # The UIDs a conversion resolves (Type 1, so the schema needs them), as wsidicomizer does.
    metadata = MetadataUidResolver(CallableUidGenerator()).resolve(_metadata(link, site, container))
    dataset = WsiMetadataDicomSchema().dump(metadata, ImageType.VOLUME)
    return finish_dataset(site)(dataset, None)


#: Four in five generated links are refused somewhere; five times the examples write
#: about as many objects as the property has examples.
@settings(max_examples=5 * EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=FIELDS)
def test_no_accepted_link_field_writes_an_invalid_dicom_value(fields):
    try:
        link = SlideLink.from_mapping(fields, source="sidecar slide.svs.json")
    except SlideLinkError as err:
        event("refused: " + str(err).split(": ", 1)[1].split(" (")[0])
        assert str(err).startswith("sidecar slide.svs.json: "), err
        return
    event("accepted: written and read back")
    dataset = _slide_dataset(link)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"
    dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    with tempfile.TemporaryDirectory() as tmp:
        dataset.save_as(Path(tmp) / "slide.dcm", enforce_file_format=True)
        back = _read_strict(Path(tmp) / "slide.dcm")
    # Each identity value reads back as one value, as given (no "?" for a character lost).
    assert back["PatientID"].VM == 1 and back.PatientID == link.patient_id
    if link.patient_name:
        assert back["PatientName"].VM == 1 and str(back.PatientName) == link.patient_name
    if link.accession_number:
        assert back.AccessionNumber == link.accession_number


def _read_strict(path: Path) -> pydicom.Dataset:
    """``path`` read back with every value validated against its VR (ValueError if not)."""
    old = pydicom_config.settings.reading_validation_mode
    pydicom_config.settings.reading_validation_mode = pydicom_config.RAISE
    try:
        dataset = pydicom.dcmread(path)
        for element in dataset.iterall():  # values are converted (and validated) on access
            element.value  # noqa: B018
        return dataset
    finally:
        pydicom_config.settings.reading_validation_mode = old


def test_strict_reading_rejects_an_invalid_value(tmp_path):
    """Negative control: the strict read-back fails on a 70-character PatientID (LO: 64)."""
    dataset = pydicom.Dataset()
    dataset.PatientID = "P" * 70
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"
    dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
    with pytest.raises(ValueError):
        _read_strict(tmp_path / "bad.dcm")
