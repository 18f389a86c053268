//! Which series of a study to reconstruct, with a reason for every series set aside.

use serde::Serialize;

use crate::header::{CT_IMAGE_STORAGE, ENHANCED_CT_IMAGE_STORAGE};
use crate::series::{SeriesHeaders, SortedSeries};

/// Rules for the choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectRules {
    /// Thicker slices than this are not reconstructed, mm.
    pub max_slice_thickness_mm: f64,
    /// Fewer slices than this cannot cover a vertebra.
    pub min_slices: usize,
    /// Largest angle between the image normal and the patient's long axis, degrees
    /// (axial images, gantry tilt included).
    pub max_axial_angle_deg: f64,
}

impl Default for SelectRules {
    fn default() -> Self {
        Self {
            max_slice_thickness_mm: 3.0,
            min_slices: 20,
            max_axial_angle_deg: 35.0,
        }
    }
}

/// Why a series was set aside.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    /// Not a CT image (e.g. a Secondary Capture dose report).
    NotCtImage {
        /// Its SOP Class UID.
        sop_class_uid: String,
    },
    /// A projection scout.
    Localizer,
    /// DERIVED images (reformats, MIPs, summaries).
    Derived,
    /// The image plane is not axial.
    NotAxial {
        /// Angle of the normal to the long axis, degrees.
        angle_deg: f64,
    },
    /// Slices thicker than the rules allow.
    TooThick {
        /// SliceThickness, mm.
        thickness_mm: f64,
    },
    /// Too few slices.
    TooFewSlices {
        /// How many.
        slices: usize,
    },
    /// The slices do not form one regular volume.
    Geometry {
        /// What is wrong.
        problem: String,
    },
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotCtImage { sop_class_uid } => {
                write!(f, "not a CT image (SOP class {sop_class_uid})")
            }
            Self::Localizer => f.write_str("localizer"),
            Self::Derived => f.write_str("derived images"),
            Self::NotAxial { angle_deg } => write!(f, "not axial ({angle_deg:.0} degrees off)"),
            Self::TooThick { thickness_mm } => write!(f, "slices too thick ({thickness_mm} mm)"),
            Self::TooFewSlices { slices } => write!(f, "too few slices ({slices})"),
            Self::Geometry { problem } => write!(f, "irregular geometry: {problem}"),
        }
    }
}

/// The verdict on one series.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesVerdict {
    /// Series Instance UID, or `(no Series Instance UID)` when its files carry none.
    pub series: String,
    /// SeriesNumber.
    pub number: Option<i32>,
    /// SeriesDescription.
    pub description: Option<String>,
    /// Instances.
    pub instances: usize,
    /// ImageType values of its first instance.
    pub image_type: Vec<String>,
    /// SliceThickness, mm.
    pub thickness_mm: Option<f64>,
    /// `None` when it is a candidate.
    pub rejection: Option<Rejection>,
}

/// The outcome of choosing a series.
#[derive(Debug, Clone)]
pub struct Choice {
    /// Every series with its verdict, in SeriesNumber order.
    pub verdicts: Vec<SeriesVerdict>,
    /// The chosen series, sorted, and its index in `verdicts`.
    pub chosen: Option<(usize, SortedSeries)>,
    /// Set when the chosen series is the best there is but breaks a rule of adequacy
    /// (too thick, too few slices): the study is then not analysable for that reason.
    pub inadequate: Option<Rejection>,
    /// Why the chosen one won.
    pub why: String,
}

/// Chooses among `series`. Candidates are CT images, not localizers, ORIGINAL, axial,
/// with regular geometry; among them those thin enough with enough slices come first,
/// then PRIMARY before SECONDARY, the thinnest, the most slices. When no candidate is
/// adequate the best one is still chosen, with the rule it breaks in
/// [`Choice::inadequate`].
pub fn choose(series: &[SeriesHeaders], rules: &SelectRules) -> Choice {
    let mut verdicts = Vec::with_capacity(series.len());
    let mut candidates: Vec<(usize, SortedSeries, bool, Option<Rejection>)> = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let h = s.first();
        let hard = (|| {
            if h.sop_class_uid != CT_IMAGE_STORAGE && h.sop_class_uid != ENHANCED_CT_IMAGE_STORAGE {
                return Some(Rejection::NotCtImage {
                    sop_class_uid: h.sop_class_uid.clone(),
                });
            }
            if h.is_localizer() {
                return Some(Rejection::Localizer);
            }
            if !h.image_type.is_empty() && !h.is_original() {
                return Some(Rejection::Derived);
            }
            if let Some(n) = h.normal() {
                let angle = n.z.abs().clamp(0.0, 1.0).acos().to_degrees();
                if angle > rules.max_axial_angle_deg {
                    return Some(Rejection::NotAxial { angle_deg: angle });
                }
            }
            None
        })();
        let rejection = match hard {
            Some(r) => Some(r),
            None => {
                let soft = match h.slice_thickness_mm {
                    Some(t) if t > rules.max_slice_thickness_mm => {
                        Some(Rejection::TooThick { thickness_mm: t })
                    }
                    _ if s.instances.len() < rules.min_slices => Some(Rejection::TooFewSlices {
                        slices: s.instances.len(),
                    }),
                    _ => None,
                };
                match SortedSeries::new(s) {
                    Ok(sorted) => {
                        candidates.push((i, sorted, h.is_primary(), soft.clone()));
                        soft
                    }
                    Err(e) => Some(Rejection::Geometry {
                        problem: e.to_string(),
                    }),
                }
            }
        };
        verdicts.push(SeriesVerdict {
            series: s.label(),
            number: h.series_number,
            description: h.series_description.clone(),
            instances: s.instances.len(),
            image_type: h.image_type.clone(),
            thickness_mm: h.slice_thickness_mm,
            rejection,
        });
    }
    let n_candidates = candidates.iter().filter(|c| c.3.is_none()).count();
    candidates.sort_by(|a, b| {
        a.3.is_some()
            .cmp(&b.3.is_some())
            .then(b.2.cmp(&a.2))
            .then(a.1.spacing_mm[2].total_cmp(&b.1.spacing_mm[2]))
            .then(b.1.slices.len().cmp(&a.1.slices.len()))
    });
    let best = candidates.into_iter().next();
    let inadequate = best.as_ref().and_then(|c| c.3.clone());
    let chosen = best.map(|(i, s, _, _)| (i, s));
    let why = match (&chosen, &inadequate) {
        (None, _) => "no series is an axial, original CT image series".to_owned(),
        (Some((_, s)), Some(r)) => format!(
            "the best there is, but not adequate ({r}): {} slices at {:.2} mm",
            s.slices.len(),
            s.spacing_mm[2]
        ),
        (Some((_, s)), None) if n_candidates == 1 => {
            format!(
                "the only candidate: {} slices at {:.2} mm",
                s.slices.len(),
                s.spacing_mm[2]
            )
        }
        (Some((_, s)), None) => format!(
            "best of {n_candidates} candidates (primary first, then thinnest, then most slices): {} slices at {:.2} mm",
            s.slices.len(),
            s.spacing_mm[2]
        ),
    };
    Choice {
        verdicts,
        chosen,
        inadequate,
        why,
    }
}
