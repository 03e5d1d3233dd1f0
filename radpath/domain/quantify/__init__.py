"""What the quantify stage measures on an organ's mask, and how it is coded.

The knowledge lives in ``radiomics.json`` beside this module: pyradiomics' settings per
modality (bin width, normalisation; no resampling, so the features are computed on the
grid the SEG references), the features (pyradiomics' class and name, the IBSI identifier
and meaning, the unit) and the codes of the measurement report (TID 1500). The report
itself is :mod:`radpath.domain.quantify.report`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radpath.domain.vocabulary import Modality

if TYPE_CHECKING:  # pydicom.sr loads its whole code dictionary: not for every stage that reads a manifest
    from pydicom.sr.coding import Code


RADIOMICS_PATH = Path(__file__).with_name("radiomics.json")
#: Coding scheme of the features: the IBSI reference manual's identifiers.
IBSI = "IBSI"
#: pyradiomics names its results ``<image type>_<class>_<feature>``; radpath takes the original image only.
IMAGE_TYPE = "original"


def _code(value: str, scheme: str, meaning: str) -> Code:
    from pydicom.sr.coding import Code

    return Code(value, scheme, meaning)


@dataclass(frozen=True)
class Feature:
    """One pyradiomics feature and its concept (Concept Name of the TID 1500 measurement)."""

    feature_class: str  # pyradiomics' feature class: shape, firstorder, glcm
    name: str  # pyradiomics' feature name, e.g. MeshVolume
    ibsi: str  # IBSI identifier, e.g. RNU0
    meaning: str  # IBSI's name, e.g. Volume
    unit: str  # a key of the units ("mm3", "1") or "intensity"/"intensity2" (the modality's)

    @property
    def key(self) -> str:
        """The key of pyradiomics' result, e.g. ``original_shape_MeshVolume``."""
        return f"{IMAGE_TYPE}_{self.feature_class}_{self.name}"

    @property
    def column(self) -> str:
        """The research table's column, e.g. ``shape_MeshVolume``."""
        return f"{self.feature_class}_{self.name}"

    @property
    def concept(self) -> Code:
        return _code(self.ibsi, IBSI, self.meaning)


@dataclass(frozen=True)
class Radiomics:
    """``radiomics.json``: the settings and the features, read once."""

    pyradiomics: str  # the version the features and settings were written for
    settings: dict[str, dict[str, Any]]
    intensity_units: dict[str, dict[str, tuple[str, str]]]
    units: dict[str, str]
    procedure_reported: dict[str, tuple[str, str, str]]
    volume_code: tuple[str, str, str]
    volume_unit: str
    features: tuple[Feature, ...]

    def parameters(self, modality: Modality | str) -> dict[str, Any]:
        """pyradiomics' parameters (its params-file form) for a series of ``modality``."""
        modality = Modality(modality)
        if modality.value not in self.settings:
            raise ValueError(f"no radiomics settings for {modality} (radiomics.json has "
                             f"{', '.join(k for k in self.settings if k != 'all')})")
        classes: dict[str, list[str]] = {}
        for feature in self.features:
            classes.setdefault(feature.feature_class, []).append(feature.name)
        return {
            "setting": {**self.settings["all"], **self.settings[modality.value]},
            "imageType": {"Original": {}},
            "featureClass": classes,
        }

    def unit(self, feature: Feature, modality: Modality | str) -> Code:
        """The UCUM unit of ``feature``'s value on a series of ``modality``."""
        if feature.unit in ("intensity", "intensity2"):
            value, meaning = self.intensity_units[Modality(modality).value][feature.unit]
            return _code(value, "UCUM", meaning)
        return self.ucum(feature.unit)

    def ucum(self, unit: str) -> Code:
        return _code(unit, "UCUM", self.units[unit])

    @property
    def volume_concept(self) -> Code:
        return _code(*self.volume_code)

    def procedure(self, modality: Modality | str) -> Code:
        return _code(*self.procedure_reported[Modality(modality).value])


@lru_cache(maxsize=1)
def load_radiomics(path: Path = RADIOMICS_PATH) -> Radiomics:
    data = json.loads(path.read_text(encoding="utf-8"))
    units = data["units"]
    features = tuple(Feature(f["class"], f["name"], f["ibsi"], f["meaning"], f["unit"]) for f in data["features"])
    modalities = set(data["settings"]) - {"all"}
    for feature in features:
        if feature.unit not in units and feature.unit not in ("intensity", "intensity2"):
            raise ValueError(f"radiomics.json: {feature.key} has unit {feature.unit!r}, not one of {sorted(units)}")
    if modalities != set(data["intensity_units"]) or modalities != set(data["procedure_reported"]):
        raise ValueError("radiomics.json: settings, intensity_units and procedure_reported name different modalities")
    return Radiomics(
        pyradiomics=data["pyradiomics"],
        settings=data["settings"],
        intensity_units={m: {k: tuple(v) for k, v in u.items()} for m, u in data["intensity_units"].items()},
        units=units,
        procedure_reported={m: tuple(v) for m, v in data["procedure_reported"].items()},
        volume_code=tuple(data["volume"]["code"]),
        volume_unit=data["volume"]["unit"],
        features=features,
    )
