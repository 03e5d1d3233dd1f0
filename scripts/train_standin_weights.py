#!/usr/bin/env python
"""Train radpath's stand-in TotalSegmentator weights (tasks 297, 298 and 852).

    .venv/bin/python scripts/train_standin_weights.py [--shared ../shared/data] [--iterations N]
        [--modalities CT|MR] [--device cuda --batch-size 4] [--init-from FOLDER --learning-rate 1e-3]

Writes ``radpath/adapters/totalseg/standin-weights/`` in TotalSegmentator's weights layout and
prints each training case's Dice under nnU-Net's sliding-window predictor; the tests in
``tests/test_segment_standin.py`` then check them through TotalSegmentator's own API.

Training data (read, never copied into the repository):
- TotalSegmentator's reference outputs in ``../shared/data``: the abdominal CT
  (converted with the nifti stage's dcm2niix) with ``total --fast`` labels, and the
  small example CT and MR with their ``total`` / ``total_mr`` labels (Apache-2.0);
- radpath's phantom (``radpath.synthetic``) as CT and MR, on several grids.

Each case goes through exactly what TotalSegmentator does before nnU-Net sees an image
(``as_closest_canonical``, ``change_spacing`` to the model's spacing as int32, written
and read back as NIfTI) and then nnU-Net's own ``DefaultPreprocessor`` (transpose,
crop to non-zero, resampling to the network's coarser grid, see ``NETWORK_SPACING``). Normalisation (nnU-Net's CTNormalization / ZScoreNormalization) is
applied per sample to a random box, because TotalSegmentator crops the image to the
organ before the second pass and a z-score depends on what is left.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from radpath.adapters.totalseg.standin import MARKER, STANDIN_MODELS, STANDIN_WEIGHTS, StandinModel  # noqa: E402
from radpath.adapters.totalseg.weights import CHECKPOINT  # noqa: E402
from radpath.domain.anatomy import load_master  # noqa: E402
from radpath.synthetic import LABELS, SliceGeometry  # noqa: E402
from radpath.synthetic.volumes import phantom_volume  # noqa: E402

#: The grid each stand-in network works on (mm), coarser than the model it replaces:
#: nnU-Net's own preprocessor resamples TotalSegmentator's 3 mm input to it and resamples
#: the probabilities back, so the real inference path is unchanged. On 6 mm one patch holds
#: a whole abdomen: every step sees every organ, and left from right by the spine, which
#: made two CPUs enough (at 3 mm the same network had not learnt the kidneys after 800
#: steps; at 6 mm it had after 600). MR keeps a finer grid for the small example MR's
#: pancreas and gallbladder.
NETWORK_SPACING = {"CT": 6.0, "MR": 4.5}
#: Training steps (one patch each): MR's are more, for the eleven organs of one small image.
ITERATIONS = {"CT": 3000, "MR": 5000}
#: Patch (z, y, x): 288 x 384 x 384 mm on the CT grid, 216 x 360 x 360 mm on MR's: the
#: spine in view beside either kidney.
PATCHES = {"CT": (48, 64, 64), "MR": (48, 80, 80)}
ARCHITECTURE = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 5,
        # 8 at full resolution: the head separates ~20 classes from these (4 could not tell
        # the kidneys from the spleen); the deep stages carry the context.
        "features_per_stage": [8, 16, 32, 64, 96],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * 5,
        "strides": [[1, 1, 1]] + [[2, 2, 2]] * 4,
        "n_conv_per_stage": [1, 1, 2, 2, 2],
        "n_conv_per_stage_decoder": [1, 1, 1, 1],
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    },
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}

#: The organs the stand-ins learn; every other class (bones, muscles, vessels, bowel) is
#: background to them. These are the phantom's organs and the large organs of the shared
#: references the tests check (total_mr names the lungs whole and the spine "vertebrae").
#: A network this small on two CPUs learns these in minutes; every class more slows it.
TRAINED_CLASSES = (
    "liver", "spleen", "kidney_right", "kidney_left", "stomach", "gallbladder", "pancreas",
    "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
    "lung_lower_lobe_right", "lung_left", "lung_right", "urinary_bladder", "prostate",
    "colon", "vertebrae", "autochthon_left", "autochthon_right",
)


#: Phantom grids for training: (rows, columns, slices, pixel spacing, slice spacing,
#: centre z, orientation). The whole body in varied spacings and cuts, plus part-body
#: fields of view (thorax, abdomen, pelvis) so that organs cut by the field are seen.
PHANTOM_GRIDS = (
    (128, 128, 60, 3.0, 5.0, 10.0, "axial"),
    (96, 128, 210, 3.0, 3.0, 10.0, "axial"),
    (160, 192, 90, 2.0, 5.0, 60.0, "axial-rows-flipped"),
    (128, 128, 40, 3.0, 3.0, 220.0, "axial"),
    (128, 128, 50, 3.0, 2.5, -200.0, "axial"),
    (200, 240, 30, 1.6, 4.0, 60.0, "axial"),
    (128, 210, 120, 3.0, 2.0, 0.0, "coronal"),
    # The pelvis in thick slices: TotalSegmentator's linear resampling blurs the bladder
    # into the prostate's top across a 5-6 mm gap (the first MR stand-in, trained on 2.5-3 mm
    # pelves only, missed the prostate's upper slices on a 4.5 mm series).
    (120, 120, 36, 3.0, 5.0, -175.0, "axial-rows-flipped"),
    (140, 140, 30, 2.5, 6.0, -200.0, "axial"),
)


@dataclass
class Case:
    name: str
    data: np.ndarray  # (z, y, x) raw intensities on the model's grid, float32
    seg: np.ndarray  # (z, y, x) task label ids, int16
    weight: float

    def __post_init__(self) -> None:
        self.present = [int(c) for c in np.unique(self.seg) if c > 0]
        self.boxes = {c: _bbox(self.seg == c) for c in self.present}


def _bbox(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    where = np.argwhere(mask)
    return where.min(axis=0), where.max(axis=0) + 1


def class_map(task: str) -> dict[str, int]:
    from totalsegmentator.map_to_binary import class_map as maps

    return {name: int(index) for index, name in maps[task].items()}


def plans_and_dataset(
    model: StandinModel, intensity: dict, normalization: str, training_cases: list[str] = ()
) -> tuple[dict, dict]:
    """nnU-Net's plans.json and dataset.json for ``model``, on the stand-in's network grid."""
    labels = {"background": 0, **class_map(model.task)}
    dataset = {
        "channel_names": {"0": model.modality},
        "labels": labels,
        "numTraining": len(training_cases),
        "training_cases": list(training_cases),
        "file_ending": ".nii.gz",
        "name": model.folder_name,
        "description": "radpath STAND-IN, not TotalSegmentator's official model: a tiny network trained by "
        "scripts/train_standin_weights.py for offline tests and the demo",
        MARKER: True,
    }
    spacing = [NETWORK_SPACING[model.modality]] * 3
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": list(PATCHES[model.modality]),
        "median_image_size_in_voxels": [100, 100, 100],
        "spacing": spacing,
        "normalization_schemes": [normalization],
        "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": ARCHITECTURE,
        "batch_dice": False,
    }
    plans = {
        "dataset_name": model.folder_name,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": spacing,
        "original_median_shape_after_transp": [100, 100, 100],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": configuration},
        "experiment_planner_used": "radpath scripts/train_standin_weights.py",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": intensity},
    }
    return plans, dataset


def normalization_of(model: StandinModel) -> str:
    return "CTNormalization" if model.modality == "CT" else "ZScoreNormalization"


# --- cases -----------------------------------------------------------------------------


def ts_grid(image: nib.Nifti1Image, spacing: float, order: int, dtype) -> nib.Nifti1Image:
    """What TotalSegmentator hands nnU-Net: canonical orientation, resampled to ``spacing``."""
    from totalsegmentator.alignment import as_closest_canonical
    from totalsegmentator.resampling import change_spacing

    copy_ = nib.Nifti1Image(np.asanyarray(image.dataobj).astype(np.float64), image.affine)
    return change_spacing(as_closest_canonical(copy_), spacing, order=order, dtype=dtype, nr_cpus=1)


def preprocess(name, image, labels, model: StandinModel, scratch: Path, weight: float) -> Case:
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    image_path, seg_path = scratch / f"{name}_0000.nii.gz", scratch / f"{name}.nii.gz"
    nib.save(ts_grid(image, model.spacing, order=1, dtype=np.int32), image_path)
    nib.save(ts_grid(labels, model.spacing, order=0, dtype=np.uint8), seg_path)
    plans, dataset = plans_and_dataset(model, {}, "NoNormalization")
    manager = PlansManager(plans)
    io = SimpleITKIO()
    data, properties = io.read_images([str(image_path)])
    seg, _ = io.read_seg(str(seg_path))
    data, seg, _ = DefaultPreprocessor(verbose=False).run_case_npy(
        data, seg, properties, manager, manager.get_configuration("3d_fullres"), dataset
    )
    seg = np.where(seg[0] < 0, 0, seg[0]).astype(np.int16)  # -1 = outside the non-zero crop
    trained = [index for name, index in class_map(model.task).items() if name in TRAINED_CLASSES]
    seg[~np.isin(seg, trained)] = 0
    return Case(name, data[0].astype(np.float32), seg, weight)


def labels_on(image: nib.Nifti1Image, labels: nib.Nifti1Image, remap: dict[int, int] | None = None):
    """Reference labels on the image's voxel grid (the reference may be stored flipped)."""
    from nibabel.processing import resample_from_to

    on_grid = resample_from_to(labels, image, order=0)
    values = np.asanyarray(on_grid.dataobj).astype(np.int16)
    if remap:
        values = np.vectorize(lambda v: remap.get(int(v), 0))(values).astype(np.int16)
    return nib.Nifti1Image(values.astype(np.uint8), image.affine)


def shared_cases(shared: Path, modality: str, scratch: Path) -> list[tuple[str, nib.Nifti1Image, nib.Nifti1Image, float]]:
    """The shared references for ``modality`` (CT needs dcm2niix; MR reads NIfTI only)."""
    small = shared / "totalsegmentator"
    if modality == "MR":
        mr_small = nib.load(str(small / "example_mr_sm.nii.gz"))
        # Eleven organs in a small volume, and unlike the phantom: 60% of MR's patches.
        return [("example_mr_sm", mr_small, labels_on(mr_small, nib.load(str(small / "example_seg_mr.nii.gz"))), 10.0)]
    from radpath.adapters.radiology.dcm2niix import run_dcm2niix

    converted = run_dcm2niix(shared / "ct-abdomen-totalseg", scratch / "dcm2niix", compress=True)
    (ct_path,) = [p for p in converted if p.name.endswith(".nii.gz")]
    ct = nib.load(str(ct_path))
    ct_ref = labels_on(ct, nib.load(str(shared / "ct-abdomen-totalseg-output/totalseg_fast_multilabel.nii.gz")))
    ct_small = nib.load(str(small / "example_ct_sm.nii.gz"))
    return [
        ("ct-abdomen-totalseg", ct, ct_ref, 3.0),  # weights: share of the training patches
        ("example_ct_sm", ct_small, labels_on(ct_small, nib.load(str(small / "example_seg.nii.gz"))), 2.0),
    ]


def phantom_cases(modality: str) -> list[tuple[str, nib.Nifti1Image, nib.Nifti1Image, float]]:
    task = "total" if modality == "CT" else "total_mr"
    task_ids, master = class_map(task), load_master()
    # The phantom is named by task total; total_mr has whole lungs where it has lobes.
    remap = {label: task_ids[master.counterpart(name, task)] for name, label in LABELS.items()}
    cases = []
    for number, (rows, columns, slices, pixel, step, z, orientation) in enumerate(PHANTOM_GRIDS):
        geometry = SliceGeometry.named(
            orientation, rows=rows, columns=columns, slices=slices, pixel_spacing=(pixel, pixel),
            slice_spacing=step, center=(0.0, 0.0, z),
        )
        image, labels = phantom_volume(geometry, modality, seed=100 + number)
        values = np.asanyarray(labels.dataobj)
        mapped = np.zeros(values.shape, dtype=np.uint8)
        for label, task_label in remap.items():
            mapped[values == label] = task_label
        cases.append((f"phantom-{modality}-{number}", image, nib.Nifti1Image(mapped, labels.affine), 1.0))
    return cases


# --- training --------------------------------------------------------------------------


class Sampler:
    """Patches as TotalSegmentator's predictor sees them: normalised over a crop box (the
    whole image or an organ's box with a margin), zero outside it."""

    def __init__(self, cases: list[Case], normalizer, rng: np.random.Generator, patch: tuple[int, int, int]):
        self.cases, self.normalizer, self.rng, self.shape = cases, normalizer, rng, patch
        weights = np.array([c.weight for c in cases])
        self.p = weights / weights.sum()

    def box(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        """The whole image, or the box around some of its organs: TotalSegmentator crops to
        the union of the roi_subset's classes, one organ (a kidney request) or many."""
        shape = np.array(case.data.shape)
        draw = self.rng.random()
        if not case.present or draw < 0.4:
            return np.zeros(3, int), shape
        count = 1 if draw < 0.7 else int(self.rng.integers(2, len(case.present) + 1))
        chosen = self.rng.choice(case.present, size=min(count, len(case.present)), replace=False)
        low = np.min([case.boxes[int(c)][0] for c in chosen], axis=0)
        high = np.max([case.boxes[int(c)][1] for c in chosen], axis=0)
        margin = self.rng.integers(2, 12, size=3)  # voxels of the network grid, like TotalSegmentator's crop margin
        return np.maximum(low - margin, 0), np.minimum(high + margin, shape)

    def patch(self) -> tuple[np.ndarray, np.ndarray]:
        case = self.cases[self.rng.choice(len(self.cases), p=self.p)]
        low, high = self.box(case)
        region = tuple(slice(a, b) for a, b in zip(low, high))
        data = self.normalizer.run(case.data[region].copy(), None).astype(np.float32)
        seg = case.seg[region]
        present = [c for c in case.present if (seg == c).any()]
        if present and self.rng.random() < 0.67:
            c = int(self.rng.choice(present))
            where = np.argwhere(seg == c)
            center = where[self.rng.integers(len(where))]
        else:
            center = np.array([self.rng.integers(n) for n in seg.shape])
        start = center - np.array(self.shape) // 2 + self.rng.integers(-8, 9, size=3)
        x = np.zeros(self.shape, np.float32)
        y = np.zeros(self.shape, np.int64)
        src = [slice(max(s, 0), min(s + p, n)) for s, p, n in zip(start, self.shape, seg.shape)]
        dst = [slice(a.start - s, a.stop - s) for a, s in zip(src, start)]
        if all(a.stop > a.start for a in src):
            x[tuple(dst)] = data[tuple(src)]
            y[tuple(dst)] = seg[tuple(src)]
        return x, y

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*(self.patch() for _ in range(size)))
        return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ys))


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice over the classes in the batch (nnU-Net's DC_and_CE in spirit)."""
    ce = torch.nn.functional.cross_entropy(logits, target)
    probs = logits.softmax(1)
    classes = [int(c) for c in target.unique() if c > 0]
    if not classes:
        return ce
    onehot = torch.stack([(target == c).float() for c in classes], 1)
    p = probs[:, classes]
    dims = (2, 3, 4)
    dice = (2 * (p * onehot).sum(dims) + 1e-5) / (p.sum(dims) + onehot.sum(dims) + 1e-5)
    present = onehot.sum(dims) > 0
    return ce + (1 - dice[present]).mean()


def deep_supervision_loss(outputs: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """nnU-Net's weighting: 1, 1/2, 1/4, ... from the full-resolution output down, the
    coarsest output left out; targets subsampled to each output's grid."""
    weights = [0.5**i for i in range(len(outputs))]
    weights[-1] = 0.0
    total = 0.0
    for weight, logits in zip(weights, outputs):
        if weight:
            step = [a // b for a, b in zip(target.shape[1:], logits.shape[2:])]
            total = total + weight * loss_fn(logits, target[:, :: step[0], :: step[1], :: step[2]])
    return total / sum(weights)


@dataclass
class Schedule:
    """How one network trains: steps, patches per step, where, and from what."""

    iterations: int
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 1
    learning_rate: float = 3e-3
    #: A stand-in folder to start from (fine-tuning), else random initialisation.
    init_from: Path | None = None


def load_trained(network, model: StandinModel, root: Path, trained: list[int]) -> None:
    """Start ``network`` (a head for ``trained``) from ``model``'s checkpoint under ``root``,
    whose head covers the task's whole label map (see widen_head)."""
    checkpoint = torch.load(model.trainer_folder(root) / CHECKPOINT, map_location="cpu", weights_only=False)
    rows = [0, *trained]
    state = {key: (value[rows] if ".seg_layers." in key else value).float()
             for key, value in checkpoint["network_weights"].items()}
    network.load_state_dict(state)


def train(model: StandinModel, cases: list[Case], plans: dict, dataset: dict, schedule: Schedule):
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import (
        CTNormalization,
        ZScoreNormalization,
    )
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    torch.manual_seed(schedule.seed)
    rng = np.random.default_rng(schedule.seed)
    device, iterations = torch.device(schedule.device), schedule.iterations
    manager = PlansManager(plans)
    configuration = manager.get_configuration("3d_fullres")
    # Train a head for the labels the cases have (a 118-channel full-resolution softmax
    # would triple the step time); write_model widens it to the task's whole label map.
    trained = sorted({c for case in cases for c in case.present})
    lookup = np.zeros(max(dataset["labels"].values()) + 1, np.int16)
    lookup[trained] = np.arange(1, len(trained) + 1)
    cases = [Case(c.name, c.data, lookup[c.seg], c.weight) for c in cases]
    # Deep supervision, as nnU-Net trains: the coarse decoder stages learn the context
    # (which side, which lobe) from their own loss. nnU-Net's predictor switches it off;
    # the weights are the same either way.
    network = nnUNetTrainer.build_network_architecture(
        manager, configuration, 1, len(trained) + 1, enable_deep_supervision=True
    )
    if schedule.init_from:
        load_trained(network, model, schedule.init_from, trained)
    network.to(device)
    intensity = plans["foreground_intensity_properties_per_channel"]["0"]
    normalizer = (
        CTNormalization(use_mask_for_norm=False, intensityproperties=intensity)
        if model.modality == "CT"
        else ZScoreNormalization(use_mask_for_norm=False, intensityproperties=intensity)
    )
    sampler = Sampler(cases, normalizer, rng, tuple(configuration.patch_size))
    optimizer = torch.optim.AdamW(network.parameters(), lr=schedule.learning_rate, weight_decay=1e-5)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: (1 - min(i, iterations - 1) / iterations) ** 0.9)
    network.train()
    started, running = time.time(), None
    for iteration in range(1, iterations + 1):
        # One large patch beats two small ones (context tells left from right); on a GPU a
        # batch of several large ones costs little more than one.
        x, y = sampler.batch(schedule.batch_size)
        loss = deep_supervision_loss(network(x.to(device)), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 12)
        optimizer.step()
        decay.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if iteration % 50 == 0 or iteration == iterations:
            print(f"  {model.task_id}: {iteration}/{iterations} loss {running:.3f} ({time.time() - started:.0f} s)",
                  flush=True)
    network.decoder.deep_supervision = False
    network.eval()
    trained_labels = {"background": 0, **{f"label_{i}": i for i in range(1, len(trained) + 1)}}
    report_fit(network, cases, normalizer, manager, {**dataset, "labels": trained_labels}, device)
    return network.cpu(), trained


def report_fit(network, cases: list[Case], normalizer, manager, dataset: dict, device: torch.device) -> None:
    """Dice per training case, predicted as nnU-Net's predictor does (sliding window)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(use_mirroring=False, device=device, allow_tqdm=False)
    predictor.manual_initialization(network, manager, manager.get_configuration("3d_fullres"), None, dataset,
                                    "nnUNetTrainer", None)
    for case in cases:
        data = torch.from_numpy(normalizer.run(case.data.copy(), None)[None].astype(np.float32))
        with torch.no_grad():
            predicted = predictor.predict_sliding_window_return_logits(data).argmax(0).cpu().numpy()
        scores = []
        for label in case.present:
            truth, guess = case.seg == label, predicted == label
            if truth.sum() >= 100:
                scores.append(2 * (truth & guess).sum() / (truth.sum() + guess.sum()))
        print(f"  fit {case.name}: Dice mean {np.mean(scores):.2f}, min {np.min(scores):.2f} over {len(scores)} labels",
              flush=True)


#: CTNormalization's clip and scale, fixed instead of nnU-Net's foreground statistics:
#: -1000..1000 HU keeps the lungs apart from the air outside the body (a soft-tissue
#: window made them one value), scaled to about -5..5.
CT_WINDOW = {
    "max": 3071.0,
    "mean": 0.0,
    "median": 0.0,
    "min": -1024.0,
    "percentile_00_5": -1000.0,
    "percentile_99_5": 1000.0,
    "std": 200.0,
}


def widen_head(network, trained: list[int], plans: dict, dataset: dict):
    """The trained network with segmentation layers over the task's whole label map; labels
    never trained get a bias that keeps them out of every argmax."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(plans)
    heads = manager.get_label_manager(dataset).num_segmentation_heads
    full = nnUNetTrainer.build_network_architecture(
        manager, manager.get_configuration("3d_fullres"), 1, heads, enable_deep_supervision=False
    )
    rows = [0, *trained]
    state = full.state_dict()
    for key, value in network.state_dict().items():
        if ".seg_layers." in key:
            widened = torch.zeros_like(state[key]) if key.endswith("weight") else torch.full_like(state[key], -30.0)
            widened[rows] = value
            value = widened
        state[key] = value
    full.load_state_dict(state)
    full.eval()
    return full


def write_model(model: StandinModel, network, plans: dict, dataset: dict, root: Path) -> Path:
    folder = model.trainer_folder(root)
    path = folder / CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=1))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=1))
    # fp16 halves the file; nnU-Net's load_state_dict copies it into its float32 network.
    # The decoder holds the encoder too: convert each tensor once so the file keeps them shared.
    halves: dict[int, torch.Tensor] = {}
    weights = {}
    for key, value in network.state_dict().items():
        if value.is_floating_point():
            value = halves.setdefault(value.data_ptr(), value.half())
        weights[key] = value
    checkpoint = {
        "network_weights": weights,
        "trainer_name": "nnUNetTrainer",
        "init_args": {"configuration": "3d_fullres"},
        "inference_allowed_mirroring_axes": None,
    }
    torch.save(checkpoint, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--iterations", type=int, help="training steps (default: CT 3000, MR 5000)")
    parser.add_argument("--modalities", default="CT,MR", help="which stand-ins to train (CT: 297 and 298, MR: 852)")
    parser.add_argument("--out", type=Path, default=STANDIN_WEIGHTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where the network trains (default: cuda where present); the checkpoint runs on either")
    parser.add_argument("--batch-size", type=int, default=1, help="patches per step (1 on CPUs; more on a GPU)")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--init-from", type=Path, help="fine-tune the stand-ins in this folder instead of starting afresh")
    args = parser.parse_args(argv)
    # OMP_NUM_THREADS where several trainings share one machine
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
    wanted = set(args.modalities.split(","))
    with tempfile.TemporaryDirectory(prefix="radpath-standin-") as tmp:
        scratch = Path(tmp)
        for modality in sorted(wanted):
            # One network per modality serves all its models (CT: 297 and, as the crop
            # model, 298): they differ only in the grid TotalSegmentator resamples to
            # before nnU-Net resamples to the network's. It learns from the first one's.
            models = [m for m in STANDIN_MODELS if m.modality == modality]
            model = models[0]
            sources = shared_cases(args.shared, modality, scratch) + phantom_cases(modality)
            cases = [preprocess(name, image, labels, model, scratch, w) for name, image, labels, w in sources]
            print(f"{modality} ({model.task}, network on {NETWORK_SPACING[modality]} mm): "
                  + ", ".join(f"{c.name} {c.data.shape}" for c in cases), flush=True)
            intensity = CT_WINDOW if modality == "CT" else {}
            names = [c.name for c in cases]
            plans, dataset = plans_and_dataset(model, intensity, normalization_of(model), names)
            iterations = args.iterations or ITERATIONS[modality]
            schedule = Schedule(iterations, args.seed, args.device, args.batch_size, args.learning_rate, args.init_from)
            network, trained = train(model, cases, copy.deepcopy(plans), dataset, schedule)
            network = widen_head(network, trained, plans, dataset)
            for target in models:
                plans, dataset = plans_and_dataset(target, intensity, normalization_of(target), names)
                path = write_model(target, network, plans, dataset, args.out)
                print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, "
                      f"{sum(p.numel() for p in network.parameters())} parameters)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
