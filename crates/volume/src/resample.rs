//! Isotropic resampling of a HU volume (issue 3).
