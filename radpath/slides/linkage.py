"""Who a slide belongs to: the link from a slide file to the patient's radiology study.

Sources, first match wins:

1. a sidecar JSON next to the slide: ``<slide file>.json`` or ``<slide stem>.json``;
2. a CSV manifest for the batch (``radpath-slides.csv`` in the element's input folder or
   in ``$WORKFLOW_DIR/conf/``) with the columns ``slide, patient_id, accession_number,
   study_instance_uid, specimen_description, anatomic_site, laterality`` (optional
   ``patient_name, patient_birth_date, patient_sex, container_identifier``);
3. the DAG run's conf: ``slide_links: {<slide file name>: {...}}``, or ``slide_link:
   {...}`` for every slide of the run.

A link must name the patient (``patient_id``); everything else is optional. Keys are the
CSV column names. A link that cannot be read is an error naming the file, never a slide
silently imported without its patient.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from radpath.names import is_uid
from radpath.vocabulary import Laterality
from radpath.vr import VR, check_value

CSV_NAME = "radpath-slides.csv"


class LinkError(ValueError):
    """A linkage source exists but cannot be used; the message names it."""


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
            raise LinkError(f"{source}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        kept = {k: v for k, v in values.items() if k in known and v}
        if not kept.get("patient_id"):
            raise LinkError(f"{source}: patient_id is missing")
        if "patient_sex" in kept:
            kept["patient_sex"] = kept["patient_sex"].upper()[:1]
            if kept["patient_sex"] not in ("M", "F", "O"):
                raise LinkError(f"{source}: patient_sex must be M, F or O")
        if "laterality" in kept:
            kept["laterality"] = kept["laterality"].lower()
            if kept["laterality"] not in Laterality.values():
                raise LinkError(f"{source}: laterality must be one of {', '.join(Laterality.values())}")
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
        raise LinkError(f"{source}: {name} ({keyword}, {vr.value}) {err}; got {shown}") from None


#: Fields whose values stay out of messages (they identify the patient).
IDENTIFYING = frozenset({"patient_id", "patient_name", "patient_birth_date"})


def sidecars_of(slide: Path) -> list[Path]:
    """Where a slide's sidecar may be: ``<slide>.json``, then ``<stem>.json``."""
    return [slide.with_name(slide.name + ".json"), slide.with_suffix(".json")]


def is_linkage_file(path: Path) -> bool:
    """Sidecars and CSV manifests travel with slides but are not slides themselves."""
    return path.suffix.lower() in (".json", ".csv")


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise LinkError(f"{path.name}: cannot read ({err})") from None
    if rows and "slide" not in rows[0]:
        raise LinkError(f"{path.name}: no 'slide' column")
    return {Path(row["slide"].strip()).name: row for row in rows if row.get("slide")}


@dataclass
class LinkSources:
    """The CSV manifest and run conf that apply to one batch element."""

    csv_rows: dict[str, dict[str, str]]
    csv_name: str | None
    conf: Mapping[str, Any]

    @classmethod
    def for_element(cls, input_dir: Path, conf_dir: Path | None, conf: Mapping[str, Any]) -> LinkSources:
        for folder in (input_dir, conf_dir):
            if folder is not None and (folder / CSV_NAME).is_file():
                return cls(_read_csv(folder / CSV_NAME), CSV_NAME, conf)
        return cls({}, None, conf)

    def find(self, slide: Path) -> SlideLink | None:
        """The slide's link, or None when no source names it."""
        for sidecar in sidecars_of(slide):
            if sidecar.is_file() and sidecar != slide:
                try:
                    data = json.loads(sidecar.read_text(encoding="utf-8"))
                except (OSError, ValueError) as err:
                    raise LinkError(f"sidecar {sidecar.name}: not valid JSON ({err})") from None
                if not isinstance(data, dict):
                    raise LinkError(f"sidecar {sidecar.name}: expected a JSON object")
                return SlideLink.from_mapping(data, f"sidecar {sidecar.name}")
        if slide.name in self.csv_rows:
            return SlideLink.from_mapping(self.csv_rows[slide.name], f"{self.csv_name} row {slide.name}")
        per_slide = self.conf.get("slide_links") or {}
        if isinstance(per_slide, Mapping) and isinstance(per_slide.get(slide.name), Mapping):
            return SlideLink.from_mapping(per_slide[slide.name], f"run conf slide_links.{slide.name}")
        run_wide = self.conf.get("slide_link")
        if isinstance(run_wide, Mapping):
            return SlideLink.from_mapping(run_wide, "run conf slide_link")
        return None
