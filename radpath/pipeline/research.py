"""The run's research table: one row per measured segment of a pair, one per element that
was not measured (saying why), as CSV and JSON.

Written by ``radpath report`` (the last task of every DAG) into its output folder and by
``radpath run`` beside the run; on Kaapana a MinIO task puts it into the project's bucket.
The columns: the element, the patient (PatientID as the PACS holds it: the key to join
with the group's own records; the table is a research result, never a log), the organ and
side, the slide and SEG series, the SR, the volume in mL and every feature of
``radpath/domain/quantify/radiomics.json`` (named ``<class>_<feature>``), then the status
and why: "measured" (or "volume only") only where the store stage holds the SR, else
"measured, not stored" with the reason; "not measured" with the stage that ended it;
"interrupted" where the run stopped (killed, crashed) before it was measured.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path

from radpath.adapters.headers import read_header
from radpath.adapters.settings import Settings
from radpath.domain.names import safe_component
from radpath.domain.quantify import load_radiomics
from radpath.domain.vocabulary import StageName
from radpath.pipeline.batch import iter_elements
from radpath.pipeline.events import run_state
from radpath.pipeline.manifest import Manifest, ManifestError, Status
from radpath.pipeline.sections import BodyPartFacts, PairFacts, QuantifyFacts, SegEncodeFacts, StoreFacts

COLUMNS = ("element", "patient_id", "organ", "laterality", "slide_series_instance_uid", "seg_series_instance_uid",
           "sr_sop_instance_uid", "segment", "volume_ml")
TAIL = ("status", "reason")
#: Stages that only a run pairing slides with radiology runs (not a slide import's).
_PAIRING = {str(s) for s in StageName} - {str(StageName.WSI_DICOMIZE), str(StageName.STORE)}


@dataclass(frozen=True)
class ResearchTable:
    csv: Path
    json: Path
    rows: int
    measured: int  # measured, with the SR in the store
    not_stored: int  # measured, but the SR never reached the store

    def summary(self) -> str:
        unstored = f", {self.not_stored} measured but not stored" if self.not_stored else ""
        return f"{self.measured} measured{unstored} of {self.rows} rows"


def research_rows(settings: Settings) -> list[dict[str, object]]:
    """The table's rows, in element order; none when no element came to be paired (a run
    that only imports slides)."""
    features = load_radiomics().features
    state = run_state(settings.layout.require_workflow_dir())
    stopped = None if state.complete or not state.recorded else (state.interrupted_at or "its end")
    rows: list[dict[str, object]] = []
    manifests = []
    for element in iter_elements(settings.layout):
        try:
            manifests.append((element, Manifest.load(element.path)))
        except ManifestError:
            continue  # the element table names it: a table of the others is still the run's
    if not any(set(manifest.stages) & _PAIRING for _, manifest in manifests):
        return []
    for element, manifest in manifests:
        element = replace(element, sections=dict(manifest.sections))
        bodypart, pair = element.get(BodyPartFacts), element.get(PairFacts)
        seg, quantify = element.get(SegEncodeFacts), element.get(QuantifyFacts)
        base: dict[str, object] = {
            "element": element.name,
            "patient_id": "",
            "organ": bodypart.what if bodypart else "",
            "laterality": (bodypart.laterality or "") if bodypart else "",
            "slide_series_instance_uid": (pair.slide_series_instance_uid or "") if pair else "",
            "seg_series_instance_uid": seg.series_instance_uid if seg else "",
        }
        seg_file = element.seg_file() if seg else None
        if seg_file is not None and seg_file.is_file():
            base["patient_id"] = str(read_header(seg_file).get("PatientID") or "")
        if quantify is None and stopped is not None and manifest.ended_at() is None:
            rows.append({**base, "status": "interrupted",
                         "reason": f"the run stopped at {stopped} (killed or crashed): run it again to resume"})
            continue
        if quantify is None or not quantify.path:
            rows.append({**base, "status": "not measured", "reason": _why_not(manifest, quantify)})
            continue
        unstored = _not_stored(manifest, element.get(StoreFacts))
        for segment in quantify.segments:
            if not segment.voxels:
                continue
            status = "measured" if segment.features else "volume only"
            rows.append({
                **base,
                "sr_sop_instance_uid": quantify.sop_instance_uid,
                "segment": segment.label,
                "volume_ml": round(segment.volume_ml, 6),
                **{f.column: segment.features.get(f.key, "") for f in features},
                "status": f"{status}, not stored" if unstored else status,
                "reason": "; ".join([*([unstored] if unstored else []), *segment.left_out.values()]),
            })
    return rows


def _not_stored(manifest: Manifest, store: StoreFacts | None) -> str | None:
    """Why the element's SR is not in the store, or None where the store stage holds it
    (sent now or there before): a table row is only as good as the report behind it."""
    record = manifest.stages.get(str(StageName.STORE))
    if record is None:
        return "not stored: the store stage has not run on it"
    if record.status is not Status.DONE:
        return f"not stored: {record.status.value} at store: {record.reason or record.error or 'no reason recorded'}"
    held = (store.counts.get("SR") or {}) if store is not None else {}
    if not sum(held.values()):
        return "not stored: the store stage stored no SR of it"
    return None


def _why_not(manifest: Manifest, quantify: QuantifyFacts | None) -> str:
    if quantify is not None and quantify.reason:
        return quantify.reason
    ended = manifest.ended_at()
    if ended is not None:
        stage, record = ended
        return f"{record.status.value} at {stage}: {record.reason or record.error or 'no reason recorded'}"
    return "the quantify stage has not run on it"


def research_folder(settings: Settings) -> Path:
    """Where the report task writes the table: its output folder in the run (``report``)."""
    return settings.layout.require_workflow_dir() / (settings.layout.operator_out_dir or "report")


def write_research_table(settings: Settings, folder: Path) -> ResearchTable | None:
    """The table as ``quantification-<run>.csv`` and ``.json`` in ``folder`` (named by the
    run, so that tables of several runs can lie side by side in a bucket); None when the
    run paired nothing."""
    workflow_dir = settings.layout.require_workflow_dir()
    rows = research_rows(settings)
    if not rows:
        return None
    columns = [*COLUMNS, *(f.column for f in load_radiomics().features), *TAIL]
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"quantification-{safe_component(workflow_dir.name)}"
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    with csv_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    json_path.write_text(json.dumps({"columns": columns, "rows": rows}, indent=1), encoding="utf-8")
    measured = sum(1 for row in rows if row["status"] in ("measured", "volume only"))
    not_stored = sum(1 for row in rows if str(row["status"]).endswith(", not stored"))
    return ResearchTable(csv_path, json_path, len(rows), measured, not_stored)
