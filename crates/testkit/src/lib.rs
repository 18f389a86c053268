//! spinewatch-testkit: what tests, training and benchmarks stand on.
//!
//! - [`synth`]: deterministic synthetic CT studies written as real DICOM series with
//!   their ground truth (`spinewatch synth`).
//! - [`peers`]: finding the real interoperability peers (dcmtk, dicom3tools, the
//!   project's Python venv) with the CI policy: a missing peer fails under `CI=true`.
//!
//! ```no_run
//! use spinewatch_testkit::synth::{generate, SynthSpec};
//! let mut spec = SynthSpec::new(1);
//! spec.age_years = 72;
//! spec.fractures = vec!["L1:2:wedge".parse().unwrap()];
//! let truth = generate(&spec, std::path::Path::new("/tmp/study")).unwrap();
//! assert_eq!(truth.vertebrae.len(), 17);
//! ```

pub mod peers;
pub mod synth;
