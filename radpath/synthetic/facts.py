"""Manifest sections for an element whose earlier stages did not run: tests and benchmarks
that start a stage in the middle (a NIfTI given, an organ given, masks given)."""

from __future__ import annotations

from pathlib import Path

from radpath.domain.vocabulary import Modality, Speed, StageName
from radpath.pipeline.manifest import Manifest
from radpath.pipeline.sections import BodyPartFacts, NiftiFacts, Section, SegmentFacts


def given_bodypart(organ: str, laterality: str | None = None, subpart: str | None = None) -> BodyPartFacts:
    """The organ (and side) as if the bodypart stage had read them from a slide."""
    return BodyPartFacts(folder=None, resolved={}, slide_series_instance_uid="", organ=organ,
                         laterality=laterality, subpart=subpart, snomed=None)


def given_nifti(path: str, modality: str, series_key: str, series_description: str | None = None) -> NiftiFacts:
    """A NIfTI in the element's ``nifti/`` folder, as if the nifti stage had written it (no slice map)."""
    return NiftiFacts(folder=StageName.NIFTI.value, path=path, shape=[], grid_aligned=True, affine_lps=[],
                      slices=[], series_key=series_key, series_instance_uid=None, study_instance_uid=None,
                      frame_of_reference_uid=None, modality=Modality(modality),
                      series_description=series_description or "", orientation=[], notes=[],
                      ignored_non_image_instances=0)


def given_segment(task: str, totalsegmentator: str, standin_weights: bool = False) -> SegmentFacts:
    """Class masks in the element's ``segment/`` folder, as if TotalSegmentator had written them."""
    return SegmentFacts(folder=StageName.SEGMENT.value, task=task, speed=Speed.FAST, device="cpu",
                        models=[], totalsegmentator=totalsegmentator, weights="given", standin_weights=standin_weights,
                        classes={})


def add_sections(element: Path, *sections: Section) -> None:
    """Write ``sections`` into the element's manifest (what a runner would have recorded)."""
    manifest = Manifest.load(element)
    for section in sections:
        manifest.put(section)
    manifest.save()
