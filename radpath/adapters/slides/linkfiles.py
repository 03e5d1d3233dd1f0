"""Where a slide's link comes from, first match wins:

1. a sidecar JSON next to the slide: ``<slide file>.json`` or ``<slide stem>.json``;
2. a CSV manifest for the batch (``radpath-slides.csv`` in the element's input folder or
   in ``$WORKFLOW_DIR/conf/``) with the columns ``slide, patient_id, accession_number,
   study_instance_uid, specimen_description, anatomic_site, laterality`` (optional
   ``patient_name, patient_birth_date, patient_sex, container_identifier``);
3. the DAG run's conf: ``slide_links: {<slide file name>: {...}}``, or ``slide_link:
   {...}`` for every slide of the run.

Keys are the CSV column names. A link that cannot be read is an error naming the file,
never a slide silently imported without its patient.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radpath.domain.slides.linkage import SlideLink, SlideLinkError

CSV_NAME = "radpath-slides.csv"


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
        raise SlideLinkError(f"{path.name}: cannot read ({err})") from None
    if rows and "slide" not in rows[0]:
        raise SlideLinkError(f"{path.name}: no 'slide' column")
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
                    raise SlideLinkError(f"sidecar {sidecar.name}: not valid JSON ({err})") from None
                if not isinstance(data, dict):
                    raise SlideLinkError(f"sidecar {sidecar.name}: expected a JSON object")
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
