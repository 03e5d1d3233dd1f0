"""A simple anatomical phantom in patient space (DICOM LPS, millimetres).

The body is an elliptic cylinder along the patient's long axis; organs are ellipsoids
where they belong (liver on the patient's right, spleen left and posterior, kidneys
posterior either side of the spine, lungs in the thorax, bladder and prostate in the
pelvis). Organ names are TotalSegmentator's class names for task ``total``, so labels
made here can stand in for its output. The phantom is defined in patient coordinates,
not voxels: any series geometry samples it, and its label volume comes out in exactly
that series' voxel grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radpath.domain.vocabulary import Modality


@dataclass(frozen=True)
class Ellipsoid:
    """An axis-aligned ellipsoid in LPS millimetres, optionally cut by z planes."""

    center: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    z_min: float = -np.inf
    z_max: float = np.inf

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean mask of ``points`` (…, 3) inside the ellipsoid."""
        d = (points - np.asarray(self.center)) / np.asarray(self.semi_axes)
        z = points[..., 2]
        return (np.einsum("...i,...i->...", d, d) <= 1.0) & (z > self.z_min) & (z <= self.z_max)


@dataclass(frozen=True)
class Organ:
    name: str  # TotalSegmentator class name (task "total")
    shape: Ellipsoid
    ct_hu: float
    mr_signal: float


_RIGHT_LUNG = Ellipsoid((-80, 10, 200), (65, 85, 90))
_LEFT_LUNG = Ellipsoid((80, 10, 200), (65, 85, 90))

# Painting order: later organs win where shapes overlap (the liver dome over the lung base,
# kidneys over the liver's lower edge), as the diaphragm and fat planes would separate them.
ORGANS: tuple[Organ, ...] = (
    Organ("lung_upper_lobe_right", Ellipsoid(_RIGHT_LUNG.center, _RIGHT_LUNG.semi_axes, z_min=230), -850, 30),
    Organ("lung_middle_lobe_right", Ellipsoid(_RIGHT_LUNG.center, _RIGHT_LUNG.semi_axes, 180, 230), -850, 30),
    Organ("lung_lower_lobe_right", Ellipsoid(_RIGHT_LUNG.center, _RIGHT_LUNG.semi_axes, z_max=180), -850, 30),
    Organ("lung_upper_lobe_left", Ellipsoid(_LEFT_LUNG.center, _LEFT_LUNG.semi_axes, z_min=190), -850, 30),
    Organ("lung_lower_lobe_left", Ellipsoid(_LEFT_LUNG.center, _LEFT_LUNG.semi_axes, z_max=190), -850, 30),
    Organ("liver", Ellipsoid((-60, -10, 70), (80, 75, 55)), 100, 200),
    Organ("spleen", Ellipsoid((85, 45, 70), (30, 40, 45)), 115, 450),
    Organ("kidney_right", Ellipsoid((-70, 65, -20), (28, 30, 50)), 170, 520),
    Organ("kidney_left", Ellipsoid((70, 65, -5), (28, 30, 50)), 170, 520),
    Organ("urinary_bladder", Ellipsoid((0, -40, -200), (45, 40, 35)), 5, 1200),
    Organ("prostate", Ellipsoid((0, -15, -255), (20, 18, 18)), 45, 650),
)

#: Label value of each organ in label volumes (0 is background).
LABELS: dict[str, int] = {organ.name: index for index, organ in enumerate(ORGANS, start=1)}

BODY_SEMI_AXES = (170.0, 120.0)  # x (left-right), y (anterior-posterior)
SPINE_CENTER = (0.0, 70.0)
SPINE_RADIUS = 18.0
BODY_Z_RANGE = (-300.0, 320.0)  # outside this the phantom is air (head and legs are not modelled)

# CT numbers as in a portal-venous abdominal CT, the body between organs as fat: organs
# stand out by tens of HU over the noise, as they do on real scans.
_CT_AIR, _CT_BODY, _CT_BONE = -1000.0, -90.0, 450.0
_MR_AIR, _MR_BODY, _MR_BONE = 0.0, 320.0, 250.0


def sample(points: np.ndarray, modality: str) -> tuple[np.ndarray, np.ndarray]:
    """Values and labels of the phantom at LPS ``points`` (…, 3).

    Returns ``(values, labels)``: CT numbers in HU for ``CT``, arbitrary T2-like signal
    for ``MR`` (float, noise-free), and organ labels (uint8, see :data:`LABELS`).
    """
    if modality not in Modality.radiology():
        raise ValueError(f"phantom modality must be CT or MR, not {modality!r}")
    ct = modality == Modality.CT
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    in_z = (z >= BODY_Z_RANGE[0]) & (z <= BODY_Z_RANGE[1])
    body = ((x / BODY_SEMI_AXES[0]) ** 2 + (y / BODY_SEMI_AXES[1]) ** 2 <= 1.0) & in_z
    spine = ((x - SPINE_CENTER[0]) ** 2 + (y - SPINE_CENTER[1]) ** 2 <= SPINE_RADIUS**2) & in_z
    values = np.where(body, _CT_BODY if ct else _MR_BODY, _CT_AIR if ct else _MR_AIR).astype(np.float32)
    values[spine] = _CT_BONE if ct else _MR_BONE
    labels = np.zeros(points.shape[:-1], dtype=np.uint8)
    for organ in ORGANS:
        inside = organ.shape.contains(points) & body
        values[inside] = organ.ct_hu if ct else organ.mr_signal
        labels[inside] = LABELS[organ.name]
    return values, labels
