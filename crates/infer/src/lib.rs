//! `spinewatch-infer`: the inference stage, `InputTensor -> Findings`.
//!
//! For now it owns the ONNX Runtime itself; model manifests, sessions and pre/post-processing
//! will join it here.
//!
//! - [`runtime`]: finds the ONNX Runtime shared library (`--ort-dylib`, config,
//!   `ORT_DYLIB_PATH`, the project's `.venv`, the Python `onnxruntime` package), checks its
//!   version *before* `ort` sees it, and creates the one process-wide environment.
//! - [`provider`]: the execution providers spinewatch can be configured to use.
//! - [`model`]: a fracture model checked against its manifest and run in a session.
//! - [`detect`]: a study's analysis in, typed findings out (model + morphometry).
//! - [`error`]: the crate's [`Error`] and [`Result`].
//!
//! ```no_run
//! use spinewatch_infer::runtime::{DylibRequest, Runtime};
//!
//! # fn main() -> spinewatch_infer::Result<()> {
//! let runtime = Runtime::load(DylibRequest::default())?;
//! println!("ONNX Runtime {} from {}", runtime.version, runtime.dylib.display());
//! println!("providers: {:?}", runtime.available_providers()?);
//! # Ok(())
//! # }
//! ```

pub mod detect;
pub mod error;
pub mod model;
pub mod provider;
pub mod runtime;

pub use detect::{StudyFindings, VertebraFinding};
pub use error::{Error, Result};
pub use model::{Model, ModelManifest, Prediction, SessionOptions};
pub use provider::ExecutionProvider;
pub use runtime::{DylibRequest, DylibSource, Runtime};
