"""What was measured on a segment: the record the quantify stage keeps (no pydicom here, so
the manifest's sections load without it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from radpath.domain.records import Record


@dataclass
class SegmentQuantities(Record):
    """What was measured on one segment of the SEG."""

    segment_number: int  # SegmentNumber (0062,0004)
    label: str  # SegmentLabel (0062,0005)
    voxels: int  # voxels of the mask on the source grid
    voxel_volume_mm3: float  # PixelSpacing × slice spacing of the source series
    features: dict[str, float] = field(default_factory=dict)  # Feature.key → value
    left_out: dict[str, str] = field(default_factory=dict)  # Feature.key → why (e.g. not a number)

    @property
    def volume_ml(self) -> float:
        return self.voxels * self.voxel_volume_mm3 / 1000.0
