"""What every benchmark here shares: ABBA rounds and the JSON report."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def abba_medians(contenders: dict[str, Callable[[], object]], repeat: int,
                 timer: Callable[[Callable[[], object]], float] = timed) -> dict[str, float]:
    """Median seconds of each contender over ``repeat`` rounds, every other round reversed
    so that warm caches and clock drift favour no one."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(repeat):
        order = list(contenders.items())
        for name, function in order if round_ % 2 == 0 else order[::-1]:
            times[name].append(timer(function))
    return {name: statistics.median(values) for name, values in times.items()}


def emit(report: dict, json_path: Path | None) -> int:
    """Print the report; also write it where ``--json`` asked."""
    text = json.dumps(report, indent=2)
    print(text)
    if json_path:
        json_path.write_text(text)
    return 0
