//! Errors of the core vocabulary (parsing and validation).

/// Why a value could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Not one of `T1..T12`, `L1..L5`.
    #[error("unknown vertebral level `{0}` (expected T1..T12 or L1..L5)")]
    UnknownLevel(String),
    /// Not a Genant grade 0..=3.
    #[error("unknown Genant grade `{0}` (expected 0, 1, 2 or 3)")]
    UnknownGrade(String),
    /// Not a known fracture morphology.
    #[error("unknown fracture morphology `{0}` (expected wedge, biconcave or crush)")]
    UnknownMorphology(String),
    /// A DICOM UID that breaks PS3.5 section 9.1.
    #[error("invalid DICOM UID `{uid}`: {why}")]
    InvalidUid {
        /// The offending text.
        uid: String,
        /// Which rule it breaks.
        why: &'static str,
    },
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
