"""The typed contract between the stages: sections, the runner's manifest, headers read
once, progress from events, the stage table, and the package's layers."""

from __future__ import annotations

import ast
import json
import logging
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pydicom
import pytest

import radpath
from radpath import batch, stagetable
from radpath.events import EVENTS_FILE
from radpath.manifest import MANIFEST_NAME
from radpath.records import RecordError
from radpath.sections import SegEncodeFacts, section_classes
from radpath.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(radpath.__file__).resolve().parent


# -- sections ---------------------------------------------------------------------------


def test_every_section_of_a_demo_run_loads_and_round_trips(demo_run):
    output, run = demo_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (element,) = (p for p in output.glob("runs/*/batch/*") if p.is_dir())
    on_disk = json.loads((element / MANIFEST_NAME).read_text())
    assert set(on_disk["facts"]) == set(section_classes())  # every stage wrote its section
    for name, data in on_disk["facts"].items():
        section = section_classes()[name].from_json(data)
        assert section.to_json() == data, name
        assert type(section).from_json(section.to_json()) == section, name


def test_a_renamed_or_mistyped_field_fails_when_read():
    good = {"folder": "seg-encode", "path": "kidney.seg.dcm", "encoder": "dcmqi", "series_instance_uid": "1.2",
            "sop_instance_uid": "1.3", "series_number": 300, "series_description": "Kidney", "body_part_examined":
            "KIDNEY", "segments": [{"label": "Kidney", "type": "64033007", "modifier": None, "voxels": 4}],
            "frames": 2, "bytes": 10, "source_uids": {}, "sources_folder": None, "notes": []}
    assert SegEncodeFacts.from_json(good).segments[0].voxels == 4
    with pytest.raises(RecordError, match="unknown field"):
        SegEncodeFacts.from_json({**good, "seg_path": "x"})
    with pytest.raises(RecordError, match="encoder"):
        SegEncodeFacts.from_json({**good, "encoder": "itk"})
    with pytest.raises(RecordError, match="voxels"):
        SegEncodeFacts.from_json({**good, "segments": [{**good["segments"][0], "voxels": "4"}]})


def test_a_stage_without_its_inputs_fails_with_one_message(tmp_path: Path):
    (tmp_path / "batch" / "e1").mkdir(parents=True)
    settings = Settings.from_env({"WORKFLOW_DIR": str(tmp_path), "BATCH_NAME": "batch"})
    from radpath.stages.seg_encode import run_seg_encode

    result = batch.run_stage("seg-encode", run_seg_encode, settings)
    (element,) = result.elements
    assert element.detail == "MissingFact: the nifti and segment and merge stages have not run on this element"


def test_stages_never_touch_the_manifest():
    for path in sorted((PACKAGE / "stages").glob("*.py")):
        text = path.read_text()
        for forbidden in ("MANIFEST_NAME", "radpath-manifest", "Manifest", ".facts", "radpath.manifest"):
            assert forbidden not in text, f"{path.name} uses {forbidden}"


# -- one in-process run: headers read once, progress without log text ----------------------


@pytest.fixture(scope="module")
def instrumented_demo(tmp_path_factory):
    """The demo in this process with every log message reworded and every header read
    counted, per stage and file."""
    from radpath.demo import run_demo

    output = tmp_path_factory.mktemp("instrumented")
    reads: Counter = Counter()
    current: list[str | None] = [None]
    real_dcmread, real_run_one, real_message = pydicom.dcmread, batch._run_one, logging.LogRecord.getMessage

    def counting_dcmread(path, *args, **kwargs):
        if current[0] is not None and kwargs.get("stop_before_pixels"):
            reads[(current[0], os.path.realpath(path))] += 1
        return real_dcmread(path, *args, **kwargs)

    def run_one(stage, *args, **kwargs):
        current[0] = stage
        try:
            return real_run_one(stage, *args, **kwargs)
        finally:
            current[0] = None

    patch = pytest.MonkeyPatch()
    patch.setattr(pydicom, "dcmread", counting_dcmread)
    patch.setattr(batch, "_run_one", run_one)
    patch.setattr(logging.LogRecord, "getMessage", lambda record: f"reworded {record.levelname.lower()}")
    import io
    from contextlib import redirect_stdout

    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            code = run_demo(output, use_airflow=False)
    finally:
        patch.undo()
        assert logging.LogRecord.getMessage is real_message
    return output, code, printed.getvalue(), reads


def test_progress_bars_work_with_every_log_message_reworded(instrumented_demo):
    output, code, printed, _ = instrumented_demo
    assert code == 0, printed[-3000:]
    (events,) = output.glob(f"runs/*/{EVENTS_FILE}")
    assert "reworded" in printed or "reworded" in (next(output.glob("logs/*.log")).read_text())
    for stage in stagetable.StageName.values():
        bar = next((line for line in printed.splitlines() if line.strip().startswith(stage + " ")), None)
        assert bar is not None and "1/1" in bar and "1 done" in bar, (stage, printed[-2000:])
    assert len(events.read_text().splitlines()) == 2 * len(stagetable.STAGES)  # a start and an end each


def test_each_stage_reads_each_header_once(instrumented_demo):
    _, code, printed, reads = instrumented_demo
    assert code == 0, printed[-3000:]
    stages_reading = {stage for stage, _ in reads}
    assert {"pair", "nifti", "seg-encode", "store", "link"} <= stages_reading  # the counter saw them
    again = {key: n for key, n in reads.items() if n > 1}
    assert not again, again


def test_without_the_index_the_counter_sees_repeated_reads(tmp_path: Path):
    """Negative control for the count: the same series grouped twice outside an index."""
    from radpath.headers import header_index, read_header
    from radpath.synthetic.series import write_series

    write_series(tmp_path / "ct")
    first = sorted((tmp_path / "ct").rglob("*.dcm"))[0]
    calls = Counter()
    real = pydicom.dcmread

    def counting(path, *args, **kwargs):
        calls[os.path.realpath(path)] += 1
        return real(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pydicom, "dcmread", counting)
        read_header(first), read_header(first)
        assert calls[os.path.realpath(first)] == 2
        calls.clear()
        with header_index():
            read_header(first), read_header(first)
        assert calls[os.path.realpath(first)] == 1


# -- the stage table ----------------------------------------------------------------------


def test_stage_table_agrees_with_operators_chain_form_and_containers():
    run = subprocess.run([sys.executable, "-m", "radpath.stagetable", "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "0 disagreement(s)" in run.stdout


@pytest.mark.parametrize("edit, expected", [
    (("NiftiOperator.py", "radpath-nifti:", "radpath-nifty:"), "NiftiOperator.py: image 'radpath-nifty'"),
    (("SegmentOperator.py", "gpu_mem_mb=11000", "gpu_mem_mb=8000"), "SegmentOperator.py: gpu_mem_mb=8000"),
    (("chains.py", "    merge = MergeOperator(dag=dag, input_operator=segment)\n", ""), "chains.py: the chain"),
    (("forms.py", '"enum": ["fast", "full"]', '"enum": ["fast", "turbo"]'), "forms.py: totalseg_speed offers"),
])
def test_stage_table_check_fails_on_a_drifted_copy(tmp_path: Path, edit, expected):
    """Negative controls: each kind of drift is found."""
    shutil.copytree(ROOT / "operators", tmp_path / "operators")
    shutil.copytree(ROOT / "processing-containers", tmp_path / "processing-containers")
    name, old, new = edit
    path = tmp_path / "operators" / "radpath_operators" / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    problems = stagetable.check(tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_pipeline_order_is_the_table_and_the_vocabulary():
    from radpath import stages

    assert stages.PIPELINE == stagetable.StageName.values()
    assert [s.name for s in stages.in_pipeline_order()] == list(stagetable.StageName)


# -- layers ------------------------------------------------------------------------------

#: Lowest first: a module may import its own layer and those below it, never above.
LAYERS = {
    "domain": ["vocabulary", "records", "names", "vr", "uids", "anatomy", "sections", "radiology.selection",
               "seg.description", "slides.linkage", "slides.uids", "link.kos", "link.viewers", "link.page"],
    "adapters": ["headers", "dicomfiles", "executables", "dciodvfy", "logs", "settings", "dicomweb", "storage",
                 "orthanc", "radiology", "seg", "segmentation", "slides", "link", "synthetic.volumes",
                 "synthetic.series", "synthetic.phantom", "synthetic.slides"],
    "machinery": ["manifest", "events", "workspace", "batch", "stagetable", "stages", "pipeline", "localinput",
                  "getinput", "discovery"],
    "applications": ["synthetic", "mainjob", "airflow_local", "demo", "viewer", "benchmarks", "cli", "__init__"],
}


def _layer(module: str) -> int:
    """The layer of ``radpath.<module>``: the most specific prefix listed."""
    best, rank = -1, None
    for index, prefixes in enumerate(LAYERS.values()):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank is not None, f"radpath.{module} is in no layer"
    return rank


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("radpath"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names
                             if (PACKAGE / Path(*node.module.split(".")[1:], a.name)).with_suffix(".py").is_file())
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("radpath"))
        graph[module] = {name.removeprefix("radpath.").removeprefix("radpath") or "__init__" for name in found} - {
            module}
    return graph


def test_no_import_reaches_up_a_layer():
    upward = [f"radpath.{module} ({list(LAYERS)[_layer(module)]}) imports radpath.{target} "
              f"({list(LAYERS)[_layer(target)]})"
              for module, targets in _imports().items() for target in targets
              if target in _imports() and _layer(target) > _layer(module)]
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycle():
    graph = {m: {t for t in ts if t in _imports()} for m, ts in _imports().items()}
    # A package imports its own modules (``radpath.seg`` → ``radpath.seg.x``): not a cycle.
    graph = {m: {t for t in ts if not t.startswith(m + ".") and m != "__init__"} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append(" → ".join(path[path.index(target):] + [target]) if target in path else target)
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_layer_check_sees_an_upward_import():
    """Negative control: the stage layer above the adapters, so such an import is flagged."""
    assert _layer("stages.link") > _layer("storage")
    assert _layer("radiology.selection") < _layer("radiology.pairing")


# -- no repeated blocks in the stages ------------------------------------------------------


def _repeated_blocks(paths: list[Path], size: int = 6) -> list[str]:
    """Runs of ``size`` non-blank code lines (stripped) that occur twice."""
    seen: dict[tuple[str, ...], tuple[Path, int]] = {}
    repeats = []
    for path in paths:
        lines = [line.strip() for line in path.read_text().splitlines()]
        for start in range(len(lines) - size + 1):
            block = tuple(lines[start:start + size])
            if not all(line and not line.startswith("#") for line in block):
                continue
            if block in seen:
                repeats.append(f"{path.name}:{start + 1} repeats {seen[block][0].name}:{seen[block][1] + 1}")
            else:
                seen[block] = (path, start)
    return repeats


def test_no_block_of_six_lines_repeats_in_the_stages():
    assert not _repeated_blocks(sorted((PACKAGE / "stages").glob("*.py")))


def test_the_repeat_finder_finds_a_repeat(tmp_path: Path):
    block = "\n".join(f"x{i} = element.need(NiftiFacts){i}" for i in range(6))
    (tmp_path / "a.py").write_text(block + "\n")
    (tmp_path / "b.py").write_text("y = 1\n" + block + "\n")
    assert _repeated_blocks([tmp_path / "a.py", tmp_path / "b.py"])

