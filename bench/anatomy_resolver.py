"""Resolutions per second of the body-part resolver on the case table (tests/anatomy_cases.json).

Datasets are built once; each round resolves every case. Reports the median of ROUNDS
rounds after one warm-up round (the master is loaded and indexed before timing), and, as
the bare baseline, what an ``if`` chain would do: a lower-cased substring scan of the
same datasets' text fields for every organ's synonyms (no codes, no word boundaries, no
laterality, no conflicts), timed the same way.
Run: .venv/bin/python bench/anatomy_resolver.py [--rounds N] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from anatomy_cases import CASES, dataset_for  # noqa: E402
from common import emit  # noqa: E402  (bench/common.py)

from radpath.domain.anatomy import load_master, resolve_body_part  # noqa: E402

TEXT_FIELDS = ("BodyPartExamined", "StudyDescription", "SeriesDescription", "AdmittingDiagnosesDescription")


def synonym_table(master) -> list[tuple[str, list[str]]]:
    table = []
    for key, organ in master.data["organs"].items():
        words = {key.replace("_", " ")} | {w.lower() for ws in organ["synonyms"].values() for w in ws}
        table.append((key, sorted(words)))
    return table


def naive_scan(ds, table) -> str | None:
    """The baseline: substring search of the text fields for any organ's synonym."""
    texts = [str(ds.get(k) or "") for k in TEXT_FIELDS]
    texts += [str(item.get("SpecimenShortDescription") or "") for item in ds.get("SpecimenDescriptionSequence") or []]
    text = " ".join(texts).lower()
    for key, words in table:
        if any(word in text for word in words):
            return key
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    t0 = time.perf_counter()
    master = load_master()
    load_s = time.perf_counter() - t0
    datasets = [dataset_for(case["fields"]) for case in CASES]
    for ds in datasets:  # warm-up
        resolve_body_part(ds, master)
    table = synonym_table(master)
    rates, naive_rates = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for ds in datasets:
            resolve_body_part(ds, master)
        rates.append(len(datasets) / (time.perf_counter() - start))
        start = time.perf_counter()
        for ds in datasets:
            naive_scan(ds, table)
        naive_rates.append(len(datasets) / (time.perf_counter() - start))
    report = {
        "benchmark": "anatomy resolver on the case table",
        "cases": len(datasets),
        "rounds": args.rounds,
        "resolutions_per_s_median": round(statistics.median(rates)),
        "resolutions_per_s_min": round(min(rates)),
        "master_load_and_index_s": round(load_s, 3),
        "naive_synonym_scan_per_s_median": round(statistics.median(naive_rates)),
        # time per dataset, resolver over the bare synonym scan
        "ratio_resolver_vs_naive_scan": round(statistics.median(naive_rates) / statistics.median(rates), 2),
    }
    return emit(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
