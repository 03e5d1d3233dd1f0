#!/usr/bin/env python
"""Rebuild ``anatomy/master.json`` from the DICOM controlled lists and TotalSegmentator.

Inputs, each recorded in the output's ``sources`` and per entry in ``provenance``:

- ``anatomy/sources/curated.json``: what no list carries (synonyms in English and
  German, abbreviations, ICD-10 / ICD-O-3 topography, regions, text rules, lateral
  SNOMED concepts that pydicom's CIDs lack);
- pydicom's DICOM content mapping resources: SNOMED CT meanings and the CIDs that list
  them (4030, 4031, 7151, 8134, 244, 2 …), and the SNOMED CT ↔ SNOMED-RT map that gives
  each concept its legacy ``T-…`` code;
- highdicom's PS3.16 Annex L table (BodyPartExamined defined term → SNOMED concept,
  paired or not);
- TotalSegmentator's own SNOMED mapping (class → property type, laterality modifier,
  anatomic region, colour) and ``map_to_binary.class_map`` (class names per task).

Every Annex L concept and every TotalSegmentator structure gets an entry: curated organs
where the code matches, else an entry of its own (``origin`` says which list made it).
Generated entries are matched by code and Annex L term only, never by free text: a word
like "back" or "joint" in a description must not become an organ.

Run: ``python anatomy/build_master.py`` (needs the ``all`` extra: pydicom, highdicom,
totalsegmentator). ``--check`` exits 1 if the committed file is out of date.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import pkgutil
import re
import sys
from collections import defaultdict
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
CURATED = HERE / "sources" / "curated.json"
OUTPUT = HERE / "master.json"
PIPELINE_TASKS = ("total", "total_mr")
ANATOMICAL_STRUCTURE = "123037004"  # SegmentedPropertyCategory "Anatomical Structure"
LATERALITY_BY_MODIFIER = {"7771000": "left", "24028007": "right", "51440002": "bilateral"}


def snake(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


ANATOMY_CIDS = {4, 4030, 4031, 7151, 8134}


def _meaning_rank(option: tuple[str, list[int]]) -> tuple[int, int, int]:
    meaning, cids = option
    return (
        0 if ANATOMY_CIDS & set(cids) else 1,
        1 if meaning.startswith("Endo-") or meaning.endswith("(body structure)") else 0,
        len(meaning),
    )


class Lists:
    """The DICOM and TotalSegmentator lists, loaded once."""

    def __init__(self) -> None:
        from pydicom.sr._cid_dict import name_for_cid
        from pydicom.sr._concepts_dict import concepts
        from pydicom.sr._snomed_dict import mapping

        self.meaning: dict[str, str] = {}
        self.cids: dict[str, list[int]] = {}
        candidates: dict[str, list[tuple[str, list[int]]]] = defaultdict(list)
        for entry in concepts["SCT"].values():
            for code, (meaning, cids) in entry.items():
                candidates[code].append((meaning, cids))
        for code, options in candidates.items():
            # The same code carries context meanings in some CIDs ("Endo-renal" for Kidney):
            # take the one an anatomy CID uses, then any plain one.
            meaning, _ = min(options, key=_meaning_rank)
            self.meaning[code] = meaning
            self.cids[code] = sorted({c for _, cids in options for c in cids})
        self.cid_names = name_for_cid
        self.srt_for_sct = mapping["SCT"]
        raw = pkgutil.get_data("highdicom", "_standard/anatomic_regions.json")
        self.annex_l = {term: (v[0], v[1], v[2], v[3]) for term, v in json.loads(raw).items()}
        from totalsegmentator.map_to_binary import class_map

        self.class_map = class_map
        raw_csv = pkgutil.get_data("totalsegmentator", "resources/totalsegmentator_snomed_mapping.csv")
        self.ts_rows = list(csv.DictReader(io.StringIO(raw_csv.decode("utf-8"))))
        #: class → recommended display colour (sRGB), TotalSegmentator's own choice.
        self.ts_colors = {row["Structure"]: [int(v) for v in row["DicomRGBColor"].split(",")]
                          for row in self.ts_rows if row.get("DicomRGBColor")}
        self.tasks_of: dict[str, list[str]] = defaultdict(list)
        for task, labels in class_map.items():
            for name in labels.values():
                self.tasks_of[name].append(task)

    def concept(self, code: str, fallback_meaning: str | None = None) -> dict:
        meaning = self.meaning.get(code) or fallback_meaning
        if meaning is None:
            raise SystemExit(f"SNOMED {code}: no meaning in pydicom's lists and none curated")
        return {"scheme": "SCT", "code": code, "meaning": meaning}

    def provenance(self, code: str) -> str:
        cids = [c for c in self.cids.get(code, []) if c in (2, 4, 244, 4030, 4031, 7151, 8134)]
        if cids:
            return "pydicom " + ", ".join(f"CID {c} {self.cid_names.get(c, '')}".strip() for c in cids)
        if code in self.meaning:
            return "pydicom SNOMED CT concepts"
        return "curated (SNOMED CT)"

    def legacy(self, code: str | None) -> list[dict]:
        srt = self.srt_for_sct.get(code) if code else None
        if not srt:
            return []
        return [{"scheme": "SRT", "code": srt, "meaning": self.meaning.get(code, ""), "provenance": "pydicom SCT↔SRT map"}]


def coded(lists: Lists, code: str | None, fallback: str | None = None) -> dict | None:
    if code is None:
        return None
    return {**lists.concept(code, fallback), "provenance": lists.provenance(code)}


def lateral_concepts(lists: Lists, curated: dict) -> list[dict]:
    out = []
    for side, item in (curated or {}).items():
        out.append({**coded(lists, item["code"], item["meaning"]), "laterality": side, "legacy_codes": lists.legacy(item["code"])})
    return out


def build_subpart(lists: Lists, key: str, data: dict) -> dict:
    return {
        "key": key,
        "snomed": coded(lists, data.get("snomed")),
        "legacy_codes": lists.legacy(data.get("snomed")),
        "lateral_concepts": lateral_concepts(lists, data.get("lateral_concepts")),
        "laterality": data.get("laterality"),
        "annex_l": [],
        "icd10": data.get("icd10", []),
        "icdo3": data.get("icdo3", []),
        "synonyms": data.get("synonyms", {"en": [], "de": []}),
    }


def body_part_examined(entry: dict, regions: dict) -> str | None:
    """The organ's BodyPartExamined defined term (PS3.16 Annex L): its own term, not an
    approach (ENDORENAL is how a probe reaches the kidney, KIDNEY is the kidney), else its
    region's, else none."""
    own = [t for t in entry["annex_l"] if not t.startswith("ENDO")] or entry["annex_l"]
    if own:
        return own[0]
    region = regions.get(entry["region"] or "")
    return region["annex_l"][0] if region and region["annex_l"] else None


def build(lists: Lists, curated: dict) -> dict:
    organs: dict[str, dict] = {}
    # (code) → (organ key, subpart key or None, laterality or None)
    by_code: dict[str, tuple[str, str | None, str | None]] = {}

    for key, data in curated["organs"].items():
        entry = {
            "key": key,
            "origin": "curated",
            "snomed": coded(lists, data["snomed"]),
            "legacy_codes": lists.legacy(data["snomed"]),
            "lateral_concepts": lateral_concepts(lists, data.get("lateral_concepts")),
            "subparts": [build_subpart(lists, k, v) for k, v in data.get("subparts", {}).items()],
            "annex_l": [],
            "icd10": data.get("icd10", []),
            "icdo3": data.get("icdo3", []),
            "synonyms": data.get("synonyms", {"en": [], "de": []}),
            "compound_stems": data.get("compound_stems", []),
            "paired": data["paired"],
            "region": data.get("region"),
            "totalsegmentator": [],
            "totalsegmentator_related": [],
            "provenance": {
                "synonyms, ICD, region, paired": "curated",
                "annex_l": "highdicom _standard/anatomic_regions.json (PS3.16 Annex L)",
                "totalsegmentator": "totalsegmentator resources/totalsegmentator_snomed_mapping.csv + map_to_binary.class_map",
            },
        }
        organs[key] = entry
        by_code[data["snomed"]] = (key, None, None)
        for lat in entry["lateral_concepts"]:
            by_code[lat["code"]] = (key, None, lat["laterality"])
        for sub in entry["subparts"]:
            if sub["snomed"]:
                by_code[sub["snomed"]["code"]] = (key, sub["key"], sub["laterality"])
            for lat in sub["lateral_concepts"]:
                by_code[lat["code"]] = (key, sub["key"], lat["laterality"])
        for extra in data.get("extra_classes", []):
            entry["totalsegmentator"].append(
                {"class": extra["class"], "task": extra["task"], "laterality": extra.get("laterality"), "subpart": None,
                 "color": lists.ts_colors.get(extra["class"])}
            )

    regions = {}
    region_terms = {}
    for key, data in curated["regions"].items():
        terms = [t for t in data["annex_l"] if t in lists.annex_l]
        first = lists.annex_l[terms[0]] if terms else None
        regions[key] = {
            "key": key,
            "snomed": {"scheme": first[0], "code": first[1], "meaning": first[2]} if first else None,
            "annex_l": terms,
            "concepts": {t: {"scheme": lists.annex_l[t][0], "code": lists.annex_l[t][1], "meaning": lists.annex_l[t][2]} for t in terms},
            "synonyms": data["synonyms"],
            "provenance": "curated grouping of highdicom's Annex L terms",
        }
        for term in terms:
            region_terms[term] = key

    def generated(code: str, meaning: str, origin: str, paired: bool, region: str | None) -> str:
        key = snake(meaning)
        if key in organs and organs[key]["snomed"]["code"] != code:
            key = f"{key}_{code}"
        if key not in organs:
            organs[key] = {
                "key": key,
                "origin": origin,
                "snomed": coded(lists, code, meaning),
                "legacy_codes": lists.legacy(code),
                "lateral_concepts": [],
                "subparts": [],
                "annex_l": [],
                "icd10": [],
                "icdo3": [],
                "synonyms": {"en": [], "de": []},
                "compound_stems": [],
                "paired": paired,
                "region": region,
                "totalsegmentator": [],
                "totalsegmentator_related": [],
                "provenance": {"entry": origin},
            }
            by_code[code] = (key, None, None)
        organs[key]["paired"] = organs[key]["paired"] or paired
        return key

    # Annex L: every defined term lands on a region, a curated organ/sub-part, or an entry of its own.
    for term, (scheme, code, meaning, paired) in lists.annex_l.items():
        if term in region_terms:
            continue
        if code in by_code:
            organ, sub, _ = by_code[code]
        else:
            organ, sub = generated(code, meaning, "annex_l", paired, None), None
        target = organs[organ] if sub is None else next(s for s in organs[organ]["subparts"] if s["key"] == sub)
        target["annex_l"].append(term)

    # TotalSegmentator: each structure joins the organ its code (or, for lesions and other
    # non-anatomical classes, its anatomic region) names.
    for row in lists.ts_rows:
        name = row["Structure"]
        category = row["SegmentedPropertyCategoryCodeSequence.CodeValue"]
        type_code = row["SegmentedPropertyTypeCodeSequence.CodeValue"]
        modifier = row["SegmentedPropertyTypeModifierCodeSequence.CodeValue"]
        region_code = row["AnatomicRegionSequence.CodeValue"]
        anatomical = category == ANATOMICAL_STRUCTURE
        code = type_code if anatomical or not region_code else region_code
        meaning = (
            row["SegmentedPropertyTypeCodeSequence.CodeMeaning"]
            if code == type_code
            else row["AnatomicRegionSequence.CodeMeaning"]
        )
        side = LATERALITY_BY_MODIFIER.get(modifier) if code == type_code else None
        if code in by_code:
            organ, sub, implied = by_code[code]
            side = side or implied
        else:
            organ, sub = generated(code, meaning, "totalsegmentator", side is not None, None), None
        tasks = [t for t in lists.tasks_of.get(name, []) if t in PIPELINE_TASKS]
        entry = organs[organ]
        if anatomical and tasks:
            for task in tasks:
                entry["totalsegmentator"].append(
                    {"class": name, "task": task, "laterality": side, "subpart": sub, "color": lists.ts_colors.get(name)}
                )
        else:
            entry["totalsegmentator_related"].append(name)

    for entry in organs.values():
        entry["body_part_examined"] = body_part_examined(entry, regions)
        entry["totalsegmentator"].sort(key=lambda c: (c["task"], c["class"]))
        # Classes TotalSegmentator gives no colour (total_mr's whole lungs) take a colour
        # of the same organ and side (a lobe's), so one organ looks alike on CT and MR.
        for item in entry["totalsegmentator"]:
            if item["color"] is None:
                item["color"] = next((c["color"] for c in entry["totalsegmentator"]
                                      if c["color"] and c["laterality"] == item["laterality"]), None)
        entry["totalsegmentator_related"] = sorted(set(entry["totalsegmentator_related"]))
        if not entry["totalsegmentator"]:
            entry["provenance"].pop("totalsegmentator", None)

    laterality = json.loads(json.dumps(curated["laterality"]))
    for side, spec in laterality.items():
        code = spec["code"]["code"]
        if 244 not in lists.cids.get(code, []):
            raise SystemExit(f"laterality {side}: {code} is not in CID 244 (Laterality)")
        spec["code"]["provenance"] = lists.provenance(code)

    return {
        "about": "radpath's anatomy master: organs, codes, terms and TotalSegmentator classes. "
        "Generated by anatomy/build_master.py; edit anatomy/sources/curated.json, not this file.",
        "sources": {
            "curated": "anatomy/sources/curated.json",
            "pydicom": metadata.version("pydicom"),
            "highdicom": metadata.version("highdicom"),
            "totalsegmentator": metadata.version("totalsegmentator"),
        },
        "totalsegmentator_tasks": curated["totalsegmentator_tasks"],
        "laterality": laterality,
        "weak_laterality_window": curated["weak_laterality_window"],
        "german_compound_heads": curated["german_compound_heads"],
        "regions": regions,
        "organs": dict(sorted(organs.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if master.json is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    master = build(Lists(), json.loads(CURATED.read_text(encoding="utf-8")))
    text = json.dumps(master, indent=1, ensure_ascii=False) + "\n"
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python anatomy/build_master.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    organs = master["organs"]
    curated = sum(o["origin"] == "curated" for o in organs.values())
    print(f"wrote {args.output}: {len(organs)} entries ({curated} curated), {len(master['regions'])} regions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
