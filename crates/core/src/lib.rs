//! spinewatch-core: the vocabulary every stage shares, with no I/O.
//!
//! - [`level`]: vertebral levels `T1..L5` ([`VertebraLevel`]).
//! - [`genant`]: Genant semi-quantitative grades and fracture morphology.
//! - [`geometry`]: f64 vectors and affines in the DICOM patient frame (LPS, mm).
//! - [`uid`]: validated DICOM UIDs.
//! - [`finding`]: what was found at one vertebra ([`VertebraFinding`]).
//! - [`truth`]: the ground truth written beside a synthetic study.
//!
//! ```
//! use spinewatch_core::{GenantGrade, VertebraLevel};
//! let level: VertebraLevel = "L1".parse().unwrap();
//! assert_eq!(level.to_string(), "L1");
//! assert_eq!(GenantGrade::from_height_loss(0.30), GenantGrade::Moderate);
//! ```

pub mod error;
pub mod finding;
pub mod genant;
pub mod geometry;
pub mod level;
pub mod truth;
pub mod uid;

pub use error::{Error, Result};
pub use finding::VertebraFinding;
pub use genant::{GenantGrade, Morphology};
pub use geometry::{Affine, Vec3};
pub use level::VertebraLevel;
pub use uid::Uid;
