"""Slide linkage: which patient and organ a slide belongs to, checked against DICOM's VRs,
and the UIDs derived for converted slides."""
