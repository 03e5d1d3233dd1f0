"""DICOM SEG I/O: the encoders (dcmqi, highdicom), read-back, source copies with filled-in UIDs."""
