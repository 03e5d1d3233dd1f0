"""TotalSegmentator's own inference path through the segment stage, offline, on the
stand-in weights: real CT and MR against TotalSegmentator's reference outputs, and the
phantom against its own labels."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from radpath.adapters.settings import Settings
from radpath.adapters.totalseg.standin import STANDIN_MODELS, STANDIN_WEIGHTS, is_standin, weights_path
from radpath.adapters.totalseg.weights import WeightsMissing, choose_weights
from radpath.domain.anatomy import load_master
from radpath.pipeline.batch import run_stage
from radpath.pipeline.manifest import Manifest, Status
from radpath.pipeline.stages.nifti import run_nifti
from radpath.pipeline.stages.segment import run_segment
from radpath.synthetic import LABELS, SliceGeometry
from radpath.synthetic.facts import add_sections, given_bodypart, given_nifti
from radpath.synthetic.volumes import phantom_volume

TRAINED = all((m.trainer_folder() / "fold_0/checkpoint_final.pth").is_file() for m in STANDIN_MODELS)
needs_trained_standins = pytest.mark.skipif(
    not TRAINED, reason="stand-in checkpoints not committed yet (scripts/train_standin_weights.py; issue 6)"
)


@pytest.fixture(autouse=True)
def totalseg_home(tmp_path, monkeypatch):
    """No official weights anywhere TotalSegmentator looks."""
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "totalseg-home"))
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)


def lay_out_models(root: Path, marked: bool) -> Path:
    """Model folders as TotalSegmentator's download leaves them (the checkpoint file only
    has to exist for the weights check), with or without radpath's stand-in marker."""
    for model in STANDIN_MODELS:
        folder = model.trainer_folder(root)
        (folder / "fold_0").mkdir(parents=True)
        (folder / "fold_0/checkpoint_final.pth").write_bytes(b"not a real checkpoint")
        (folder / "dataset.json").write_text(json.dumps({"labels": {}, "radpath_standin": marked}))
    return root


@pytest.fixture
def standin_root(tmp_path, monkeypatch) -> Path:
    root = lay_out_models(tmp_path / "standins", marked=True)
    monkeypatch.setattr("radpath.adapters.totalseg.standin.STANDIN_WEIGHTS", root)
    return root


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def on_grid_of(image: nib.Nifti1Image, reference: nib.Nifti1Image) -> np.ndarray:
    """``image``'s voxels in ``reference``'s grid, through the affines (never by index)."""
    from nibabel.processing import resample_from_to

    return np.asanyarray(resample_from_to(image, reference, order=0).dataobj)


def standin_settings(root: Path, out_dir: str, **extra) -> Settings:
    env = {"WORKFLOW_DIR": str(root), "OPERATOR_IN_DIR": "get-input", "OPERATOR_OUT_DIR": out_dir}
    return Settings.from_env({**env, "TOTALSEG_STANDIN_WEIGHTS": "true", **extra})


def shared_ct_element(shared_data: Path, root: Path, organ: str) -> Path:
    """The abdominal CT laid out as a batch element, converted by the nifti stage, with the
    organ the bodypart stage would have resolved."""
    element = root / "batch" / "ct"
    shutil.copytree(shared_data / "ct-abdomen-totalseg", element / "get-input")
    assert run_stage("nifti", run_nifti, standin_settings(root, "nifti")).exit_code == 0
    add_sections(element, given_bodypart(organ))
    return element


@needs_trained_standins
def test_the_standins_are_marked_and_small():
    for model in STANDIN_MODELS:
        folder = model.trainer_folder()
        assert is_standin(folder), folder
        assert (folder / "fold_0/checkpoint_final.pth").stat().st_size < 5 * 2**20
    assert (STANDIN_WEIGHTS / "README.md").read_text().startswith("# STAND-IN")


def test_standins_are_only_used_when_allowed(standin_root):
    with pytest.raises(WeightsMissing):
        choose_weights("total", "fast", allow_standin=False, roi_subset=True)
    choice = choose_weights("total", "full", allow_standin=True, roi_subset=True)
    assert choice.standin and choice.root == standin_root and choice.spec.speed == "fast"
    assert any("fast models only" in note for note in choice.notes)
    assert any("STAND-IN" in note for note in choice.notes) and "stand-in" in choice.label


def test_official_weights_win_over_the_standins(standin_root, tmp_path, monkeypatch):
    official = lay_out_models(tmp_path / "official", marked=False)
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(official))
    choice = choose_weights("total_mr", "fast", allow_standin=True, roi_subset=True)
    assert choice.root == official and not choice.standin and choice.label == "TotalSegmentator official"
    assert choice.notes == ()


def test_standins_named_as_official_weights_still_say_so(standin_root, monkeypatch):
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(standin_root))
    choice = choose_weights("total", "fast", allow_standin=False, roi_subset=True)
    assert choice.standin and choice.root == standin_root


@needs_trained_standins
def test_liver_on_the_real_ct_matches_totalsegmentators_reference(shared_data, tmp_path, caplog):
    element = shared_ct_element(shared_data, tmp_path, "liver")
    with caplog.at_level(logging.INFO):
        result = run_stage("segment", run_segment, standin_settings(tmp_path, "segment"))
    (outcome,) = result.elements
    assert outcome.status is Status.DONE, outcome.detail
    facts = Manifest.load(element).facts["segment"]
    assert facts["standin_weights"] is True and "stand-in" in facts["weights"]
    assert facts["task"] == "total" and facts["models"] == [297, 298]
    assert any("STAND-IN" in record.getMessage() for record in caplog.records)

    reference = nib.load(str(shared_data / "ct-abdomen-totalseg-output/totalseg_fast_multilabel.nii.gz"))
    liver = on_grid_of(nib.load(str(element / "segment/liver.nii.gz")), reference)
    assert facts["classes"]["liver"] == np.count_nonzero(liver)
    assert dice(liver, np.asanyarray(reference.dataobj) == 5) >= 0.85


@needs_trained_standins
def test_a_kidney_request_on_a_thorax_ct_is_skipped(tmp_path):
    # A chest field of view (lungs and the liver's dome, 30 mm above the kidneys' tops).
    thorax = SliceGeometry.named("axial", rows=128, columns=128, slices=40, pixel_spacing=(3.0, 3.0),
                                 slice_spacing=5.0, center=(0.0, 0.0, 175.0))
    image, labels = phantom_volume(thorax, "CT", seed=3)
    assert not np.isin(np.asanyarray(labels.dataobj), [LABELS["kidney_left"], LABELS["kidney_right"]]).any()
    nifti_element(tmp_path, image, "CT", "kidney", series_description="Phantom thorax")
    result = run_stage("segment", run_segment, standin_settings(tmp_path, "segment", OPERATOR_IN_DIR="nifti"))
    (outcome,) = result.elements
    assert outcome.status is Status.SKIPPED, outcome.detail
    assert outcome.detail.startswith("kidney not found in the field of view of series Phantom thorax by radpath's "
                                     "stand-in weights")


def nifti_element(root: Path, image: Path | nib.Nifti1Image, modality: str, organ: str,
                  series_description: str | None = None) -> Path:
    """An element as the nifti stage leaves it, for a volume that exists only as NIfTI."""
    element = root / "batch" / "e1"
    (element / "nifti").mkdir(parents=True)
    target = element / "nifti" / "series.nii.gz"
    if isinstance(image, Path):
        shutil.copy(image, target)
    else:
        nib.save(image, target)
    add_sections(element, given_nifti(target.name, modality, "e1", series_description), given_bodypart(organ))
    return element


@needs_trained_standins
def test_organs_of_the_example_mr_match_totalsegmentators_reference(shared_data, tmp_path):
    from totalsegmentator.map_to_binary import class_map
    from totalsegmentator.python_api import totalsegmentator

    source = shared_data / "totalsegmentator/example_mr_sm.nii.gz"
    reference = nib.load(str(shared_data / "totalsegmentator/example_seg_mr.nii.gz"))
    labels = np.asanyarray(reference.dataobj)

    # Through the stage: the liver.
    element = nifti_element(tmp_path, source, "MR", "liver")
    result = run_stage("segment", run_segment, standin_settings(tmp_path, "segment", OPERATOR_IN_DIR="nifti"))
    assert result.elements[0].status is Status.DONE, result.elements[0].detail
    assert Manifest.load(element).facts["segment"]["task"] == "total_mr"
    liver = on_grid_of(nib.load(str(element / "segment/liver.nii.gz")), reference)
    assert dice(liver, labels == 5) >= 0.7

    # Every organ the reference has with at least 1000 voxels, in one run of the same API.
    big = {name: index for index, name in class_map["total_mr"].items() if np.count_nonzero(labels == index) >= 1000}
    assert len(big) >= 8
    with weights_path(STANDIN_WEIGHTS):
        totalsegmentator(source, tmp_path / "all", task="total_mr", roi_subset=sorted(big), fast=True,
                         device="cpu", quiet=True)
    scores = {name: dice(on_grid_of(nib.load(str(tmp_path / "all" / f"{name}.nii.gz")), reference), labels == index)
              for name, index in big.items()}
    assert min(scores.values()) >= 0.7, scores


#: Phantom grids the stand-ins never saw in training (scripts/train_standin_weights.py).
#: The CT field ends where no organ is cut to a sliver: a lobe boundary is a plane the
#: phantom does not show, so a few millimetres of the next lobe would test nothing real.
PHANTOM_TESTS = {
    "CT": SliceGeometry.named("axial", rows=150, columns=140, slices=80, pixel_spacing=(2.4, 2.6),
                              slice_spacing=4.0, center=(5.0, -5.0, 10.0)),
    "MR": SliceGeometry.named("axial-rows-flipped", rows=120, columns=130, slices=120, pixel_spacing=(2.8, 2.8),
                              slice_spacing=4.5, center=(0.0, 0.0, 0.0)),
}


@needs_trained_standins
@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_each_phantom_organ_is_segmented(modality, tmp_path):
    from totalsegmentator.python_api import totalsegmentator

    image, labels = phantom_volume(PHANTOM_TESTS[modality], modality, seed=7)
    values = np.asanyarray(labels.dataobj)
    task = "total" if modality == "CT" else "total_mr"
    # The phantom is named by task total; total_mr has whole lungs where it has lobes.
    master, expected = load_master(), {}
    for name, label in LABELS.items():
        if (values == label).any():
            target = master.counterpart(name, task)
            expected[target] = expected.get(target, np.zeros(values.shape, bool)) | (values == label)
    assert len(expected) >= 6  # CT: lower lobes, liver, spleen, kidneys; MR adds bladder and prostate
    source = tmp_path / "phantom.nii.gz"
    nib.save(image, source)
    with weights_path(STANDIN_WEIGHTS):
        totalsegmentator(source, tmp_path / "out", task=task, roi_subset=sorted(expected), fast=True,
                         device="cpu", quiet=True)
    scores = {name: dice(np.asanyarray(nib.load(str(tmp_path / "out" / f"{name}.nii.gz")).dataobj), mask)
              for name, mask in expected.items()}
    assert min(scores.values()) >= 0.9, scores
