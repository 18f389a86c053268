//! Errors of reading and reconstructing a series.

use std::path::PathBuf;

/// Why a file or series could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path could not be listed or read.
    #[error("could not read {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// dicom-object could not parse a file.
    #[error("could not parse DICOM file {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dicom_object::ReadError>,
    },
    /// The file meta group is malformed beyond what the lenient reader recovers.
    #[error("malformed file meta group in {path}")]
    MalformedMeta {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: crate::open::MetaError,
    },
    /// The file's transfer syntax cannot be read or decoded by this build.
    #[error("{path}: transfer syntax {uid} ({name}) is not supported")]
    UnsupportedTransferSyntax {
        /// The file.
        path: PathBuf,
        /// Transfer Syntax UID.
        uid: String,
        /// Its name, or why it is unknown.
        name: String,
    },
    /// A required attribute is absent or empty.
    #[error("{path}: missing {attribute}")]
    MissingAttribute {
        /// The file.
        path: PathBuf,
        /// Attribute keyword.
        attribute: &'static str,
    },
    /// An attribute has a value that cannot be used.
    #[error("{path}: invalid {attribute} `{value}`")]
    InvalidAttribute {
        /// The file.
        path: PathBuf,
        /// Attribute keyword.
        attribute: &'static str,
        /// The value as read.
        value: String,
    },
    /// Pixel data could not be decoded.
    #[error("could not decode pixel data of {path}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dicom_pixeldata::Error>,
    },
    /// A JPEG codestream could not be decoded by spinewatch's own JPEG DCT decoder.
    #[error("could not decode the JPEG codestream of frame {frame} of {path}")]
    DecodeJpeg {
        /// The file.
        path: PathBuf,
        /// The frame (from 0).
        frame: u32,
        /// The cause.
        #[source]
        source: crate::hu::JpegError,
    },
    /// The pixel format is not one a CT volume can be built from.
    #[error("{path}: unsupported pixel format ({what})")]
    UnsupportedPixels {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        what: String,
    },
    /// The slices do not form one regular volume.
    #[error("series {series}: {problem}")]
    Geometry {
        /// Series Instance UID (or a description when absent).
        series: String,
        /// What is wrong.
        problem: String,
    },
    /// The HU volume could not be resampled to isotropic voxels. The
    /// [`ResampleError`](crate::resample::ResampleError) source carries the context
    /// (spacing asked for, sizes, affine): a volume has no path of its own.
    #[error("could not resample the volume to isotropic voxels")]
    Resample(#[from] crate::resample::ResampleError),
    /// No image was found in the given paths.
    #[error("no DICOM image found in the given paths")]
    NoImages,
}

/// Result with the volume [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::resample::ResampleError;

    #[test]
    fn resample_error_converts_and_keeps_its_context() {
        let e: Error = ResampleError::InvalidSpacing { spacing_mm: -1.0 }.into();
        assert_eq!(
            e.to_string(),
            "could not resample the volume to isotropic voxels"
        );
        assert!(matches!(
            e.source().and_then(|s| s.downcast_ref::<ResampleError>()),
            Some(ResampleError::InvalidSpacing { .. })
        ));
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("resampling spacing -1 mm is not a positive finite number")
        );
    }
}
