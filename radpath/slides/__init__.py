"""Slides into DICOM: linkage to the patient's radiology, and conversion with wsidicomizer."""
