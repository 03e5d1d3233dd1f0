"""quantify: each segment's volume and radiomics features as a TID 1500 SR, held against
what a researcher would compute by hand: the SEG's voxels × the voxel's volume, and
pyradiomics run directly on the source series (SimpleITK's DICOM reader) and the mask
dcmqi's own reader takes out of the SEG, with the settings of radiomics.json."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from elements import element_after_segment, run_merge_and_encode

from radpath.adapters.dciodvfy import verify
from radpath.adapters.dicomseg.encoders import dcmqi_binary
from radpath.adapters.settings import Settings
from radpath.domain.quantify import load_radiomics
from radpath.pipeline.batch import run_stage
from radpath.pipeline.manifest import Manifest, Status
from radpath.pipeline.research import write_research_table
from radpath.pipeline.stages.quantify import run_quantify
from radpath.synthetic import SliceGeometry
from radpath.synthetic.phantom import ORGANS

#: The left kidney whole, 4 mm voxels (its ellipsoid holds 176 mL).
KIDNEY_FIELD = SliceGeometry(22, 20, 30, (4.0, 4.0), 4.0, center=(70.0, 65.0, -5.0))


def quantified(root: Path) -> tuple[object, Manifest]:
    settings = Settings.from_env({"WORKFLOW_DIR": str(root), "OPERATOR_OUT_DIR": "quantify"})
    result = run_stage("quantify", run_quantify, settings)
    return (result.elements or [None])[0], Manifest.load(root / "batch/e1")


@pytest.fixture(scope="module", params=["CT", "MR"])
def kidney(request, tmp_path_factory) -> tuple[str, Path, Manifest]:
    """The phantom's left kidney through merge, seg-encode and quantify, on CT and on MR."""
    tmp = tmp_path_factory.mktemp(f"quantify-{request.param}")
    root = element_after_segment(tmp, "Niere links", KIDNEY_FIELD, {"kidney_left": "kidney_left"},
                                 modality=request.param)
    merged, encoded, _ = run_merge_and_encode(root)
    assert encoded.status is Status.DONE, encoded.detail
    result, manifest = quantified(root)
    assert result.status is Status.DONE, result.detail
    return request.param, root / "batch/e1", manifest


def source_by_hand(element: Path):
    """The source series as a researcher reads it without radpath: SimpleITK's DICOM reader."""
    return sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(element / "get-input")))


def features_by_hand(image, mask, modality: str) -> dict[str, float]:
    """pyradiomics run directly, with radiomics.json's settings."""
    from radiomics import featureextractor

    extractor = featureextractor.RadiomicsFeatureExtractor(load_radiomics().parameters(modality))
    return {k: float(v) for k, v in extractor.execute(image, mask).items() if not k.startswith("diagnostics")}


def by_hand(element: Path, manifest: Manifest, modality: str) -> tuple[dict[str, float], int, float]:
    """pyradiomics on the source series and the SEG's segment 1, the way a researcher would
    do it without radpath: the image from SimpleITK's DICOM reader, the mask from dcmqi's
    segimage2itkimage put on the image's grid."""
    import subprocess
    import tempfile

    seg_path = element / "seg-encode" / manifest.facts["seg-encode"]["path"]
    image = source_by_hand(element)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([dcmqi_binary("segimage2itkimage"), "--inputDICOM", str(seg_path), "--outputDirectory", tmp,
                        "-t", "nrrd", "-p", "seg"], check=True, capture_output=True)
        mask = sitk.ReadImage(str(Path(tmp) / "seg-1.nrrd"))
    mask = sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    voxels = int(sitk.GetArrayViewFromImage(mask).astype(bool).sum())
    voxel_mm3 = float(np.prod(image.GetSpacing()))
    return features_by_hand(image, mask, modality), voxels, voxel_mm3


def measurements(sr_path: Path) -> dict[str, tuple[float, str]]:
    """The SR's measurements read back by highdicom: concept code value → (value, UCUM unit)."""
    sr = hd.sr.srread(str(sr_path))
    (group,) = sr.content.get_volumetric_roi_measurement_groups()
    return {m.name.value: (float(m.value), m.unit.value) for m in group.get_measurements()}


def significant(a: float, b: float, digits: int = 6) -> bool:
    return a == b or math.isclose(a, b, rel_tol=0.5 * 10 ** (1 - digits))


def test_volume_and_features_match_pyradiomics_run_by_hand(kidney):
    modality, element, manifest = kidney
    facts = manifest.facts["quantify"]
    (segment,) = facts["segments"]
    expected, voxels, voxel_mm3 = by_hand(element, manifest, modality)
    # Volume: the SEG's voxels × the voxel's volume, within 0.1 %.
    assert segment["voxels"] == voxels and voxels > 1000
    read = measurements(element / "quantify" / facts["path"])
    volume, unit = read["118565006"]
    assert unit == "mL" and abs(volume - voxels * voxel_mm3 / 1000) <= 0.001 * volume
    # ... and near the phantom's ellipsoid (4/3 π abc), which the 4 mm grid approximates.
    (organ,) = [o for o in ORGANS if o.name == "kidney_left"]
    assert abs(volume - 4 / 3 * math.pi * np.prod(organ.shape.semi_axes) / 1000) < 0.05 * volume
    # Every feature of radiomics.json: in the SR with its IBSI code and unit, equal to
    # pyradiomics by hand to 6 significant digits.
    radiomics = load_radiomics()
    assert len(radiomics.features) > 40
    for feature in radiomics.features:
        value, unit = read[feature.ibsi]
        assert significant(value, expected[feature.key]), (feature.key, value, expected[feature.key])
        assert unit == radiomics.unit(feature, modality).value, feature.key
    assert read["Q4LE"][1] == ("[hnsf'U]" if modality == "CT" else "1")  # the mean in HU on CT


def test_the_sr_is_valid_and_references_the_segment_and_the_source(kidney):
    modality, element, manifest = kidney
    facts = manifest.facts["quantify"]
    sr_path = element / "quantify" / facts["path"]
    checked = verify(sr_path)
    assert checked.ok, checked.errors
    sr = pydicom.dcmread(sr_path)
    seg = pydicom.dcmread(element / "seg-encode" / manifest.facts["seg-encode"]["path"], stop_before_pixels=True)
    assert sr.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    assert sr.StudyInstanceUID == seg.StudyInstanceUID and sr.Modality == "SR"
    assert sr.SeriesInstanceUID == facts["series_instance_uid"]
    read = hd.sr.srread(str(sr_path))
    (group,) = read.content.get_volumetric_roi_measurement_groups()
    segment = group.referenced_segment
    assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID and segment.referenced_segment_numbers == [1]
    assert group.finding_type.value == "64033007"  # Kidney, as the SEG's segment
    assert group.finding_sites[0].laterality.value == "7771000"  # left
    # A second run writes the same SR (UIDs derived from the SEG and the settings).
    result, again = quantified(element.parent.parent)
    assert result.status is Status.DONE and again.facts["quantify"]["sop_instance_uid"] == facts["sop_instance_uid"]


def test_a_shifted_mask_does_not_match_by_hand(kidney):
    """Negative control: the comparison above fails for the mask moved by two voxels."""
    modality, element, manifest = kidney
    image = source_by_hand(element)
    read = measurements(element / "quantify" / manifest.facts["quantify"]["path"])
    mask_path = element / "merge" / manifest.facts["merge"]["parts"][0]["path"]
    mask = sitk.Resample(sitk.ReadImage(str(mask_path)), image, sitk.TranslationTransform(3, (8.0, 0.0, 0.0)),
                         sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    shifted = features_by_hand(image, mask, modality)
    differing = [f.key for f in load_radiomics().features if not significant(read[f.ibsi][0], shifted[f.key])]
    assert differing, "a mask two voxels away gave the same features"


def test_the_research_table_has_the_srs_numbers(kidney):
    modality, element, manifest = kidney
    root = element.parent.parent
    table = write_research_table(Settings.from_env({"WORKFLOW_DIR": str(root)}), root / "report")
    with table.csv.open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    read = measurements(element / "quantify" / manifest.facts["quantify"]["path"])
    assert row["element"] == "e1" and row["organ"] == "left kidney"
    # measured, and said to be: no store stage ran here, so the SR is in no store
    assert (row["status"], row["reason"]) == ("measured, not stored", "not stored: the store stage has not run on it")
    assert row["seg_series_instance_uid"] == manifest.facts["seg-encode"]["series_instance_uid"]
    assert significant(float(row["volume_ml"]), read["118565006"][0])
    for feature in load_radiomics().features:
        assert significant(float(row[feature.column]), read[feature.ibsi][0]), feature.column
    assert json.loads(table.json.read_text())["rows"][0]["volume_ml"] == float(row["volume_ml"])


def test_a_mask_not_in_the_field_of_view_gives_no_sr_and_a_row_saying_why(tmp_path):
    root = element_after_segment(tmp_path, "right kidney", KIDNEY_FIELD, {"kidney_left": "kidney_left",
                                                                         "kidney_right": ""})
    merged, encoded, _ = run_merge_and_encode(root)
    assert merged.status is Status.SKIPPED and encoded is None
    table = write_research_table(Settings.from_env({"WORKFLOW_DIR": str(root)}), root / "report")
    (row,) = json.loads(table.json.read_text())["rows"]
    assert row["status"] == "not measured" and row["organ"] == "right kidney"
    assert row["reason"].startswith("skipped at merge: right kidney not found in the field of view")
    assert "volume_ml" not in row and not list(root.rglob("*.sr.dcm"))
    assert table.measured == 0  # and test_the_research_table_has_the_srs_numbers: 1 when measured


def test_both_kidneys_kept_apart_are_two_measurement_groups_and_two_rows(tmp_path):
    both = SliceGeometry(22, 44, 30, (4.0, 4.0), 4.0, center=(0.0, 65.0, -10.0))
    root = element_after_segment(tmp_path, "Niere", both, {"kidney_left": "kidney_left",
                                                           "kidney_right": "kidney_right"})
    _, encoded, _ = run_merge_and_encode(root, MERGE_BILATERAL="false")
    assert encoded.status is Status.DONE, encoded.detail
    result, manifest = quantified(root)
    assert result.status is Status.DONE, result.detail
    sr = hd.sr.srread(str(root / "batch/e1/quantify" / manifest.facts["quantify"]["path"]))
    groups = sr.content.get_volumetric_roi_measurement_groups()
    sides = sorted(g.finding_sites[0].laterality.meaning for g in groups)
    assert sides == ["Left", "Right"]
    segments = {g.referenced_segment.referenced_segment_numbers[0] for g in groups}
    assert segments == {1, 2}
    table = write_research_table(Settings.from_env({"WORKFLOW_DIR": str(root)}), root / "report")
    rows = json.loads(table.json.read_text())["rows"]
    assert sorted(r["segment"] for r in rows) == ["Kidney, left", "Kidney, right"] and table.not_stored == 2
    assert all(r["volume_ml"] > 50 for r in rows)


def test_the_quantify_image_on_python_3_12_measures_what_this_environment_measures(kidney, tmp_path):
    """The quantify stage run by the quantify image's own environment (pyradiomics built on
    Python 3.12, tests/kaapana_pods/kaapana_images.py) on a copy of the element: every
    feature of radiomics.json, with its IBSI code, equal to this environment's SR to 6
    significant digits."""
    import shutil
    import subprocess

    from conftest import skip_unless_ci
    from kaapana_pods.kaapana_images import read_record

    venv = (read_record().get("radpath-quantify") or {}).get("venv")
    if not venv:
        skip_unless_ci("the quantify image's environment was not built (make test's set-up builds it)")
    modality, element, manifest = kidney
    root = tmp_path / "copy"
    shutil.copytree(element.parent.parent, root)
    run = subprocess.run([f"{venv}/bin/radpath", "stage", "quantify"], capture_output=True, text=True,
                         env={"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
                              "WORKFLOW_DIR": str(root), "OPERATOR_OUT_DIR": "quantify"})
    assert run.returncode == 0, run.stderr[-3000:]
    theirs_manifest = Manifest.load(root / "batch/e1")
    assert theirs_manifest.facts["quantify"]["sop_instance_uid"] == manifest.facts["quantify"]["sop_instance_uid"]
    theirs = measurements(root / "batch/e1/quantify" / theirs_manifest.facts["quantify"]["path"])
    ours = measurements(element / "quantify" / manifest.facts["quantify"]["path"])
    features = load_radiomics().features
    assert len(features) == 49
    for feature in features:
        assert theirs[feature.ibsi][1] == ours[feature.ibsi][1], feature.key
        assert significant(theirs[feature.ibsi][0], ours[feature.ibsi][0]), \
            (feature.key, theirs[feature.ibsi][0], ours[feature.ibsi][0])
