"""The UIDs of a converted slide, derived from the slide file and its patient link.

wsidicomizer asks a :class:`wsidicom.metadata.UidGenerator` for every UID it creates.
radpath's derives each from the slide's fingerprint, the link's identity and the UID's
role (for instances: what the instance is: image type, pixel matrix, optical path,
focal plane), so converting the same slide again writes the same study, series and
instances, and the store stage finds them already in the PACS.
"""

from __future__ import annotations

import threading

from pydicom.dataset import Dataset
from pydicom.uid import UID
from wsidicom.metadata import UidGenerator

from radpath.domain.uids import derived_uid

#: What tells the instances of one conversion apart (attribute keywords).
_INSTANCE_KEYS = (
    "ImageType",
    "TotalPixelMatrixColumns",
    "TotalPixelMatrixRows",
    "Columns",
    "Rows",
    "NumberOfFrames",
    "InConcatenationNumber",
    "TotalPixelMatrixFocalPlanes",
)


class DerivedSlideUids(UidGenerator):
    """UIDs named by ``seed`` (the slide's fingerprint and link) and their role."""

    def __init__(self, seed: str):
        self.seed = seed
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()  # wsidicomizer writes instances from worker threads

    def _uid(self, role: str, *identity: str) -> UID:
        return UID(derived_uid("slide", self.seed, role, *identity))

    def _numbered(self, key: str) -> str:
        """``key`` with how often it was asked before: equal instances (concatenations in
        the order written) still get distinct UIDs."""
        with self._lock:
            count = self._counts[key] = self._counts.get(key, -1) + 1
        return f"{key}#{count}"

    def study_uid(self, study) -> UID:
        return self._uid("study")

    def series_uid(self, series) -> UID:
        return self._uid("series")

    def frame_of_reference_uid(self, metadata) -> UID:
        return self._uid("frame-of-reference")

    def dimension_organization_uid(self, metadata) -> UID:
        return self._uid("dimension-organization")

    def sample_uid(self, sample) -> UID:
        return self._uid("sample", str(getattr(sample, "identifier", "")))

    def pyramid_uid(self, pyramid) -> UID:
        return self._uid("pyramid", self._numbered("pyramid"))

    def sop_uid(self, dataset: Dataset) -> UID:
        key = "/".join(str(dataset.get(name, "")) for name in _INSTANCE_KEYS)
        optical = dataset.get("OpticalPathSequence") or []
        key += "/" + ",".join(str(item.get("OpticalPathIdentifier", "")) for item in optical)
        return self._uid("instance", self._numbered(key))

    def annotation_group_uid(self) -> UID:
        return self._uid("annotation-group", self._numbered("annotation-group"))
