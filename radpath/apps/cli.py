"""The ``radpath`` command line."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path

from radpath import __version__
from radpath.adapters.logs import configure
from radpath.adapters.settings import Settings, SettingsError
from radpath.domain.vocabulary import Laterality, Speed, StoreTarget, Transcoding
from radpath.pipeline import stages


def _stage(args: argparse.Namespace) -> int:
    if args.list:
        if not stages.REGISTRY:
            print("no stages registered yet")
        for spec in stages.in_pipeline_order():
            print(f"{spec.name:14} {spec.summary}")
        return 0
    if not args.name:
        print("radpath stage: name a stage, or --list", file=sys.stderr)
        return 2
    try:
        spec = stages.get(args.name)
        settings = Settings.from_env()
        settings.layout.require_workflow_dir()
    except (stages.UnknownStage, SettingsError) as err:
        print(f"radpath stage: {err}", file=sys.stderr)
        return 2
    if spec.head_start is not None:
        spec.head_start(settings.layout)
    from radpath.pipeline.batch import run_stage  # pydicom and the rest: after the head start

    exit_code = run_stage(spec.name, spec.load(), settings).exit_code
    # The process ends now: what it holds goes with it, not through the collector's last
    # pass over every object at exit (about 15 ms once numpy is loaded).
    gc.freeze()
    return exit_code


def _bodypart(args: argparse.Namespace) -> int:
    from radpath.adapters.dicomfiles import UnreadableDicom, read_metadata, read_metadata_under
    from radpath.domain.anatomy import resolve_body_part
    from radpath.pipeline.stages.bodypart import resolve_slide

    status = 0
    for name in args.paths:
        path = Path(name)
        try:
            if path.is_dir():
                datasets = [ds for _, ds in read_metadata_under(path)]
            else:
                datasets = read_metadata(path)
            if not datasets:
                raise UnreadableDicom(f"{path}: no DICOM metadata found")
            result = resolve_slide(datasets) if len(datasets) > 1 else resolve_body_part(datasets[0])
            line = {"path": str(path), **result.to_json()}
            if result.organ is not None:
                line.pop("reason")
        except UnreadableDicom as err:
            line, status = {"path": str(path), "error": str(err)}, 2
        print(json.dumps(line, ensure_ascii=False), flush=True)
    return status


def _dicomize(args: argparse.Namespace) -> int:
    from radpath.adapters.slides.convert import ConversionOptions, SlideConversionError, dicomize_slide
    from radpath.domain.slides.linkage import SlideLink, SlideLinkError

    try:
        link = SlideLink.from_mapping(
            {
                "patient_id": args.patient_id,
                "patient_name": args.patient_name,
                "patient_birth_date": args.birth_date,
                "patient_sex": args.sex,
                "study_instance_uid": args.study_uid,
                "accession_number": args.accession,
                "anatomic_site": args.anatomy,
                "laterality": args.laterality,
                "specimen_description": args.description,
                "container_identifier": args.container,
            },
            "command line",
        )
        options = ConversionOptions(
            workers=args.workers, tile_size=args.tile_size, include_label=args.include_label,
            include_overview=not args.no_overview, transcoding=args.transcoding,
        )
        result = dicomize_slide(Path(args.slide), Path(args.output), link, options)
    except (SlideLinkError, SlideConversionError) as err:
        print(f"radpath dicomize: {err}", file=sys.stderr)
        return 1
    anatomy = result.anatomy or {}
    side = f", {anatomy['laterality']}" if anatomy.get("laterality") else ""
    print(f"{result.folder}: {len(result.files)} instances, series {result.series_instance_uid}"
          + (f", specimen {anatomy['organ']}{side}" if anatomy else ""))
    for note in result.notes:
        print(f"note: {note}")
    return 0


def _run_settings(command: str) -> Settings | None:
    """The settings of a command that works in a run folder; None (after saying why) when
    they are wrong or WORKFLOW_DIR is missing: exit 2."""
    try:
        settings = Settings.from_env()
        settings.layout.require_workflow_dir()
    except SettingsError as err:
        print(f"radpath {command}: {err}", file=sys.stderr)
        return None
    return settings


def _fill_batch(command: str, fill, nothing: str) -> int:
    """Run ``fill(settings, out_dir)`` (a get-input variant); exit 126 when it found nothing."""
    import logging

    from radpath.adapters.dicomweb import DicomWebError

    settings = _run_settings(command)
    if settings is None:
        return 2
    try:
        report = fill(settings, settings.layout.operator_out_dir or command)
    except (DicomWebError, OSError, ValueError) as err:
        print(f"radpath {command}: {err}", file=sys.stderr)
        return 1
    for line in report.missing:
        logging.getLogger("radpath.pipeline.getinput").error("%s: %s", command, line)
    if not report.fetched and not report.missing:
        print(f"radpath {command}: {nothing}", file=sys.stderr)
        return 126
    # What did arrive goes on; the missing ones are named above.
    return 0 if report.fetched else 1


def _get_input(args: argparse.Namespace) -> int:
    from radpath.pipeline.getinput import fetch_selection

    return _fill_batch("get-input", fetch_selection,
                       "the run selects nothing (conf data_form.identifiers or data_form.input_folder)")


def _find_unlinked(args: argparse.Namespace) -> int:
    """Lists up to BATCH_LIMIT unlinked slide series in ``$WORKFLOW_DIR/$OPERATOR_OUT_DIR/``
    (:data:`radpath.pipeline.discovery.FOUND_NAME`); radpath-batch then triggers one radpath-map run
    for each, so nothing is retrieved here."""
    import json

    from radpath.adapters.dicomweb import DicomWeb, DicomWebError
    from radpath.pipeline.discovery import FOUND_NAME, find_unlinked_slides

    settings = _run_settings("find-unlinked")
    if settings is None:
        return 2
    out = settings.layout.require_workflow_dir() / (settings.layout.operator_out_dir or "find-unlinked")
    try:
        found = find_unlinked_slides(DicomWeb(settings.dicomweb), settings.options.batch_limit)
    except (DicomWebError, ValueError) as err:
        print(f"radpath find-unlinked: {err}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    (out / FOUND_NAME).write_text(json.dumps({"series": found.chosen, "summary": found.summary()}, indent=2))
    if not found.chosen:
        print("radpath find-unlinked: no unlinked slide with radiology in the PACS", file=sys.stderr)
        return 126
    return 0


def _get_slides(args: argparse.Namespace) -> int:
    from radpath.pipeline.getinput import copy_uploaded_slides

    return _fill_batch("get-slides", copy_uploaded_slides, "no slide files in SLIDES_FOLDER")


def _report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from radpath.pipeline.research import research_folder, write_research_table
    from radpath.pipeline.events import ProgressEvent, emit
    from radpath.pipeline.runner import RUNNING, element_table, interruption, run_failed, summarize

    try:
        settings = Settings.from_env()
        settings.layout.require_workflow_dir()
    except SettingsError as err:
        print(f"radpath report: {err}", file=sys.stderr)
        return 2
    if settings.layout.operator_out_dir:
        # The report task that ends every DAG (all_done): the run's end. Run by hand on a run
        # folder, report only reads.
        emit(settings.layout.workflow_dir, ProgressEvent.run_ended())
    rows = summarize(settings)
    console = Console(width=160)
    console.print(element_table(rows, f"radpath: elements of {settings.layout.batch_dir}"))
    note = interruption(settings)
    if note is not None and not any(row.status == RUNNING for row in rows):
        console.print(note, soft_wrap=True)
    table = write_research_table(settings, research_folder(settings))
    if table is not None:
        console.print(f"research table ({table.summary()}): {table.csv}", soft_wrap=True)
    # The run's verdict, after every element has had its chance: failed if any failed or
    # was left behind by a run that stopped.
    return 1 if run_failed(rows) else 0


def _demo(args: argparse.Namespace) -> int:
    from radpath.apps.demo import run_demo

    return run_demo(Path(args.output), use_airflow=not args.no_airflow)


def _view(args: argparse.Namespace) -> int:
    from radpath.apps.viewer.assets import ViewerUnavailable
    from radpath.apps.viewer.view import NothingToView, view

    try:
        return view(Path(args.path), Path(args.screenshot) if args.screenshot else None)
    except (NothingToView, ViewerUnavailable) as err:
        print(f"radpath view: {err}", file=sys.stderr)
        return 2


def _bench(args: argparse.Namespace) -> int:
    from radpath.apps.benchmarks import run_benchmarks

    out_dir = Path(args.output)
    summary = run_benchmarks(out_dir, short=args.short)
    print((out_dir / "bench-report.md").read_text())
    return 1 if any("error" in entry for entry in summary["benchmarks"]) else 0


#: A StudyInstanceUID no study has (the UUID-derived root 2.25 with 0): a search for it
#: asks a PACS only whether it answers.
UNUSED_UID = "2.25.0"


def _run(args: argparse.Namespace) -> int:
    from radpath.apps.mainjob import MainJob, run_main_job, selection_conf

    output = Path(args.output).resolve()
    form = {key: value for key, value in (("organ", args.organ), ("laterality", args.laterality),
                                          ("totalseg_speed", args.speed)) if value}
    env = {"RADPATH_LOG_LEVEL": "INFO"}
    if args.standin_weights:
        env["TOTALSEG_STANDIN_WEIGHTS"] = "true"
    if args.dicomweb:
        env["DICOMWEB_URL"] = args.dicomweb
        if args.user:
            env["DICOMWEB_USERNAME"] = args.user
    store = StoreTarget(args.store or (StoreTarget.DICOMWEB if args.dicomweb else StoreTarget.FOLDER))
    env["STORE_TARGET"] = store.value
    if store is StoreTarget.FOLDER:
        env["STORE_FOLDER"] = str(output / "store")
    try:  # a wrong setting stops here, on the terminal, before any work (not in a log file later)
        settings = Settings.from_env({**os.environ, **env})
        from radpath.adapters.storage import store_target

        store_target(settings)  # what the store stage will need, checked now, not after every stage ran
    except SettingsError as err:
        hint = " (give --dicomweb URL, or --store folder)" if err.variable == "DICOMWEB_URL" else ""
        print(f"radpath run: {err}{hint}", file=sys.stderr)
        return 2
    from radpath.adapters.dicomweb import DicomWeb, DicomWebError

    if store is StoreTarget.DICOMWEB and not args.dicomweb:
        try:  # a PACS that cannot be reached (or refuses these credentials) stops the run now
            DicomWeb(settings.dicomweb).find_studies(StudyInstanceUID=UNUSED_UID)
        except DicomWebError as err:
            print(f"radpath run: the PACS to store into: {err}", file=sys.stderr)
            return 2
    if args.dicomweb:
        from radpath.pipeline.discovery import series_for_selection

        try:
            series = series_for_selection(DicomWeb(settings.dicomweb), args.study, args.series, args.patient)
        except DicomWebError as err:
            print(f"radpath run: {err}", file=sys.stderr)
            return 2
        if not series:
            print("radpath run: the selection finds no series (give --study, --series or --patient)",
                  file=sys.stderr)
            return 2
        conf = selection_conf(series=series, workflow_form=form)
    else:
        if not Path(args.input).is_dir():
            print(f"radpath run: input folder {args.input} does not exist", file=sys.stderr)
            return 2
        conf = selection_conf(input_folder=Path(args.input), workflow_form=form)
    result = run_main_job(MainJob(output, conf, env, use_airflow=not args.no_airflow, fresh=args.fresh,
                                  wait=args.wait))
    return result.exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radpath", description=__doc__)
    parser.add_argument("--version", action="version", version=f"radpath {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stage", help="run one stage over the batch layout given by the environment")
    p.add_argument("name", nargs="?", help="stage name (see --list)")
    p.add_argument("--list", action="store_true", help="list the registered stages")
    p.set_defaults(func=_stage)

    p = sub.add_parser("bodypart", help="resolve organ and side of DICOM files / DICOM JSON (one JSON line each)")
    p.add_argument("paths", nargs="+", help="Part-10 files, DICOM JSON files, or folders (one answer per folder)")
    p.set_defaults(func=_bodypart)

    p = sub.add_parser("dicomize", help="convert one slide to DICOM WSI linked to a patient")
    p.add_argument("slide", help="slide file (SVS, NDPI, Philips TIFF, generic TIFF, MRXS …)")
    p.add_argument("--patient-id", required=True)
    study = p.add_mutually_exclusive_group()
    study.add_argument("--study-uid", help="StudyInstanceUID of the radiology study to join")
    study.add_argument("--accession", help="AccessionNumber of the radiology study")
    p.add_argument("--patient-name")
    p.add_argument("--birth-date", help="YYYYMMDD")
    p.add_argument("--sex", choices=["M", "F", "O"])
    p.add_argument("--anatomy", help='anatomic site as text, e.g. "Niere rechts" (coded via anatomy/master.json)')
    p.add_argument("--laterality", choices=Laterality.values())
    p.add_argument("--description", help="specimen short description")
    p.add_argument("--container", help="container (slide) identifier; default: the file name")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--include-label", action="store_true", help="convert the label image (it may show names)")
    p.add_argument("--no-overview", action="store_true")
    p.add_argument("--transcoding", choices=Transcoding.values(), default=Transcoding.JPEG.value)
    p.add_argument("--output", "-o", required=True, help="output folder (one sub-folder per slide)")
    p.set_defaults(func=_dicomize)

    p = sub.add_parser("get-input", help="retrieve the run's selected series (conf data_form.identifiers) "
                       "into the batch layout, as Kaapana's GetInputOperator")
    p.set_defaults(func=_get_input)

    p = sub.add_parser("find-unlinked", help="list up to BATCH_LIMIT slide series that have radiology "
                       "and no radpath link yet, in $WORKFLOW_DIR/$OPERATOR_OUT_DIR (radpath-batch)")
    p.set_defaults(func=_find_unlinked)

    p = sub.add_parser("get-slides", help="one batch element per uploaded slide file of SLIDES_FOLDER "
                       "(radpath-wsi-import)")
    p.set_defaults(func=_get_slides)

    p = sub.add_parser("report", help="each element's status, last stage and reason (exit 1 if any failed)")
    p.set_defaults(func=_report)

    p = sub.add_parser("run", help="the main job on this machine: pair slides and CT/MR, segment, store, link",
                       description="Input: a folder (radiology DICOM and slides, vendor slides with a sidecar "
                       "or radpath-slides.csv naming the patient), or a DICOMweb server with a selection. "
                       "Credentials come from the environment (DICOMWEB_PASSWORD or DICOMWEB_TOKEN), never "
                       "from the command line.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="folder of radiology DICOM and slides")
    source.add_argument("--dicomweb", metavar="URL", help="DICOMweb base URL to read from (and store to)")
    p.add_argument("--study", action="append", default=[], help="StudyInstanceUID (repeatable; --dicomweb)")
    p.add_argument("--series", action="append", default=[], help="SeriesInstanceUID (repeatable; --dicomweb)")
    p.add_argument("--patient", action="append", default=[], help="PatientID (repeatable; --dicomweb)")
    p.add_argument("--user", help="DICOMweb basic-auth user (password from DICOMWEB_PASSWORD)")
    p.add_argument("--output", "-o", default="radpath-output", help="output folder (default: radpath-output)")
    p.add_argument("--store", choices=(StoreTarget.FOLDER.value, StoreTarget.DICOMWEB.value),
                   help="results to OUTPUT/store (default with --input) or back to the DICOMweb server "
                   "(default with --dicomweb)")
    p.add_argument("--organ", help="organ override (a key of anatomy/master.json)")
    p.add_argument("--laterality", choices=Laterality.values(), help="side override")
    p.add_argument("--speed", choices=Speed.values(), help="TotalSegmentator resolution")
    p.add_argument("--standin-weights", action="store_true",
                   help="without official TotalSegmentator weights, use radpath's small stand-ins (trial runs)")
    p.add_argument("--no-airflow", action="store_true", help="run the stages in this process, not under Airflow")
    p.add_argument("--fresh", action="store_true", help="start over: by default a run resumes the newest earlier "
                   "run of the same selection in OUTPUT, doing again only what it did not finish")
    p.add_argument("--wait", action="store_true", help="where another run writes into OUTPUT, wait for it to end "
                   "(by default: stop, naming it)")
    p.set_defaults(func=_run)

    p = sub.add_parser("view", help="open what radpath linked in the real viewers on 127.0.0.1 (OHIF, fetched on "
                       "first use): the patient view of each study (click an organ, get its slide), and one "
                       "element's split page")
    p.add_argument("path", help="the output folder of radpath run or demo, a run folder, or one element: its folder, "
                                "its link/ folder or link.json")
    p.add_argument("--screenshot", help="load the page in headless Chromium, save a PNG here, and end")
    p.set_defaults(func=_view)

    p = sub.add_parser("bench", help="run every benchmark (bare tool vs radpath, same run); Markdown + JSON report")
    p.add_argument("--output", "-o", default="bench-report", help="report folder (default: bench-report)")
    p.add_argument("--short", action="store_true", help="small inputs, one round (CI)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("demo", help="generate a demo patient and run the main job on it")
    p.add_argument("--output", "-o", default="radpath-demo", help="output folder (default: radpath-demo)")
    p.add_argument("--no-airflow", action="store_true", help="run the stages in this process, not under Airflow")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(args.log_level)
    from radpath.adapters.cache import keep_tool_caches_in_cache

    keep_tool_caches_in_cache()
    from radpath.pipeline.runlock import OutputBusy

    try:
        return args.func(args)
    except OutputBusy as err:  # another run holds the output folder: a usage matter, as a wrong setting
        print(f"radpath {args.command}: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # What no stage could catch (the run folder itself cannot be written: a full disk,
        # no permission): the cause and the file, not a traceback.
        from radpath.pipeline.batch import failure_text

        print(f"radpath {args.command}: {failure_text(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
