"""Who a slide belongs to: the link from a slide file to the patient's radiology study.

A link must name the patient (``patient_id``); everything else is optional. Every field
is checked against the DICOM attribute it lands in before anything is written, and the
identifying ones never appear in a message. Where links come from (sidecars, a CSV, the
run conf) is :mod:`radpath.adapters.slides.linkfiles`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from radpath.domain.names import is_uid
from radpath.domain.vocabulary import Laterality
from radpath.domain.vr import VR, check_value


class SlideLinkError(ValueError):
    """A slide's link cannot be used: the message names its source and the field at fault."""


@dataclass(frozen=True)
class SlideLink:
    """Identity and specimen facts given for one slide (DICOM attribute in each comment)."""

    patient_id: str  # PatientID
    source: str  # where the link came from, e.g. "sidecar CMU-1.svs.json"
    patient_name: str | None = None  # PatientName
    patient_birth_date: str | None = None  # PatientBirthDate, YYYYMMDD
    patient_sex: str | None = None  # PatientSex: M, F, O
    accession_number: str | None = None  # AccessionNumber
    study_instance_uid: str | None = None  # StudyInstanceUID
    specimen_description: str | None = None  # SpecimenShortDescription
    anatomic_site: str | None = None  # text → PrimaryAnatomicStructureSequence via the resolver
    laterality: str | None = None  # left / right / bilateral: modifier of the anatomic site
    container_identifier: str | None = None  # ContainerIdentifier (the slide's barcode / ID)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> SlideLink:
        known = {f.name for f in fields(cls)} - {"source"}
        values = {k.strip().lower(): (str(v).strip() if v is not None else "") for k, v in data.items() if k}
        unknown = sorted(set(values) - known - {"slide"})
        if unknown:
            raise SlideLinkError(f"{source}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        kept = {k: v for k, v in values.items() if k in known and v}
        if not kept.get("patient_id"):
            raise SlideLinkError(f"{source}: patient_id is missing")
        if "patient_sex" in kept:
            kept["patient_sex"] = kept["patient_sex"].upper()[:1]
            if kept["patient_sex"] not in ("M", "F", "O"):
                raise SlideLinkError(f"{source}: patient_sex must be M, F or O")
        if "laterality" in kept:
            kept["laterality"] = kept["laterality"].lower()
            if kept["laterality"] not in Laterality.values():
                raise SlideLinkError(f"{source}: laterality must be one of {', '.join(Laterality.values())}")
        for name, value in kept.items():
            _check_field(name, value, source)
        return cls(source=source, **kept)


#: The DICOM attribute and VR each identity field is written as (checked before any is).
FIELD_VRS: dict[str, tuple[str, VR]] = {
    "patient_id": ("PatientID", VR.LO),
    "patient_name": ("PatientName", VR.PN),
    "patient_birth_date": ("PatientBirthDate", VR.DA),
    "patient_sex": ("PatientSex", VR.CS),
    "accession_number": ("AccessionNumber", VR.SH),
    "study_instance_uid": ("StudyInstanceUID", VR.UI),
    # the first 64 characters become SpecimenShortDescription (LO), the whole a UT
    "specimen_description": ("SpecimenDetailedDescription", VR.UT),
    "container_identifier": ("ContainerIdentifier", VR.LO),
    "anatomic_site": ("PrimaryAnatomicStructureSequence (coded from the text)", VR.UT),
}


def _check_field(name: str, value: str, source: str) -> None:
    keyword, vr = FIELD_VRS.get(name, (None, None))
    if vr is None:
        return
    try:
        check_value(vr, value)
        if name == "specimen_description":  # its first 64 characters: SpecimenShortDescription
            check_value(VR.LO, value[:64])
        if vr is VR.DA:
            _dt.datetime.strptime(value, "%Y%m%d")
        if vr is VR.UI and not is_uid(value):
            raise ValueError("not a valid UID (digits and dots, no leading zeros, 64 characters at most)")
    except ValueError as err:
        shown = repr(value) if name not in IDENTIFYING else f"a value of {len(value)} characters"
        raise SlideLinkError(f"{source}: {name} ({keyword}, {vr.value}) {err}; got {shown}") from None


#: Fields whose values stay out of messages (they identify the patient).
IDENTIFYING = frozenset({"patient_id", "patient_name", "patient_birth_date"})
