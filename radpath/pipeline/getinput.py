"""Filling the batch layout as Kaapana's GetInputOperator leaves it
(``batch/<element>/<out dir>/``), from three sources:

- the run conf's ``data_form.identifiers`` (SeriesInstanceUIDs, what the data explorer
  posts): standalone get-input of ``radpath-map``;
- the PACS's unlinked slides (:mod:`radpath.pipeline.discovery`): ``radpath-batch``;
- a folder of uploaded slide files (``SLIDES_FOLDER``): ``radpath-wsi-import``.

Series are found by QIDO-RS (study by study: :meth:`DicomWeb.locate_series`) and
retrieved by WADO-RS. A series the PACS does not have is
reported by UID and the others still arrive.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from radpath.adapters.dicomweb import TAG_STUDY_UID, DicomWeb, DicomWebError
from radpath.adapters.settings import Settings
from radpath.domain.names import user_component
from radpath.pipeline.resume import RESUME_FROM, carry_over

log = logging.getLogger(__name__)


@dataclass
class InputReport:
    fetched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "<uid>: why"


def selected_series(settings: Settings) -> list[str]:
    identifiers = (settings.conf.get("data_form") or {}).get("identifiers") or []
    return [str(uid) for uid in identifiers if str(uid).strip()]


def fetch_selection(settings: Settings, out_dir: str = "get-input") -> InputReport:
    """Retrieve every selected series into ``batch/<uid>/<out_dir>``; or, where the conf
    names a local ``data_form.input_folder`` (``radpath run --input``), group its files by
    patient (:mod:`radpath.pipeline.localinput`)."""
    data_form = settings.conf.get("data_form") or {}
    folder = data_form.get("input_folder")
    if folder:
        from radpath.pipeline.localinput import stage_input_folder, write_rejected

        staged = stage_input_folder(Path(folder), settings.layout.batch_dir, out_dir)
        write_rejected(settings.layout.workflow_dir, out_dir, staged.rejected)
        report = InputReport(staged.elements, [f"{r.file}: {r.reason}" for r in staged.rejected])
    else:
        report = fetch_series(settings, selected_series(settings), out_dir)
    if data_form.get(RESUME_FROM):
        carried = carry_over(Path(data_form[RESUME_FROM]), settings.layout.batch_dir, out_dir, report.fetched)
        log.info("get-input: resuming %s: %d of %d element(s) carry finished stages over",
                 Path(data_form[RESUME_FROM]).name, len(carried), len(report.fetched))
    return report


def fetch_series(settings: Settings, wanted: list[str], out_dir: str) -> InputReport:
    """Retrieve each series of ``wanted`` into ``batch/<uid>/<out_dir>``."""
    report = InputReport()
    if not wanted:
        return report
    pacs = DicomWeb(settings.dicomweb)
    try:
        # Each series' study first (the PACS is searched study by study: DicomWeb.locate_series)
        located = pacs.locate_series(wanted)
    except DicomWebError as err:
        report.missing += [f"{series_uid}: {err}" for series_uid in wanted]
        return report
    for number, series_uid in enumerate(wanted, start=1):
        target = settings.layout.batch_dir / series_uid / out_dir
        try:
            row = located.get(series_uid)
            if row is None:
                report.missing.append(f"{series_uid}: not in the PACS at {pacs.endpoint}")
                continue
            shutil.rmtree(target, ignore_errors=True)
            paths = pacs.retrieve_series(row[TAG_STUDY_UID]["Value"][0], series_uid, target)
        except DicomWebError as err:
            report.missing.append(f"{series_uid}: {err}")
            continue
        report.fetched.append(series_uid)
        log.info("get-input [%d/%d] %s: %d instances", number, len(wanted), series_uid, len(paths))
    return report


def uploads_folder(settings: Settings) -> Path:
    """``SLIDES_FOLDER``; else the run folder's ``$OPERATOR_IN_DIR``, where Kaapana's
    upload pattern (LocalVolumeMountOperator ``get`` from the uploads volume) put the files
    the user picked."""
    if settings.options.slides_folder is not None:
        return settings.options.slides_folder
    if settings.layout.operator_in_dir:
        return settings.layout.require_workflow_dir() / settings.layout.operator_in_dir
    raise FileNotFoundError("SLIDES_FOLDER is not set: name the folder of uploaded slides (workflow form slides_folder)")


def copy_uploaded_slides(settings: Settings, out_dir: str) -> InputReport:
    """One element per slide file of ``SLIDES_FOLDER``: ``batch/<slide name>/<out_dir>/``
    with the slide, its sidecar and the folder's ``radpath-slides.csv`` (a 3DHISTECH
    ``.mrxs`` brings its data folder)."""
    from radpath.adapters.slides.linkfiles import CSV_NAME, sidecars_of
    from radpath.pipeline.stages.wsi_dicomize import slide_files

    report = InputReport()
    folder = uploads_folder(settings)
    if not folder.is_dir():
        raise FileNotFoundError(f"the folder of uploaded slides {folder} is not a folder")
    for slide in slide_files(folder):
        target = settings.layout.batch_dir / _element_name(slide, folder) / out_dir
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        companions = [p for p in (*sidecars_of(slide), slide.parent / CSV_NAME, folder / CSV_NAME) if p.is_file()]
        for path in [slide, *companions]:
            shutil.copy2(path, target / path.name)
        data_folder = slide.with_suffix("")
        if slide.suffix.lower() == ".mrxs" and data_folder.is_dir():
            shutil.copytree(data_folder, target / data_folder.name)
        report.fetched.append(slide.name)
        log.info("get-slides: %s", target.parent.name)
    return report


def _element_name(slide: Path, folder: Path) -> str:
    """The element folder: the slide's path under the upload folder, made one name."""
    return user_component(slide.relative_to(folder).as_posix())
