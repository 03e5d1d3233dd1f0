"""Where TotalSegmentator's weights must be, checked before any run.

TotalSegmentator downloads missing weights on first use; on a machine without network
(a hospital cluster, this CI) that ends in a name-resolution stack trace after seconds of
retries. radpath asks TotalSegmentator's own task table which models a task and speed
need, checks those folders (``$TOTALSEG_WEIGHTS_PATH``, else
``$TOTALSEG_HOME_DIR/nnunet/results``) and, when one is missing, says which task, where
it looked and the command that fetches them. It also writes TotalSegmentator's
``config.json`` with ``send_usage_stats: false`` before the first run, so no run phones
home.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from radpath.domain.vocabulary import Speed

#: TotalSegmentator's download names for radpath's tasks and speeds.
DOWNLOAD_NAMES = {
    ("total", Speed.FAST): "total_fast",
    ("total", Speed.FASTEST): "total_fast",
    ("total", Speed.FULL): "total",
    ("total_mr", Speed.FAST): "total_fast_mr",
    ("total_mr", Speed.FASTEST): "total_fast_mr",
    ("total_mr", Speed.FULL): "total_mr",
}
CHECKPOINT = Path("fold_0") / "checkpoint_final.pth"


class WeightsMissing(RuntimeError):
    """The model a task needs is not on disk (and would have to be downloaded)."""


#: The model TotalSegmentator runs first to crop when given a roi_subset (python_api.py):
#: the 6 mm total model for CT (3 mm with robust crop), the 3 mm total_mr model for MR.
CROP_MODELS = {
    ("total", False): (298, "nnUNetTrainer_4000epochs_NoMirroring"),
    ("total", True): (297, "nnUNetTrainer_4000epochs_NoMirroring"),
    ("total_mr", False): (852, "nnUNetTrainer_2000epochs_NoMirroring"),
    ("total_mr", True): (852, "nnUNetTrainer_2000epochs_NoMirroring"),
}


@dataclass(frozen=True)
class ModelSpec:
    """The nnU-Net models TotalSegmentator runs for one task at one speed."""

    task: str
    speed: str  # fast, fastest, full
    task_ids: tuple[int, ...]
    trainer: str
    plans: str
    crop_model: tuple[int, str] | None = None  # (task id, trainer) run first for a roi_subset

    def folders(self, weights_dir: Path) -> list[Path]:
        from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS

        models = [(task_id, self.trainer) for task_id in self.task_ids]
        if self.crop_model and self.crop_model not in models:
            models.insert(0, self.crop_model)
        return [
            weights_dir / TASK_ID_WEIGHTS_CONFIGS[task_id]["foldername"] / f"{trainer}__{self.plans}__3d_fullres"
            for task_id, trainer in models
        ]


def model_spec(task: str, speed: str, roi_subset: bool = False, robust_crop: bool = False) -> ModelSpec:
    from totalsegmentator.python_api import get_task_config

    config = get_task_config(task, fast=speed == Speed.FAST, fastest=speed == Speed.FASTEST, quiet=True)
    ids = config["task_id"] if isinstance(config["task_id"], list) else [config["task_id"]]
    crop = CROP_MODELS.get((task, robust_crop)) if roi_subset else None
    return ModelSpec(task, speed, tuple(ids), config["trainer"], config.get("plans") or "nnUNetPlans", crop)


def weights_dir() -> Path:
    from totalsegmentator.config import get_weights_dir

    return Path(get_weights_dir())


def check_weights(
    task: str, speed: str, root: Path | None = None, roi_subset: bool = False, robust_crop: bool = False
) -> ModelSpec:
    """The model spec when its weights (crop model included) are all on disk; else
    :class:`WeightsMissing`."""
    spec = model_spec(task, speed, roi_subset, robust_crop)
    root = root or weights_dir()
    missing = [folder for folder in spec.folders(root) if not (folder / CHECKPOINT).is_file()]
    if missing:
        listing = ", ".join(str(folder) for folder in missing)
        raise WeightsMissing(
            f"TotalSegmentator weights for task {task} ({speed}) are missing: looked for {CHECKPOINT} in "
            f"{listing}. Fetch them where there is network access with "
            f"`totalseg_download_weights -t {DOWNLOAD_NAMES.get((task, speed), task)}` (they land in "
            f"$TOTALSEG_WEIGHTS_PATH or $TOTALSEG_HOME_DIR/nnunet/results); on Kaapana, install the radpath "
            f"extension with these models selected (its model installer puts them on the models volume)."
        )
    return spec


@dataclass(frozen=True)
class WeightsChoice:
    """The models a run uses, the folder they come from, and whether they are stand-ins."""

    spec: ModelSpec
    root: Path
    standin: bool
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.standin:
            return "radpath stand-in (not TotalSegmentator's official weights)"
        return "TotalSegmentator official"


def choose_weights(
    task: str, speed: str, *, allow_standin: bool, roi_subset: bool = False, robust_crop: bool = False
) -> WeightsChoice:
    """The official weights when they are on disk; otherwise radpath's stand-ins if allowed
    (fast models only: a full-resolution request runs fast and says so); otherwise
    :class:`WeightsMissing` naming what is missing and how to fetch it."""
    from radpath.adapters.totalseg.standin import STANDIN_MODELS, STANDIN_WEIGHTS, is_standin

    try:
        spec = check_weights(task, speed, roi_subset=roi_subset, robust_crop=robust_crop)
    except WeightsMissing:
        if not allow_standin:
            raise
    else:
        root = weights_dir()
        # A user may have pointed TOTALSEG_WEIGHTS_PATH at the stand-ins: still say so.
        standin = all(is_standin(folder) for folder in spec.folders(root))
        return WeightsChoice(spec, root, standin)
    notes = []
    if not set(model_spec(task, speed).task_ids) <= {model.task_id for model in STANDIN_MODELS}:
        notes.append(f"stand-in weights exist for the fast models only: {speed} runs as fast")
        speed = Speed.FAST
    spec = check_weights(task, speed, root=STANDIN_WEIGHTS, roi_subset=roi_subset, robust_crop=robust_crop)
    notes.append(
        "TotalSegmentator's official weights are not installed: using radpath's STAND-IN weights (tiny models "
        "for tests and the demo; masks are not TotalSegmentator's results)"
    )
    return WeightsChoice(spec, STANDIN_WEIGHTS, True, tuple(notes))


#: Where TotalSegmentator fetches its weights: ``<releases>/<version>/<foldername>.zip``,
#: version and folder name from its TASK_ID_WEIGHTS_CONFIGS
#: (``totalsegmentator.libs.download_pretrained_weights`` holds this base in a local).
WEIGHTS_RELEASES_URL = "https://github.com/wasserth/TotalSegmentator/releases/download"


@dataclass(frozen=True)
class OfficialModel:
    """One of TotalSegmentator's official nnU-Net models that some radpath run needs."""

    task_id: int
    folder: str  # DatasetNNN_..., the folder under the weights directory and the zip's name
    trainer_folder: str  # <trainer>__<plans>__3d_fullres inside it
    url: str

    @property
    def check_file(self) -> Path:
        """The file that is there only once the model is unpacked whole."""
        return Path(self.trainer_folder) / CHECKPOINT


def _run_folders(speed: str) -> list[Path]:
    """``DatasetNNN_.../<trainer folder>`` of every model a run at ``speed`` may load: each task
    of :data:`DOWNLOAD_NAMES`, with and without robust crop."""
    folders: list[Path] = []
    for task in sorted({task for task, _speed in DOWNLOAD_NAMES}):
        for robust_crop in (False, True):
            spec = model_spec(task, speed, roi_subset=True, robust_crop=robust_crop)
            folders += [folder for folder in spec.folders(Path()) if folder not in folders]
    return folders


def official_models() -> list[OfficialModel]:
    """Every official model any radpath run may load, crop models included: each task of
    :data:`DOWNLOAD_NAMES`, each speed, with and without robust crop; in task-id order."""
    from totalsegmentator.map_tasks_config import TASK_ID_WEIGHTS_CONFIGS

    trainers: dict[int, set[str]] = {}
    for speed in Speed:
        for folder in _run_folders(speed):
            task_id = int(folder.parent.name.removeprefix("Dataset").split("_", 1)[0])
            trainers.setdefault(task_id, set()).add(folder.name)
    models = []
    for task_id, trainer_folders in sorted(trainers.items()):
        if len(trainer_folders) != 1:
            raise ValueError(f"model {task_id} is run with several trainers: {sorted(trainer_folders)}")
        config = TASK_ID_WEIGHTS_CONFIGS[task_id]
        models.append(OfficialModel(task_id, config["foldername"], trainer_folders.pop(),
                                    f"{WEIGHTS_RELEASES_URL}/{config['version']}/{config['foldername']}.zip"))
    return models


def kaapana_models_by_speed() -> dict[str, list[str]]:
    """The model folders (names of ``model_lookup.json``) a run at each speed may load, CT and
    MR: what the provide-weights task puts onto a project's models volume before segment."""
    return {str(speed): sorted({folder.parent.name for folder in _run_folders(speed)}) for speed in Speed}


def kaapana_model_lookup() -> dict[str, dict]:
    """The ``model_lookup.json`` of radpath's model installer image, in the form Kaapana's
    base-model-installer reads (``services/utils/base-model-installer/README.md``): one entry
    per model folder, unpacked straight into the model directory (``models: [""]``)."""
    return {
        model.folder: {"id": str(model.task_id), "models": [""], "check_file": str(model.check_file),
                       "download_link": model.url}
        for model in official_models()
    }


def disable_usage_stats() -> Path:
    """Write TotalSegmentator's config.json with send_usage_stats false (keeping the rest)."""
    from totalsegmentator.config import get_totalseg_dir

    folder = Path(get_totalseg_dir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    config = {}
    if path.is_file():
        try:
            config = json.loads(path.read_text())
        except ValueError:
            config = {}
    config.setdefault("totalseg_id", "radpath")
    config.setdefault("prediction_counter", 0)
    config["send_usage_stats"] = False
    path.write_text(json.dumps(config, indent=4))
    return path
