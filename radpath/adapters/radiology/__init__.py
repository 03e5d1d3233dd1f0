"""Radiology I/O: series on disk, the PACS's candidate studies (QIDO), NIfTI by dcm2niix."""
