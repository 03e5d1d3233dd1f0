"""Where a host serves the viewers and DICOMweb: the one thing radpath's pages need to
know about the host that serves them (Kaapana, or ``radpath view`` on this machine).

Paths are on the page's own origin, so the browser sends the user's session with every
request, as Kaapana's own OHIF and SLIM do: on Kaapana the ingress turns that session into
the token dicom-web-filter checks (``auth_middleware.py`` reads ``x-forwarded-access-token``),
and the filter answers with the user's projects' series only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class SlideViewer(str, Enum):
    """What opens a slide on the host."""

    SLIM = "SLIM"
    #: radpath's local viewer where SLIM could not be built: OHIF's microscopy mode.
    OHIF_MICROSCOPY = "OHIF microscopy"


@dataclass(frozen=True)
class ViewerSite:
    """The host's routes: DICOMweb's root, OHIF's viewer route, SLIM's root."""

    dicomweb: str
    ohif: str = "/ohif/viewer"
    slim: str = "/slim"
    slide_viewer: SlideViewer = SlideViewer.SLIM

    def __post_init__(self) -> None:
        for name in ("dicomweb", "ohif", "slim"):
            value = getattr(self, name)
            if not value.startswith("/") or "//" in value or any(c in value for c in "\"'<> ?#"):
                raise ValueError(f"ViewerSite.{name} must be a plain path on the page's origin, not {value!r}")
        object.__setattr__(self, "dicomweb", self.dicomweb.rstrip("/"))
        object.__setattr__(self, "slim", self.slim.rstrip("/"))

    def as_page_settings(self) -> dict[str, str]:
        return {"dicomweb": self.dicomweb, "ohif": self.ohif, "slim": self.slim,
                "slideViewer": self.slide_viewer.value}


#: Kaapana's viewers read DICOMweb through dicom-web-filter (OHIF's ``kaapana.js``, SLIM's
#: ``local.js``: ``https://<host>/dicom-web-filter``), OHIF at ``/ohif/viewer``, SLIM at ``/slim``.
KAAPANA_DICOMWEB_PATH = "/dicom-web-filter"
#: radpath's local viewer server proxies its PACS here.
LOCAL_DICOMWEB_PATH = "/dicom-web"


def local_site(slim_built: bool) -> ViewerSite:
    """``radpath view``'s host: its own DICOMweb proxy; SLIM where it was built."""
    return ViewerSite(dicomweb=LOCAL_DICOMWEB_PATH,
                      slide_viewer=SlideViewer.SLIM if slim_built else SlideViewer.OHIF_MICROSCOPY)
