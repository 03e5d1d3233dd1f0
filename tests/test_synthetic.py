"""The phantom generator: valid IODs (dciodvfy), geometry as declared, organs where they belong."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from radpath.adapters.dciodvfy import verify
from radpath.synthetic import LABELS, SliceGeometry, SyntheticStudy, write_series

GEOMETRIES = {
    "axial": SliceGeometry.named("axial", rows=48, columns=40, slices=5, pixel_spacing=(8.0, 8.5), slice_spacing=10.0),
    "axial-rows-flipped": SliceGeometry.named(
        "axial-rows-flipped", rows=48, columns=48, slices=5, pixel_spacing=(8.0, 8.0), slice_spacing=10.0
    ),
    "descending": SliceGeometry.named(
        "axial", rows=48, columns=48, slices=5, pixel_spacing=(8.0, 8.0), slice_spacing=10.0, descending=True
    ),
    "sagittal": SliceGeometry.named("sagittal", rows=60, columns=48, slices=5, pixel_spacing=(8.0, 8.0), slice_spacing=20.0),
    "coronal": SliceGeometry.named("coronal", rows=60, columns=48, slices=5, pixel_spacing=(8.0, 8.0), slice_spacing=20.0),
    "oblique-15": SliceGeometry.named("oblique-15", rows=48, columns=48, slices=5, pixel_spacing=(8.0, 8.0), slice_spacing=10.0),
}


@pytest.mark.parametrize("modality", ["CT", "MR"])
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_generated_series_pass_dciodvfy(tmp_path, modality, name):
    series = write_series(tmp_path, modality=modality, geometry=GEOMETRIES[name])
    for path in series.paths[:: max(1, len(series.paths) // 2)]:
        result = verify(path)
        assert result.ok, f"{path.name}: {result.errors}"


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_slices_lie_where_the_geometry_says(tmp_path, name):
    geometry = GEOMETRIES[name]
    series = write_series(tmp_path, modality="CT", geometry=geometry)
    datasets = [pydicom.dcmread(p) for p in series.paths]
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    positions = np.array([ds.ImagePositionPatient for ds in datasets], dtype=float)
    steps = np.diff(positions @ normal)
    expected = -geometry.slice_spacing if geometry.descending else geometry.slice_spacing
    assert np.allclose(steps, expected, atol=1e-4)
    for ds, k in zip(datasets, range(len(datasets))):
        assert ds.InstanceNumber == k + 1
        hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.allclose(hu, series.values[k])  # ground truth is what was stored
    assert {ds.FrameOfReferenceUID for ds in datasets} == {series.study.frame_of_reference_uid}


def _centroid_lps(series, organ: str) -> np.ndarray:
    k, r, c = np.nonzero(series.labels == LABELS[organ])
    index = np.stack([c, r, k, np.ones_like(c)], axis=1).astype(float)
    return (index @ series.geometry.affine.T)[:, :3].mean(axis=0)


def test_organs_sit_where_anatomy_puts_them(tmp_path):
    geometry = SliceGeometry(64, 64, 120, (6.0, 6.0), 5.0, center=(0.0, 0.0, 0.0))
    series = write_series(tmp_path, modality="CT", geometry=geometry, study=SyntheticStudy())
    present = {name for name, label in LABELS.items() if (series.labels == label).any()}
    assert {"liver", "spleen", "kidney_left", "kidney_right", "urinary_bladder", "prostate"} <= present
    # LPS: +x is the patient's left, +y posterior, +z superior.
    assert _centroid_lps(series, "liver")[0] < 0 < _centroid_lps(series, "spleen")[0]
    assert _centroid_lps(series, "kidney_right")[0] < 0 < _centroid_lps(series, "kidney_left")[0]
    assert _centroid_lps(series, "kidney_left")[1] > 30  # posterior
    assert _centroid_lps(series, "prostate")[2] < _centroid_lps(series, "urinary_bladder")[2] < _centroid_lps(series, "liver")[2]
    liver = series.values[series.labels == LABELS["liver"]].mean()
    body_air = series.values[0, 0, 0]
    assert 80 < liver < 130 and body_air < -900  # a portal-venous liver


def test_mr_intensities_differ_by_organ(tmp_path):
    series = write_series(tmp_path, modality="MR")
    bladder_free = {name: series.values[series.labels == label].mean() for name, label in LABELS.items()
                    if (series.labels == label).sum() > 20}
    assert bladder_free["kidney_left"] > bladder_free["liver"]
    ds = pydicom.dcmread(series.paths[0])
    assert ds.Modality == "MR" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"


def test_phantom_volume_voxels_sit_where_the_affine_says():
    """The NIfTI affine (RAS) maps each labelled voxel into its organ in LPS."""
    from radpath.synthetic.phantom import ORGANS
    from radpath.synthetic.volumes import LPS_TO_RAS, phantom_volume

    geometry = SliceGeometry.named("axial-rows-flipped", rows=40, columns=50, slices=30, pixel_spacing=(8.0, 8.0),
                                   slice_spacing=8.0, center=(0.0, 0.0, 40.0))
    image, labels = phantom_volume(geometry, "CT", noise=0.0)
    values, label_values = np.asanyarray(image.dataobj), np.asanyarray(labels.dataobj)
    liver = next(organ for organ in ORGANS if organ.name == "liver")
    index = np.argwhere(label_values == LABELS["liver"])
    assert len(index) > 50
    lps = (np.linalg.inv(LPS_TO_RAS) @ image.affine @ np.c_[index, np.ones(len(index))].T).T[:, :3]
    assert liver.shape.contains(lps).all()
    assert (values[label_values == LABELS["liver"]] == liver.ct_hu).all()
