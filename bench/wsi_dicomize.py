"""Slide conversion speed and memory: radpath vs the bare wsidicomizer CLI vs ``cp``.

For each slide, in the same run and on the same file (page-cached by a warm-up read):
``cp`` of the bytes (the physical limit of the tile-copy path), ``wsidicomizer -i … -o …``
(the bare tool, same workers and chunk size radpath uses) and ``radpath dicomize`` (the
wrapper: linkage, anatomy coding, atomic output). Each command runs as its own process;
its wall time and peak RSS come from ``wait4``. Reported: medians of ``--repeat`` runs,
MB/s of input, and the ratios radpath/wsidicomizer.

Slides: the shared SVS and NDPI (when ../shared/data exists) and a synthetic Aperio-style
SVS of ``--big-gib`` GiB made here: distinct tissue tiles encoded once and repeated, so
making a gigabyte costs seconds, not the JPEG encoder's hours.

Run: .venv/bin/python bench/wsi_dicomize.py [--big-gib 1.0] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SHARED = REPO.parent / "shared" / "data" / "wsi"
WORKERS, CHUNK = 4, 100  # what radpath's stage passes (radpath.adapters.slides.convert.CHUNK_SIZE)


def make_big_svs(path: Path, gib: float, tile: int = 256) -> Path:
    """An Aperio-style SVS of about ``gib`` GiB: level 0 of repeated JPEG tissue tiles + thumbnail."""
    import tifffile
    from PIL import Image

    from radpath.synthetic.slides import tissue_image

    sample = tissue_image(tile * 8, tile * 8, seed=3)
    tiles = []
    for y in range(8):
        for x in range(8):
            buffer = io.BytesIO()
            Image.fromarray(sample[y * tile : (y + 1) * tile, x * tile : (x + 1) * tile]).save(
                buffer, format="JPEG", quality=95
            )
            tiles.append(buffer.getvalue())
    mean_tile = sum(map(len, tiles)) / len(tiles)
    side = int(np.sqrt(gib * 2**30 / mean_tile))
    width = height = side * tile

    def stream():
        for i in range(side * side):
            yield tiles[(i * 7919) % len(tiles)]

    description = (
        f"Aperio Image Library v12.0.0\r\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) JPEG/RGB Q=95"
        f"|AppMag = 20|MPP = 0.5"
    )
    thumb = np.asarray(Image.fromarray(sample).resize((512, 512)))
    with tifffile.TiffWriter(path, bigtiff=True) as tiff:
        tiff.write(stream(), shape=(height, width, 3), dtype="uint8", tile=(tile, tile), compression="jpeg",
                   photometric="rgb", description=description, metadata=None, software=False)
        tiff.write(thumb, photometric="rgb", compression="jpeg", description=f"Aperio Image Library v12.0.0\r\n{width}x{height} -> 512x512",
                   metadata=None, software=False)
    return path


def run_measured(command: list[str], scratch: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one command, measured by GNU time.

    Not ``wait4`` from here: Linux carries the parent's RSS high-water mark into a child
    across fork + exec, so a benchmark process that has touched a gigabyte would report
    that gigabyte for every tool. GNU time is a small parent. ``sync`` first, so no tool
    pays for the previous tool's dirty pages being written back.
    """
    subprocess.run(["sync"], check=True)
    report = scratch / "time.txt"
    start = time.perf_counter()  # GNU time's own %e has only 10 ms resolution
    run = subprocess.run(["/usr/bin/time", "-o", str(report), "-f", "%M", *command],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {run.stderr.decode(errors='replace')[-500:]}")
    return seconds, int(report.read_text().split()[-1]) * 1024


def bench_slide(slide: Path, repeat: int, scratch: Path) -> dict:
    size = slide.stat().st_size
    subprocess.run(["cat", str(slide)], stdout=subprocess.DEVNULL, check=True)  # page-cache the input for all
    commands = {
        "cp": lambda out: ["cp", str(slide), str(out)],
        "wsidicomizer": lambda out: [str(VENV_BIN / "wsidicomizer"), "-i", str(slide), "-o", str(out),
                                     "-w", str(WORKERS), "--chunk-size", str(CHUNK), "--no-label"],
        "radpath": lambda out: [str(VENV_BIN / "radpath"), "dicomize", str(slide), "--patient-id", "BENCH",
                                "--anatomy", "Niere links", "--workers", str(WORKERS), "-o", str(out)],
    }
    results = {name: {"seconds": [], "rss": []} for name in commands}
    for round_ in range(repeat):
        order = list(commands.items())
        for name, command in order if round_ % 2 == 0 else order[::-1]:  # ABBA: drift hits all alike
            out = scratch / f"{name}-out"
            shutil.rmtree(out, ignore_errors=True)
            if out.exists():
                out.unlink()
            seconds, rss = run_measured(command(out), scratch)
            results[name]["seconds"].append(seconds)
            results[name]["rss"].append(rss)
            shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    row = {"slide": slide.name, "bytes": size}
    for name, data in results.items():
        median = statistics.median(data["seconds"])
        row[name] = {
            "median_s": round(median, 3),
            "mb_per_s": round(size / 1e6 / median, 1),
            "peak_rss_mib": round(max(data["rss"]) / 2**20, 1),
        }
    row["ratio_radpath_vs_wsidicomizer"] = round(row["radpath"]["median_s"] / row["wsidicomizer"]["median_s"], 3)
    row["ratio_radpath_vs_cp"] = round(row["radpath"]["median_s"] / row["cp"]["median_s"], 2)
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| slide | MB | cp MB/s | wsidicomizer MB/s | radpath MB/s | radpath / wsidicomizer (time) | peak RSS wsidicomizer / radpath (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['slide']} | {r['bytes'] / 1e6:.0f} | {r['cp']['mb_per_s']} | {r['wsidicomizer']['mb_per_s']} | "
            f"{r['radpath']['mb_per_s']} | {r['ratio_radpath_vs_wsidicomizer']} | "
            f"{r['wsidicomizer']['peak_rss_mib']} / {r['radpath']['peak_rss_mib']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-gib", type=float, default=1.0, help="size of the synthetic slide (0 to skip)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="radpath-bench-wsi-") as tmp:
        scratch = Path(tmp)
        slides = [p for p in (SHARED / "CMU-1-Small-Region.svs", SHARED / "test3-DAPI-2-(387).ndpi") if p.exists()]
        if args.big_gib > 0:
            t0 = time.perf_counter()
            slides.append(make_big_svs(scratch / "synthetic-big.svs", args.big_gib))
            print(f"made {slides[-1].name}: {slides[-1].stat().st_size / 2**30:.2f} GiB in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
        rows = [bench_slide(slide, args.repeat, scratch) for slide in slides]
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
