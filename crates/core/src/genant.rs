//! Genant semi-quantitative grading of vertebral fractures.
//!
//! Genant HK et al., "Vertebral fracture assessment using a semiquantitative technique",
//! J Bone Miner Res 1993;8:1137-48: grade 1 (mild) is a 20-25% reduction of anterior,
//! middle and/or posterior height, grade 2 (moderate) 25-40%, grade 3 (severe) over 40%.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Lower bound of grade 1 height loss (fraction of the reference height).
pub const MILD_MIN_LOSS: f64 = 0.20;
/// Lower bound of grade 2 height loss.
pub const MODERATE_MIN_LOSS: f64 = 0.25;
/// Upper bound of grade 2 height loss; above it is grade 3.
pub const SEVERE_MIN_LOSS: f64 = 0.40;

/// Genant grade 0 (normal) to 3 (severe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum GenantGrade {
    /// Grade 0: under 20% height loss.
    Normal,
    /// Grade 1: 20-25% height loss.
    Mild,
    /// Grade 2: 25-40% height loss.
    Moderate,
    /// Grade 3: over 40% height loss.
    Severe,
}

impl GenantGrade {
    /// The grade of a fractional height loss (0.3 = 30%).
    pub fn from_height_loss(loss: f64) -> Self {
        if loss < MILD_MIN_LOSS {
            Self::Normal
        } else if loss < MODERATE_MIN_LOSS {
            Self::Mild
        } else if loss <= SEVERE_MIN_LOSS {
            Self::Moderate
        } else {
            Self::Severe
        }
    }

    /// The grade's number, 0..=3.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// Range of height loss that defines this grade: `[lo, hi)` for grades 0 and 1,
    /// `[lo, hi]` for grade 2 and `(lo, 1]` for grade 3.
    pub fn loss_range(self) -> (f64, f64) {
        match self {
            Self::Normal => (0.0, MILD_MIN_LOSS),
            Self::Mild => (MILD_MIN_LOSS, MODERATE_MIN_LOSS),
            Self::Moderate => (MODERATE_MIN_LOSS, SEVERE_MIN_LOSS),
            Self::Severe => (SEVERE_MIN_LOSS, 1.0),
        }
    }

    /// Whether this is a fracture (grade 1 or more).
    pub fn is_fracture(self) -> bool {
        self != Self::Normal
    }
}

impl TryFrom<u8> for GenantGrade {
    type Error = Error;
    fn try_from(n: u8) -> Result<Self, Error> {
        match n {
            0 => Ok(Self::Normal),
            1 => Ok(Self::Mild),
            2 => Ok(Self::Moderate),
            3 => Ok(Self::Severe),
            _ => Err(Error::UnknownGrade(n.to_string())),
        }
    }
}

impl From<GenantGrade> for u8 {
    fn from(g: GenantGrade) -> u8 {
        g.number()
    }
}

impl FromStr for GenantGrade {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        s.trim()
            .parse::<u8>()
            .map_err(|_| Error::UnknownGrade(s.to_owned()))?
            .try_into()
    }
}

impl fmt::Display for GenantGrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// Shape of a vertebral body's deformity, which says which height is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Morphology {
    /// Anterior height reduced against the posterior height.
    Wedge,
    /// Middle height reduced (both endplates depressed centrally).
    Biconcave,
    /// All heights reduced against the expected (neighbours') height.
    Crush,
}

impl Morphology {
    /// All morphologies.
    pub const ALL: [Morphology; 3] = [Self::Wedge, Self::Biconcave, Self::Crush];

    /// Fractional height loss this morphology is graded by.
    ///
    /// Wedge: `1 - Ha/Hp`; biconcave: `1 - Hm/Hp`; crush: `1 - Hp/Href` with `Href`
    /// the height expected from the neighbouring vertebrae.
    pub fn height_loss(self, heights: Heights, reference_height_mm: f64) -> f64 {
        match self {
            Self::Wedge => 1.0 - heights.anterior / heights.posterior,
            Self::Biconcave => 1.0 - heights.middle / heights.posterior,
            Self::Crush => 1.0 - heights.posterior / reference_height_mm,
        }
    }
}

impl FromStr for Morphology {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wedge" => Ok(Self::Wedge),
            "biconcave" => Ok(Self::Biconcave),
            "crush" => Ok(Self::Crush),
            _ => Err(Error::UnknownMorphology(s.to_owned())),
        }
    }
}

impl fmt::Display for Morphology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Wedge => "wedge",
            Self::Biconcave => "biconcave",
            Self::Crush => "crush",
        })
    }
}

/// Anterior, middle and posterior vertebral body heights, in mm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Heights {
    /// Height near the anterior cortex.
    pub anterior: f64,
    /// Height at the centre of the body.
    pub middle: f64,
    /// Height near the posterior cortex.
    pub posterior: f64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn grades_follow_genant_thresholds() {
        assert_eq!(GenantGrade::from_height_loss(0.10), GenantGrade::Normal);
        assert_eq!(GenantGrade::from_height_loss(0.199), GenantGrade::Normal);
        assert_eq!(GenantGrade::from_height_loss(0.20), GenantGrade::Mild);
        assert_eq!(GenantGrade::from_height_loss(0.249), GenantGrade::Mild);
        assert_eq!(GenantGrade::from_height_loss(0.25), GenantGrade::Moderate);
        assert_eq!(GenantGrade::from_height_loss(0.40), GenantGrade::Moderate);
        assert_eq!(GenantGrade::from_height_loss(0.41), GenantGrade::Severe);
        for g in 0..4u8 {
            let grade = GenantGrade::try_from(g).unwrap();
            let (lo, hi) = grade.loss_range();
            if grade != GenantGrade::Severe {
                // Grade 3 is "over 40%": its lower bound itself is still grade 2.
                assert_eq!(GenantGrade::from_height_loss(lo), grade);
            }
            assert_eq!(GenantGrade::from_height_loss((lo + hi) / 2.0), grade);
        }
        assert!(GenantGrade::try_from(4).is_err());
    }

    #[test]
    fn height_loss_by_morphology() {
        let h = Heights {
            anterior: 15.0,
            middle: 18.0,
            posterior: 20.0,
        };
        assert!((Morphology::Wedge.height_loss(h, 25.0) - 0.25).abs() < 1e-12);
        assert!((Morphology::Biconcave.height_loss(h, 25.0) - 0.10).abs() < 1e-12);
        assert!((Morphology::Crush.height_loss(h, 25.0) - 0.20).abs() < 1e-12);
        assert_eq!("Crush".parse::<Morphology>(), Ok(Morphology::Crush));
    }
}
