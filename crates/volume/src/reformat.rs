//! Sagittal reformat along the spine (issue 3).
