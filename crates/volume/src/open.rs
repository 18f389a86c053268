//! Opening DICOM files, leniently where archives need it (issue 3).
