//! Which studies spinewatch analyses: CT of a patient aged 50 or more, the population in
//! which opportunistic screening for osteoporotic vertebral fractures is recommended.
//!
//! The age comes from PatientAge when present and readable, else from PatientBirthDate
//! against StudyDate (whole years, as a birthday counts). A study whose age cannot be
//! told is not eligible by default (an anonymised archive): `spinewatch scan --all`
//! analyses every CT study whatever the age.

use serde::Serialize;

use crate::header::InstanceHeader;

/// Youngest patient age analysed, years.
pub const MIN_AGE_YEARS: f64 = 50.0;

/// Where an age came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeSource {
    /// PatientAge.
    PatientAge,
    /// PatientBirthDate and StudyDate.
    BirthDate,
}

/// The verdict on one study.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Eligibility {
    /// Analysed.
    Eligible {
        /// Age at the study, years (`None` when unknown and all ages were asked for).
        age_years: Option<f64>,
        /// Where it came from.
        source: Option<AgeSource>,
    },
    /// Not a CT study.
    NotCt {
        /// The Modality found.
        modality: Option<String>,
    },
    /// The patient is younger than the youngest age analysed ([`MIN_AGE_YEARS`] by
    /// default).
    TooYoung {
        /// Age at the study, years.
        age_years: f64,
    },
    /// No readable age.
    AgeUnknown,
}

impl Eligibility {
    /// Whether the study is analysed.
    pub fn is_eligible(&self) -> bool {
        matches!(self, Self::Eligible { .. })
    }

    /// The reason key of an exclusion, for counts and metrics.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Eligible { .. } => None,
            Self::NotCt { .. } => Some("not_ct"),
            Self::TooYoung { .. } => Some("age"),
            Self::AgeUnknown => Some("age_unknown"),
        }
    }
}

/// PatientAge (`nnnY`, `nnnM`, `nnnW`, `nnnD`) in years.
pub fn parse_patient_age(s: &str) -> Option<f64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: f64 = n.parse().ok()?;
    let years = match unit.to_ascii_uppercase().as_str() {
        "Y" => n,
        "M" => n / 12.0,
        "W" => n * 7.0 / 365.25,
        "D" => n / 365.25,
        _ => return None,
    };
    (0.0..=150.0).contains(&years).then_some(years)
}

/// A DICOM date `YYYYMMDD` as (year, month, day).
fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let s = s.trim();
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y = s[0..4].parse().ok()?;
    let m = s[4..6].parse().ok()?;
    let d = s[6..8].parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

/// Whole years from `birth` to `study` (both `YYYYMMDD`).
pub fn age_from_dates(birth: &str, study: &str) -> Option<f64> {
    let (by, bm, bd) = parse_date(birth)?;
    let (sy, sm, sd) = parse_date(study)?;
    let mut years = sy - by;
    if (sm, sd) < (bm, bd) {
        years -= 1;
    }
    (0..=150).contains(&years).then_some(f64::from(years))
}

/// The patient's age at the study from one instance's header.
pub fn age(h: &InstanceHeader) -> Option<(f64, AgeSource)> {
    if let Some(a) = h.patient_age.as_deref().and_then(parse_patient_age) {
        return Some((a, AgeSource::PatientAge));
    }
    let (b, s) = (h.patient_birth_date.as_deref()?, h.study_date.as_deref()?);
    age_from_dates(b, s).map(|a| (a, AgeSource::BirthDate))
}

/// The verdict for a study whose chosen series starts with `h`; `all_ages` accepts any
/// CT study whatever the age.
pub fn check(h: &InstanceHeader, all_ages: bool) -> Eligibility {
    if all_ages {
        check_with(h, 0.0, true)
    } else {
        check_with(h, MIN_AGE_YEARS, false)
    }
}

/// The verdict with the youngest age analysed (`min_age_years`) and whether a study with
/// no readable age is analysed (`analyse_unknown_age`), as `serve`'s config sets them.
pub fn check_with(
    h: &InstanceHeader,
    min_age_years: f64,
    analyse_unknown_age: bool,
) -> Eligibility {
    if h.modality.as_deref() != Some("CT") {
        return Eligibility::NotCt {
            modality: h.modality.clone(),
        };
    }
    match age(h) {
        Some((a, source)) if a >= min_age_years => Eligibility::Eligible {
            age_years: Some(a),
            source: Some(source),
        },
        Some((a, _)) => Eligibility::TooYoung { age_years: a },
        None if analyse_unknown_age => Eligibility::Eligible {
            age_years: None,
            source: None,
        },
        None => Eligibility::AgeUnknown,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn patient_age_units() {
        assert_eq!(parse_patient_age("065Y"), Some(65.0));
        assert_eq!(parse_patient_age("006M"), Some(0.5));
        assert!(parse_patient_age("052W").unwrap() < 1.0);
        assert_eq!(parse_patient_age("65"), None);
        assert_eq!(parse_patient_age("Y"), None);
        assert_eq!(parse_patient_age(""), None);
    }

    #[test]
    fn age_from_birth_date_counts_birthdays() {
        assert_eq!(age_from_dates("19751121", "20251121"), Some(50.0));
        assert_eq!(age_from_dates("19751122", "20251121"), Some(49.0));
        assert_eq!(age_from_dates("1975112", "20251121"), None);
        assert_eq!(age_from_dates("20300101", "20251121"), None);
    }
}
