"""The pairing as a DICOM object: a Key Object Selection document in the radiology study.

It selects the SEG, the source series it was made on and the slide's instances, titled
"For Research" (DCM 113009) with a Key Object Description (DCM 113012) that says which
organ and side the pair shows, so any DICOM tool can find the pair in the PACS. The slide
usually lives in a study of its own: the KOS's Current Requested Procedure Evidence
Sequence (0040,A375) lists every referenced instance grouped by study, the slide's study
included, as PS3.3 C.17.6 allows (highdicom lists only the document's own study there,
so the other one is added after construction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes

from radpath.domain.uids import derived_uid

#: KOS document title (CID 7010).
DOCUMENT_TITLE = codes.DCM.ForResearch


@dataclass(frozen=True)
class LinkIdentity:
    """What the KOS is named by: the SEG and the slide series it pairs."""

    seg_series_instance_uid: str
    slide_series_instance_uid: str

    @property
    def series_instance_uid(self) -> str:
        return derived_uid("kos-series", self.seg_series_instance_uid, self.slide_series_instance_uid)

    @property
    def sop_instance_uid(self) -> str:
        return derived_uid("kos-instance", self.seg_series_instance_uid, self.slide_series_instance_uid)


def radpath_device():
    """radpath as the observer of the documents it writes (TID 1004 device observer)."""
    from highdicom.sr import DeviceObserverIdentifyingAttributes, ObserverContext

    return ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", "radpath"), name="radpath", model_name=f"radpath {metadata.version('radpath')}"
        ),
    )


def link_description(organ_label: str, seg_series: str, slide_label: str) -> str:
    """The Key Object Description: what the pair is, for a person browsing the PACS."""
    return (f"Radiology-pathology correlation, {organ_label}: segmentation '{seg_series}' "
            f"on the radiology series, paired with slide {slide_label}")


def build_link_kos(
    seg: Dataset,
    sources: Sequence[Dataset],
    slides: Sequence[Dataset],
    identity: LinkIdentity,
    organ_label: str,
    slide_label: str,
    series_number: int,
    reports: Sequence[Dataset] = (),
) -> Dataset:
    """The KOS (a highdicom ``KeyObjectSelectionDocument``) in the SEG's study,
    referencing the SEG, its source instances, the slide instances and the measurement
    reports on the SEG. The datasets need only their headers."""
    from highdicom.ko import KeyObjectSelection, KeyObjectSelectionDocument

    referenced = [seg, *sources, *slides, *reports]
    description = link_description(organ_label, str(seg.get("SeriesDescription", "")), slide_label)
    version = metadata.version("radpath")
    content = KeyObjectSelection(
        document_title=DOCUMENT_TITLE,
        referenced_objects=referenced,
        observer_device_context=radpath_device(),
        description=description,
    )
    kos = KeyObjectSelectionDocument(
        evidence=referenced,
        content=content,
        series_instance_uid=identity.series_instance_uid,
        series_number=series_number,
        sop_instance_uid=identity.sop_instance_uid,
        instance_number=1,
        manufacturer="radpath",
    )
    kos.SeriesDescription = f"radpath link: {organ_label}"[:64]
    kos.SoftwareVersions = version
    _add_other_studies(kos, referenced)
    return kos


def _add_other_studies(kos: Dataset, referenced: Sequence[Dataset]) -> None:
    """Add referenced instances of other studies to the evidence, grouped by study and series."""
    listed = {item.StudyInstanceUID for item in kos.CurrentRequestedProcedureEvidenceSequence}
    others: dict[str, dict[str, list[Dataset]]] = {}
    for ds in referenced:
        if ds.StudyInstanceUID not in listed:
            others.setdefault(ds.StudyInstanceUID, {}).setdefault(ds.SeriesInstanceUID, []).append(ds)
    for study_uid, series in others.items():
        study = Dataset()
        study.StudyInstanceUID = study_uid
        study.ReferencedSeriesSequence = DicomSequence()
        for series_uid, instances in series.items():
            item = Dataset()
            item.SeriesInstanceUID = series_uid
            item.ReferencedSOPSequence = DicomSequence()
            for ds in instances:
                ref = Dataset()
                ref.ReferencedSOPClassUID = ds.SOPClassUID
                ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
                item.ReferencedSOPSequence.append(ref)
            study.ReferencedSeriesSequence.append(item)
        kos.CurrentRequestedProcedureEvidenceSequence.append(study)


def referenced_instances(kos: Dataset) -> set[tuple[str, str, str]]:
    """(study, series, SOP instance) of everything the KOS's evidence lists."""
    return {
        (study.StudyInstanceUID, series.SeriesInstanceUID, ref.ReferencedSOPInstanceUID)
        for study in kos.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    }
