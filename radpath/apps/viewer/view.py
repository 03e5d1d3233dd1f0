"""``radpath view``: what radpath linked, in the real viewers on this machine.

PATH is one element (its folder, its link folder or its link.json), a run folder, or the
output folder of ``radpath run`` / ``radpath demo``: every linked element below it, its
pair (source series, slide, SEG) and its link object, goes into a private Orthanc. OHIF
(fetched on first use) is served in front of it on 127.0.0.1 with Kaapana's viewer routes
mapped onto it, and SLIM (built in set-up) at /slim, beside radpath's pages: the patient
view of each radiology study (every pair read back from that Orthanc; click an organ, get
its slide in SLIM) and, for one element, its split-view page. Where SLIM was not built,
slides open in OHIF's microscopy mode and the pages say so.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from radpath.adapters.dicomweb import DicomWeb
from radpath.adapters.orthanc import LocalOrthanc
from radpath.adapters.settings import Settings
from radpath.apps.viewer.assets import ohif_dist
from radpath.apps.viewer.server import ViewerServer
from radpath.apps.viewer.slim import built_slim
from radpath.domain.link.page import PATIENT_VIEW_FILE, patient_view_html
from radpath.domain.link.site import SlideViewer
from radpath.adapters.storage import StoreFailed
from radpath.pipeline.batch import BatchElement, MissingFact
from radpath.pipeline.manifest import MANIFEST_NAME, Manifest, ManifestError
from radpath.pipeline.sections import LinkFacts
from radpath.pipeline.stages.link import KOS_FILE, LINK_FILE, PAGE_FILE


class NothingToView(ValueError):
    """The path holds no element with a linked result."""


@dataclass(frozen=True)
class LocalView:
    #: The patient view of each radiology study, by StudyInstanceUID.
    patient_views: dict[str, str] = field(default_factory=dict)
    #: For one element: its split page, and OHIF and the slide on their own.
    page_url: str | None = None
    ohif_url: str | None = None
    slide_url: str | None = None
    #: What opens the slides: SLIM, or OHIF's microscopy mode where SLIM is not built.
    slide_viewer: SlideViewer = SlideViewer.OHIF_MICROSCOPY


def _linked(candidate: Path, skipped: list[str]) -> BatchElement | None:
    """The element at ``candidate``, if it is one whose link stage wrote its files; a
    damaged one is named in ``skipped`` (what is wrong with which file) and left out."""
    if not (candidate / MANIFEST_NAME).is_file():
        return None
    try:
        element = BatchElement(name=candidate.name, path=candidate, in_dir=None, out_dir=None,
                               sections=Manifest.load(candidate).sections)
    except ManifestError as err:
        skipped.append(str(err))
        return None
    link = element.get(LinkFacts)
    return element if link is not None and (element.folder_of(link) / LINK_FILE).is_file() else None


def elements_under(path: Path, skipped: list[str] | None = None) -> list[BatchElement]:
    """The linked element ``path`` is or lies in (an element, its link folder, its
    link.json), else every linked element below it (a run or output folder); elements that
    cannot be read go into ``skipped``, each with its file and what is wrong."""
    path = Path(path).resolve()
    skipped = [] if skipped is None else skipped
    for candidate in (path, path.parent, path.parent.parent):
        element = _linked(candidate, skipped)
        if element is not None:
            return [element]
    found = [e for e in (_linked(m.parent, skipped) for m in sorted(path.rglob(MANIFEST_NAME))) if e is not None]
    if not found:
        raise NothingToView(f"{path}: no linked element here (give the output folder of radpath run or demo, a run "
                            f"folder, an element folder, its link folder or its {LINK_FILE})")
    return found


def _link_record(element: BatchElement) -> tuple[Path, dict]:
    results = element.folder_of(element.need(LinkFacts))
    return results, json.loads((results / LINK_FILE).read_text())


def _readable(elements: list[BatchElement], skipped: list[str]) -> list[BatchElement]:
    """The elements whose link record and pair files can be read; the others named in
    ``skipped`` (a run cut short, a file damaged since)."""
    kept = []
    for element in elements:
        try:
            results, link = _link_record(element)
            link["radiology"]["study_instance_uid"]
            element.pair_files().instances()
        except KeyError as err:
            skipped.append(f"{element.path}: its {LINK_FILE} lacks {err}")
            continue
        except (OSError, ValueError, TypeError, StoreFailed, MissingFact) as err:
            skipped.append(f"{element.path}: {err}")
            continue
        kept.append(element)
    if not kept:
        raise NothingToView("no linked element here can be read: " + "; ".join(skipped))
    return kept


@contextmanager
def serve_elements(path: Path, work: Path | None = None, skipped: list[str] | None = None) -> Iterator[LocalView]:
    """Serve what ``path`` linked until the context ends; elements that cannot be read are
    left out and named in ``skipped``."""
    skipped = [] if skipped is None else skipped
    elements = _readable(elements_under(path, skipped), skipped)
    paths: dict[Path, None] = {}
    studies: dict[str, None] = {}
    for element in elements:
        results, link = _link_record(element)
        files = element.pair_files().instances()
        paths.update(dict.fromkeys([i.path for kind in files.values() for i in kind] + [results / KOS_FILE]))
        studies[link["radiology"]["study_instance_uid"]] = None
    with tempfile.TemporaryDirectory(prefix="radpath-view-", dir=work) as tmp:
        pacs = LocalOrthanc(storage=Path(tmp) / "orthanc").start()
        try:
            DicomWeb(Settings.from_env({"DICOMWEB_URL": pacs.dicomweb_url}).dicomweb).store(list(paths))
            pages = Path(tmp) / "pages"
            pages.mkdir()
            slim = built_slim()
            with ViewerServer(ohif_dist(), ("127.0.0.1", pacs.port), pages=pages,
                              slim=slim.www if slim else None) as server:
                site = server.site
                (pages / PATIENT_VIEW_FILE).write_text(patient_view_html(site), encoding="utf-8")
                here = f"{server.base_url}/radpath"
                views = {study: f"{here}/{PATIENT_VIEW_FILE}?study={study}" for study in studies}
                if len(elements) > 1:
                    yield LocalView(views, slide_viewer=site.slide_viewer)
                    return
                results, link = _link_record(elements[0])
                old_base = link["viewers"]["ohif"].split("/ohif/viewer")[0]
                page = (results / PAGE_FILE).read_text(encoding="utf-8")
                (pages / PAGE_FILE).write_text(page.replace(old_base + "/", server.base_url + "/"), encoding="utf-8")
                yield LocalView({study: f"{here}/{link['viewers']['patient']}" for study in studies},
                                f"{here}/{PAGE_FILE}", link["viewers"]["ohif"].replace(old_base, server.base_url),
                                link["viewers"]["slim"].replace(old_base, server.base_url), site.slide_viewer)
        finally:
            pacs.stop()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def view(path: Path, screenshot: Path | None = None) -> int:
    """Print the pages' URLs and serve until interrupted; or, with ``screenshot``, load the
    split page (one element) or the first patient view in headless Chromium, save what it
    shows, and end."""
    skipped: list[str] = []
    with serve_elements(path, skipped=skipped) as local:
        for problem in skipped:
            print(f"radpath view: skipped {problem}", file=sys.stderr, flush=True)
        if local.slide_viewer is not SlideViewer.SLIM:
            print("radpath view: SLIM is not built on this machine (make setup builds it): slides open in "
                  "OHIF's microscopy mode", file=sys.stderr, flush=True)
        for study, url in local.patient_views.items():
            print(f"patient view (study {study}): {url}", flush=True)
        if local.page_url:
            print(f"split view: {local.page_url}\nOHIF (radiology + SEG): {local.ohif_url}\n"
                  f"slide ({local.slide_viewer.value}): {local.slide_url}", flush=True)
        if screenshot is not None:
            from radpath.apps.viewer.look import look

            shown = local.page_url or next(iter(local.patient_views.values()))
            facts = look("page", shown, screenshot.with_suffix(""))
            print(json.dumps(facts))
            return 0
        print("serving on 127.0.0.1 until Ctrl-C", flush=True)
        # A kill (SIGTERM) ends the view as Ctrl-C does: its private Orthanc stops with it.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
