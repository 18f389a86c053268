//! Errors of the inference stage.

use std::path::PathBuf;

use crate::runtime::{DylibSource, PINNED_ORT_VERSION, REQUIRED_ORT_SERIES, SETUP_HINT};

/// Result of the inference stage.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the inference stage, one variant per failing operation.
///
/// The messages about a missing or unusable ONNX Runtime all end with the fix
/// ([`SETUP_HINT`]), because they are what an operator reads first after installing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No source named a library and searching found none.
    #[error(
        "ONNX Runtime {series} not found (looked in: {}); {hint}",
        looked_in.join("; "),
        series = REQUIRED_ORT_SERIES,
        hint = SETUP_HINT
    )]
    NotFound {
        /// Every place searched, in order, as text for the operator.
        looked_in: Vec<String>,
    },

    /// A path named explicitly (flag, config or `ORT_DYLIB_PATH`) does not exist.
    ///
    /// An explicit path never falls back to searching: the operator asked for this file.
    #[error("ONNX Runtime library {} (from {origin}) does not exist; {hint}", path.display(), hint = SETUP_HINT)]
    ExplicitMissing {
        /// The path as given.
        path: PathBuf,
        /// Who named it.
        origin: DylibSource,
    },

    /// The file exists but the dynamic loader refused it.
    ///
    /// The loader's message is part of the text (not a `source`) so that the fix stays last.
    #[error(
        "could not load {} (from {origin}) as a shared library ({cause}); {hint}",
        path.display(),
        hint = SETUP_HINT
    )]
    Dlopen {
        /// The library path.
        path: PathBuf,
        /// Who named or found it.
        origin: DylibSource,
        /// The loader's error.
        cause: libloading::Error,
    },

    /// The file is a shared library but not ONNX Runtime (no usable `OrtGetApiBase`).
    #[error(
        "{} (from {origin}) is not an ONNX Runtime library (it has no `OrtGetApiBase`); {hint}",
        path.display(),
        hint = SETUP_HINT
    )]
    NotOrt {
        /// The library path.
        path: PathBuf,
        /// Who named or found it.
        origin: DylibSource,
    },

    /// The library is ONNX Runtime, but not the series spinewatch is built and validated for.
    #[error(
        "found ONNX Runtime {version} at {} (from {origin}) but spinewatch needs {series}; {hint}",
        path.display(),
        series = REQUIRED_ORT_SERIES,
        hint = SETUP_HINT
    )]
    WrongVersion {
        /// The version the library reports, e.g. `1.20.0`.
        version: String,
        /// The library path.
        path: PathBuf,
        /// Who named or found it.
        origin: DylibSource,
    },

    /// The library reports a version we cannot read.
    #[error(
        "ONNX Runtime at {} (from {origin}) reports an unreadable version {version:?}; {hint}",
        path.display(),
        hint = SETUP_HINT
    )]
    BadVersionString {
        /// The raw version text (lossy UTF-8), empty when the library returned none.
        version: String,
        /// The library path.
        path: PathBuf,
        /// Who named or found it.
        origin: DylibSource,
    },

    /// The library does not hand out the C API version `ort` was built against.
    #[error(
        "ONNX Runtime {version} at {} does not provide C API version {api}; {hint}",
        path.display(),
        hint = SETUP_HINT
    )]
    ApiUnavailable {
        /// The version the library reports.
        version: String,
        /// The library path.
        path: PathBuf,
        /// The C API version requested (`ORT_API_VERSION`).
        api: u32,
    },

    /// The process already uses another ONNX Runtime library; `ort` allows one per process.
    #[error(
        "ONNX Runtime is already loaded from {} in this process; cannot also load {}",
        loaded.display(),
        requested.display()
    )]
    AlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The library asked for now.
        requested: PathBuf,
    },

    /// `ort` refused the library we had already checked.
    #[error("could not hand {} to ort (expected onnxruntime {PINNED_ORT_VERSION})", path.display())]
    Init {
        /// The library path.
        path: PathBuf,
        /// `ort`'s loading error.
        #[source]
        source: ort::LoadDynamicError,
    },

    /// Creating the process-wide ONNX Runtime environment failed.
    #[error("could not create the ONNX Runtime environment from {}", path.display())]
    Environment {
        /// The library path.
        path: PathBuf,
        /// ONNX Runtime's error.
        #[source]
        source: ort::Error,
    },

    /// Listing the execution providers compiled into the library failed.
    #[error("could not list the execution providers of ONNX Runtime")]
    Providers {
        /// ONNX Runtime's error.
        #[source]
        source: ort::Error,
    },

    /// A model manifest or ONNX file could not be read.
    #[error("could not read {}", path.display())]
    ModelIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A model manifest is malformed or describes something spinewatch cannot feed.
    #[error("model manifest {}: {problem}", path.display())]
    ModelManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// The ONNX file is not the one its manifest describes.
    #[error("model {} does not match its manifest: {problem}", path.display())]
    ModelMismatch {
        /// The ONNX file.
        path: PathBuf,
        /// What differs.
        problem: String,
    },

    /// ONNX Runtime could not open the model.
    #[error("ONNX Runtime could not open the model {}", path.display())]
    ModelOpen {
        /// The ONNX file.
        path: PathBuf,
        /// ONNX Runtime's error.
        #[source]
        source: ort::Error,
    },

    /// A session could not be configured.
    #[error("could not configure an ONNX Runtime session")]
    Session(#[source] ort::Error),

    /// The requested execution provider could not be registered (and CPU fallback is
    /// not allowed).
    #[error("execution provider {provider} is not available: {detail}")]
    ProviderUnavailable {
        /// The provider requested.
        provider: crate::ExecutionProvider,
        /// ONNX Runtime's reason.
        detail: String,
    },

    /// Running the model failed.
    #[error("inference failed")]
    Run(#[source] ort::Error),
}
