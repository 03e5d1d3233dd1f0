"""The ``link`` stage: record the pair in the PACS and give people a way to open it.

After the store stage has put the source series, the slide and the SEG in place, this
stage checks that the target holds every instance the link will name (where the target
can be asked), writes a Key Object Selection document in the radiology study that
references them all, the measurement report included (:mod:`radpath.domain.link.kos`), checks it with dciodvfy and stores it
the same way (once: its UIDs are derived from the SEG and slide series). Into the
element's output go ``link.json`` (UIDs and viewer URLs), ``qc.png`` (the mask on three
slices beside the slide) and ``index.html`` (OHIF and SLIM side by side).
"""

from __future__ import annotations

import json
import logging

from pydicom.dataset import Dataset

from radpath.adapters.dciodvfy import remove_unless_valid
from radpath.adapters.headers import read_header
from radpath.adapters.qc import qc_picture, slide_thumbnail
from radpath.adapters.settings import Settings
from radpath.adapters.storage import Instance, store_new, store_target
from radpath.domain.link.kos import LinkIdentity, build_link_kos
from radpath.domain.link.page import PATIENT_VIEW_FILE, centre_of, patient_view_html, split_view_html
from radpath.domain.link.site import ViewerSite
from radpath.domain.link.viewers import ViewerLinks
from radpath.pipeline.batch import BatchElement
from radpath.pipeline.sections import (
    LinkFacts,
    MergeFacts,
    NiftiFacts,
    QuantifyFacts,
    SegEncodeFacts,
    SegmentFacts,
    StoreFacts,
)

log = logging.getLogger(__name__)

KOS_FILE, LINK_FILE, QC_FILE, PAGE_FILE = "link.kos.dcm", "link.json", "qc.png", "index.html"


class LinkNotRecorded(RuntimeError):
    """The link cannot be recorded: the message says what is missing or wrong."""


def _headers(paths) -> list[Dataset]:
    return [read_header(p) for p in paths]


def _measurements(quantify: QuantifyFacts | None) -> dict | None:
    """The measurement report in link.json: its UIDs and each segment's volume."""
    if quantify is None:
        return None
    return {
        "sr": {"series_instance_uid": quantify.series_instance_uid, "sop_instance_uid": quantify.sop_instance_uid}
        if quantify.path else None,
        "volumes_ml": {q.label: round(q.volume_ml, 3) for q in quantify.segments if q.voxels},
        "reason": quantify.reason,
    }


def run_link(element: BatchElement, settings: Settings) -> LinkFacts:
    element.need(StoreFacts)  # the pair is in the PACS
    nifti, segment, merge = element.need(NiftiFacts, SegmentFacts, MergeFacts)
    seg_facts = element.need(SegEncodeFacts)
    files = element.pair_files()
    instances = files.instances()
    everything = [i for group in instances.values() for i in group]
    target = store_target(settings)
    notes = []
    if target.can_check:
        held = target.settled(everything)
        missing = [i for i in everything if i.sop_instance_uid not in held]
        if missing:
            kinds = ", ".join(sorted({i.what for i in missing}))
            raise LinkNotRecorded(f"{target.description} lacks {len(missing)} instance(s) the link would reference "
                            f"({kinds}, e.g. {missing[0].sop_instance_uid}): run the store stage first")
    else:
        notes.append(f"{target.description} cannot be asked what it holds: references not checked")

    (seg,) = _headers([files.seg])
    sources = _headers(i.path for i in files.source.instances)
    slides = _headers(files.slides)
    reports = _headers(files.reports)
    slide = slides[0]
    parts = [p for p in merge.parts if p.voxels]
    organ_label = " and ".join(p.what for p in parts)
    slide_label = str(slide.get("ContainerIdentifier") or slide.get("SeriesDescription") or slide.SeriesInstanceUID)
    identity = LinkIdentity(seg.SeriesInstanceUID, slide.SeriesInstanceUID)
    kos = build_link_kos(seg, sources, slides, identity, organ_label, slide_label,
                         series_number=seg_facts.series_number + 1, reports=reports)

    out_dir = element.output
    out_dir.mkdir(parents=True, exist_ok=True)
    kos_path = out_dir / KOS_FILE
    kos.save_as(kos_path, enforce_file_format=True)
    errors = remove_unless_valid(kos_path, "KOS", notes)
    if errors:
        raise LinkNotRecorded(f"the KOS fails dciodvfy (removed): {'; '.join(errors[:5])}")
    report = store_new(target, [Instance.read(kos_path, "KOS")])

    links = ViewerLinks(settings.options.viewer_base_url, seg.StudyInstanceUID, seg.SeriesInstanceUID,
                        slide.StudyInstanceUID, slide.SeriesInstanceUID)
    extent = seg_facts.extent
    centre = centre_of(extent)
    # Not at the centre slice (OHIF 3.13 leaves the SEG out when an image is named):
    # the pages centre OHIF on the organ once the SEG is in.
    ohif = links.ohif()
    algorithm = segment.algorithm.label
    series_label = nifti.series_description or files.source.summary.description or "the source series"
    title = f"{organ_label} | {series_label} ({nifti.modality}) | {algorithm}"
    picture = qc_picture(
        element.folder_of(nifti) / nifti.path,
        [element.folder_of(merge) / p.path for p in parts],
        nifti.modality,
        title,
        slide_thumbnail(files.slides),
    )
    picture.save(out_dir / QC_FILE)
    (out_dir / PAGE_FILE).write_text(split_view_html(f"radpath: {title}", links, extent, seg_facts.source_slices),
                                     encoding="utf-8")
    (out_dir / PATIENT_VIEW_FILE).write_text(patient_view_html(ViewerSite(dicomweb=settings.options.viewer_dicomweb_path)),
                                             encoding="utf-8")
    record = {
        "organ": parts[0].organ,
        "laterality": [p.laterality for p in parts],
        "what": organ_label,
        "radiology": {
            "study_instance_uid": seg.StudyInstanceUID,
            "series_instance_uid": files.source.summary.series_instance_uid,
            "seg_series_instance_uid": seg.SeriesInstanceUID,
            "seg_sop_instance_uid": seg.SOPInstanceUID,
        },
        "slide": {
            "study_instance_uid": slide.StudyInstanceUID,
            "series_instance_uid": slide.SeriesInstanceUID,
            "sop_instance_uids": [ds.SOPInstanceUID for ds in slides],
        },
        "kos": {"series_instance_uid": identity.series_instance_uid, "sop_instance_uid": identity.sop_instance_uid},
        "viewers": {"ohif": ohif, "slim": links.slim, "page": PAGE_FILE,
                    "patient": links.patient_view(PATIENT_VIEW_FILE)},
        "extent": {"first_slice": extent[0].index if extent else None,
                   "centre_slice": centre.index if centre else None,
                   "centre_sop_instance_uid": centre.sop_instance_uid if centre else None,
                   "last_slice": extent[-1].index if extent else None, "slices": seg_facts.source_slices},
        "measurements": _measurements(element.get(QuantifyFacts)),
        "qc": QC_FILE,
        "algorithm": algorithm,
        "seg_encoder": seg_facts.encoder.value,
    }
    (out_dir / LINK_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    for note in notes:
        log.info("%s: %s", element.name, note)
    state = "stored" if report.sent else "already in the PACS"
    log.info("%s: linked %s to slide %s (KOS %s); open %s", element.name, organ_label, slide_label, state,
             out_dir / PAGE_FILE)
    return LinkFacts(folder=out_dir.name, kos=KOS_FILE, kos_sent=bool(report.sent), target=target.description,
                     ohif=ohif, slim=links.slim, notes=notes)
