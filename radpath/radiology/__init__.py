"""Radiology side: series on disk, which series to segment, conversion to NIfTI."""
