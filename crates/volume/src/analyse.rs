//! The volume stage as one call: files of a study in, the chosen series, its HU volume
//! and its spine out, or "not analysable" with a reason.

use std::path::PathBuf;

use serde::Serialize;

use crate::header::{self, Scan};
use crate::select::{self, Choice, SelectRules};
use crate::series::{self, SortedSeries};
use crate::spine::{self, NoSpine, Spine};
use crate::{HuVolume, Result};

/// Why a study cannot be analysed: a first-class outcome, counted and explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NotAnalysable {
    /// No series is an axial original CT image series (localizers, captures, reformats
    /// or irregular slices only).
    NoSuitableSeries {
        /// Why, from the series choice.
        detail: String,
    },
    /// The best series has slices thicker than the rules allow.
    SeriesTooThick {
        /// Its SliceThickness, mm.
        thickness_mm: f64,
    },
    /// The best series has too few slices to hold a vertebra.
    TooFewSlices {
        /// How many.
        slices: usize,
    },
    /// The chosen series' pixels could not be decoded.
    CorruptPixelData {
        /// The decoder's error.
        detail: String,
    },
    /// No spine was found in the chosen series.
    NoSpine {
        /// What the localisation found.
        detail: NoSpine,
    },
}

impl std::fmt::Display for NotAnalysable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSuitableSeries { detail } => write!(f, "no suitable series: {detail}"),
            Self::SeriesTooThick { thickness_mm } => {
                write!(f, "series too thick ({thickness_mm} mm)")
            }
            Self::TooFewSlices { slices } => write!(f, "too few slices ({slices})"),
            Self::CorruptPixelData { detail } => write!(f, "corrupt pixel data: {detail}"),
            Self::NoSpine { detail } => write!(f, "no spine: {detail}"),
        }
    }
}

/// What the volume stage made of a study.
#[derive(Debug)]
pub struct Analysis {
    /// The header scan (files read, skipped, unreadable).
    pub scan_summary: ScanSummary,
    /// The series choice with a verdict per series.
    pub choice: Choice,
    /// The chosen series' HU volume.
    pub volume: Option<HuVolume>,
    /// Its spine.
    pub spine: Option<Spine>,
    /// Set when the study cannot be analysed.
    pub not_analysable: Option<NotAnalysable>,
}

impl Analysis {
    /// The chosen series, sorted.
    pub fn series(&self) -> Option<&SortedSeries> {
        self.choice.chosen.as_ref().map(|(_, s)| s)
    }
}

/// Counts from the header scan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanSummary {
    /// DICOM files read.
    pub dicom_files: usize,
    /// Other files skipped.
    pub other_files: usize,
    /// DICOM files that could not be parsed, with the reason.
    pub unreadable: Vec<String>,
    /// Distinct Study Instance UIDs among the files.
    pub study_instance_uids: Vec<String>,
}

/// Reads the files below `paths` as one study and runs the volume stage. I/O errors on
/// the paths themselves are errors; everything about the content is an outcome.
pub fn analyse(paths: &[PathBuf], rules: &SelectRules) -> Result<Analysis> {
    let mut analysis = prepare(paths, rules)?;
    reconstruct(&mut analysis);
    Ok(analysis)
}

/// The header-only half of [`analyse`]: reads the headers below `paths` and chooses the
/// series, so that a study can be turned away (eligibility) before any pixel is decoded.
pub fn prepare(paths: &[PathBuf], rules: &SelectRules) -> Result<Analysis> {
    let Scan {
        headers,
        not_dicom,
        unreadable,
    } = header::scan(paths)?;
    let mut studies: Vec<String> = headers
        .iter()
        .filter_map(|h| h.study_instance_uid.clone())
        .collect();
    studies.sort();
    studies.dedup();
    let scan_summary = ScanSummary {
        dicom_files: headers.len(),
        other_files: not_dicom,
        unreadable: unreadable.iter().map(|e| format!("{e}")).collect(),
        study_instance_uids: studies,
    };
    let choice = select::choose(&series::group(headers), rules);
    let mut analysis = Analysis {
        scan_summary,
        choice,
        volume: None,
        spine: None,
        not_analysable: None,
    };
    if analysis.choice.chosen.is_none() {
        analysis.not_analysable = Some(NotAnalysable::NoSuitableSeries {
            detail: analysis.choice.why.clone(),
        });
        return Ok(analysis);
    }
    match &analysis.choice.inadequate {
        Some(select::Rejection::TooThick { thickness_mm }) => {
            analysis.not_analysable = Some(NotAnalysable::SeriesTooThick {
                thickness_mm: *thickness_mm,
            });
        }
        Some(select::Rejection::TooFewSlices { slices }) => {
            analysis.not_analysable = Some(NotAnalysable::TooFewSlices { slices: *slices });
        }
        _ => {}
    }
    Ok(analysis)
}

/// The pixel half of [`analyse`]: decodes the chosen series and locates the spine,
/// unless [`prepare`] already found the study not analysable.
pub fn reconstruct(analysis: &mut Analysis) {
    if analysis.not_analysable.is_some() {
        return;
    }
    let Some((_, sorted)) = analysis.choice.chosen.as_ref() else {
        return;
    };
    let volume = match HuVolume::decode(sorted) {
        Ok(v) => v,
        Err(e) => {
            analysis.not_analysable = Some(NotAnalysable::CorruptPixelData {
                detail: format!("{e}"),
            });
            return;
        }
    };
    match spine::locate(&volume) {
        Ok(s) => analysis.spine = Some(s),
        Err(detail) => analysis.not_analysable = Some(NotAnalysable::NoSpine { detail }),
    }
    analysis.volume = Some(volume);
}
