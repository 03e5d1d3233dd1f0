"""merge and seg-encode: masks → DICOM SEG on the source slices, checked the way a viewer
would place it (frame on its referenced slice, same orientation) and read back by two
independent readers (highdicom, dcmqi's segimage2itkimage)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from elements import element_after_segment, phantom_mask_on_nifti, run_merge_and_encode
from pydicom.uid import generate_uid

from radpath.adapters.dciodvfy import verify
from radpath.adapters.dicomseg.encoders import DcmqiEncoder, EmptyMask, HighdicomEncoder
from radpath.adapters.dicomseg.readback import check_frames, read_with_dcmqi, read_with_highdicom
from radpath.adapters.dicomseg.sources import complete_sources
from radpath.adapters.radiology.series import read_series_in
from radpath.adapters.radiology.volumes import convert_series
from radpath.domain.anatomy import load_master
from radpath.domain.dicomseg.description import Algorithm, SegSeries, describe_segment, series_description
from radpath.domain.dicomseg.geometry import LPS_FROM_RAS, mask_from_source, mask_on_source
from radpath.pipeline.manifest import Status
from radpath.synthetic import SliceGeometry, write_series
from radpath.synthetic.phantom import LABELS

ENCODERS = [DcmqiEncoder(), HighdicomEncoder()]
ALGORITHM = Algorithm("TotalSegmentator", "2.18.0")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def encode_and_check(mask_nifti: np.ndarray, affine: np.ndarray, series_dir: Path, tmp_path: Path,
                     description=None) -> dict[str, np.ndarray]:
    """Encode the mask with both encoders; assert dciodvfy, frame geometry and a voxel-exact
    round trip through both readers; return each encoder's read-back mask (source grid)."""
    (series,) = read_series_in(series_dir)
    grid, _ = complete_sources(series.source_grid(), tmp_path / "sources", series.summary.key)
    on_source = mask_on_source(mask_nifti, affine, grid)
    assert on_source.sum() == mask_nifti.sum() > 0  # every mask voxel lies on a source voxel
    master = load_master()
    segment = description or describe_segment(master, master.select_classes("liver", "total"), ALGORITHM)
    back = {}
    for encoder in ENCODERS:
        out = tmp_path / f"{encoder.name}.dcm"
        identity = SegSeries(generate_uid(), generate_uid(), 300, series_description([segment]), "LIVER")
        encoder.encode([on_source], [segment], grid, identity, out)
        assert verify(out).errors == [], encoder.name
        frames = check_frames(out, grid)
        assert frames.ok, frames.problems
        assert frames.frames == int(on_source.any(axis=(1, 2)).sum())  # empty frames skipped
        for reader in (read_with_highdicom, read_with_dcmqi):
            read = reader(out, grid)
            in_patient_space = mask_from_source(read, grid, affine, mask_nifti.shape)
            assert dice(in_patient_space, mask_nifti) == 1.0, (encoder.name, reader.__name__)
            assert (in_patient_space == mask_nifti).all()
        back[encoder.name] = read_with_highdicom(out, grid)
    assert (back["dcmqi"] == back["highdicom"]).all()  # both encoders cover identical voxels
    return back


def test_reference_liver_round_trips_through_both_encoders(shared_data, tmp_path):
    """TotalSegmentator's own liver on the de-identified CT (empty UIDs in the datasets,
    NIfTI rows opposite to the DICOM rows): a SEG on the source slices, voxel for voxel."""
    reference = nib.load(str(shared_data / "ct-abdomen-totalseg-output/totalseg_fast_multilabel.nii.gz"))
    liver = np.asanyarray(reference.dataobj) == 5
    back = encode_and_check(liver, LPS_FROM_RAS @ reference.affine, shared_data / "ct-abdomen-totalseg", tmp_path)
    assert back["dcmqi"].sum() == liver.sum() == 366708


GEOMETRIES = {
    "axial-rows-flipped": SliceGeometry.named("axial-rows-flipped", rows=40, columns=48, slices=16,
                                              pixel_spacing=(8.0, 8.0), slice_spacing=8.0, center=(-40.0, 0.0, 60.0)),
    "axial-descending": SliceGeometry(40, 48, 16, (8.0, 8.0), 8.0, center=(-40.0, 0.0, 60.0), descending=True),
    "sagittal": SliceGeometry.named("sagittal", rows=40, columns=40, slices=20, pixel_spacing=(7.0, 7.0),
                                    slice_spacing=8.0, center=(-50.0, 0.0, 60.0)),
    "coronal": SliceGeometry.named("coronal", rows=36, columns=44, slices=16, pixel_spacing=(7.0, 7.0),
                                   slice_spacing=9.0, center=(-40.0, 0.0, 60.0)),
    "oblique-15": SliceGeometry.named("oblique-15", rows=40, columns=48, slices=16, pixel_spacing=(8.0, 8.0),
                                      slice_spacing=8.0, center=(-40.0, 0.0, 60.0)),
    "anisotropic": SliceGeometry(48, 30, 12, (5.0, 9.5), 11.0, center=(-40.0, 0.0, 60.0)),
}


@pytest.mark.parametrize("modality", ["CT", "MR"])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_geometry_matrix_round_trips_exactly(name, modality, tmp_path):
    written = write_series(tmp_path / "series", modality=modality, geometry=GEOMETRIES[name])
    (series,) = read_series_in(tmp_path / "series")
    volume = convert_series(series, tmp_path / "nifti").volume  # dcm2niix, as the pipeline does
    mask, affine = phantom_mask_on_nifti(volume.path, "liver", modality)
    back = encode_and_check(mask, affine, tmp_path / "series", tmp_path)
    # And against the generator's own labels, slice by slice through the SOP UIDs.
    grid = series.source_grid()
    expected = np.stack([written.labels[written.sop_instance_uids.index(f.sop_instance_uid)] for f in grid.frames])
    assert (back["dcmqi"] == (expected == LABELS["liver"])).all()


def test_an_empty_mask_is_never_encoded(tmp_path):
    write_series(tmp_path / "series", geometry=GEOMETRIES["anisotropic"])
    (series,) = read_series_in(tmp_path / "series")
    grid = series.source_grid()
    master = load_master()
    segment = describe_segment(master, master.select_classes("liver", "total"), ALGORITHM)
    for encoder in ENCODERS:
        with pytest.raises(EmptyMask):
            encoder.encode([np.zeros(grid.shape, bool)], [segment], grid,
                           SegSeries(generate_uid(), generate_uid(), 300, "x", None), tmp_path / "x.dcm")
        assert not (tmp_path / "x.dcm").exists()


# --- the stages, from the slide's words to the SEG's codes ---------------------------------

KIDNEY_GEOMETRY = SliceGeometry(48, 56, 14, (7.0, 7.0), 8.0, center=(0.0, 40.0, -15.0))


def segments_of(path: Path) -> list[tuple]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    out = []
    for item in ds.SegmentSequence:
        kind = item.SegmentedPropertyTypeCodeSequence[0]
        modifiers = kind.get("SegmentedPropertyTypeModifierCodeSequence") or []
        out.append((kind.CodeMeaning, [m.CodeMeaning for m in modifiers]))
    return out


def test_kidney_without_side_is_one_segment_from_both_kidneys(tmp_path):
    root = element_after_segment(tmp_path, "Niere, Stanzbiopsie", KIDNEY_GEOMETRY,
                                 {"kidney_left": "kidney_left", "kidney_right": "kidney_right"})
    merged, encoded, manifest = run_merge_and_encode(root)
    assert (merged.status, encoded.status) == (Status.DONE, Status.DONE), (merged.detail, encoded.detail)
    (part,) = manifest.facts["merge"]["parts"]
    assert set(part["classes"]) == {"kidney_left", "kidney_right"} and all(part["classes"].values())
    assert part["voxels"] == sum(part["classes"].values())  # the kidneys do not touch
    seg = root / "batch/e1/seg-encode" / manifest.facts["seg-encode"]["path"]
    assert segments_of(seg) == [("Kidney", [])]
    ds = pydicom.dcmread(seg, stop_before_pixels=True)
    assert ds.BodyPartExamined == "KIDNEY"
    assert ds.SeriesDescription == "Kidney (TotalSegmentator)"
    assert ds.SeriesNumber not in {1}  # the source's
    assert manifest.facts["seg-encode"]["segments"][0]["voxels"] == part["voxels"]


def test_right_kidney_is_kidney_modified_right_from_the_right_class_only(tmp_path):
    root = element_after_segment(tmp_path, "right kidney, partial nephrectomy", KIDNEY_GEOMETRY,
                                 {"kidney_left": "kidney_left", "kidney_right": "kidney_right"})
    merged, encoded, manifest = run_merge_and_encode(root)
    assert encoded.status is Status.DONE, encoded.detail
    (part,) = manifest.facts["merge"]["parts"]
    assert list(part["classes"]) == ["kidney_right"]
    assert segments_of(root / "batch/e1/seg-encode/kidney.seg.dcm") == [("Kidney", ["Right"])]


def test_left_upper_lobe_is_that_lobe_class(tmp_path):
    lungs = SliceGeometry(40, 48, 14, (8.0, 8.0), 10.0, center=(0.0, 10.0, 200.0))
    classes = {c: c for c in ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
                              "lung_middle_lobe_right", "lung_lower_lobe_right")}
    root = element_after_segment(tmp_path, "lung, left upper lobe", lungs, classes)
    merged, encoded, manifest = run_merge_and_encode(root)
    assert encoded.status is Status.DONE, encoded.detail
    (part,) = manifest.facts["merge"]["parts"]
    assert list(part["classes"]) == ["lung_upper_lobe_left"]
    assert segments_of(root / "batch/e1/seg-encode/lung.seg.dcm") == [("Upper lobe of lung", ["Left"])]


def test_a_side_not_in_the_field_of_view_ends_skipped_before_the_encoder(tmp_path):
    root = element_after_segment(tmp_path, "right kidney", KIDNEY_GEOMETRY,
                                 {"kidney_left": "kidney_left", "kidney_right": ""})
    merged, encoded, manifest = run_merge_and_encode(root)
    assert merged.status is Status.SKIPPED and encoded is None
    assert manifest.status is Status.SKIPPED
    assert merged.detail.startswith("right kidney not found in the field of view of series")
    assert not (root / "batch/e1/merge").exists() or not any((root / "batch/e1/merge").iterdir())
    assert not (root / "batch/e1/seg-encode").exists()


def test_merge_bilateral_false_keeps_one_segment_per_side(tmp_path):
    root = element_after_segment(tmp_path, "Niere", KIDNEY_GEOMETRY,
                                 {"kidney_left": "kidney_left", "kidney_right": "kidney_right"})
    merged, encoded, manifest = run_merge_and_encode(root, MERGE_BILATERAL="false")
    assert encoded.status is Status.DONE, encoded.detail
    assert [p["selection"]["laterality"] for p in manifest.facts["merge"]["parts"]] == ["left", "right"]
    assert segments_of(root / "batch/e1/seg-encode/kidney.seg.dcm") == [("Kidney", ["Left"]), ("Kidney", ["Right"])]
