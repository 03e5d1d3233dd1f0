"""Generators of synthetic test and demo data (phantom CT/MR series with label volumes)."""

from radpath.synthetic.phantom import LABELS, ORGANS
from radpath.synthetic.series import (
    SliceGeometry,
    SyntheticPatient,
    SyntheticSeries,
    SyntheticStudy,
    write_series,
)

__all__ = [
    "LABELS",
    "ORGANS",
    "SliceGeometry",
    "SyntheticPatient",
    "SyntheticSeries",
    "SyntheticStudy",
    "write_series",
]
