"""``radpath view``: one element's result in the real viewers on this machine.

The element's pair (source series, slide, SEG) and its link object go into a private
Orthanc; OHIF (fetched on first use) is served in front of it on 127.0.0.1 with
Kaapana's viewer routes mapped onto it, and the element's split-view page is served with
its links pointed there: OHIF on the CT/MR with the SEG on one side, the slide in OHIF's
microscopy mode on the other (SLIM where Kaapana hosts it).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from radpath.adapters.dicomweb import DicomWeb
from radpath.adapters.orthanc import LocalOrthanc
from radpath.adapters.settings import Settings
from radpath.apps.viewer.assets import ohif_dist
from radpath.apps.viewer.server import ViewerServer
from radpath.pipeline.batch import BatchElement
from radpath.pipeline.manifest import MANIFEST_NAME, Manifest
from radpath.pipeline.sections import LinkFacts
from radpath.pipeline.stages.link import KOS_FILE, LINK_FILE, PAGE_FILE


class NothingToView(ValueError):
    """The path is not an element with a linked result."""


@dataclass(frozen=True)
class LocalView:
    page_url: str
    ohif_url: str
    slide_url: str


def element_of(path: Path) -> BatchElement:
    """The batch element of an element folder, its link stage's folder or its link.json."""
    path = Path(path).resolve()
    for candidate in (path, path.parent, path.parent.parent):
        if (candidate / MANIFEST_NAME).is_file():
            element = BatchElement(name=candidate.name, path=candidate, in_dir=None, out_dir=None,
                                   sections=Manifest.load(candidate).sections)
            link = element.get(LinkFacts)
            if link is not None and (element.folder_of(link) / LINK_FILE).is_file():
                return element
    raise NothingToView(f"{path}: no link/{LINK_FILE} here (give an element folder of a finished run, "
                        "its link folder or its link.json)")


@contextmanager
def serve_element(path: Path, work: Path | None = None) -> Iterator[LocalView]:
    """Serve the element's result until the context ends."""
    element = element_of(path)
    results = element.folder_of(element.need(LinkFacts))
    files = element.pair_files().instances()
    paths = [i.path for kind in files.values() for i in kind] + [results / KOS_FILE]
    link = json.loads((results / LINK_FILE).read_text())
    with tempfile.TemporaryDirectory(prefix="radpath-view-", dir=work) as tmp:
        pacs = LocalOrthanc(storage=Path(tmp) / "orthanc").start()
        try:
            DicomWeb(Settings.from_env({"DICOMWEB_URL": pacs.dicomweb_url}).dicomweb).store(paths)
            pages = Path(tmp) / "pages"
            pages.mkdir()
            with ViewerServer(ohif_dist(), ("127.0.0.1", pacs.port), pages=pages) as server:
                old_base = link["viewers"]["ohif"].split("/ohif/viewer")[0]
                page = (results / PAGE_FILE).read_text(encoding="utf-8")
                (pages / PAGE_FILE).write_text(page.replace(old_base + "/", server.base_url + "/"), encoding="utf-8")
                yield LocalView(f"{server.base_url}/radpath/{PAGE_FILE}",
                                link["viewers"]["ohif"].replace(old_base, server.base_url),
                                link["viewers"]["slim"].replace(old_base, server.base_url))
        finally:
            pacs.stop()


def view(path: Path, screenshot: Path | None = None) -> int:
    """Print the page's URL and serve until interrupted; or, with ``screenshot``, load the
    page in headless Chromium, save what it shows, and end."""
    with serve_element(path) as local:
        print(f"split view: {local.page_url}\nOHIF (radiology + SEG): {local.ohif_url}\n"
              f"slide (OHIF microscopy): {local.slide_url}", flush=True)
        if screenshot is not None:
            from radpath.apps.viewer.look import look

            facts = look("page", local.page_url, screenshot.with_suffix(""))
            print(json.dumps(facts))
            return 0
        print("serving on 127.0.0.1 until Ctrl-C", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
