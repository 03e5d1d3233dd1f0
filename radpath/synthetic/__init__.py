"""Generators of synthetic test and demo data: phantom CT/MR series with label volumes,
and small vendor-format slides (Aperio-style SVS, generic pyramidal TIFF)."""

from radpath.synthetic.phantom import LABELS, ORGANS
from radpath.synthetic.series import (
    SliceGeometry,
    SyntheticPatient,
    SyntheticSeries,
    SyntheticStudy,
    write_series,
    write_slide_header,
)
from radpath.synthetic.slides import SyntheticSlide, tissue_image, write_pyramidal_tiff, write_svs

__all__ = [
    "LABELS",
    "ORGANS",
    "SliceGeometry",
    "SyntheticPatient",
    "SyntheticSeries",
    "SyntheticStudy",
    "write_series",
    "write_slide_header",
    "SyntheticSlide",
    "tissue_image",
    "write_pyramidal_tiff",
    "write_svs",
]
