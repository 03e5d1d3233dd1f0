"""Valid synthetic CT and MR series of one patient, with their label volumes.

Each series samples the phantom (:mod:`radpath.synthetic.phantom`) on the grid of a
:class:`SliceGeometry`: any orientation, pixel spacing, slice spacing and slice order.
The files are complete CT / MR Image IODs (Patient, Study, Series, Frame of Reference,
Equipment, Image Plane, Image Pixel, CT/MR Image, VOI LUT, SOP Common) that ``dciodvfy``
accepts, and the label volume comes back in the same voxel order as the pixel data, so
later stages can compare their output with ground truth voxel for voxel.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    VLWholeSlideMicroscopyImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from radpath import __version__
from radpath.domain.vocabulary import Modality
from radpath.synthetic.phantom import sample

#: UID root for everything the generator makes (pydicom's, as generate_uid uses by default).
_SOP_CLASS = {Modality.CT: CTImageStorage, Modality.MR: MRImageStorage}


def _unit(v: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    return a / np.linalg.norm(a)


@dataclass(frozen=True)
class SliceGeometry:
    """Where a series' voxels lie in patient space (LPS, mm).

    ``row_direction`` is the first triplet of ImageOrientationPatient (direction of
    increasing column index), ``column_direction`` the second (increasing row index).
    Slice ``k`` lies at ``first position + k * slice_spacing * slice_direction``; with
    ``descending`` the slices are stacked against the plane's normal.
    """

    rows: int
    columns: int
    slices: int
    pixel_spacing: tuple[float, float]  # (between rows, between columns), as PixelSpacing
    slice_spacing: float
    row_direction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    column_direction: tuple[float, float, float] = (0.0, 1.0, 0.0)
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    descending: bool = False
    #: Gantry tilt: slices stacked along this direction instead of the plane's normal
    #: (a tilted CT gantry images oblique planes while the table moves along z).
    stack_direction: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        r, c = _unit(self.row_direction), _unit(self.column_direction)
        if abs(float(r @ c)) > 1e-6:
            raise ValueError("row and column directions must be orthogonal")
        if min(self.rows, self.columns, self.slices) < 1:
            raise ValueError("rows, columns and slices must be at least 1")

    @classmethod
    def named(cls, orientation: str, **kwargs) -> SliceGeometry:
        """A geometry in a named orientation: ``axial``, ``axial-rows-flipped``,
        ``sagittal``, ``coronal`` or ``oblique-<degrees>`` (axial tilted about L-R)."""
        if orientation.startswith("oblique-"):
            angle = np.radians(float(orientation.split("-", 1)[1]))
            directions = ((1.0, 0.0, 0.0), (0.0, float(np.cos(angle)), float(-np.sin(angle))))
        else:
            try:
                directions = _NAMED_ORIENTATIONS[orientation]
            except KeyError:
                raise ValueError(f"unknown orientation {orientation!r}") from None
        return cls(row_direction=directions[0], column_direction=directions[1], **kwargs)

    @property
    def image_orientation(self) -> list[float]:
        """ImageOrientationPatient (0020,0037)."""
        return [float(v) for v in (*_unit(self.row_direction), *_unit(self.column_direction))]

    @property
    def slice_direction(self) -> np.ndarray:
        if self.stack_direction is not None:
            step = _unit(self.stack_direction)
        else:
            step = np.cross(_unit(self.row_direction), _unit(self.column_direction))
        return -step if self.descending else step

    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix from voxel index (column, row, slice, 1) to LPS millimetres."""
        a = np.eye(4)
        a[:3, 0] = _unit(self.row_direction) * self.pixel_spacing[1]
        a[:3, 1] = _unit(self.column_direction) * self.pixel_spacing[0]
        a[:3, 2] = self.slice_direction * self.slice_spacing
        extent = np.array([self.columns - 1, self.rows - 1, self.slices - 1], dtype=float) / 2
        a[:3, 3] = np.asarray(self.center, dtype=float) - a[:3, :3] @ extent
        return a

    def slice_points(self, k: int) -> np.ndarray:
        """LPS coordinates of every pixel of slice ``k``, shape (rows, columns, 3)."""
        cols, rows = np.meshgrid(np.arange(self.columns), np.arange(self.rows))
        index = np.stack([cols, rows, np.full_like(cols, k), np.ones_like(cols)], axis=-1)
        return (index @ self.affine.T)[..., :3]

    def position(self, k: int) -> list[float]:
        """ImagePositionPatient (0020,0032) of slice ``k``."""
        return [round(float(v), 6) for v in self.affine @ np.array([0, 0, k, 1.0])][:3]


_NAMED_ORIENTATIONS = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "axial-rows-flipped": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}


@dataclass(frozen=True)
class SyntheticPatient:
    """Identity written into every generated object (fictitious by construction)."""

    patient_id: str = "RADPATH-DEMO-001"
    name: str = "Phantom^Demo"
    birth_date: str = "19600101"
    sex: str = "M"


@dataclass(frozen=True)
class SyntheticStudy:
    patient: SyntheticPatient = field(default_factory=SyntheticPatient)
    study_instance_uid: str = field(default_factory=generate_uid)
    frame_of_reference_uid: str = field(default_factory=generate_uid)
    accession_number: str = "ACC0001"
    study_date: str = "20260101"
    study_time: str = "090000"
    description: str = "CT ABDOMEN PELVIS"
    study_id: str = "1"


@dataclass
class SyntheticSeries:
    """What :func:`write_series` made: files, identity and ground truth."""

    paths: list[Path]
    modality: str
    geometry: SliceGeometry
    study: SyntheticStudy
    series_instance_uid: str
    sop_instance_uids: list[str]
    values: np.ndarray  # modality values (HU for CT), (slices, rows, columns)
    labels: np.ndarray  # phantom labels, (slices, rows, columns), see phantom.LABELS


def write_series(
    folder: Path,
    *,
    modality: str = Modality.CT,
    geometry: SliceGeometry | None = None,
    study: SyntheticStudy | None = None,
    series_number: int = 1,
    description: str | None = None,
    image_type: tuple[str, ...] | None = None,
    noise: float = 8.0,
    seed: int = 0,
) -> SyntheticSeries:
    """Write one phantom series, one file per slice, into ``folder``.

    Files are named ``<modality>_<series number>_<slice>.dcm`` in acquisition order; the
    default geometry is a small axial abdomen (64×64×40, 6 mm). ``image_type`` defaults
    to an original primary acquisition (value 3 AXIAL for CT, OTHER for MR).
    """
    modality = modality.upper()
    if modality not in _SOP_CLASS:
        raise ValueError(f"modality must be CT or MR, not {modality!r}")
    image_type = image_type or ("ORIGINAL", "PRIMARY", "AXIAL" if modality == Modality.CT else "OTHER")
    geometry = geometry or SliceGeometry(64, 64, 40, (6.0, 6.0), 6.0, center=(0.0, 0.0, 20.0))
    study = study or SyntheticStudy()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    series_uid = generate_uid()
    values = np.empty((geometry.slices, geometry.rows, geometry.columns), dtype=np.float32)
    labels = np.empty(values.shape, dtype=np.uint8)
    paths, uids = [], []
    for k in range(geometry.slices):
        values[k], labels[k] = sample(geometry.slice_points(k), modality)
        values[k] += rng.normal(0.0, noise, size=values[k].shape)
        ds = _slice_dataset(
            modality, geometry, study, series_uid, series_number, description, image_type, k
        )
        stored = _to_stored(values[k], modality)
        values[k] = stored.astype(np.float32) + (_CT_INTERCEPT if modality == Modality.CT else 0.0)
        ds.PixelData = stored.tobytes()
        path = folder / f"{modality}_{series_number:03d}_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        uids.append(ds.SOPInstanceUID)
    return SyntheticSeries(paths, modality, geometry, study, series_uid, uids, values, labels)


def write_slide_header(path: Path, patient: SyntheticPatient | None = None) -> Path:
    """A slide's header alone (VL Whole Slide Microscopy, no pixels) of ``patient``, in a
    study of its own: enough for what reads headers only (pairing, series grouping)."""
    patient = patient or SyntheticPatient()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = VLWholeSlideMicroscopyImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality, ds.PatientID = Modality.SM.value, patient.patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


_CT_INTERCEPT = -1024.0


def _ds(values) -> list[str]:
    """Decimal strings that fit the DS VR (at most 16 characters each)."""
    return [format_number_as_ds(float(v)) for v in values]


def _to_stored(values: np.ndarray, modality: str) -> np.ndarray:
    """Modality values → unsigned 16-bit stored values (CT: intercept -1024, slope 1)."""
    offset = -_CT_INTERCEPT if modality == Modality.CT else 0.0
    return np.clip(np.rint(values + offset), 0, 4095).astype(np.uint16)


def _slice_dataset(
    modality: str,
    geometry: SliceGeometry,
    study: SyntheticStudy,
    series_uid: str,
    series_number: int,
    description: str | None,
    image_type: tuple[str, ...],
    k: int,
) -> Dataset:
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = _SOP_CLASS[modality]
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = _SOP_CLASS[modality]
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = _dt.date.today().strftime("%Y%m%d")
    # Patient
    patient = study.patient
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    # General Study
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.ReferringPhysicianName = ""
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    ds.StudyDescription = study.description
    # General Series
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description or f"Phantom {modality}"
    ds.SeriesDate = study.study_date
    ds.SeriesTime = study.study_time
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "ABDOMEN"
    # Frame of Reference
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    # General Equipment
    ds.Manufacturer = "radpath"
    ds.ManufacturerModelName = "phantom generator"
    ds.SoftwareVersions = __version__
    # General Image / Acquisition
    ds.InstanceNumber = k + 1
    ds.AcquisitionNumber = 1
    ds.ImageType = list(image_type)
    ds.ContentDate = study.study_date
    ds.ContentTime = study.study_time
    # Image Plane
    ds.PixelSpacing = [float(v) for v in geometry.pixel_spacing]
    ds.ImageOrientationPatient = _ds(geometry.image_orientation)
    ds.ImagePositionPatient = _ds(geometry.position(k))
    ds.SliceThickness = float(geometry.slice_spacing)
    ds.SpacingBetweenSlices = float(geometry.slice_spacing)
    normal = np.cross(geometry.image_orientation[:3], geometry.image_orientation[3:])
    ds.SliceLocation = _ds([float(np.dot(geometry.position(k), normal))])[0]
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = geometry.rows
    ds.Columns = geometry.columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if modality == Modality.CT:
        ds.RescaleIntercept = _CT_INTERCEPT
        ds.RescaleSlope = 1.0
        ds.RescaleType = "HU"
        ds.KVP = 120
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.ConvolutionKernel = "STANDARD"
        if geometry.stack_direction is not None:
            normal = np.cross(geometry.image_orientation[:3], geometry.image_orientation[3:])
            tilt = np.degrees(np.arccos(abs(float(np.dot(normal, _unit(geometry.stack_direction))))))
            ds.GantryDetectorTilt = round(float(tilt), 3)
    else:
        ds.ScanningSequence = ["SE"]
        ds.SequenceVariant = ["SK"]
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = 4000.0
        ds.EchoTime = 100.0
        ds.EchoTrainLength = 16
        ds.MagneticFieldStrength = 3.0
        ds.ImagingFrequency = 127.7
        ds.SequenceName = "t2_tse"
        ds.WindowCenter = 600
        ds.WindowWidth = 1200
    return ds
