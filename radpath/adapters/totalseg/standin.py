"""radpath's stand-in TotalSegmentator weights: small models for offline tests and the demo.

The official weights are hundreds of megabytes behind a download that a CI machine or an
offline cluster cannot make. The stand-ins are tiny nnU-Net v2 models (a PlainConvUNet
of about a million parameters, on a coarser grid than the real ones) laid out exactly where
TotalSegmentator looks for its fast models, so that its own inference path (cropping,
resampling, nnU-Net's predictor, export) runs unchanged. They were trained by
``scripts/train_standin_weights.py`` on TotalSegmentator's reference outputs and radpath's
phantoms (origins and licences in ``standin-weights/README.md``). They are not the
official models, and they are only picked when the user allows stand-ins and the official
weights are absent; every run on them says so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from radpath.domain.vocabulary import Modality

#: The nnU-Net results folder holding the stand-ins (TotalSegmentator's weights layout).
STANDIN_WEIGHTS = Path(__file__).parent / "standin-weights"

#: Key in each stand-in's dataset.json that marks it (official files never carry it).
MARKER = "radpath_standin"


@dataclass(frozen=True)
class StandinModel:
    """One model TotalSegmentator runs, as the stand-in replaces it."""

    task_id: int
    task: str  # TotalSegmentator task whose class map the model predicts
    modality: str
    spacing: float  # mm, isotropic: what TotalSegmentator resamples to for this model
    trainer: str

    @property
    def folder_name(self) -> str:
        from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS

        return TASK_ID_WEIGHTS_CONFIGS[self.task_id]["foldername"]

    def trainer_folder(self, root: Path = STANDIN_WEIGHTS) -> Path:
        return root / self.folder_name / f"{self.trainer}__nnUNetPlans__3d_fullres"


#: The fast models radpath runs: 297 (CT, 3 mm), 298 (CT, 6 mm, TotalSegmentator's crop
#: model for a roi_subset), 852 (MR, 3 mm; also MR's crop model).
STANDIN_MODELS = (
    StandinModel(297, "total", Modality.CT, 3.0, "nnUNetTrainer_4000epochs_NoMirroring"),
    StandinModel(298, "total", Modality.CT, 6.0, "nnUNetTrainer_4000epochs_NoMirroring"),
    StandinModel(852, "total_mr", Modality.MR, 3.0, "nnUNetTrainer_2000epochs_NoMirroring"),
)


def is_standin(trainer_folder: Path) -> bool:
    """Whether the model in ``trainer_folder`` is one of radpath's stand-ins."""
    try:
        return bool(json.loads((trainer_folder / "dataset.json").read_text()).get(MARKER))
    except (OSError, ValueError):
        return False


@contextmanager
def weights_path(root: Path) -> Iterator[None]:
    """Point TotalSegmentator at ``root`` for the duration (it reads the variable per run)."""
    before = os.environ.get("TOTALSEG_WEIGHTS_PATH")
    os.environ["TOTALSEG_WEIGHTS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOTALSEG_WEIGHTS_PATH", None)
        else:
            os.environ["TOTALSEG_WEIGHTS_PATH"] = before
