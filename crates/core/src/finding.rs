//! What spinewatch found at one vertebra: made by the inference stage, stored with a
//! case by the nurses' queue, read back by its API. One type, so that what is stored is
//! what was found.
//!
//! Levels serialise as `"L1"`, grades as integers `0..=3`, centres as `[x, y, z]` (LPS,
//! mm).

use serde::{Deserialize, Serialize};

use crate::genant::Heights;
use crate::{GenantGrade, Vec3, VertebraLevel};

/// What spinewatch found at one vertebra.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VertebraFinding {
    /// T1..L5 when identified.
    pub label: Option<VertebraLevel>,
    /// Centre of the body, LPS mm.
    pub centre_mm: Vec3,
    /// Fracture probability from the model.
    pub probability: f64,
    /// Whether this vertebra reaches the operating threshold.
    pub flagged: bool,
    /// The model's Genant grade (0 when not flagged).
    pub grade: GenantGrade,
    /// Genant grade from the measured heights (`None` when not measurable).
    pub morphometry_grade: Option<GenantGrade>,
    /// Measured heights, mm.
    pub heights_mm: Option<Heights>,
    /// Height loss from the heights (largest of wedge, biconcave, crush), fraction.
    pub height_loss: Option<f64>,
}
