"""Radiology side: series selection by the rules, NIfTI geometry checked voxel by voxel."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from radpath.adapters.radiology.series import read_series_in
from radpath.adapters.radiology.volumes import convert_series
from radpath.domain.radiology.selection import select_series
from radpath.synthetic import SliceGeometry, SyntheticStudy, write_series

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])


def frame_geometry(ds, frame_number):
    """Position, orientation, spacing and pixels of one frame, single- or multi-frame."""
    if frame_number is None:
        rescale = (float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0))
        return (np.array(ds.ImagePositionPatient, float), np.array(ds.ImageOrientationPatient, float),
                tuple(float(v) for v in ds.PixelSpacing), ds.pixel_array, rescale)
    shared = ds.SharedFunctionalGroupsSequence[0]
    per_frame = ds.PerFrameFunctionalGroupsSequence[frame_number - 1]

    def find(name, attribute):
        for group in (per_frame, shared):
            if name in group:
                return getattr(group[name][0], attribute)
        raise KeyError(name)

    try:
        rescale = (float(find("PixelValueTransformationSequence", "RescaleSlope")),
                   float(find("PixelValueTransformationSequence", "RescaleIntercept")))
    except KeyError:
        rescale = (1.0, 0.0)
    return (np.array(find("PlanePositionSequence", "ImagePositionPatient"), float),
            np.array(find("PlaneOrientationSequence", "ImageOrientationPatient"), float),
            tuple(float(v) for v in find("PixelMeasuresSequence", "PixelSpacing")),
            ds.pixel_array[frame_number - 1], rescale)


def check_voxels(series_dir: Path, out_dir: Path, samples: int = 20, seed: int = 0) -> None:
    """For random NIfTI voxels: world position (affine, RAS) equals the DICOM pixel's
    patient position (IPP + orientation × spacing, LPS→RAS) within 0.01 mm, and the value
    equals the rescaled DICOM value."""
    (series,) = [s for s in read_series_in(series_dir) if s.summary.modality in ("CT", "MR")]
    conversion = convert_series(series, out_dir)
    assert conversion.volume.grid_aligned
    image = nib.load(str(conversion.volume.path))
    data = image.get_fdata()  # scaled by the header's slope/intercept
    by_uid = {i.sop_instance_uid: i.path for i in series.image_instances}
    rng = np.random.default_rng(seed)
    for _ in range(samples):
        i, j, k = (int(rng.integers(0, n)) for n in data.shape[:3])
        world_ras = (image.affine @ np.array([i, j, k, 1.0]))[:3]
        frame = conversion.volume.slices[k]
        assert frame is not None, f"slice {k} maps to no instance"
        ds = pydicom.dcmread(by_uid[frame.sop_instance_uid])
        ipp, orientation, spacing, pixels, (slope, intercept) = frame_geometry(ds, frame.frame_number)
        row_dir, col_dir = orientation[:3], orientation[3:]
        spacing_between_rows, spacing_between_cols = spacing
        offset = RAS_FROM_LPS @ world_ras - ipp  # back in LPS
        column = offset @ row_dir / spacing_between_cols
        row = offset @ col_dir / spacing_between_rows
        c, r = int(round(column)), int(round(row))
        pixel_ras = RAS_FROM_LPS @ (ipp + c * spacing_between_cols * row_dir + r * spacing_between_rows * col_dir)
        assert np.allclose(pixel_ras, world_ras, atol=0.01), (i, j, k, pixel_ras, world_ras)
        stored = pixels[r, c]
        expected = float(stored) * slope + intercept
        assert float(data[i, j, k]) == pytest.approx(expected, abs=1e-3), (i, j, k)


@pytest.mark.parametrize("name", ["ct-abdomen-totalseg", "mr-prostate-adc"])
def test_shared_series_convert_with_geometry_intact(shared_data, tmp_path, name):
    check_voxels(shared_data / name, tmp_path)


GEOMETRIES = {
    "axial": SliceGeometry.named("axial", rows=40, columns=36, slices=10, pixel_spacing=(8.0, 9.0), slice_spacing=10.0),
    "axial-rows-flipped": SliceGeometry.named("axial-rows-flipped", rows=40, columns=40, slices=10, pixel_spacing=(8.0, 8.0), slice_spacing=10.0),
    "descending": SliceGeometry.named("axial", rows=40, columns=40, slices=10, pixel_spacing=(8.0, 8.0), slice_spacing=10.0, descending=True),
    "sagittal": SliceGeometry.named("sagittal", rows=48, columns=40, slices=10, pixel_spacing=(8.0, 8.0), slice_spacing=12.0),
    "coronal": SliceGeometry.named("coronal", rows=48, columns=40, slices=10, pixel_spacing=(8.0, 8.0), slice_spacing=12.0),
    "oblique-15": SliceGeometry.named("oblique-15", rows=40, columns=40, slices=10, pixel_spacing=(8.0, 8.0), slice_spacing=10.0),
}


@pytest.mark.parametrize("modality", ["CT", "MR"])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_generated_series_convert_with_geometry_intact(tmp_path, modality, name):
    write_series(tmp_path / "dicom", modality=modality, geometry=GEOMETRIES[name])
    check_voxels(tmp_path / "dicom", tmp_path / "nifti")


def test_series_selection_picks_the_right_series_and_says_why_not_the_others(tmp_path):
    study = SyntheticStudy()
    small = dict(pixel_spacing=(8.0, 8.0))
    made = {
        "localizer": write_series(tmp_path / "loc", study=study, series_number=1, description="Topogram 0.6 T20f",
                                  image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                                  geometry=SliceGeometry.named("coronal", rows=32, columns=32, slices=1, slice_spacing=5.0, **small)),
        "reformat": write_series(tmp_path / "mpr", study=study, series_number=2, description="Cor MPR 3mm",
                                 image_type=("DERIVED", "SECONDARY", "MPR"),
                                 geometry=SliceGeometry.named("coronal", rows=32, columns=32, slices=40, slice_spacing=3.0, **small)),
        "thick": write_series(tmp_path / "thick", study=study, series_number=3, description="Abdomen 5.0 B30f",
                              geometry=SliceGeometry.named("axial", rows=32, columns=32, slices=12, slice_spacing=5.0, **small)),
        "thin": write_series(tmp_path / "thin", study=study, series_number=4, description="Abdomen 1.0 B30f",
                             geometry=SliceGeometry.named("axial", rows=32, columns=32, slices=30, slice_spacing=2.0, **small)),
    }
    seg = pydicom.dcmread(made["thin"].paths[0])
    seg.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    seg.file_meta.MediaStorageSOPClassUID = seg.SOPClassUID
    seg.Modality = "SEG"
    seg.SeriesInstanceUID = pydicom.uid.generate_uid()
    seg.SOPInstanceUID = seg.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    (tmp_path / "seg").mkdir()
    seg.save_as(tmp_path / "seg" / "seg.dcm")

    series = read_series_in(tmp_path)
    selection = select_series([s.summary for s in series])
    assert selection.chosen.series_instance_uid == made["thin"].series_instance_uid
    reasons = selection.reasons
    assert reasons[made["localizer"].series_instance_uid].startswith("rejected: a localizer")
    assert reasons[made["reformat"].series_instance_uid].startswith("avoided: a derived series")
    assert reasons[made["thick"].series_instance_uid] == "ranked lower: more slices cover more anatomy"
    assert reasons[seg.SeriesInstanceUID].startswith("rejected: modality SEG is not CT or MR")
    assert len(reasons) == 4


def test_mr_prefers_anatomical_over_diffusion_and_says_so_when_only_a_map_exists(tmp_path):
    study = SyntheticStudy()
    geometry = SliceGeometry.named("axial", rows=32, columns=32, slices=20, pixel_spacing=(8.0, 8.0), slice_spacing=4.0)
    adc = write_series(tmp_path / "adc", modality="MR", study=study, series_number=5, description="ep2d_diff ADC",
                       image_type=("DERIVED", "PRIMARY", "ADC"), geometry=geometry)
    dwi = write_series(tmp_path / "dwi", modality="MR", study=study, series_number=4, description="ep2d_diff b800",
                       geometry=geometry)
    t2 = write_series(tmp_path / "t2", modality="MR", study=study, series_number=3, description="t2_tse_tra",
                      geometry=SliceGeometry.named("axial", rows=32, columns=32, slices=12, pixel_spacing=(8.0, 8.0), slice_spacing=6.0))
    selection = select_series([s.summary for s in read_series_in(tmp_path)])
    assert selection.chosen.series_instance_uid == t2.series_instance_uid
    assert selection.reasons[dwi.series_instance_uid].startswith("avoided: a diffusion")
    only_map = select_series([s.summary for s in read_series_in(tmp_path / "adc")])
    assert only_map.chosen.series_instance_uid == adc.series_instance_uid
    assert only_map.note.startswith("chosen although a derived series")


def test_enhanced_multiframe_ct_converts_frame_by_frame(tmp_path):
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    made = write_series(tmp_path / "single", geometry=GEOMETRIES["oblique-15"])
    enhanced = LegacyConvertedEnhancedCTImage(
        [pydicom.dcmread(p) for p in made.paths], series_instance_uid=pydicom.uid.generate_uid(),
        series_number=9, sop_instance_uid=pydicom.uid.generate_uid(), instance_number=1,
    )
    (tmp_path / "enhanced").mkdir()
    enhanced.save_as(tmp_path / "enhanced" / "ct.dcm")
    check_voxels(tmp_path / "enhanced", tmp_path / "nifti")


def test_non_image_instances_in_the_series_are_left_out(tmp_path):
    made = write_series(tmp_path / "ct", geometry=GEOMETRIES["axial"])
    report = pydicom.dcmread(made.paths[0], stop_before_pixels=True)
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "Rows", "Columns", "PixelSpacing"):
        delattr(report, keyword)
    report.SOPClassUID = report.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"  # dose SR
    report.SOPInstanceUID = report.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    report.save_as(tmp_path / "ct" / "dose-report.dcm")
    (series,) = read_series_in(tmp_path / "ct")
    conversion = convert_series(series, tmp_path / "nifti")
    assert conversion.ignored_instances == 1
    assert conversion.volume.matched == GEOMETRIES["axial"].slices
    check_voxels(tmp_path / "ct", tmp_path / "nifti2")


def test_nifti_stage_alone_selects_converts_and_records_the_slice_map(tmp_path):
    from radpath.adapters.settings import Settings
    from radpath.pipeline.batch import run_stage
    from radpath.pipeline.manifest import Manifest
    from radpath.pipeline.stages.nifti import run_nifti

    study = SyntheticStudy()
    folder = tmp_path / "run/batch/e1/get-input"
    chosen = write_series(folder, study=study, series_number=2, geometry=GEOMETRIES["axial-rows-flipped"])
    write_series(folder, study=study, series_number=1, description="Topogram",
                 image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                 geometry=SliceGeometry.named("coronal", rows=32, columns=32, slices=1, pixel_spacing=(8.0, 8.0), slice_spacing=5.0))
    settings = Settings.from_env({"WORKFLOW_DIR": str(tmp_path / "run"), "OPERATOR_IN_DIR": "get-input",
                                  "OPERATOR_OUT_DIR": "nifti"})
    assert run_stage("nifti", run_nifti, settings).exit_code == 0
    facts = Manifest.load(tmp_path / "run/batch/e1").facts["nifti"]
    assert facts["series_instance_uid"] == chosen.series_instance_uid
    assert facts["selection"]["chosen"] == chosen.series_instance_uid
    assert len(facts["selection"]["rejected"]) == 1
    assert (tmp_path / "run/batch/e1/nifti" / facts["path"]).is_file()
    mapped = [s["sop_instance_uid"] for s in facts["slices"]]
    assert sorted(mapped) == sorted(chosen.sop_instance_uids)


def test_gantry_tilt_maps_planes_and_says_the_voxels_were_resampled(tmp_path):
    tilted = SliceGeometry.named("oblique-15", rows=40, columns=40, slices=12, pixel_spacing=(8.0, 8.0),
                                 slice_spacing=8.0, stack_direction=(0.0, 0.0, 1.0))
    made = write_series(tmp_path / "ct", geometry=tilted)
    (series,) = read_series_in(tmp_path / "ct")
    conversion = convert_series(series, tmp_path / "nifti")
    volume = conversion.volume
    assert volume.matched == 12 and not volume.grid_aligned
    assert any("GantryDetectorTilt 15.0" in note for note in volume.notes)
    assert conversion.others  # dcm2niix's uncorrected copy was considered and named
    image = nib.load(str(volume.path))
    normal = series.summary.normal
    positions = {i.sop_instance_uid: np.array(pydicom.dcmread(i.path).ImagePositionPatient, float)
                 for i in series.image_instances}
    rng = np.random.default_rng(1)
    for _ in range(20):  # every voxel lies on its mapped instance's plane
        i, j, k = (int(rng.integers(0, n)) for n in image.shape[:3])
        lps = RAS_FROM_LPS @ (image.affine @ np.array([i, j, k, 1.0]))[:3]
        assert abs((lps - positions[volume.slices[k].sop_instance_uid]) @ normal) < 0.05
    assert sorted(f.sop_instance_uid for f in volume.slices) == sorted(made.sop_instance_uids)


def test_jpeg_ls_compressed_series_converts(tmp_path):
    import shutil
    import subprocess

    if shutil.which("dcmcjpls") is None:
        pytest.fail("dcmcjpls (Debian dcmtk) is missing: run make setup")
    made = write_series(tmp_path / "raw", geometry=GEOMETRIES["axial-rows-flipped"])
    (tmp_path / "jls").mkdir()
    for path in made.paths:
        subprocess.run(["dcmcjpls", "--encode-lossless", str(path), str(tmp_path / "jls" / path.name)], check=True)
    ds = pydicom.dcmread(next((tmp_path / "jls").iterdir()))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"  # JPEG-LS lossless
    check_voxels(tmp_path / "jls", tmp_path / "nifti")


def test_the_nifti_command_converts_while_it_imports_and_leaves_no_scratch(tmp_path):
    """``radpath stage nifti`` starts dcm2niix on the first element before its imports
    (radpath.pipeline.headstart): the element converts as without it, and neither a
    claimed run nor one whose element had ended earlier leaves a folder or a process."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    from radpath.pipeline.manifest import MANIFEST_NAME, Manifest

    run = tmp_path / "run"
    chosen = write_series(run / "batch/a-ct/get-input", geometry=GEOMETRIES["axial-rows-flipped"])
    # An element that ended at an earlier stage: the head start converts it in vain.
    write_series(run / "batch/0-ended/get-input")
    (run / "batch/0-ended" / MANIFEST_NAME).write_text(json.dumps(
        {"schema": 2, "facts": {}, "stages": {"pair": {"status": "skipped", "reason": "no slide"}}}))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "WORKFLOW_DIR": str(run), "OPERATOR_IN_DIR": "get-input", "OPERATOR_OUT_DIR": "nifti",
           "TMPDIR": str(scratch)}

    def stage_nifti() -> str:
        done = subprocess.run([sys.executable, "-m", "radpath", "stage", "nifti"], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        facts = Manifest.load(run / "batch/a-ct").facts["nifti"]
        assert sorted(s["sop_instance_uid"] for s in facts["slices"]) == sorted(chosen.sop_instance_uids)
        assert not list(scratch.iterdir()) and not list(run.rglob(".radpath-dcm2niix-*"))
        assert str(run) not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        return done.stdout + done.stderr

    assert "ended at pair" in stage_nifti()  # passed over: the run started ahead for it was stopped
    shutil.rmtree(run / "batch/0-ended")
    (run / "batch/a-ct" / MANIFEST_NAME).unlink()
    stage_nifti()  # the run started ahead is the element's conversion
    # Its scratch lies in the element's folder (on Kaapana the workflow volume, not the
    # container's /tmp), so the volume moves into the output by a rename, not a copy.
    from radpath.adapters.radiology.dcm2niix import Dcm2niixRun

    ahead = Dcm2niixRun(run / "batch/a-ct/get-input")
    try:
        assert ahead.out_dir.parent == run / "batch/a-ct" and ahead.out_dir.name.startswith(".")
    finally:
        ahead.cancel()


# -- the NIfTI header without nibabel ---------------------------------------------------------


def _same_geometry_as_nibabel(path: Path) -> None:
    from radpath.adapters.radiology.niftiheader import read_nifti_geometry

    image, geometry = nib.load(str(path)), read_nifti_geometry(path)
    assert geometry.shape == image.shape
    # Within a nanometre: the header holds float32s, the two only round differently.
    assert np.allclose(np.array(geometry.affine_ras), image.affine, rtol=0, atol=1e-6), (geometry.affine_ras, image.affine)


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_nifti_geometry_of_dcm2niix_output_is_nibabels(tmp_path, name):
    write_series(tmp_path / "dicom", geometry=GEOMETRIES[name])
    (series,) = read_series_in(tmp_path / "dicom")
    _same_geometry_as_nibabel(convert_series(series, tmp_path / "nifti").volume.path)


def _oblique_image(**header) -> nib.Nifti1Image:
    rotation = nib.eulerangles.euler2mat(0.3, -0.2, 0.1)
    affine = nib.affines.from_matvec(rotation @ np.diag([0.7, 0.8, 2.5]), [-90.0, 12.5, 40.0])
    image = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), affine, nib.Nifti1Header(**header))
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return image


def test_nifti_geometry_takes_the_qform_where_no_sform_is_set_in_any_byte_order(tmp_path):
    from radpath.adapters.radiology.niftiheader import read_nifti_geometry

    for name, header in {"little.nii": {}, "big.nii": {"endianness": ">"}, "packed.nii.gz": {}}.items():
        image = _oblique_image(**header)
        shifted = image.affine.copy()
        shifted[:3, 3] += 25.0
        image.set_sform(shifted, code=0)  # kept in the file, but not to be used
        image.set_qform(image.get_qform(), code=1)
        nib.save(image, tmp_path / name)
        _same_geometry_as_nibabel(tmp_path / name)
        # Negative control: the sform bytes are there and differ, so taking them would show.
        assert not np.allclose(nib.load(str(tmp_path / name)).get_sform(), read_nifti_geometry(tmp_path / name).affine_ras)
        for_sform = _oblique_image(**header)
        for_sform.set_sform(shifted, code=2)
        nib.save(for_sform, tmp_path / f"sform-{name}")
        _same_geometry_as_nibabel(tmp_path / f"sform-{name}")
        assert np.allclose(np.array(read_nifti_geometry(tmp_path / f"sform-{name}").affine_ras), shifted, atol=1e-4)


def test_nifti_geometry_of_nifti2_and_of_a_file_without_position(tmp_path):
    from radpath.adapters.radiology.niftiheader import NiftiHeaderError, read_nifti_geometry

    nifti2 = nib.Nifti2Image(np.zeros((3, 4, 5), np.uint8), _oblique_image().affine)
    nib.save(nifti2, tmp_path / "two.nii")
    _same_geometry_as_nibabel(tmp_path / "two.nii")
    nowhere = _oblique_image()
    nowhere.set_qform(None, code=0)
    nowhere.set_sform(None, code=0)
    nib.save(nowhere, tmp_path / "nowhere.nii")
    with pytest.raises(NiftiHeaderError, match="neither sform nor qform"):
        read_nifti_geometry(tmp_path / "nowhere.nii")
    (tmp_path / "text.nii").write_text("not an image")
    with pytest.raises(NiftiHeaderError, match="not a NIfTI-1 or NIfTI-2 file"):
        read_nifti_geometry(tmp_path / "text.nii")


def test_series_grouping_does_not_look_into_hidden_folders(tmp_path):
    """radpath's own scratch (dcm2niix's links to a series, a slide being written) lies in
    hidden folders of the element; were they read, a crash leaving one would count each
    file twice."""
    import os

    made = write_series(tmp_path / "element" / "ct", geometry=GEOMETRIES["axial"])
    for folder in (".radpath-dcm2niix-x/in", "visible/in"):
        (tmp_path / "element" / folder).mkdir(parents=True)
        for path in made.paths:
            os.symlink(path, tmp_path / "element" / folder / path.name)
    (series,) = read_series_in(tmp_path / "element")
    # Negative control: the visible links are read, so every instance is there twice.
    assert len(series.instances) == 2 * len(made.paths)
    assert {i.path.parent.name for i in series.instances} == {"ct", "in"}
    shutil.rmtree(tmp_path / "element" / "visible")
    (series,) = read_series_in(tmp_path / "element")
    assert sorted(i.path for i in series.instances) == sorted(made.paths)
