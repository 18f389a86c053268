//! The findings stored with a case.
//!
//! Per vertebra, the inference stage's own type, [`VertebraFinding`] from spinewatch-core:
//! what is stored is what was found. Levels serialise as `"L1"`, grades as integers
//! `0..=3` and centres as `[x, y, z]` (LPS, mm).

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use spinewatch_core::GenantGrade;
pub use spinewatch_core::VertebraFinding;

/// File name of the sagittal key image in the bone window (centre 400, width 1800 HU).
pub const BONE_KEY_IMAGE: &str = "sagittal.png";
/// File name of the same sagittal key image in the soft-tissue window (centre 40, width
/// 400 HU).
pub const SOFT_TISSUE_KEY_IMAGE: &str = "sagittal-soft.png";

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
    /// Key images (PNG), relative paths that stay below their directory (the pipeline
    /// writes `images/<study key>/<file>`, relative to the data directory); may be empty.
    /// The bone window's sagittal image ([`BONE_KEY_IMAGE`]) comes first, then the same
    /// reformat in the soft-tissue window ([`SOFT_TISSUE_KEY_IMAGE`]).
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

/// The study's facts, from the header of the series that was analysed. `Debug` redacts
/// the accession number (it names the patient's order in the RIS).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
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

impl std::fmt::Debug for StudyFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            accession_number,
            study_description,
            manufacturer,
            scanner_model,
            station_name,
            institution,
            series_number,
            series_description,
            slices,
            spacing_mm,
            convolution_kernel,
            patient_age_years,
        } = self;
        f.debug_struct("StudyFacts")
            .field(
                "accession_number",
                &accession_number.as_ref().map(|_| "<redacted>"),
            )
            .field("study_description", study_description)
            .field("manufacturer", manufacturer)
            .field("scanner_model", scanner_model)
            .field("station_name", station_name)
            .field("institution", institution)
            .field("series_number", series_number)
            .field("series_description", series_description)
            .field("slices", slices)
            .field("spacing_mm", spacing_mm)
            .field("convolution_kernel", convolution_kernel)
            .field("patient_age_years", patient_age_years)
            .finish()
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const PATIENT_ID: &str = "PID-83311";
    const ACCESSION: &str = "ACC-20261121-7";

    fn findings() -> CaseFindings {
        CaseFindings {
            model_version: "vertebra-fracture 1".to_owned(),
            execution_provider: "cpu".to_owned(),
            probability: 0.9,
            vertebrae: Vec::new(),
            key_images: vec![
                format!("images/1.2.3/{BONE_KEY_IMAGE}"),
                format!("images/1.2.3/{SOFT_TISSUE_KEY_IMAGE}"),
            ],
            study: Some(StudyFacts {
                accession_number: Some(ACCESSION.to_owned()),
                manufacturer: Some("ACME".to_owned()),
                scanner_model: Some("Tomo 64".to_owned()),
                slices: 70,
                spacing_mm: [1.5, 1.5, 2.0],
                patient_age_years: Some(72.0),
                ..StudyFacts::default()
            }),
            patient: Some(PatientFacts {
                id: Some(PATIENT_ID.to_owned()),
                name: Some("DOE^JANE".to_owned()),
                birth_date: Some("1954-03-12".to_owned()),
                sex: Some("F".to_owned()),
            }),
        }
    }

    #[test]
    fn debug_shows_no_patient_identifier() {
        let f = findings();
        let shown = format!("{f:?} {f:#?}");
        for phi in [PATIENT_ID, "DOE", "1954", ACCESSION] {
            assert!(!shown.contains(phi), "`{phi}` in {shown}");
        }
        // What is not an identifier is still shown.
        assert!(shown.contains("Tomo 64"), "{shown}");
        assert!(
            shown.contains("accession_number: Some(\"<redacted>\")"),
            "{shown}"
        );
    }

    #[test]
    fn facts_round_trip_through_json_and_old_cases_have_none() {
        let f = findings();
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["patient"]["id"], PATIENT_ID);
        assert_eq!(
            json["study"]["spacing_mm"],
            serde_json::json!([1.5, 1.5, 2.0])
        );
        assert_eq!(
            serde_json::from_value::<CaseFindings>(json.clone()).unwrap(),
            f
        );
        let mut old = json;
        let old_map = old.as_object_mut().unwrap();
        old_map.remove("study");
        old_map.remove("patient");
        old_map.remove("key_images");
        let parsed: CaseFindings = serde_json::from_value(old).unwrap();
        assert_eq!((parsed.study, parsed.patient), (None, None));
        assert!(parsed.key_images.is_empty());
    }

    #[test]
    fn scanner_is_manufacturer_and_model_else_station() {
        let mut s = findings().study.unwrap();
        assert_eq!(s.scanner().as_deref(), Some("ACME Tomo 64"));
        s.scanner_model = None;
        assert_eq!(s.scanner().as_deref(), Some("ACME"));
        s.manufacturer = Some("  ".to_owned());
        s.station_name = Some("CT01".to_owned());
        assert_eq!(s.scanner().as_deref(), Some("CT01"));
    }
}
