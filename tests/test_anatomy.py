"""The anatomy master and the body-part resolver."""

from __future__ import annotations

import csv
import io
import json
import pkgutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from anatomy_cases import CASES, code_item, dataset_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radpath.adapters.dicomfiles import read_metadata
from radpath.domain.anatomy import load_master, resolve_body_part
from radpath.domain.anatomy.text import tokens

REPO = Path(__file__).resolve().parents[1]
MASTER = load_master()


def test_case_table_accuracy_at_least_98_percent(capsys):
    wrong = []
    for case in CASES:
        result = resolve_body_part(dataset_for(case["fields"]))
        want = case["expect"]
        got = (result.organ, result.laterality)
        ok = got == (want["organ"], want["laterality"])
        if case["category"] == "region":
            ok = ok and result.region == want.get("region")
        if not ok:
            wrong.append(f"{case['id']}: want {want}, got {got} region={result.region} via {result.rule}")
    accuracy = 1 - len(wrong) / len(CASES)
    with capsys.disabled():
        print(f"\nanatomy case table: {len(CASES) - len(wrong)}/{len(CASES)} right ({accuracy:.1%})")
    assert len(CASES) >= 150
    assert accuracy >= 0.98, "\n".join(wrong)


def test_case_table_covers_every_kind_of_case():
    counts = Counter(case["category"] for case in CASES)
    for category in ("coded", "legacy_code", "lateral_concept", "annex_l", "icd", "text_en", "text_de",
                     "abbreviation", "laterality", "trap", "conflict", "region", "none"):
        assert counts[category] >= 5, category


@pytest.mark.parametrize(
    ("name", "organ"),
    [
        ("sm/highdicom-sm_image-brain.dcm", "brain"),
        ("sm/idc-cptac-luad-C3N-01016-22.json", "lung"),
        ("sm/idc-htan-liver-HTA9_1_BA_L.json", "liver"),
        ("mr-prostate-adc/000000.dcm", "prostate"),
    ],
)
def test_real_metadata_resolves(shared_data, name, organ):
    for ds in read_metadata(shared_data / name):
        result = resolve_body_part(ds)
        assert result.organ == organ
        assert result.snomed["code"] == MASTER.organ(organ)["snomed"]["code"]


def test_htan_text_says_breast_code_says_liver_and_the_conflict_is_reported(shared_data):
    ds = read_metadata(shared_data / "sm/idc-htan-liver-HTA9_1_BA_L.json")[0]
    result = resolve_body_part(ds)
    assert result.organ == "liver" and result.rule == "coded-structure"
    assert {c["organ"] for c in result.conflicts} == {"breast"}


def _annex_l_table() -> dict:
    return json.loads(pkgutil.get_data("highdicom", "_standard/anatomic_regions.json"))


@pytest.mark.parametrize("term", sorted(_annex_l_table()))
def test_every_annex_l_term_resolves_to_its_concept(term):
    scheme, code, meaning, _paired = _annex_l_table()[term]
    ds = Dataset()
    ds.BodyPartExamined = term
    result = resolve_body_part(ds)
    assert result.rule == "annex-l-term"
    if result.organ is None:
        assert result.region is not None and result.snomed["code"] == code
    else:
        assert code in {result.snomed["code"], (result.subpart_snomed or {}).get("code")}


def _ts_rows() -> list[dict]:
    raw = pkgutil.get_data("totalsegmentator", "resources/totalsegmentator_snomed_mapping.csv")
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))


@pytest.mark.parametrize("row", _ts_rows(), ids=lambda r: r["Structure"])
def test_every_totalsegmentator_class_resolves_to_an_organ_that_lists_it(row):
    prefix = "SegmentedPropertyTypeCodeSequence."
    anatomical = row["SegmentedPropertyCategoryCodeSequence.CodeValue"] == "123037004"
    ds = Dataset()
    item = code_item({"scheme": row[prefix + "CodingSchemeDesignator"], "code": row[prefix + "CodeValue"],
                      "meaning": row[prefix + "CodeMeaning"]})
    modifier = row["SegmentedPropertyTypeModifierCodeSequence.CodeValue"]
    if modifier:
        item.PrimaryAnatomicStructureModifierSequence = Sequence([code_item(
            {"scheme": "SCT", "code": modifier, "meaning": row["SegmentedPropertyTypeModifierCodeSequence.CodeMeaning"]})])
    if anatomical or not row["AnatomicRegionSequence.CodeValue"]:
        ds.PrimaryAnatomicStructureSequence = Sequence([item])
    else:  # a lesion or other finding: its organ is the anatomic region
        ds.AnatomicRegionSequence = Sequence([code_item(
            {"scheme": "SCT", "code": row["AnatomicRegionSequence.CodeValue"],
             "meaning": row["AnatomicRegionSequence.CodeMeaning"]})])
    result = resolve_body_part(ds)
    assert result.organ is not None
    entry = MASTER.organ(result.organ)
    listed = {c["class"] for c in entry["totalsegmentator"]} | set(entry["totalsegmentator_related"])
    assert row["Structure"] in listed
    side = {"7771000": "left", "24028007": "right"}.get(modifier)
    if side and entry["paired"]:
        assert result.laterality == side


def test_class_lists_for_the_pipeline_tasks():
    def classes(organ, task):
        return sorted(c["class"] for c in MASTER.classes(organ, task))

    assert classes("kidney", "total") == ["kidney_left", "kidney_right"]
    assert classes("lung", "total") == [
        "lung_lower_lobe_left", "lung_lower_lobe_right", "lung_middle_lobe_right",
        "lung_upper_lobe_left", "lung_upper_lobe_right",
    ]
    assert classes("lung", "total_mr") == ["lung_left", "lung_right"]
    assert classes("prostate", "total_mr") == ["prostate"]
    assert MASTER.organ("kidney")["paired"] and not MASTER.organ("liver")["paired"]


def test_master_matches_its_schema_and_its_build_script():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "anatomy/master.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(MASTER.data)
    run = subprocess.run([sys.executable, str(REPO / "anatomy/build_master.py"), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_every_entry_says_where_it_came_from():
    for key, entry in MASTER.organs.items():
        assert entry["origin"] in ("curated", "annex_l", "totalsegmentator")
        assert entry["snomed"]["provenance"], key
    assert MASTER.data["sources"]["highdicom"] and MASTER.data["sources"]["totalsegmentator"]


# -- property tests -------------------------------------------------------------------

TEXT_KEYWORDS = ["SeriesDescription", "StudyDescription", "ProtocolName", "AdmittingDiagnosesDescription",
                 "ContainerIdentifier", "BodyPartExamined"]


def _organ_words(organ: str) -> tuple[set[tuple[str, ...]], set[str]]:
    entry = MASTER.organ(organ)
    phrases = set()
    for holder in [entry] + entry["subparts"]:
        for terms in holder["synonyms"].values():
            for term in terms:
                phrases.add(tuple(tokens(term["term"] if isinstance(term, dict) else term)))
    return phrases, {"".join(tokens(s)) for s in entry["compound_stems"]}


def _claims_backed_by_text(result, fields: dict) -> bool:
    words = [w for value in fields.values() for w in tokens(value)]
    phrases, stems = _organ_words(result.organ)
    joined = " ".join(words)
    return any(" ".join(p) in joined for p in phrases) or any(w.startswith(s) for w in words for s in stems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(TEXT_KEYWORDS), st.text(max_size=60), max_size=4))
def test_arbitrary_text_never_raises_and_never_invents_an_organ(fields):
    ds = Dataset()
    for keyword, value in fields.items():
        setattr(ds, keyword, value)
    result = resolve_body_part(ds)
    if result.organ is not None:
        assert result.rule.startswith("text") or result.rule == "annex-l-term"
        if result.rule.startswith("text"):
            assert _claims_backed_by_text(result, fields)


ORGANISH = st.sampled_from(["Niere", "kidney", "Liverpool", "Leberecht", "RUL", "li.", "re", "Lt", "Prostata",
                            "Colonel", "Nierenbiopsie", "CT", "ABDOMEN", "Mamma", "links", "rechts", "", " "])


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(ORGANISH, max_size=6).map(" ".join),
    codes=st.lists(st.tuples(st.sampled_from(["SCT", "SRT", "I10", "ICDO3", "99XYZ", ""]),
                             st.text(alphabet="0123456789CT-.", max_size=10)), max_size=3),
    body_part=st.text(max_size=16),
    laterality=st.sampled_from(["", "L", "R", "B", "U", "X"]),
)
def test_arbitrary_datasets_never_raise(text, codes, body_part, laterality):
    ds = Dataset()
    ds.SeriesDescription = text
    ds.BodyPartExamined = body_part
    ds.Laterality = laterality
    items = [code_item({"scheme": s, "code": c}) for s, c in codes]
    ds.AdmittingDiagnosesCodeSequence = Sequence(items)
    specimen = Dataset()
    specimen.PrimaryAnatomicStructureSequence = Sequence([code_item({"scheme": s, "code": c}) for s, c in codes])
    specimen.SpecimenShortDescription = text
    ds.SpecimenDescriptionSequence = Sequence([specimen])
    result = resolve_body_part(ds)
    assert result.laterality in (None, "left", "right", "bilateral")
    if result.organ is not None:
        assert result.snomed is not None and result.source and result.rule
    else:
        assert result.reason


# -- the command line ------------------------------------------------------------------


def test_bodypart_command_prints_one_line_per_input_and_exits_2_after_the_rest(shared_data, tmp_path):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\x00" * 200 + b"not dicom")
    inputs = [shared_data / "sm/highdicom-sm_image-brain.dcm", broken, shared_data / "mr-prostate-adc"]
    run = subprocess.run([sys.executable, "-m", "radpath", "bodypart", *map(str, inputs)],
                         capture_output=True, text=True)
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert run.returncode == 2
    assert [line["path"] for line in lines] == [str(p) for p in inputs]
    assert lines[0]["organ"] == "brain" and lines[0]["snomed"]["code"] == "12738006"
    assert {"path", "organ", "snomed", "laterality", "source", "rule"} <= set(lines[0])
    assert "error" in lines[1] and "broken.dcm" in lines[1]["error"]
    assert lines[2]["organ"] == "prostate" and lines[2]["source"] == "BodyPartExamined"


def test_bodypart_command_gives_a_reason_when_no_organ(tmp_path):
    ds = dataset_for({"BodyPartExamined": "ABDOMEN", "InstitutionName": "Liverpool Hospital"})
    ds.file_meta = __import__("pydicom").dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    path = tmp_path / "region.dcm"
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run([sys.executable, "-m", "radpath", "bodypart", str(path)], capture_output=True, text=True)
    line = json.loads(run.stdout)
    assert run.returncode == 0
    assert line["organ"] is None and line["region"] == "abdomen" and "no organ" in line["reason"]


@pytest.mark.parametrize(
    ("class_name", "task", "expected"),
    [
        ("liver", "total_mr", "liver"),
        ("kidney_left", "total_mr", "kidney_left"),
        ("lung_middle_lobe_right", "total_mr", "lung_right"),
        ("lung_upper_lobe_left", "total_mr", "lung_left"),
        ("lung_lower_lobe_left", "total", "lung_lower_lobe_left"),
        ("not_a_class", "total_mr", None),
    ],
)
def test_class_counterpart_in_another_task_comes_from_the_master(class_name, task, expected):
    assert MASTER.counterpart(class_name, task) == expected
