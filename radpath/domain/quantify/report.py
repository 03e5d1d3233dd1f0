"""The organ's measurements as a DICOM Comprehensive 3D SR: TID 1500 Measurement Report.

One Volumetric ROI measurement group (TID 1411) per SEG segment: it references the
segment (Referenced Segment, with the source series), is tracked by the segment's label,
has the segment's property type as Finding Type and its organ and side as Finding Site,
and holds the volume (SCT 118565006, mL, from the mask's voxels) and every radiomics
feature of ``radiomics.json`` (coded by IBSI identifier, UCUM units, pyradiomics and its
settings as the algorithm). The SR goes into the SEG's study; its UIDs are derived from
the SEG and the settings, so a re-run writes the same SR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from radpath.domain.link.kos import radpath_device
from radpath.domain.quantify import Radiomics
from radpath.domain.quantify.quantities import SegmentQuantities
from radpath.domain.uids import derived_uid
from radpath.domain.vocabulary import Modality


@dataclass(frozen=True)
class ReportSeries:
    """The SR's place: its UIDs (derived from the SEG and the settings) and SeriesNumber."""

    seg_sop_instance_uid: str
    settings_digest: str
    series_number: int

    @property
    def series_instance_uid(self) -> str:
        return derived_uid("sr-series", self.seg_sop_instance_uid, self.settings_digest)

    @property
    def sop_instance_uid(self) -> str:
        return derived_uid("sr-instance", self.seg_sop_instance_uid, self.settings_digest)


def _segment_item(seg: Dataset, number: int) -> Dataset:
    for item in seg.SegmentSequence:
        if int(item.SegmentNumber) == number:
            return item
    raise ValueError(f"the SEG has no segment {number}")


def build_measurement_report(
    seg: Dataset,
    sources: Sequence[Dataset],
    quantities: Sequence[SegmentQuantities],
    modality: Modality,
    radiomics: Radiomics,
    where: ReportSeries,
    pyradiomics_version: str,
) -> Dataset:
    """The SR on ``seg``'s segments; ``seg`` and ``sources`` need only their headers."""
    import highdicom as hd

    parameters = radiomics.parameters(modality)["setting"]
    algorithm = hd.sr.AlgorithmIdentification(
        name="pyradiomics", version=pyradiomics_version,
        parameters=[f"{k}={v}" for k, v in sorted(parameters.items())],
    )
    groups = []
    for quantity in quantities:
        item = _segment_item(seg, quantity.segment_number)
        finding = hd.sr.CodedConcept.from_dataset(item.SegmentedPropertyTypeCodeSequence[0])
        modifiers = item.SegmentedPropertyTypeCodeSequence[0].get("SegmentedPropertyTypeModifierCodeSequence") or []
        side = hd.sr.CodedConcept.from_dataset(modifiers[0]) if modifiers else None
        measurements = [hd.sr.Measurement(
            name=radiomics.volume_concept, value=quantity.volume_ml, unit=radiomics.ucum(radiomics.volume_unit),
        )]
        for feature in radiomics.features:
            value = quantity.features.get(feature.key)
            if value is None or not math.isfinite(value):
                continue
            measurements.append(hd.sr.Measurement(
                name=feature.concept, value=value, unit=radiomics.unit(feature, modality), algorithm_id=algorithm,
            ))
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=derived_uid("sr-tracking", where.seg_sop_instance_uid, str(quantity.segment_number)),
                identifier=quantity.label[:64],
            ),
            referenced_segment=hd.sr.ReferencedSegment.from_segmentation(seg, quantity.segment_number),
            finding_type=finding,
            finding_sites=[hd.sr.FindingSite(anatomic_location=finding, laterality=side)],
            measurements=measurements,
        ))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=radpath_device()),
        procedure_reported=radiomics.procedure(modality),
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *sources],
        content=report,
        series_instance_uid=where.series_instance_uid,
        series_number=where.series_number,
        sop_instance_uid=where.sop_instance_uid,
        instance_number=1,
        manufacturer="radpath",
        is_complete=True,
    )
    labels = ", ".join(q.label for q in quantities)
    sr.SeriesDescription = f"radpath measurements: {labels}"[:64]
    return sr
