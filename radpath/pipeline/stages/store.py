"""The ``store`` stage: what an element's pair needs in the PACS, each instance once.

Sent, in this order, whatever the target does not hold yet: the radiology source series
(or its copies with filled-in UIDs, see :mod:`radpath.adapters.dicomseg.sources`), the slide series,
then the SEG. References go before what refers to them, so a failure part way leaves
no SEG whose source is missing. STORE_TARGET picks the way (:mod:`radpath.adapters.storage`):
STOW-RS standalone, DIMSE C-STORE to CTP in Kaapana, or a folder. The link stage stores
its KOS the same way once this stage has put the pair in place.

Right after wsi-dicomize (``radpath-wsi-import``: no pair yet, no SEG) it stores the
element's converted slides, so that ``radpath-map`` can then start from them.
"""

from __future__ import annotations

import logging

from radpath.adapters.settings import Settings
from radpath.adapters.storage import store_new, store_target
from radpath.pipeline.batch import BatchElement
from radpath.pipeline.sections import PairFacts, SegEncodeFacts, StoreFacts

log = logging.getLogger(__name__)


def run_store(element: BatchElement, settings: Settings) -> StoreFacts:
    if element.get(SegEncodeFacts) or element.get(PairFacts):
        instances = element.pair_files().instances()
    else:  # radpath-wsi-import: slides only, before any pairing
        instances = {"slide": element.converted_slides()}
    target = store_target(settings)
    ordered = [instance for kind in instances.values() for instance in kind]
    report = store_new(target, ordered)
    counts = ", ".join(f"{what} {c['sent']} sent, {c['present']} already there" for what, c in report.counts().items())
    log.info("%s: stored to %s: %s", element.name, target.description, counts)
    return StoreFacts(
        folder=None,  # writes no files
        target=target.description,
        checked=target.can_check,
        counts=report.counts(),
        series=[list(s) for s in sorted({(i.what, i.study_instance_uid, i.series_instance_uid) for i in ordered})],
    )
