"""Organ masks → DICOM Segmentation objects that reference their source series.

:mod:`~radpath.seg.geometry` brings a mask onto the source's own voxel grid through the
affines; :mod:`~radpath.seg.description` says what the segment is (from
``anatomy/master.json``); :mod:`~radpath.seg.encoders` writes the SEG with dcmqi or
highdicom behind one interface; :mod:`~radpath.seg.readback` reads a SEG back onto the
source grid and checks its geometry.
"""
