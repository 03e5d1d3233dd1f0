"""The segment stage's contract around TotalSegmentator: weights checked first, no phoning home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radpath.adapters.settings import Settings
from radpath.adapters.totalseg.weights import WeightsMissing, check_weights, model_spec
from radpath.pipeline.batch import run_stage
from radpath.pipeline.manifest import Status
from radpath.pipeline.stages.nifti import run_nifti
from radpath.pipeline.stages.segment import run_segment
from radpath.synthetic import SliceGeometry, write_series
from radpath.synthetic.facts import add_sections, given_bodypart


@pytest.fixture
def no_weights(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "totalseg-home"
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "empty-weights"))
    return home


def test_model_specs_follow_totalsegmentators_own_table():
    assert model_spec("total", "fast").task_ids == (297,)
    assert model_spec("total_mr", "fast").task_ids == (852,)
    assert model_spec("total", "full").task_ids == (291, 292, 293, 294, 295)
    assert model_spec("total_mr", "fast").trainer == "nnUNetTrainer_2000epochs_NoMirroring"


def test_a_roi_subset_also_needs_the_crop_model(tmp_path):
    """TotalSegmentator crops with the 6 mm model first (3 mm with robust crop) for a roi_subset."""
    folders = [f.parent.name for f in model_spec("total", "fast", roi_subset=True).folders(tmp_path)]
    assert folders == ["Dataset298_TotalSegmentator_total_6mm_1559subj", "Dataset297_TotalSegmentator_total_3mm_1559subj"]
    robust = model_spec("total", "fast", roi_subset=True, robust_crop=True).folders(tmp_path)
    assert [f.parent.name for f in robust] == ["Dataset297_TotalSegmentator_total_3mm_1559subj"]


def test_missing_weights_say_task_folder_and_command(no_weights, tmp_path):
    with pytest.raises(WeightsMissing) as info:
        check_weights("total_mr", "fast")
    message = str(info.value)
    assert message.startswith("TotalSegmentator weights for task total_mr (fast) are missing")
    assert str(tmp_path / "empty-weights" / "Dataset852_TotalSegMRI_total_3mm_1088subj") in message
    assert "totalseg_download_weights -t total_fast_mr" in message


def test_stage_fails_fast_with_the_message_and_writes_no_usage_stats(no_weights, tmp_path):
    root = tmp_path / "run"
    write_series(root / "batch/e1/get-input", geometry=SliceGeometry(16, 16, 10, (10.0, 10.0), 10.0))
    env = {"WORKFLOW_DIR": str(root), "OPERATOR_IN_DIR": "get-input"}
    run_stage("nifti", run_nifti, Settings.from_env({**env, "OPERATOR_OUT_DIR": "nifti"}))
    add_sections(root / "batch/e1", given_bodypart("kidney", "left"))

    result = run_stage("segment", run_segment, Settings.from_env({**env, "OPERATOR_OUT_DIR": "segment"}))
    (element,) = result.elements
    assert element.status is Status.FAILED
    # Raised before TotalSegmentator runs: no download attempt, no name-resolution retries.
    assert element.detail.startswith("WeightsMissing: TotalSegmentator weights for task total (fast) are missing")
    assert "Dataset298_TotalSegmentator_total_6mm_1559subj" in element.detail  # the crop model too
    config = json.loads((no_weights / "config.json").read_text())
    assert config["send_usage_stats"] is False


def test_the_device_follows_the_gpu_kaapana_assigned_and_says_why(monkeypatch):
    """KaapanaBaseOperator sets CUDA_VISIBLE_DEVICES to the GPU its job scheduler gave the
    pod, or to "" where it gave none: then TotalSegmentator runs on the CPU, and says so.
    Without that variable the choice is torch's: here a CPU build (on a GPU machine, the GPU)."""
    import torch

    from radpath.adapters.totalseg.runner import choose_device

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert choose_device() == ("cpu", "CPU: no GPU was assigned to this pod (CUDA_VISIBLE_DEVICES is empty: on "
                                      "Kaapana the platform has no GPU support or its job scheduler gave this task none)")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    device, why = choose_device()
    if torch.cuda.is_available():
        assert device == "gpu" and why.startswith("GPU: ") and torch.cuda.get_device_name(0) in why
    else:
        assert device == "cpu" and why.startswith("CPU: torch ") and torch.__version__ in why
