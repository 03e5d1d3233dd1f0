"""Resuming: a new run carries over what an earlier run of the same selection finished.

``radpath run`` into an output folder that holds an earlier run of the same run conf
resumes it (``--fresh`` starts over): get-input stages the input as always, then, for each
element whose input is the same as it was, carries the earlier element's finished stages
over into the new run folder (their output folders hard-linked, not copied; their manifest
records marked ``carried``), and the batch runner passes over every carried stage. What
failed, was skipped or never ran is done again, from that stage on.

The earlier run folder is left as it was: its report still says how that run ended.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

from radpath.pipeline.manifest import MANIFEST_NAME, Manifest, ManifestError, Status
from radpath.pipeline.sections import PairFacts

log = logging.getLogger(__name__)

#: The ``data_form`` key naming the run folder to resume (set by ``radpath run``).
RESUME_FROM = "resume_from"


def selection_of(conf: dict) -> dict:
    """``conf`` without what says how it was started (the run to resume)."""
    data_form = {k: v for k, v in (conf.get("data_form") or {}).items() if k != RESUME_FROM}
    return {**conf, "data_form": data_form}


def resumable_run(runs_dir: Path, conf: dict) -> Path | None:
    """The newest run folder under ``runs_dir`` started with the same selection as ``conf``."""
    wanted = selection_of(conf)
    candidates = []
    for folder in runs_dir.iterdir() if runs_dir.is_dir() else ():
        conf_file = folder / "conf" / "conf.json"
        try:
            earlier, started = json.loads(conf_file.read_text(encoding="utf-8")), conf_file.stat().st_mtime
        except (OSError, ValueError):
            continue  # a run folder without a readable conf is not resumed from
        if isinstance(earlier, dict) and selection_of(earlier) == wanted and (folder / "batch").is_dir():
            candidates.append((started, folder.name, folder))  # newest by when it started
    return max(candidates)[2] if candidates else None


def carry_over(earlier: Path, batch_dir: Path, input_dir: str, elements: list[str]) -> list[str]:
    """Carry each of ``elements`` (just staged in ``batch_dir``) over from the run folder
    ``earlier`` where its input (``<element>/<input_dir>``) is what it was, with the
    elements the pair stage split off it; returns the names carried."""
    carried: list[str] = []
    earlier_batch = earlier / "batch"
    for name in elements:
        before = earlier_batch / name
        if not (before / MANIFEST_NAME).is_file():
            continue
        if _fingerprint(before / input_dir) != _fingerprint(batch_dir / name / input_dir):
            log.info("resume: %s: its input changed since %s: done again", name, earlier.name)
            continue
        if _carry_element(before, batch_dir / name, earlier.name):
            carried.append(name)
    for before in sorted(earlier_batch.iterdir()) if earlier_batch.is_dir() else ():
        if before.name in elements or not before.is_dir():
            continue
        try:
            pair = Manifest.load(before).sections.get(PairFacts.stage)
        except ManifestError:
            continue
        if isinstance(pair, PairFacts) and pair.split_from in carried and _carry_element(
                before, batch_dir / before.name, earlier.name):
            carried.append(before.name)
    return carried


def _carry_element(before: Path, after: Path, run: str) -> bool:
    """The finished stages of element ``before`` into ``after``: the stages done in a row
    from the first; False where there are none (or its manifest cannot be read)."""
    try:
        manifest = Manifest.load(before)
    except ManifestError as err:
        log.warning("resume: %s: %s: done again", before.name, err)
        return False
    kept = {}
    for stage, record in manifest.stages.items():
        if record.status is not Status.DONE:
            break
        kept[stage] = dataclasses.replace(record, carried=record.carried or run)
    if not kept:
        return False
    after.mkdir(parents=True, exist_ok=True)
    for stage in kept:
        if (before / stage).is_dir():
            shutil.rmtree(after / stage, ignore_errors=True)
            shutil.copytree(before / stage, after / stage, symlinks=True, copy_function=_link_or_copy)
    for item in before.iterdir():  # what a stage put beside its folder (a split element's input)
        if not (after / item.name).exists() and item.name not in manifest.stages and item.name != MANIFEST_NAME:
            if item.is_dir() and not item.is_symlink():
                shutil.copytree(item, after / item.name, symlinks=True, copy_function=_link_or_copy)
            elif not item.name.startswith("."):
                _link_or_copy(item, after / item.name)
    carried = Manifest(path=after / MANIFEST_NAME,
                       sections={k: v for k, v in manifest.sections.items() if k in kept}, stages=kept)
    carried.save()
    log.info("resume: %s: %s carried over from %s", after.name, ", ".join(kept), run)
    return True


def _link_or_copy(source, target) -> None:
    """A hard link (no second copy of a slide or a volume); a copy across file systems."""
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _fingerprint(folder: Path) -> list[tuple[str, int, int]]:
    """What identifies an element's input: each file's path and size, and where get-input
    linked it from a user's folder, its modification time (a series fetched again from a
    PACS is a new file of the same content)."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*")):
        try:
            stat = path.stat()
        except OSError:
            continue
        if path.is_file():
            changed = stat.st_mtime_ns if path.is_symlink() else 0
            found.append((path.relative_to(folder).as_posix(), stat.st_size, changed))
    return found
