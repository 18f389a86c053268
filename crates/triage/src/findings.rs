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
    /// Key images (PNG), relative to the key-image directory; may be empty. The sagittal
    /// key image in the bone window is named `sagittal.png`, the same in the soft-tissue
    /// window `sagittal-soft.png`.
    #[serde(default)]
    pub key_images: Vec<String>,
    /// The study as the case page describes it (absent in cases queued before it existed).
    #[serde(default)]
    pub study: Option<StudyFacts>,
    /// Who the patient is, for the signed-in nurses only: never logged (its `Debug` is
    /// redacted), never put in a URL.
    #[serde(default)]
    pub patient: Option<PatientFacts>,
}

/// The study's facts, from the header of the series that was analysed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyFacts {
    /// Accession Number (0008,0050).
    pub accession_number: Option<String>,
    /// Study Description (0008,1030).
    pub study_description: Option<String>,
    /// Manufacturer (0008,0070).
    pub manufacturer: Option<String>,
    /// Manufacturer's Model Name (0008,1090).
    pub scanner_model: Option<String>,
    /// Station Name (0008,1010).
    pub station_name: Option<String>,
    /// Institution Name (0008,0080).
    pub institution: Option<String>,
    /// Series Number (0020,0011) of the series analysed.
    pub series_number: Option<i32>,
    /// Series Description (0008,103E) of the series analysed.
    pub series_description: Option<String>,
    /// Slices of the series analysed.
    pub slices: usize,
    /// Voxel spacing of the series analysed, `[x, y, z]` mm (z: between slice centres).
    pub spacing_mm: [f64; 3],
    /// Convolution Kernel (0018,1210).
    pub convolution_kernel: Option<String>,
    /// The patient's age at the study, years, as eligibility read it.
    pub patient_age_years: Option<f64>,
}

impl StudyFacts {
    /// The scanner as the worklist shows and filters it: manufacturer and model (or the
    /// station name when neither is known).
    pub fn scanner(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.manufacturer, &self.scanner_model]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            self.station_name.clone()
        } else {
            Some(parts.join(" "))
        }
    }
}

/// The patient's identifiers from the DICOM header. `Debug` shows none of them, so a
/// `tracing` field or a panic message cannot leak them.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientFacts {
    /// Patient ID (0010,0020).
    pub id: Option<String>,
    /// Patient's Name (0010,0010), DICOM PN as stored (`Family^Given^...`).
    pub name: Option<String>,
    /// Patient's Birth Date (0010,0030) as `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// Patient's Sex (0010,0040): `M`, `F` or `O`.
    pub sex: Option<String>,
}

impl std::fmt::Debug for PatientFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatientFacts(<redacted>)")
    }
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
