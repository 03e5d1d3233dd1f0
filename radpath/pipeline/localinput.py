"""A folder of a user's files as the batch layout: one element per slide of a patient (a
vendor file with its sidecar or a ``radpath-slides.csv`` naming the patient, or a DICOM
slide series), each holding the patient's radiology DICOM beside that slide; a patient
without a slide is one element.

Whose a file is: what it says (a DICOM file's PatientID, a vendor slide's link); a DICOM
file that names no patient (de-identified data often leaves PatientID empty) belongs to
the patient whose folder it lies in: each top-level folder of the input is one patient,
named by the files in it that do name one, else by the folder's own name. A file at the
top level that names nobody is rejected with that advice. The user's files are never
changed.

What cannot be used is listed by file name with the reason in ``rejected-inputs.json``
beside the batch, and ``radpath report`` fails the run for it; the usable files still go
on. Problems that show without converting anything are found here, not a stage later:
unreadable DICOM, DICOM without PatientID, a CT/MR slice whose pixel data is cut short,
two files with one SOPInstanceUID (used once when their bytes are equal, both rejected
when not: nobody can tell which is right), an empty slide file, a TIFF slide whose
directory claims an impossible size or points past the end of the file, files of no
kind radpath reads.
Rejections that share a folder and a reason are one row with the count of files.
Elements are named by what the user knows them by and that names no patient: the
patient's folder (with the slide's name where it holds several), else the slide's name,
else ``patient-<n>``; never a UID, never a PatientID. Files are linked, not copied: a gigapixel slide is not duplicated.
"""

from __future__ import annotations

import filecmp
import json
import logging
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from radpath.adapters.slides.convert import SLIDE_SUFFIXES, is_dicom
from radpath.adapters.slides.linkfiles import CSV_NAME, LinkSources, is_linkage_file, sidecars_of
from radpath.domain.names import user_component
from radpath.domain.slides.linkage import SlideLinkError
from radpath.domain.vocabulary import Modality

log = logging.getLogger(__name__)

REJECTED_NAME = "rejected-inputs.json"
UNLINKED = ""  # the group of slides no source links to a patient (wsi-dicomize decides)


@dataclass
class Rejected:
    file: str  # relative to the input folder
    reason: str


@dataclass
class StagedInput:
    elements: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


#: Why a DICOM file at the input's top level that names no patient is not used, and what to do.
NO_PATIENT = ("DICOM without PatientID: cannot tell whose it is. Put each patient's files (radiology and "
              "slides) in a folder of their own under the input folder: files there that name no patient "
              "belong to that folder's patient (see the README, \"The main job on your data\")")


@dataclass
class _Slide:
    """One slide of a patient: a vendor file, or the files of a DICOM slide series."""

    label: str  # what the user knows it by: the file's stem, else the container's identifier
    files: list[Path] = field(default_factory=list)


@dataclass
class _Group:
    """One patient's files: radiology and other non-slide files, and each slide."""

    files: list[Path] = field(default_factory=list)
    slides: dict[str, _Slide] = field(default_factory=dict)
    folders: set[str | None] = field(default_factory=set)  # top-level folders of the files (None: the top)

    def add(self, path: Path, folder: str | None, slide: str | None = None, label: str = "") -> None:
        """``path`` as the patient's; ``slide`` keys the slide it belongs to, if it does."""
        if slide is None:
            self.files.append(path)
        else:
            self.slides.setdefault(slide, _Slide(label)).files.append(path)
        self.folders.add(folder)

    def discard(self, path: Path) -> None:
        for files in (self.files, *(s.files for s in self.slides.values())):
            if path in files:
                files.remove(path)

    def elements(self, number: int) -> list[tuple[str, list[Path], bool]]:
        """(name, files, has a vendor slide) of each element: one per slide, each with the
        patient's radiology; radiology alone where the patient has no slide. Named by the
        patient's folder, else the slide's label, else ``patient-<number>``; the folder
        and the slide's label where the folder's patient has several slides."""
        folder = next(iter(self.folders)) if len(self.folders) == 1 and None not in self.folders else None
        slides = [s for s in self.slides.values() if s.files]
        if not slides:
            return [(user_component(folder or f"patient-{number}"), self.files, False)] if self.files else []
        return [(user_component(folder if folder and len(slides) == 1 else
                                f"{folder}+{slide.label}" if folder else slide.label),
                 self.files + slide.files, any(path.suffix.lower() in SLIDE_SUFFIXES for path in slide.files))
                for slide in slides]


def _top_folder(folder: Path, path: Path) -> str | None:
    parts = path.relative_to(folder).parts
    return parts[0] if len(parts) > 1 else None


def _grouped(rejected: list[Rejected], top: str) -> list[Rejected]:
    """One row per folder and reason, with the count of files, where several share them
    (``top`` names the input folder itself)."""
    by_cause: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item in rejected:
        parent = Path(item.file).parent.as_posix()
        by_cause[(top if parent == "." else parent, item.reason)].append(item.file)
    return [Rejected(files[0] if len(files) == 1 else f"{parent}/ ({len(files)} files)", reason)
            for (parent, reason), files in by_cause.items()]


#: Largest side of a slide image: 2^20 pixels is 26 cm at 0.25 µm per pixel, more than a
#: 75 mm glass slide holds; a TIFF claiming more is damaged, not a slide.
MAX_SLIDE_SIDE = 2**20
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _slide_problem(path: Path) -> str | None:
    """Why a vendor slide file cannot be converted, where that shows without converting."""
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head not in _TIFF_MAGIC:
        return None  # not TIFF-based (MRXS, CZI …): the converter judges it
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            for index, page in enumerate(tiff.pages):
                width, height = page.imagewidth, page.imagelength
                if not (0 < width <= MAX_SLIDE_SIDE and 0 < height <= MAX_SLIDE_SIDE):
                    return (f"TIFF page {index} claims {width} × {height} pixels: no slide is that size "
                            f"(at most {MAX_SLIDE_SIDE} per side); the file is damaged")
                ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]
                if ends and max(ends) > size:
                    return (f"TIFF page {index} points past the end of the file ({max(ends)} > {size} bytes): "
                            "the file is truncated")
    except Exception as err:  # tifffile raises many types for damaged headers
        return f"TIFF structure unreadable ({type(err).__name__}: {err})"
    return None


def _pixel_problem(path: Path) -> str | None:
    """Why a CT/MR slice's pixel data cannot be used (read whole: a slice is small)."""
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as err:  # pydicom raises many types for a cut-off file
        return f"pixel data unreadable ({type(err).__name__}: {err})"
    if "PixelData" not in ds:
        return None  # a non-image instance: series selection passes it over, saying so
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed:
        return None
    try:
        bits = int(ds.BitsAllocated) * int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1))
        expected = (bits * int(ds.get("NumberOfFrames") or 1) + 7) // 8
    except (AttributeError, TypeError, ValueError) as err:
        return f"image attributes missing or invalid ({err})"
    if len(ds.PixelData) < expected:
        return f"pixel data cut short ({len(ds.PixelData)} of {expected} bytes): the file is truncated"
    return None


def _dicom_header(path: Path):
    """The header, or None when the file is not DICOM at all; raises when it is broken."""
    if is_dicom(path):
        return pydicom.dcmread(path, stop_before_pixels=True)
    if path.suffix.lower() != ".dcm":
        return None
    header = pydicom.dcmread(path, stop_before_pixels=True, force=True)  # Part-10 without preamble
    if "SOPClassUID" not in header:
        raise ValueError("no DICM preamble and no SOP Class UID")
    return header


def stage_input_folder(folder: Path, batch_dir: Path, out_dir: str) -> StagedInput:
    """Group ``folder``'s files by patient into ``batch_dir/<element>/<out_dir>/``."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {folder} does not exist")
    links = LinkSources.for_element(folder, None, {})
    groups: dict[str, _Group] = defaultdict(_Group)
    rejected: list[Rejected] = []
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))
    mrxs_data = {p.with_suffix("") for p in files if p.suffix.lower() == ".mrxs"}
    seen: dict[str, Path] = {}  # SOPInstanceUID → the first file carrying it
    clashes: dict[Path, Path] = {}  # a file → the other file with its SOPInstanceUID
    nameless: list[tuple[Path, tuple[str | None, str]]] = []  # DICOM files that name no patient, their slide
    named: dict[str | None, set[str]] = defaultdict(set)  # top-level folder → the patients its files name
    for path in files:
        name = path.relative_to(folder).as_posix()
        if is_linkage_file(path) or any(parent in mrxs_data for parent in path.parents):
            continue  # sidecars, the CSV and MRXS data files travel with their slide
        try:
            header = _dicom_header(path)
        except Exception as err:  # pydicom raises many types for broken files
            rejected.append(Rejected(name, f"not readable as DICOM ({type(err).__name__}: {err})"))
            continue
        if header is not None:
            problem = _pixel_problem(path) if header.get("Modality") != Modality.SM else None
            if problem:
                rejected.append(Rejected(name, problem))
                continue
            instance = str(header.get("SOPInstanceUID") or "")
            first = seen.get(instance)
            if first is not None:
                if filecmp.cmp(first, path, shallow=False):
                    log.info("input: %s is a copy of %s: used once", name, first.relative_to(folder).as_posix())
                    continue
                clashes.update({first: path, path: first})
                continue
            if instance:
                seen[instance] = path
            patient = str(header.get("PatientID") or "")
            if not patient:
                nameless.append((path, _slide_of(header)))
                continue
            named[_top_folder(folder, path)].add(patient)
            groups[patient].add(path, _top_folder(folder, path), *_slide_of(header))
        elif path.suffix.lower() in SLIDE_SUFFIXES:
            problem = _slide_problem(path)
            if problem:
                rejected.append(Rejected(name, problem))
                continue
            try:
                link = links.find(path)
            except SlideLinkError as err:
                rejected.append(Rejected(name, str(err)))
                continue
            if link is not None:
                named[_top_folder(folder, path)].add(link.patient_id)
            groups[link.patient_id if link else UNLINKED].add(path, _top_folder(folder, path), str(path), path.stem)
        else:
            rejected.append(Rejected(name, "neither DICOM nor a slide format radpath reads "
                                           f"({', '.join(sorted(SLIDE_SUFFIXES))})"))
    for path, slide in nameless:
        top = _top_folder(folder, path)
        patients = named[top]
        if top is None:
            rejected.append(Rejected(path.relative_to(folder).as_posix(), NO_PATIENT))
        elif len(patients) > 1:
            rejected.append(Rejected(path.relative_to(folder).as_posix(),
                                     f"DICOM without PatientID in {top}/, whose other files name {len(patients)} "
                                     "patients: cannot tell whose it is (one patient per folder)"))
        else:
            groups[next(iter(patients)) if patients else top].add(path, top, *slide)
    for path, other in sorted(clashes.items()):
        rejected.append(Rejected(path.relative_to(folder).as_posix(),
                                 f"same SOPInstanceUID as {other.relative_to(folder).as_posix()} but "
                                 "different content: duplicate instance, neither used"))
        for group in groups.values():
            group.discard(path)
    staged = StagedInput(rejected=_grouped(rejected, folder.name))
    taken: set[str] = set()
    for number, group in enumerate(groups.values(), start=1):
        for name, paths, vendor_slide in group.elements(number):
            name = _unique(name, taken)
            _stage_element(folder, batch_dir / name / out_dir, paths, copy_csv=vendor_slide)
            staged.elements.append(name)
            log.info("input: element %s: %d file(s)", name, len(paths))
    return staged


def _slide_of(header) -> tuple[str | None, str]:
    """(the slide key, its label) of a DICOM file: its series, for a slide (SM) only."""
    if header.get("Modality") != Modality.SM:
        return None, ""
    series = str(header.get("SeriesInstanceUID") or "")
    label = str(header.get("ContainerIdentifier") or header.get("SeriesDescription") or "slide")
    return f"sm:{series}", label


def _stage_element(folder: Path, element: Path, paths: list[Path], copy_csv: bool) -> None:
    """Link ``paths`` (files of ``folder``) into the element's input folder, with the
    sidecars and MRXS data folders that travel with slides."""
    shutil.rmtree(element, ignore_errors=True)
    element.mkdir(parents=True)
    own_names = Counter(path.name for path in paths)
    for path in paths:
        # The file's own name where no other file of the element has it (a slide's name is
        # what the element table and the logs show), else its path in the input.
        unique = own_names[path.name] == 1
        target = element / user_component(path.name if unique else path.relative_to(folder).as_posix())
        os.symlink(path, target)
        companions = [c for c in sidecars_of(path) if c.is_file() and c != path]
        for companion in companions[:1]:
            shutil.copy2(companion, element / (target.name + ".json"))
        if path.suffix.lower() == ".mrxs" and path.with_suffix("").is_dir():
            os.symlink(path.with_suffix(""), element / target.with_suffix("").name)
    if copy_csv and (folder / CSV_NAME).is_file():
        shutil.copy2(folder / CSV_NAME, element / CSV_NAME)


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3`` … where an element has it already."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


def write_rejected(workflow_dir: Path, out_dir: str, rejected: list[Rejected]) -> None:
    """Record rejected inputs beside the batch (read by ``radpath report``)."""
    target = workflow_dir / out_dir / REJECTED_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps([item.__dict__ for item in rejected], indent=2))


def read_rejected(workflow_dir: Path) -> list[Rejected]:
    """The rejected inputs recorded in the run; a record that cannot be read is one row
    naming it (a run cut short while writing it)."""
    rejected = []
    for path in sorted(workflow_dir.glob(f"*/{REJECTED_NAME}")):
        try:
            rejected += [Rejected(**item) for item in json.loads(path.read_text(encoding="utf-8"))]
        except (OSError, ValueError, TypeError) as err:
            rejected.append(Rejected(str(path), f"the list of rejected inputs cannot be read ({err})"))
    return rejected
