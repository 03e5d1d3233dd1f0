"""One slide file → DICOM VL Whole Slide Microscopy instances, carrying the patient's identity.

wsidicomizer does the conversion (tiles copied without re-encoding where the source
allows: SVS, NDPI and Philips TIFF through opentile; other formats re-encoded with the
chosen transcoding). radpath adds what Kaapana's own importer lacks: the patient and
study of the radiology side (from a :class:`~radpath.domain.slides.linkage.SlideLink`) and the
specimen's anatomic site as a code, with its laterality modifier
(``SpecimenDescriptionSequence › PrimaryAnatomicStructureSequence ›
PrimaryAnatomicStructureModifierSequence``).

Output lands in a hidden temporary folder and is renamed into place only when the whole
conversion succeeded, so a failing slide never leaves partial DICOM behind.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radpath.adapters.headers import read_header
from radpath.domain.anatomy import load_master, resolve_body_part
from radpath.domain.names import safe_component
from radpath.domain.slides.linkage import SlideLink
from radpath.domain.vocabulary import Transcoding

log = logging.getLogger(__name__)

#: File suffixes radpath offers to wsidicomizer (it decides what it can read).
SLIDE_SUFFIXES = {
    ".svs", ".ndpi", ".tif", ".tiff", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".czi",
    ".isyntax", ".svslide", ".qptiff", ".dcm",
}
#: Tiles per chunk handed to the writer: one tile per chunk (the default) costs a third of
#: the throughput on this kind of machine (../ENVIRONMENT notes 208 vs 352 MB/s).
CHUNK_SIZE = 100


#: How much of a file its fingerprint reads: slides are gigabytes, their heads and tails
#: (headers, tile offsets, the vendor's slide ID) tell them apart.
_HEAD_BYTES = 8 * 2**20
_TAIL_BYTES = 2**20


def file_fingerprint(path: Path) -> str:
    """SHA-256 of a file's name, size, first 8 MiB and last 1 MiB."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f"{path.name}\0{size}\0".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_HEAD_BYTES))
        if size > _HEAD_BYTES:
            handle.seek(max(size - _TAIL_BYTES, _HEAD_BYTES))
            digest.update(handle.read(_TAIL_BYTES))
    return digest.hexdigest()


def load_wsidicomizer():
    """wsidicomizer, imported without its process-wide change of pydicom's settings.

    wsidicomizer 0.26 sets ``pydicom.config.enforce_valid_values = True`` and calls
    ``pydicom.config.future_behavior()`` when imported. In the same process every later
    ``Dataset.pixel_array`` then fails ("no attribute 'convert_pixel_data'") and any
    slightly invalid value read or written raises, which would break the stages that run
    after this one in-process. Put pydicom back as the caller had it; what we write is
    checked with dciodvfy anyway.
    """
    import pydicom.config as config

    saved = (
        config._use_future,
        config.enforce_valid_values,
        config.INVALID_KEYWORD_BEHAVIOR,
        config.settings._reading_validation_mode,
        config.settings._writing_validation_mode,
    )
    import wsidicomizer
    import wsidicomizer.metadata  # noqa: F401  (imported under the guard too)

    (
        config._use_future,
        config.enforce_valid_values,
        config.INVALID_KEYWORD_BEHAVIOR,
        config.settings._reading_validation_mode,
        config.settings._writing_validation_mode,
    ) = saved
    return wsidicomizer


class SlideConversionError(RuntimeError):
    """A slide could not be converted; the message names the file and its format."""


@dataclass(frozen=True)
class ConversionOptions:
    """How to convert (from the settings' slide options)."""

    workers: int = 4
    tile_size: int = 512
    include_label: bool = False  # labels carry names and barcodes
    include_overview: bool = True
    include_thumbnail: bool = True
    transcoding: Transcoding = Transcoding.JPEG


@dataclass
class ConvertedSlide:
    source: Path
    folder: Path
    files: list[Path]
    series_instance_uid: str
    study_instance_uid: str
    format: str
    passthrough: bool = False
    anatomy: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def describe_format(path: Path) -> str:
    """What the file looks like (magic bytes + suffix), for messages."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    suffix = path.suffix.lower().lstrip(".") or "no suffix"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        kind = "TIFF"
    elif head[:4] in (b"II+\x00", b"MM\x00+"):
        kind = "BigTIFF"
    elif is_dicom(path):
        kind = "DICOM"
    elif not head:
        kind = "empty file"
    else:
        kind = "not a TIFF/DICOM container"
    return f"{suffix.upper()} ({kind})"


def _encoding(name: str):
    from wsidicom.codec.settings import HTJpeg2000Settings, Jpeg2kSettings, JpegSettings

    return {
        Transcoding.JPEG: lambda: JpegSettings(quality=90),
        Transcoding.JPEG2000: lambda: Jpeg2kSettings(levels=80),
        Transcoding.JPEG2000_LOSSLESS: lambda: Jpeg2kSettings(levels=0),
        Transcoding.HTJ2K: lambda: HTJpeg2000Settings(levels=80),
    }[name]()


@dataclass(frozen=True)
class AnatomicSite:
    """The coded anatomic site for PrimaryAnatomicStructureSequence and its side."""

    code: dict[str, str]
    laterality: str | None
    organ: str


def code_anatomic_site(text: str | None, laterality: str | None) -> AnatomicSite | None:
    """Free text ("Niere rechts") → organ concept + side, through the anatomy resolver."""
    if not text:
        return None
    probe = Dataset()
    probe.SpecimenDescriptionSequence = Sequence([Dataset()])
    probe.SpecimenDescriptionSequence[0].SpecimenShortDescription = text
    result = resolve_body_part(probe)
    if result.organ is None or result.snomed is None:
        return None
    # The specimen is the part the text names (the appendix), not the organ it belongs to.
    return AnatomicSite(result.subpart_snomed or result.snomed, laterality or result.laterality, result.organ)


def _metadata(link: SlideLink | None, site: AnatomicSite | None, container: str):
    from pydicom.uid import UID
    from wsidicom.conceptcode import Code
    from wsidicom.metadata import Patient, PatientSex, Slide, SlideSample, Study

    WsiDicomizerMetadata = load_wsidicomizer().metadata.WsiDicomizerMetadata

    patient = study = None
    if link is not None:
        birth = _dt.datetime.strptime(link.patient_birth_date, "%Y%m%d").date() if link.patient_birth_date else None
        patient = Patient(
            name=link.patient_name,
            identifier=link.patient_id,
            birth_date=birth,
            sex=PatientSex[link.patient_sex] if link.patient_sex else None,
        )
        study = Study(
            uid=UID(link.study_instance_uid) if link.study_instance_uid else None,
            accession_number=link.accession_number,
        )
    sites = [Code(site.code["code"], site.code["scheme"], site.code["meaning"])] if site else None
    description = (link.specimen_description if link else None) or None
    sample = SlideSample(
        identifier=f"{container}-1" if len(container) <= 62 else container,  # SpecimenIdentifier, LO
        anatomical_sites=sites,
        short_description=description[:64] if description else None,
        detailed_description=description if description and len(description) > 64 else None,
    )
    kwargs: dict[str, Any] = {"slide": Slide(identifier=container, samples=[sample])}
    if patient is not None:
        kwargs["patient"] = patient
    if study is not None:
        kwargs["study"] = study
    return WsiDicomizerMetadata(**kwargs)


def finish_dataset(site: AnatomicSite | None):
    """A post-processor for what wsidicom's metadata model cannot express: the side
    modifier of the anatomic site, and the character set of the identity it carries."""
    lateral = load_master().data["laterality"]

    def post_process(dataset: Dataset, _metadata) -> Dataset:
        # wsidicom declares no SpecificCharacterSet, so "Müller" would be written as
        # "M?ller" in the default repertoire; UTF-8 holds every name a sidecar can give.
        dataset.SpecificCharacterSet = "ISO_IR 192"
        if site is None or site.laterality is None:
            return dataset
        code = lateral[site.laterality]["code"]
        for specimen in dataset.get("SpecimenDescriptionSequence", []):
            for item in specimen.get("PrimaryAnatomicStructureSequence", []):
                modifier = Dataset()
                modifier.CodeValue = code["code"]
                modifier.CodingSchemeDesignator = code["scheme"]
                modifier.CodeMeaning = code["meaning"]
                item.PrimaryAnatomicStructureModifierSequence = Sequence([modifier])
        return dataset

    return post_process


def _slide_seed(path: Path, link: SlideLink | None) -> str:
    """What the slide's UIDs are derived from: the file, and whom it is linked to."""
    identity = (link.patient_id, link.study_instance_uid or "", link.accession_number or "") if link else ()
    return "\0".join((file_fingerprint(path), *identity))


def _series_and_study(files: list[Path]) -> tuple[str, str]:
    ds = read_header(files[0])
    return str(ds.SeriesInstanceUID), str(ds.StudyInstanceUID)


def passthrough(path: Path, out_root: Path) -> ConvertedSlide:
    """A file that is already DICOM is copied unchanged into its series' folder."""
    ds = read_header(path)
    folder = out_root / safe_component(str(ds.SeriesInstanceUID))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    shutil.copy2(path, target)
    return ConvertedSlide(path, folder, [target], str(ds.SeriesInstanceUID), str(ds.StudyInstanceUID), "DICOM", True)


def dicomize_slide(
    path: Path, out_root: Path, link: SlideLink | None, options: ConversionOptions
) -> ConvertedSlide:
    """Convert one slide into ``out_root/<slide name>/``; nothing is left there on failure."""
    WsiDicomizer = load_wsidicomizer().WsiDicomizer
    from radpath.adapters.slides.uids import DerivedSlideUids  # wsidicom: after load_wsidicomizer's guard

    path = Path(path)
    if is_dicom(path):
        return passthrough(path, out_root)
    fmt = describe_format(path)
    site = code_anatomic_site(link.anatomic_site if link else None, link.laterality if link else None)
    # The file name is user data too: as ContainerIdentifier (LO) it must be one value of 64.
    container = (link.container_identifier if link else None) or safe_component(path.stem, "slide", max_len=64)
    final = out_root / safe_component(path.name, "slide")
    out_root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".partial-{safe_component(path.stem, 'slide')[:40]}-", dir=out_root))
    try:
        written = WsiDicomizer.convert(
            path,
            output_path=partial,
            metadata=_metadata(link, site, container),
            tile_size=options.tile_size,
            include_label=options.include_label,
            include_overview=options.include_overview,
            include_thumbnail=options.include_thumbnail,
            include_confidential=link is not None,
            metadata_post_processor=finish_dataset(site),
            uid_generator=DerivedSlideUids(_slide_seed(path, link)),
            workers=options.workers,
            chunk_size=CHUNK_SIZE,
            encoding=_encoding(options.transcoding),
        )
        if not written:
            raise SlideConversionError(f"{path.name}: cannot convert, format {fmt}: wsidicomizer wrote nothing")
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        final.chmod(0o755)  # mkdtemp made it private
    except SlideConversionError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except Exception as err:  # wsidicomizer/opentile raise many types for unreadable input
        shutil.rmtree(partial, ignore_errors=True)
        reason = str(err).replace(str(path), path.name) or type(err).__name__
        raise SlideConversionError(f"{path.name}: cannot convert, format {fmt}: {reason}") from None
    files = sorted(final.glob("*.dcm"))
    series_uid, study_uid = _series_and_study(files)
    anatomy = None
    if site is not None:
        anatomy = {"organ": site.organ, "code": site.code, "laterality": site.laterality}
    notes = []
    if link is not None and link.anatomic_site and site is None:
        notes.append(f"anatomic site text {link.anatomic_site!r} names no organ: left uncoded")
    return ConvertedSlide(path, final, files, series_uid, study_uid, fmt, anatomy=anatomy, notes=notes)
