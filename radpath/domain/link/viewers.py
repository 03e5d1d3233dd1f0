"""Viewer URLs for a linked pair, as Kaapana serves the viewers.

OHIF opens the radiology study with the SEG loaded as an overlay when the SEG's series is
named as the initial series (``initialSeriesInstanceUID``); SLIM opens a slide series by
its own route. Both live under one base URL (the Kaapana host, or ``radpath view``'s).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass(frozen=True)
class ViewerLinks:
    base_url: str
    radiology_study_instance_uid: str
    seg_series_instance_uid: str
    slide_study_instance_uid: str
    slide_series_instance_uid: str

    def ohif(self, sop_instance_uid: str | None = None) -> str:
        """OHIF on the radiology study with the SEG; ``sop_instance_uid`` opens at that
        slice (OHIF's ``initialSOPInstanceUID``)."""
        query = {"StudyInstanceUIDs": self.radiology_study_instance_uid,
                 "initialSeriesInstanceUID": self.seg_series_instance_uid}
        if sop_instance_uid:
            query["initialSOPInstanceUID"] = sop_instance_uid
        return f"{self.base_url}/ohif/viewer?{urlencode(query)}"

    def patient_view(self, page: str) -> str:
        """The patient view ``page`` (beside the pair's other pages) on this pair."""
        query = {"study": self.radiology_study_instance_uid, "pair": self.seg_series_instance_uid,
                 "slide": self.slide_series_instance_uid}
        return f"{page}?{urlencode(query)}"

    @property
    def slim(self) -> str:
        return f"{self.base_url}/slim/studies/{self.slide_study_instance_uid}/series/{self.slide_series_instance_uid}"
