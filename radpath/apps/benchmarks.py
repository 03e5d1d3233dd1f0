"""``radpath bench``: every benchmark under ``bench/`` in one go, each the bare tool against
radpath's stage in the same run, and one report (Markdown and JSON) of their ratios.

Each script is run in a fresh process with ``--json``; ``--short`` gives each a small
input and one round (what CI runs, to prove the benchmarks work, not to quote numbers).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from radpath.apps.airflow_local import REPO_ROOT

BENCH_DIR = REPO_ROOT / "bench"


@dataclass(frozen=True)
class Benchmark:
    script: str
    what: str
    full: tuple[str, ...]
    short: tuple[str, ...] | None  # None: left out of the short mode (minutes of whole runs)


BENCHMARKS = (
    Benchmark("anatomy_resolver.py", "body-part resolver vs a bare synonym substring scan of the same fields",
              ("--rounds", "7"), ("--rounds", "2")),
    Benchmark("wsi_dicomize.py", "slide conversion: radpath stage vs wsidicomizer (and cp)",
              ("--repeat", "3"), ("--repeat", "1", "--big-gib", "0")),
    Benchmark("nifti.py", "DICOM → NIfTI: radpath vs dcm2niix", ("--repeat", "7"),
              ("--repeat", "1", "--slices", "60")),
    Benchmark("segment.py", "segmentation: radpath stage vs TotalSegmentator's command line",
              ("--repeat", "3"), ("--repeat", "1")),
    Benchmark("seg_encode.py", "SEG encoding: radpath vs dcmqi's itkimage2segimage", ("--repeat", "3"),
              ("--repeat", "1", "--slices", "60")),
    Benchmark("quantify.py", "quantification: radpath stage vs pyradiomics on the same image and mask",
              ("--repeat", "3"), ("--repeat", "1", "--slices", "24")),
    Benchmark("resume.py", "a run killed in the 5th of 6 segmentations, resumed, vs the whole run",
              ("--patients", "6"), None),
)


def ratios_in(report) -> dict[str, float]:
    """Every ``ratio_*`` value of a report (a dict, or a list of per-input rows)."""
    found: dict[str, float] = {}
    rows = report if isinstance(report, list) else [report]
    for index, row in enumerate(rows):
        label = f"{row.get('slide') or row.get('input') or index}: " if len(rows) > 1 else ""
        for key, value in row.items():
            if key.startswith("ratio") and isinstance(value, int | float):
                found[f"{label}{key}"] = value
    return found


def run_benchmarks(out_dir: Path, short: bool) -> dict:
    """Run them all; write ``bench-report.json`` and ``bench-report.md`` into ``out_dir``."""
    if not BENCH_DIR.is_dir():
        raise FileNotFoundError(f"no bench/ folder beside radpath ({BENCH_DIR}): radpath bench needs a checkout")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for bench in BENCHMARKS:
        if short and bench.short is None:
            continue
        json_path = out_dir / f"{Path(bench.script).stem}.json"
        json_path.unlink(missing_ok=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(BENCH_DIR / bench.script), *(bench.short if short else bench.full),
                               "--json", str(json_path)], capture_output=True, text=True)
        seconds = round(time.perf_counter() - started, 1)
        entry = {"benchmark": Path(bench.script).stem, "what": bench.what, "seconds": seconds,
                 "arguments": list(bench.short if short else bench.full)}
        if done.returncode != 0 or not json_path.is_file():
            entry["error"] = f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-800:]}"
        else:
            report = json.loads(json_path.read_text())
            entry["ratios"] = ratios_in(report)
            entry["report"] = report
        results.append(entry)
        print(f"bench {entry['benchmark']}: {seconds} s" + (f" FAILED: {entry['error']}" if "error" in entry else ""),
              file=sys.stderr, flush=True)
    summary = {"mode": "short" if short else "full", "benchmarks": results}
    (out_dir / "bench-report.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "bench-report.md").write_text(markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    lines = [f"# radpath benchmarks ({summary['mode']} mode)", "",
             "Ratios: radpath's time over the bare tool's, measured in the same run (medians); 1.00 = the "
             "wrapper adds nothing.", "", "| benchmark | what | ratio | value |", "| --- | --- | --- | --- |"]
    for entry in summary["benchmarks"]:
        if "error" in entry:
            lines.append(f"| {entry['benchmark']} | {entry['what']} | FAILED | {entry['error'][:120]} |")
            continue
        ratios = entry["ratios"] or {"(throughput only)": None}
        for name, value in ratios.items():
            shown = "n/a" if value is None else f"{value:.3f}"
            lines.append(f"| {entry['benchmark']} | {entry['what']} | {name} | {shown} |")
    return "\n".join(lines) + "\n"
