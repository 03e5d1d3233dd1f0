"""Turn a row of tests/anatomy_cases.json into the pydicom Dataset it describes."""

from __future__ import annotations

import json
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

CASES = json.loads((Path(__file__).with_name("anatomy_cases.json")).read_text(encoding="utf-8"))

_CODED = {
    "PrimaryAnatomicStructure": ("PrimaryAnatomicStructureSequence", "PrimaryAnatomicStructureModifierSequence"),
    "AnatomicRegion": ("AnatomicRegionSequence", "AnatomicRegionModifierSequence"),
    "AdmittingDiagnosesCode": ("AdmittingDiagnosesCodeSequence", None),
}
_SPECIMEN_TEXT = ("SpecimenShortDescription", "SpecimenDetailedDescription")


def code_item(item: dict) -> Dataset:
    ds = Dataset()
    ds.CodeValue = item["code"]
    ds.CodingSchemeDesignator = item["scheme"]
    ds.CodeMeaning = item.get("meaning", "")
    return ds


def dataset_for(fields: dict) -> Dataset:
    ds = Dataset()
    specimen = None

    def specimen_item() -> Dataset:
        nonlocal specimen
        if specimen is None:
            specimen = Dataset()
            specimen.SpecimenIdentifier = "S1"
            specimen.SpecimenUID = "1.2.3.4"
            ds.SpecimenDescriptionSequence = Sequence([specimen])
        return specimen

    for key, value in fields.items():
        if key in _CODED:
            sequence, modifier = _CODED[key]
            items = []
            for item in value:
                coded = code_item(item)
                if modifier and item.get("modifiers"):
                    setattr(coded, modifier, Sequence([code_item(m) for m in item["modifiers"]]))
                items.append(coded)
            target = specimen_item() if key == "PrimaryAnatomicStructure" else ds
            setattr(target, sequence, Sequence(items))
        elif key in _SPECIMEN_TEXT:
            setattr(specimen_item(), key, value)
        else:
            setattr(ds, key, value)
    return ds
