"""The ``store`` stage: what an element's pair needs in the PACS, each instance once.

Sent, in this order, whatever the target does not hold yet: the radiology source series
(or its copies with filled-in UIDs, see :mod:`radpath.seg.sources`), the slide series,
then the SEG. References go before what refers to them, so a failure part way leaves
no SEG whose source is missing. STORE_TARGET picks the way (:mod:`radpath.storage`):
STOW-RS standalone, DIMSE C-STORE to CTP in Kaapana, or a folder. The link stage stores
its KOS the same way once this stage has put the pair in place.

Right after wsi-dicomize (``radpath-wsi-import``: no pair yet, no SEG) it stores the
element's converted slides, so that ``radpath-map`` can then start from them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from radpath.batch import BatchElement, MissingFact
from radpath.manifest import Manifest
from radpath.radiology.series import SeriesFiles, read_series_in
from radpath.settings import Settings
from radpath.storage import Instance, store_new, store_target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairFiles:
    """The element's files of the pair: the radiology source series as the SEG references
    it, the slide series, and the SEG."""

    source: SeriesFiles
    slides: list[Path]
    seg: Path

    def instances(self) -> dict[str, list[Instance]]:
        """By kind, in store order: ``source``, ``slide``, ``SEG``."""
        kinds = {"source": [i.path for i in self.source.instances], "slide": self.slides, "SEG": [self.seg]}
        return {what: _unique(Instance.read(path, what) for path in paths) for what, paths in kinds.items()}


def pair_files(element: BatchElement, manifest: Manifest) -> PairFiles:
    nifti, pair, seg = (manifest.facts.get(k) for k in ("nifti", "pair", "seg-encode"))
    if not nifti or not pair or not seg:
        raise MissingFact("the pair, nifti and seg-encode stages have not run on this element")
    found = read_series_in(element.path)
    seg_folder = element.path / seg["folder"]
    if seg.get("sources_folder"):  # copies with the UIDs the SEG references
        sources = read_series_in(seg_folder / seg["sources_folder"])
    else:
        sources = [s for s in found if s.summary.key == nifti["series_key"]]
    if len(sources) != 1:
        raise MissingFact(f"the source series {nifti['series_key']} is no longer in the element")
    slide_uid = pair.get("slide_series_instance_uid")
    # One file per instance: a slide may sit both in the input and in a stage's output.
    slides = list({i.sop_instance_uid: i.path for s in found if slide_uid and s.summary.series_instance_uid == slide_uid
                   for i in s.instances}.values())
    if not slides:
        raise MissingFact(f"the slide series {slide_uid} is not in the element")
    return PairFiles(sources[0], slides, seg_folder / seg["path"])


def _unique(instances) -> list[Instance]:
    """One per SOP Instance UID."""
    seen: dict[str, Instance] = {}
    for instance in instances:
        seen.setdefault(instance.sop_instance_uid, instance)
    return list(seen.values())


def converted_slides(element: BatchElement, manifest: Manifest) -> dict[str, list[Instance]]:
    """The slides wsi-dicomize wrote (or passed through) for this element."""
    slides = (manifest.facts.get("wsi_dicomize") or {}).get("slides") or []
    uids = {s["series_instance_uid"] for s in slides if s.get("series_instance_uid")}
    if not uids:
        raise MissingFact("wsi-dicomize has recorded no slide series for this element")
    found = [i.path for s in read_series_in(element.path) if s.summary.series_instance_uid in uids
             for i in s.instances]
    return {"slide": _unique(Instance.read(path, "slide") for path in found)}


def run_store(element: BatchElement, settings: Settings) -> None:
    manifest = element.manifest()
    if "seg-encode" in manifest.facts or "pair" in manifest.facts:
        instances = pair_files(element, manifest).instances()
    else:  # radpath-wsi-import: slides only, before any pairing
        instances = converted_slides(element, manifest)
    target = store_target(settings)
    ordered = [instance for kind in instances.values() for instance in kind]
    report = store_new(target, ordered)
    manifest = element.manifest()
    manifest.update("store", {
        "target": target.description,
        "checked": target.can_check,
        "counts": report.counts(),
        "series": sorted({(i.what, i.study_instance_uid, i.series_instance_uid) for i in ordered}),
    })
    manifest.save()
    counts = ", ".join(f"{what} {c['sent']} sent, {c['present']} already there" for what, c in report.counts().items())
    log.info("%s: stored to %s: %s", element.name, target.description, counts)
