"""`radpath bench --short`: every benchmark runs (bare tool and radpath in the same run)
and the report lists each with its ratios; the numbers themselves are not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from radpath.apps.benchmarks import BENCHMARKS

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def test_bench_short_reports_every_benchmark_with_its_ratios(shared_data, tmp_path: Path):
    run = subprocess.run([sys.executable, "-m", "radpath", "bench", "--short", "--output", str(tmp_path)],
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "bench-report.json").read_text())
    assert summary["mode"] == "short"
    names = [entry["benchmark"] for entry in summary["benchmarks"]]
    assert names == [Path(b.script).stem for b in BENCHMARKS if b.short is not None]
    assert "resume" not in names  # three whole runs: full mode only
    for entry in summary["benchmarks"]:
        assert "error" not in entry, entry
        assert entry["ratios"] and all(value > 0 for value in entry["ratios"].values()), entry
    table = (tmp_path / "bench-report.md").read_text()
    assert "ratio_wall_stage_vs_cli" in table and "ratio_radpath_vs_wsidicomizer" in table
    assert table in run.stdout
