//! The findings stored with a case.
//!
//! The inference stage's types are `Serialize`-only; these are the queue's own, with the
//! same field names as `spinewatch_infer::VertebraFinding`, so the inference stage's JSON
//! reads back into them. Levels serialise as `"L1"`, grades as integers `0..=3` and
//! centres as `[x, y, z]` (LPS, mm), as in spinewatch-core.

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use spinewatch_core::genant::Heights;
use spinewatch_core::{GenantGrade, Vec3, VertebraLevel};

/// What the model and the morphometry found in a positive study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseFindings {
    /// Model name and version.
    pub model_version: String,
    /// Execution provider that ran the model (`cpu`, `cuda`, `tensorrt`).
    pub execution_provider: String,
    /// Largest vertebra fracture probability.
    pub probability: f64,
    /// Per located vertebra, cranial first.
    pub vertebrae: Vec<VertebraFindingRecord>,
    /// Key images (PNG), relative to the key-image directory; may be empty.
    #[serde(default)]
    pub key_images: Vec<String>,
}

/// What was found at one vertebra.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VertebraFindingRecord {
    /// T1..L5 when identified.
    pub label: Option<VertebraLevel>,
    /// Centre of the body, LPS mm, `[x, y, z]`.
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
    /// Height loss from the heights, fraction.
    pub height_loss: Option<f64>,
}

impl CaseFindings {
    /// The largest model grade among the flagged vertebrae (`Normal` when none is).
    pub fn max_grade(&self) -> GenantGrade {
        self.flagged()
            .map(|v| v.grade)
            .max()
            .unwrap_or(GenantGrade::Normal)
    }

    /// The flagged vertebrae, cranial first.
    pub fn flagged(&self) -> impl Iterator<Item = &VertebraFindingRecord> {
        self.vertebrae.iter().filter(|v| v.flagged)
    }

    /// Checks what the queue relies on: probabilities in `[0, 1]` and key images as
    /// relative paths that stay below their directory (the web UI serves them).
    pub fn validate(&self) -> Result<(), String> {
        let unit = |p: f64| (0.0..=1.0).contains(&p);
        if !unit(self.probability) {
            return Err(format!("probability {} outside [0, 1]", self.probability));
        }
        if let Some(v) = self.vertebrae.iter().find(|v| !unit(v.probability)) {
            return Err(format!(
                "vertebra probability {} outside [0, 1]",
                v.probability
            ));
        }
        for image in &self.key_images {
            let path = Path::new(image);
            let below = !image.is_empty()
                && path
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !below {
                return Err(format!(
                    "key image `{image}` is not a relative path below its directory"
                ));
            }
        }
        Ok(())
    }
}
