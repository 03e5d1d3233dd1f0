"""DICOM SEG content without I/O: the source series' voxel grid and masks moved onto it
(:mod:`.geometry`), what each segment is (:mod:`.description`)."""
