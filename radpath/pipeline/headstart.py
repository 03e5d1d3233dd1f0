"""What a stage's command starts before it imports the stage: work that needs only the
standard library, run while Python imports the rest (pydicom alone takes about 0.3 s).

Each function takes the run layout; :mod:`radpath.pipeline.stagetable` names it as the
stage's ``head_start`` and ``radpath stage <name>`` calls it first.
"""

from __future__ import annotations

from radpath.adapters.radiology.dcm2niix import start_ahead
from radpath.adapters.settings import RunLayout


def nifti(layout: RunLayout) -> None:
    """dcm2niix on the first element's input; the nifti stage claims the run when it has
    read the headers and the folder is the one series it wants."""
    folders = layout.element_folders()
    if folders and layout.operator_in_dir:
        start_ahead(folders[0] / layout.operator_in_dir)
