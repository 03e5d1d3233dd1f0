"""The ``quantify`` stage: the organ's volume and radiomics features, as a DICOM SR beside the SEG.

For each segment of the SEG seg-encode wrote: the volume (voxels of the mask on the
source grid × the voxel's volume) and pyradiomics' shape, first-order and GLCM features
(:mod:`radpath.adapters.radiomics`; settings and codes in
``radpath/domain/quantify/radiomics.json``) on the source series, on the grid the SEG
references. The result is a TID 1500 Measurement Report (:mod:`radpath.domain.quantify.report`)
checked with dciodvfy; the store stage stores it with the pair and the link stage lists
it in the KOS.

A series radiomics cannot take (unevenly spaced slices) or a mask pyradiomics refuses
gives no report, or a report with the volume only, and says why; the pair still goes on
to be stored and linked.
"""

from __future__ import annotations

import hashlib
import json
import logging

from radpath.adapters.dciodvfy import remove_unless_valid
from radpath.adapters.headers import read_header
from radpath.adapters.radiomics import (
    QuantifyError,
    extract_features,
    pyradiomics_version,
    segment_mask,
    source_image,
    voxel_volume_mm3,
)
from radpath.adapters.settings import Settings
from radpath.domain.quantify import load_radiomics
from radpath.domain.quantify.quantities import SegmentQuantities
from radpath.domain.quantify.report import ReportSeries, build_measurement_report
from radpath.pipeline.batch import BatchElement
from radpath.pipeline.sections import NiftiFacts, QuantifyFacts, SegEncodeFacts

log = logging.getLogger(__name__)

SR_FILE = "measurements.sr.dcm"


class ReportInvalid(RuntimeError):
    """The written SR fails dciodvfy; it was removed."""


def run_quantify(element: BatchElement, settings: Settings) -> QuantifyFacts:
    nifti, seg_facts = element.need(NiftiFacts, SegEncodeFacts)
    radiomics = load_radiomics()
    parameters = radiomics.parameters(nifti.modality)
    version = pyradiomics_version()
    seg_path = element.seg_file()
    grid = element.seg_source().source_grid()
    seg = read_header(seg_path)
    out_dir = element.output
    facts = QuantifyFacts(folder=out_dir.name, path=None, series_instance_uid=None, sop_instance_uid=None,
                          modality=nifti.modality, pyradiomics=version, parameters=parameters["setting"],
                          segments=[])
    try:
        image = source_image(grid)
        voxel = voxel_volume_mm3(grid)
    except QuantifyError as err:
        return _nothing_measured(element, facts, str(err))
    for item in seg.SegmentSequence:
        number = int(item.SegmentNumber)
        mask, voxels = segment_mask(seg_path, grid, number, image)
        quantity = SegmentQuantities(number, str(item.SegmentLabel), voxels, voxel)
        try:
            quantity.features = extract_features(image, mask, parameters)
        except QuantifyError as err:
            quantity.left_out = {"all": str(err)}
            facts.notes.append(f"{quantity.label}: volume only, features left out ({err})")
        facts.segments.append(quantity)
    measured = [q for q in facts.segments if q.voxels]  # the volume, with the features where pyradiomics could
    if not measured:
        return _nothing_measured(element, facts, "the SEG's segments hold no voxel on the source series")
    digest = hashlib.sha256(json.dumps([version, parameters], sort_keys=True).encode()).hexdigest()[:16]
    where = ReportSeries(seg.SOPInstanceUID, digest, seg_facts.series_number + 2)  # the KOS takes + 1
    sources = [read_header(path) for path in grid.files]
    sr = build_measurement_report(seg, sources, measured, nifti.modality, radiomics, where, version)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SR_FILE
    sr.save_as(path, enforce_file_format=True)
    errors = remove_unless_valid(path, "SR", facts.notes)
    if errors:
        raise ReportInvalid(f"the measurement report fails dciodvfy (removed): {'; '.join(errors[:5])}")
    facts.path, facts.series_instance_uid, facts.sop_instance_uid = path.name, where.series_instance_uid, \
        where.sop_instance_uid
    for quantity in facts.segments:
        log.info("%s: %s %.1f mL (%d voxels), %d features", element.name, quantity.label, quantity.volume_ml,
                 quantity.voxels, len(quantity.features))
    return facts


def _nothing_measured(element: BatchElement, facts: QuantifyFacts, reason: str) -> QuantifyFacts:
    facts.reason = f"no measurements: {reason}"
    log.warning("%s: %s", element.name, facts.reason)
    return facts
