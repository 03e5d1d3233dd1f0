"""One batch element as a stage sees it: its folders, what earlier stages decided, its files.

The runner (:mod:`radpath.pipeline.batch`) builds a :class:`BatchElement` per element and stage,
with the manifest's sections loaded. A stage asks for the sections it needs
(:meth:`BatchElement.need`: one error, :class:`MissingFact`, where a stage has not run),
writes into :attr:`BatchElement.output`, and finds the files a section names through
:meth:`BatchElement.series` and :meth:`BatchElement.pair_files`, which read each DICOM
header once per stage (:mod:`radpath.adapters.headers`), and for series grouping once
per element (:mod:`radpath.adapters.radiology.headerindex`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, overload

from radpath.adapters.radiology.headerindex import HeaderIndex
from radpath.adapters.radiology.series import SeriesFiles, read_series_in
from radpath.pipeline.sections import (
    NiftiFacts,
    PairFacts,
    QuantifyFacts,
    Section,
    SegEncodeFacts,
    WsiDicomizeFacts,
)

if TYPE_CHECKING:  # the storage adapter brings pydicom and requests: not for the nifti stage's process
    from radpath.adapters.storage import Instance

S = TypeVar("S", bound=Section)
S2 = TypeVar("S2", bound=Section)
S3 = TypeVar("S3", bound=Section)


class MissingFact(RuntimeError):
    """An earlier stage's decision is missing from the element's manifest."""


@dataclass(frozen=True)
class PairFiles:
    """The element's files of the pair: the radiology source series as the SEG references
    it, the slide series, the SEG, and the measurement reports on the SEG."""

    source: SeriesFiles
    slides: list[Path]
    seg: Path
    reports: list[Path] = field(default_factory=list)

    def instances(self) -> dict[str, list[Instance]]:
        """By kind, in store order (what is referenced before what refers to it):
        ``source``, ``slide``, ``SEG``, ``SR``."""
        from radpath.adapters.storage import Instance

        kinds = {"source": [i.path for i in self.source.instances], "slide": self.slides, "SEG": [self.seg],
                 "SR": self.reports}
        return {what: unique_instances(Instance.read(path, what) for path in paths) for what, paths in kinds.items()}


def unique_instances(instances) -> list[Instance]:
    """One per SOP Instance UID."""
    seen: dict[str, Instance] = {}
    for instance in instances:
        seen.setdefault(instance.sop_instance_uid, instance)
    return list(seen.values())


@dataclass
class BatchElement:
    """One element of a batch, with the folders a stage uses and the sections decided so far."""

    name: str
    path: Path
    in_dir: Path | None
    out_dir: Path | None
    stage: str | None = None  # the stage this view is for
    sections: dict[str, Section] = field(default_factory=dict)
    _series: dict[Path, list[SeriesFiles]] = field(default_factory=dict, repr=False)
    _headers: HeaderIndex | None = field(default=None, repr=False)

    @property
    def output(self) -> Path:
        """Where the stage writes: OPERATOR_OUT_DIR, else a folder named after the stage."""
        if self.out_dir is not None:
            return self.out_dir
        if self.stage is None:
            raise ValueError(f"{self.name}: no output folder outside a stage")
        return self.path / self.stage

    def get(self, kind: type[S]) -> S | None:
        """The section ``kind``'s stage decided, if it has run on this element."""
        found = self.sections.get(kind.stage)
        return found if isinstance(found, kind) else None

    @overload
    def need(self, a: type[S], /) -> S: ...
    @overload
    def need(self, a: type[S], b: type[S2], /) -> tuple[S, S2]: ...
    @overload
    def need(self, a: type[S], b: type[S2], c: type[S3], /) -> tuple[S, S2, S3]: ...

    def need(self, *kinds):
        """The sections of ``kinds``; :class:`MissingFact` naming each stage that has not run."""
        found = [self.get(kind) for kind in kinds]
        missing = [kind.stage for kind, section in zip(kinds, found) if section is None]
        if missing:
            stages = " and ".join(missing)
            raise MissingFact(f"the {stages} stage{'s' if len(missing) > 1 else ''} "
                              f"{'have' if len(missing) > 1 else 'has'} not run on this element")
        return found[0] if len(found) == 1 else tuple(found)

    def folder_of(self, section: Section) -> Path:
        """The folder ``section``'s stage wrote its files into."""
        return self.path / (section.folder or section.stage)

    def series(self, folder: Path | None = None) -> list[SeriesFiles]:
        """The DICOM series below ``folder`` (default: the whole element), grouped once."""
        folder = Path(folder or self.path)
        if folder not in self._series:
            if self._headers is None:
                self._headers = HeaderIndex(self.path)
            self._series[folder] = read_series_in(folder, self._headers)
        return self._series[folder]

    def forget_series(self) -> None:
        """After the stage wrote DICOM files into the element: group them again when asked."""
        self._series.clear()

    def source_series(self, series_key: str) -> SeriesFiles:
        """The series ``series_key`` names, as found in the element."""
        for series in self.series():
            if series.summary.key == series_key:
                return series
        raise MissingFact(f"the source series {series_key} is no longer in the element")

    def pair_files(self) -> PairFiles:
        """The files of the pair the pair, nifti and seg-encode stages decided."""
        pair, seg = self.need(PairFacts, SegEncodeFacts)
        source = self.seg_source()
        slide_uid = pair.slide_series_instance_uid
        # One file per instance: a slide may sit both in the input and in a stage's output.
        slides = list({i.sop_instance_uid: i.path for s in self.series()
                       if slide_uid and s.summary.series_instance_uid == slide_uid for i in s.instances}.values())
        if not slides:
            raise MissingFact(f"the slide series {slide_uid} is not in the element")
        quantify = self.get(QuantifyFacts)
        reports = [self.folder_of(quantify) / quantify.path] if quantify and quantify.path else []
        return PairFiles(source, slides, self.seg_file(), reports)

    def seg_file(self) -> Path:
        """The SEG seg-encode wrote."""
        seg = self.need(SegEncodeFacts)
        return self.folder_of(seg) / seg.path

    def seg_source(self) -> SeriesFiles:
        """The radiology series as the SEG references it: the source series, or the copies
        seg-encode made of it with the UIDs it lacked filled in."""
        nifti, seg = self.need(NiftiFacts, SegEncodeFacts)
        if seg.sources_folder:
            sources = self.series(self.folder_of(seg) / seg.sources_folder)
        else:
            sources = [s for s in self.series() if s.summary.key == nifti.series_key]
        if len(sources) != 1:
            raise MissingFact(f"the source series {nifti.series_key} is no longer in the element")
        return sources[0]

    def converted_slides(self) -> list[Instance]:
        """The slides wsi-dicomize wrote (or passed through) for this element."""
        from radpath.adapters.storage import Instance

        uids = self.need(WsiDicomizeFacts).series_instance_uids
        if not uids:
            raise MissingFact("wsi-dicomize has recorded no slide series for this element")
        return unique_instances(Instance.read(i.path, "slide") for s in self.series()
                                if s.summary.series_instance_uid in uids for i in s.instances)
