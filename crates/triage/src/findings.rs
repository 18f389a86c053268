//! The findings stored with a case.
//!
//! Per vertebra, the inference stage's own type, [`VertebraFinding`] from spinewatch-core:
//! what is stored is what was found. Levels serialise as `"L1"`, grades as integers
//! `0..=3` and centres as `[x, y, z]` (LPS, mm).

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use spinewatch_core::GenantGrade;
pub use spinewatch_core::VertebraFinding;

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
    pub vertebrae: Vec<VertebraFinding>,
    /// Key images (PNG), relative to the key-image directory; may be empty.
    #[serde(default)]
    pub key_images: Vec<String>,
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
    pub fn flagged(&self) -> impl Iterator<Item = &VertebraFinding> {
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
