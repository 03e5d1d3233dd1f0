"""radpath's I/O: the environment (settings), DICOM files and headers, DICOMweb,
storage targets, Orthanc, and the external tools (dcm2niix, dcmqi, highdicom,
TotalSegmentator, wsidicomizer, dciodvfy). Each module wraps one thing outside radpath."""
