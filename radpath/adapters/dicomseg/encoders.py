"""DICOM SEG writers behind one interface: dcmqi's ``itkimage2segimage`` (the pipeline's
choice) and highdicom (the cross-check, and the fallback where dcmqi is missing or the
source slices are unevenly spaced).

Both take masks on the source grid (:func:`radpath.domain.dicomseg.geometry.mask_on_source`),
(slices, rows, columns) in the grid's slice order, one per segment (segment numbers 1,
2, … in that order), and write one binary SEG.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np

import radpath
from radpath.adapters.executables import wheel_tool
from radpath.adapters.headers import read_header
from radpath.domain.dicomseg.description import SegmentDescription, SegSeries
from radpath.domain.dicomseg.geometry import SourceGrid
from radpath.domain.vocabulary import SegEncoder

#: ContentLabel of radpath's SEGs (CS, 16 characters).
CONTENT_LABEL = "ORGAN"


class SegEncodeError(RuntimeError):
    """The encoder could not write the SEG."""


class EmptyMask(SegEncodeError):
    """The mask has no voxel on the source grid; a SEG of nothing is never written."""


class SegWriter(Protocol):
    """What both encoders offer: a name and a way to write the SEG."""

    name: SegEncoder

    def encode(
        self, masks: list[np.ndarray], segments: list[SegmentDescription], grid: SourceGrid, series: SegSeries,
        out: Path,
    ) -> Path: ...


def _check_masks(masks: list[np.ndarray], segments: list[SegmentDescription], grid: SourceGrid) -> None:
    if not masks or len(masks) != len(segments):
        raise SegEncodeError(f"{len(masks)} masks for {len(segments)} segment descriptions")
    for number, mask in enumerate(masks, start=1):
        if mask.shape != grid.shape:
            raise SegEncodeError(f"segment {number}: mask shape {mask.shape} is not the source grid's {grid.shape}")
        if not mask.any():
            raise EmptyMask(f"segment {number} ({segments[number - 1].label}) is empty on the source grid")


def dcmqi_binary(name: str = "itkimage2segimage") -> str | None:
    """dcmqi's tool from its PyPI wheel, else one on PATH."""
    return wheel_tool(name)


def dcmqi_meta(segments: list[SegmentDescription], series: SegSeries) -> dict:
    """dcmqi's meta.json: one image file per segment, label 1 in each."""
    attributes = []
    for description in segments:
        segment = {
            "labelID": 1,
            "SegmentLabel": description.label,
            "SegmentDescription": description.label,
            "SegmentAlgorithmType": "AUTOMATIC",
            "SegmentAlgorithmName": description.algorithm.label,
            "SegmentedPropertyCategoryCodeSequence": description.category.as_dcmqi(),
            "SegmentedPropertyTypeCodeSequence": description.property_type.as_dcmqi(),
            "recommendedDisplayRGBValue": list(description.color),
        }
        if description.modifier:
            segment["SegmentedPropertyTypeModifierCodeSequence"] = description.modifier.as_dcmqi()
        attributes.append([segment])
    meta = {
        "ContentCreatorName": series.content_creator,
        "SeriesDescription": series.series_description,
        "SeriesNumber": str(series.series_number),
        "InstanceNumber": str(series.instance_number),
        "segmentAttributes": attributes,
    }
    if series.body_part:
        meta["BodyPartExamined"] = series.body_part
    return meta


def write_grid_image(mask: np.ndarray, grid: SourceGrid, path: Path) -> None:
    """The mask as an image whose geometry is the source grid's, to double precision
    (NRRD: a NIfTI's float32 affine moves positions by micrometres). Only the slab of
    slices that hold the mask is written, uncompressed: dcmqi places each slice by its
    position, and skips empty ones anyway."""
    import SimpleITK as sitk

    filled = np.flatnonzero(mask.any(axis=(1, 2)))
    first, last = int(filled[0]), int(filled[-1])
    image = sitk.GetImageFromArray(mask[first : last + 1].astype(np.uint8))  # array (k, j, i) → image (i, j, k)
    step = grid.slice_step
    assert step is not None
    spacing = float(np.linalg.norm(step))
    image.SetOrigin(tuple(float(v) for v in grid.positions[first]))
    image.SetSpacing((grid.pixel_spacing[1], grid.pixel_spacing[0], spacing))
    directions = np.column_stack([grid.row_direction, grid.column_direction, step / spacing])
    image.SetDirection(tuple(float(v) for v in directions.ravel()))
    sitk.WriteImage(image, str(path), useCompression=False)


class DcmqiEncoder:
    """dcmqi's ``itkimage2segimage`` on a mask written on the source grid."""

    name = SegEncoder.DCMQI

    def __init__(self, binary: str | None = None):
        self.binary = binary or dcmqi_binary()

    @property
    def available(self) -> bool:
        return self.binary is not None

    def encode(
        self, masks: list[np.ndarray], segments: list[SegmentDescription], grid: SourceGrid, series: SegSeries,
        out: Path,
    ) -> Path:
        _check_masks(masks, segments, grid)
        if not self.binary:
            raise SegEncodeError("dcmqi's itkimage2segimage not found: pip install dcmqi")
        if not grid.regular:
            raise SegEncodeError("dcmqi needs evenly spaced source slices; these are not")
        with tempfile.TemporaryDirectory(prefix="radpath-dcmqi-") as tmp:
            scratch = Path(tmp)
            images = [scratch / f"segment-{number}.nrrd" for number in range(1, len(masks) + 1)]
            for mask, image in zip(masks, images):
                write_grid_image(mask, grid, image)
            (scratch / "meta.json").write_text(json.dumps(dcmqi_meta(segments, series)), encoding="utf-8")
            # A folder of links, not --inputDICOMList: a comma in a file name would split it.
            sources = scratch / "source"
            sources.mkdir()
            for k, path in enumerate(grid.files):
                os.symlink(Path(path).resolve(), sources / f"{k:06d}.dcm")
            written = scratch / "seg.dcm"
            run = subprocess.run(
                [self.binary, "--inputImageList", ",".join(map(str, images)), "--inputDICOMDirectory", str(sources),
                 "--inputMetadata", str(scratch / "meta.json"), "--outputDICOM", str(written), "--skip", "1"],
                capture_output=True, text=True, errors="replace",
            )
            if run.returncode != 0 or not written.exists():
                tail = " | ".join((run.stdout + run.stderr).strip().splitlines()[-4:])
                raise SegEncodeError(f"itkimage2segimage exited with {run.returncode}: {tail}")
            _set_identity(written, series)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(written), out)
        return out


def _set_identity(path: Path, series: SegSeries) -> None:
    """radpath's UIDs and equipment in a SEG dcmqi wrote (dcmqi draws its own UIDs)."""
    import pydicom

    ds = pydicom.dcmread(path)
    # dcmqi always writes clinical trial IDs (its defaults when the meta has none): a
    # Clinical Trial Series module radpath has no trial for, and without its Type 2
    # coordinating centre.
    for name in ("ClinicalTrialSeriesID", "ClinicalTrialTimePointID", "ClinicalTrialCoordinatingCenterName"):
        if name in ds:
            delattr(ds, name)
    ds.ContentLabel = CONTENT_LABEL  # dcmqi writes its own name there
    ds.SeriesInstanceUID = series.series_instance_uid
    ds.SOPInstanceUID = series.sop_instance_uid
    ds.file_meta.MediaStorageSOPInstanceUID = series.sop_instance_uid
    ds.Manufacturer = "radpath"
    ds.ManufacturerModelName = "radpath seg-encode (dcmqi)"
    ds.SoftwareVersions = f"radpath {radpath.__version__}"
    # dcmqi prefers the source's BodyPartExamined (often PARTIALBODY) to the meta's.
    if series.body_part:
        ds.BodyPartExamined = series.body_part
    ds.save_as(path, enforce_file_format=True)


class HighdicomEncoder:
    """highdicom's :class:`highdicom.seg.Segmentation` from the source datasets."""

    name = SegEncoder.HIGHDICOM
    available = True

    def encode(
        self, masks: list[np.ndarray], segments: list[SegmentDescription], grid: SourceGrid, series: SegSeries,
        out: Path,
    ) -> Path:
        import highdicom as hd

        _check_masks(masks, segments, grid)
        sources = [read_header(path) for path in grid.files]
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=np.stack(masks, axis=-1).astype(np.uint8),  # (frames, rows, columns, segments)
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[_highdicom_segment(number, d) for number, d in enumerate(segments, start=1)],
            series_instance_uid=series.series_instance_uid,
            series_number=series.series_number,
            sop_instance_uid=series.sop_instance_uid,
            instance_number=series.instance_number,
            manufacturer="radpath",
            manufacturer_model_name="radpath seg-encode (highdicom)",
            software_versions=f"radpath {radpath.__version__}",
            device_serial_number="none",
            content_description=" + ".join(d.label for d in segments)[:64],
            content_creator_name=series.content_creator,
            content_label=CONTENT_LABEL,
            series_description=series.series_description,
            omit_empty_frames=True,
        )
        if series.body_part:
            seg.BodyPartExamined = series.body_part
        out.parent.mkdir(parents=True, exist_ok=True)
        seg.save_as(out)
        return out


def _highdicom_segment(number: int, description: SegmentDescription):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    segment = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=description.label,
        segmented_property_category=_coded(description.category),
        segmented_property_type=_coded(description.property_type),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=description.algorithm.name,
            version=description.algorithm.version,
            family=codes.cid7162.ArtificialIntelligence,
        ),
        display_color=hd.color.CIELabColor.from_rgb(*description.color),
    )
    # The same SegmentAlgorithmName as dcmqi's, which has no field for the version.
    segment.SegmentAlgorithmName = description.algorithm.label
    if description.modifier:
        segment.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            _coded(description.modifier)
        ]
    return segment


def _coded(code):
    from highdicom.sr.coding import CodedConcept

    return CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning)


