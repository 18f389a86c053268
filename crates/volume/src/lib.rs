//! spinewatch-volume: from DICOM CT files to a volume of Hounsfield units in the
//! patient frame.
//!
//! ```text
//! paths --header::scan--> [InstanceHeader] --series::group--> [SeriesHeaders]
//!       --select::choose--> chosen series + reasons
//!       --SortedSeries::new--> slices ordered along the normal, affine (f64, LPS mm)
//!       --hu::decode--> HuVolume (i16 HU, [z, y, x])
//! ```
//!
//! - [`header`]: one header-only read per file (stops before Pixel Data).
//! - [`series`]: grouping by Series Instance UID, slice order by the projection of
//!   ImagePositionPatient on the slice normal (never InstanceNumber or file name),
//!   spacing checks, gantry tilt.
//! - [`select`]: which series of a study to reconstruct, and why.
//! - [`eligibility`]: CT of a patient aged 50 or more (PatientAge, else birth date).
//! - [`hu`]: pixel decoding (every transfer syntax dicom-rs decodes), rescale to HU,
//!   PixelPaddingValue, trilinear sampling at patient coordinates.
//!
//! - [`resample`]: isotropic trilinear resampling.
//! - [`spine`]: the column's centreline, vertebral body centres and labels.
//! - [`reformat`]: the curved sagittal reformat and per-vertebra patches, shaped by a
//!   manifest.
//! - [`morphometry`]: anterior, middle and posterior heights of each located body and
//!   the Genant grade they give.
//! - [`analyse`]: the whole stage in one call, "not analysable" a typed outcome.

pub mod analyse;
pub mod eligibility;
pub mod error;
pub mod header;
pub mod hu;
pub mod morphometry;
pub mod open;
pub mod reformat;
pub mod resample;
pub mod select;
pub mod series;
pub mod spine;

pub use error::{Error, Result};
pub use header::InstanceHeader;
pub use hu::HuVolume;
pub use series::SortedSeries;
