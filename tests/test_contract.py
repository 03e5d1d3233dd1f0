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
from radpath.adapters.settings import Settings
from radpath.domain.records import RecordError
from radpath.pipeline import batch, stagetable
from radpath.pipeline.events import EVENTS_FILE
from radpath.pipeline.manifest import MANIFEST_NAME
from radpath.pipeline.sections import SegEncodeFacts, section_classes

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(radpath.__file__).resolve().parent
STAGES_FOLDER = PACKAGE / "pipeline" / "stages"


# -- sections ---------------------------------------------------------------------------


def test_every_section_of_a_demo_run_loads_and_round_trips(demo_run):
    output, run = demo_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    elements = [p for p in output.glob("runs/*/batch/*") if p.is_dir()]
    assert len(elements) == 2  # the demo's kidney and liver pairs
    for element in elements:
        on_disk = json.loads((element / MANIFEST_NAME).read_text())
        # every stage of the table wrote its section, and each has its record
        assert set(on_disk["facts"]) == set(stagetable.StageName.values()) <= set(section_classes())
        for name, data in on_disk["facts"].items():
            section = section_classes()[name].from_json(data)
            assert section.to_json() == data, name
            assert type(section).from_json(section.to_json()) == section, name


def test_a_renamed_or_mistyped_field_fails_when_read():
    good = {"folder": "seg-encode", "path": "kidney.seg.dcm", "encoder": "dcmqi", "series_instance_uid": "1.2",
            "sop_instance_uid": "1.3", "series_number": 300, "series_description": "Kidney", "body_part_examined":
            "KIDNEY", "segments": [{"label": "Kidney", "type": "64033007", "modifier": None, "voxels": 4}],
            "frames": 2, "extent": [{"index": 4, "z_mm": 12.5, "sop_instance_uid": "1.4"}], "source_slices": 9,
            "bytes": 10, "source_uids": {}, "sources_folder": None, "notes": []}
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
    from radpath.pipeline.stages.seg_encode import run_seg_encode

    result = batch.run_stage("seg-encode", run_seg_encode, settings)
    (element,) = result.elements
    assert element.detail == "MissingFact: the nifti and segment and merge stages have not run on this element"


def test_a_manifest_of_another_radpath_version_fails_its_element_saying_what_to_do(tmp_path: Path):
    element = tmp_path / "batch" / "e1"
    element.mkdir(parents=True)
    (element / MANIFEST_NAME).write_text(json.dumps({"schema": 1, "facts": {"wsi_dicomize": {}}, "stages": {}}))
    settings = Settings.from_env({"WORKFLOW_DIR": str(tmp_path), "BATCH_NAME": "batch"})
    from radpath.pipeline.stages.bodypart import run_bodypart

    (result,) = batch.run_stage("bodypart", run_bodypart, settings).elements
    assert result.status.value == "failed"
    assert "another version of radpath (manifest schema 1, this one reads 2)" in result.detail
    assert "run the element again from its input" in result.detail


def test_stages_never_touch_the_manifest():
    modules = sorted(STAGES_FOLDER.glob("*.py"))
    assert len(modules) > len(stagetable.STAGES)  # the stages and their registry
    for path in modules:
        text = path.read_text()
        for forbidden in ("MANIFEST_NAME", "radpath-manifest", "Manifest", ".facts", "radpath.pipeline.manifest"):
            assert forbidden not in text, f"{path.name} uses {forbidden}"


# -- one in-process run: headers read once, progress without log text ----------------------


@pytest.fixture(scope="module")
def instrumented_demo(tmp_path_factory):
    """The demo in this process with every log message reworded and every header read
    counted, per stage, element and file."""
    from radpath.apps.demo import run_demo

    output = tmp_path_factory.mktemp("instrumented")
    reads: Counter = Counter()
    current: list[tuple[str, str] | None] = [None]  # (stage, element) running now
    real_dcmread, real_run_one, real_message = pydicom.dcmread, batch._run_one, logging.LogRecord.getMessage

    def counting_dcmread(path, *args, **kwargs):
        if current[0] is not None and kwargs.get("stop_before_pixels"):
            reads[(*current[0], os.path.realpath(path))] += 1
        return real_dcmread(path, *args, **kwargs)

    def run_one(stage, function, element, *args, **kwargs):
        current[0] = (stage, element.name)
        try:
            return real_run_one(stage, function, element, *args, **kwargs)
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
        assert bar is not None and "2/2" in bar and "2 done" in bar, (stage, printed[-2000:])
    # per stage a start, an end for each of the demo's two elements and its own end; the run's end
    assert len(events.read_text().splitlines()) == 4 * len(stagetable.STAGES) + 1


def test_each_stage_reads_each_header_once(instrumented_demo):
    _, code, printed, reads = instrumented_demo
    assert code == 0, printed[-3000:]
    stages_reading = {stage for stage, _, _ in reads}
    assert {"pair", "nifti", "seg-encode", "store", "link"} <= stages_reading  # the counter saw them
    again = {key: n for key, n in reads.items() if n > 1}
    assert not again, again


def test_without_the_index_the_counter_sees_repeated_reads(tmp_path: Path):
    """Negative control for the count: the same series grouped twice outside an index."""
    from radpath.adapters.headers import header_index, read_header
    from radpath.synthetic.series import write_series

    write_series(tmp_path / "ct")
    first = sorted((tmp_path / "ct").rglob("*.dcm"))[0]
    with pytest.MonkeyPatch.context() as patch:
        calls = _counting_reads(patch)
        read_header(first), read_header(first)
        assert calls[os.path.realpath(first)] == 2
        calls.clear()
        with header_index():
            read_header(first), read_header(first)
        assert calls[os.path.realpath(first)] == 1


# -- the element's header index: headers read once per element ------------------------------


def _untidy_folder(root: Path) -> Path:
    """Series as real folders hold them: one with UIDs, one de-identified down to its file
    meta (no series UID), a non-image object in the first, and a file that is not DICOM."""
    from radpath.synthetic.series import SliceGeometry, write_series

    small = SliceGeometry.named("axial", rows=16, columns=16, slices=4, pixel_spacing=(8.0, 8.0), slice_spacing=8.0)
    made = write_series(root / "ct", geometry=small)
    report = pydicom.dcmread(made.paths[0], stop_before_pixels=True)
    for keyword in ("ImagePositionPatient", "Rows"):
        delattr(report, keyword)
    report.SOPInstanceUID = report.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    report.save_as(root / "ct" / "dose-report.dcm")
    for path in write_series(root / "anon", geometry=small, series_number=7, description="anon").paths:
        ds = pydicom.dcmread(path)
        del ds.SeriesInstanceUID, ds.SOPInstanceUID
        ds.save_as(path)
    (root / "ct" / "notes.txt").write_text("not DICOM")
    return root


def _counting_reads(patch: pytest.MonkeyPatch) -> Counter:
    reads: Counter = Counter()
    real = pydicom.dcmread

    def counting(path, *args, **kwargs):
        reads[os.path.realpath(path)] += 1
        return real(path, *args, **kwargs)

    patch.setattr(pydicom, "dcmread", counting)
    return reads


def test_series_from_the_header_index_are_those_read_from_the_files(tmp_path: Path):
    from radpath.adapters.radiology.headerindex import INDEX_NAME, HeaderIndex
    from radpath.adapters.radiology.series import read_series_in

    root = _untidy_folder(tmp_path / "element")
    from_files = read_series_in(root)
    assert len(from_files) == 2 and any(s.summary.key.startswith("no-uid:") for s in from_files)
    with pytest.MonkeyPatch.context() as patch:
        reads = _counting_reads(patch)
        assert read_series_in(root, HeaderIndex(root)) == from_files  # reads the files, writes the index
        assert sum(reads.values()) == 10  # 4 + 1 + 4 DICOM files and the text file, each once
        assert (root / INDEX_NAME).is_file()
        reads.clear()
        assert read_series_in(root, HeaderIndex(root)) == from_files  # another stage: from the index
        assert not reads


def test_a_file_changed_since_it_was_indexed_is_read_again_and_a_broken_index_is_ignored(tmp_path: Path, caplog):
    from radpath.adapters.radiology.headerindex import INDEX_NAME, HeaderIndex
    from radpath.adapters.radiology.series import read_series_in

    root = _untidy_folder(tmp_path / "element")
    read_series_in(root, HeaderIndex(root))
    changed = sorted((root / "ct").glob("CT_*.dcm"))[1]
    ds = pydicom.dcmread(changed)
    ds.ImagePositionPatient = [1.0, 2.0, 300.0]
    ds.save_as(changed)
    with pytest.MonkeyPatch.context() as patch:
        reads = _counting_reads(patch)
        series = read_series_in(root, HeaderIndex(root))
        assert list(reads) == [os.path.realpath(changed)]
    positions = {i.path: i.frames[0].position for s in series for i in s.instances if i.is_image}
    assert positions[changed] == (1.0, 2.0, 300.0)
    # A file written anew with the same size and modification time (a coarse clock): its
    # inode tells it apart.
    before = changed.stat()
    ds.ImagePositionPatient = [1.0, 2.0, 400.0]  # the same length as 300.0
    ds.save_as(changed.with_suffix(".new"))
    os.utime(changed.with_suffix(".new"), ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(changed.with_suffix(".new"), changed)
    assert (changed.stat().st_size, changed.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    series = read_series_in(root, HeaderIndex(root))
    positions = {i.path: i.frames[0].position for s in series for i in s.instances if i.is_image}
    assert positions[changed] == (1.0, 2.0, 400.0)
    (root / INDEX_NAME).write_text('{"schema": 1, "files": {"ct/CT_001_0000.dcm": {"size": "x"}}}')
    with caplog.at_level(logging.WARNING):
        assert read_series_in(root, HeaderIndex(root)) == read_series_in(root)
    assert "unreadable" in caplog.text and "headers are read again" in caplog.text


def _modules_of_stage_process(env: dict) -> list[str]:
    """Run ``radpath stage nifti`` in a process of its own; which of the heavy modules it imported."""
    code = ("import json, sys\nfrom radpath.apps.cli import main\nsys.argv = ['radpath', 'stage', 'nifti']\n"
            "code = main()\nprint(json.dumps(sorted(m for m in ('pydicom', 'numpy', 'nibabel') if m in sys.modules)))\n"
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_nifti_stage_process_after_pair_needs_neither_pydicom_nor_numpy(tmp_path: Path):
    """The pipeline's case (pair read the element's headers) in a process, as a Kaapana
    container runs it: the headers come from the index, the NIfTI header is read without
    nibabel; the section is the one a run reading the files writes."""
    from radpath.adapters.radiology.headerindex import INDEX_NAME
    from radpath.pipeline.manifest import Manifest
    from radpath.pipeline.stages.pair import run_pair
    from radpath.synthetic import write_series, write_slide_header

    run = tmp_path / "run"
    element = run / "batch" / "patient"
    ct = write_series(element / "get-input")
    write_slide_header(element / "slide" / "slide.dcm", ct.study.patient)
    layout = {"WORKFLOW_DIR": str(run), "OPERATOR_IN_DIR": "get-input"}
    assert batch.run_stage("pair", run_pair, Settings.from_env({**layout, "OPERATOR_OUT_DIR": "pair"})).exit_code == 0
    env = {**os.environ, **layout, "OPERATOR_OUT_DIR": "nifti"}
    assert _modules_of_stage_process(env) == []
    indexed = Manifest.load(element).facts["nifti"]
    assert sorted(s["sop_instance_uid"] for s in indexed["slices"]) == sorted(ct.sop_instance_uids)
    # Negative control: without the index the process reads the headers, with pydicom.
    (element / INDEX_NAME).unlink()
    assert "pydicom" in _modules_of_stage_process(env)
    assert Manifest.load(element).facts["nifti"] == indexed


# -- the stage table ----------------------------------------------------------------------


def test_stage_table_agrees_with_operators_chain_form_and_containers():
    run = subprocess.run([sys.executable, "-m", "radpath.pipeline.stagetable", "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "0 disagreement(s)" in run.stdout


@pytest.mark.parametrize("edit, expected", [
    (("NiftiOperator.py", "radpath-nifti:", "radpath-nifty:"), "NiftiOperator.py: image 'radpath-nifty'"),
    (("SegmentOperator.py", "gpu_mem_mb=11000", "gpu_mem_mb=8000"), "SegmentOperator.py: gpu_mem_mb=8000"),
    (("chains.py", "    merge = MergeOperator(dag=dag, input_operator=segment)\n", ""), "chains.py: the chain"),
    (("forms.py", '"enum": ["fast", "full"]', '"enum": ["fast", "turbo"]'), "forms.py: totalseg_speed offers"),
    (("SegmentOperator.py", "totalseg_speed=None,", "speed=None,"), "SegmentOperator.py: takes options ['speed']"),
    (("forms.py", '"merge_bilateral": {', '"merge_both": {'), "forms.py: form field 'merge_both'"),
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
    from radpath.pipeline import stages

    assert stages.PIPELINE == stagetable.StageName.values()
    assert [s.name for s in stages.in_pipeline_order()] == list(stagetable.StageName)


# -- layers ------------------------------------------------------------------------------

#: The package's folders, lowest first: a module may import its own layer and those below
#: it, never above (``radpath/__init__.py``, the version, counts as the lowest).
LAYERS = ("domain", "adapters", "pipeline", "synthetic", "apps")


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    """The layer of ``module`` (``radpath.<layer>.…``) by its folder."""
    parts = module.split(".")
    if parts in (["radpath"], ["radpath", "__main__"]):
        return 0 if len(parts) == 1 else len(LAYERS) - 1
    assert parts[1] in LAYERS, f"{module} lies in no layer folder ({', '.join(LAYERS)})"
    return LAYERS.index(parts[1])


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of ``package`` and the radpath modules it imports (by AST, at any depth)."""
    modules = {_module_name(path, package): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "radpath":
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.split(".")[0] == "radpath")
        graph[module] = {name for name in found if name in modules} - {module}
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{module} ({LAYERS[_layer(module)]}) imports {target} ({LAYERS[_layer(target)]})"
            for module, targets in sorted(graph.items()) for target in sorted(targets)
            if _layer(target) > _layer(module)]


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
    # A package importing its own modules (``radpath.domain.anatomy`` → ``….master``) is no cycle.
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append(" → ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return cycles


def test_every_module_lies_in_a_layer_folder():
    for module in import_graph():
        _layer(module)


def test_no_import_reaches_up_a_layer():
    upward = upward_imports(import_graph())
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycle():
    cycles = import_cycles(import_graph())
    assert not cycles, cycles


#: What the domain must not use: servers, processes, image and DICOM file I/O.
IO_MODULES = ("subprocess", "requests", "socket", "urllib.request", "http", "dicomweb_client", "nibabel",
              "SimpleITK", "wsidicomizer", "wsidicom", "totalsegmentator", "shutil", "tempfile")
IO_CALLS = ("open", "dcmread", "dcmwrite", "save_as", "read_text", "write_text", "read_bytes", "write_bytes")
#: The domain's own knowledge and templates, read from the files that hold them.
KNOWLEDGE_READERS = {"domain/anatomy/master.py", "domain/radiology/selection.py", "domain/link/page.py",
                     "domain/quantify/__init__.py"}


def domain_io(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted((package / "domain").rglob("*.py")):
        where = str(path.relative_to(package))
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            found += [f"{where} imports {n}" for n in names
                      if any(n == m or n.startswith(m + ".") for m in IO_MODULES)]
            if isinstance(node, ast.Call) and where not in KNOWLEDGE_READERS:
                called = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                if called in IO_CALLS:
                    found.append(f"{where} calls {called}")
    return found


def test_the_domain_does_no_io():
    """Nothing in radpath/domain talks to a server, runs a program or reads or writes files
    other than its own knowledge data."""
    assert not domain_io()


def test_the_layer_checks_see_an_upward_import_a_cycle_and_domain_io(tmp_path: Path):
    """Negative controls: a domain module importing an adapter, two modules importing each
    other, and a domain module doing I/O."""
    package = tmp_path / "radpath"
    for folder in ("domain", "adapters"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "domain" / "a.py").write_text("from radpath.adapters.b import x\n")
    (package / "adapters" / "b.py").write_text("from radpath.adapters import c\nx = 1\n")
    (package / "adapters" / "c.py").write_text("import radpath.adapters.b\n")
    (package / "domain" / "d.py").write_text("import tempfile\n\ndef f(p):\n    return p.read_text()\n")
    graph = import_graph(package)
    assert upward_imports(graph) == ["radpath.domain.a (domain) imports radpath.adapters.b (adapters)"]
    assert import_cycles(graph) == ["radpath.adapters.b → radpath.adapters.c → radpath.adapters.b"]
    assert domain_io(package) == ["domain/d.py imports tempfile", "domain/d.py calls read_text"]


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
    modules = sorted(STAGES_FOLDER.glob("*.py"))
    assert len(modules) > len(stagetable.STAGES)
    assert not _repeated_blocks(modules)


def test_the_repeat_finder_finds_a_repeat(tmp_path: Path):
    block = "\n".join(f"x{i} = element.need(NiftiFacts){i}" for i in range(6))
    (tmp_path / "a.py").write_text(block + "\n")
    (tmp_path / "b.py").write_text("y = 1\n" + block + "\n")
    assert _repeated_blocks([tmp_path / "a.py", tmp_path / "b.py"])

