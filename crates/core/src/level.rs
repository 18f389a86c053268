//! Vertebral levels of the thoracolumbar spine.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A thoracic or lumbar vertebra, `T1` (cranial) to `L5` (caudal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum VertebraLevel {
    /// Thoracic vertebra `T1..=T12`.
    Thoracic(u8),
    /// Lumbar vertebra `L1..=L5`.
    Lumbar(u8),
}

impl VertebraLevel {
    /// Number of levels from T1 to L5.
    pub const COUNT: usize = 17;

    /// Every level from T1 to L5, cranial first.
    pub fn all() -> impl DoubleEndedIterator<Item = VertebraLevel> + ExactSizeIterator {
        (0..Self::COUNT).map(|i| Self::from_index(i).expect("index below COUNT"))
    }

    /// Position from T1 (0) to L5 (16).
    pub fn index(self) -> usize {
        match self {
            Self::Thoracic(n) => usize::from(n) - 1,
            Self::Lumbar(n) => 12 + usize::from(n) - 1,
        }
    }

    /// The level at `index` (T1 = 0), if any.
    pub fn from_index(index: usize) -> Option<Self> {
        match index {
            0..=11 => Some(Self::Thoracic(index as u8 + 1)),
            12..=16 => Some(Self::Lumbar((index - 12) as u8 + 1)),
            _ => None,
        }
    }

    /// Whether this is a thoracic level.
    pub fn is_thoracic(self) -> bool {
        matches!(self, Self::Thoracic(_))
    }
}

impl fmt::Display for VertebraLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Thoracic(n) => write!(f, "T{n}"),
            Self::Lumbar(n) => write!(f, "L{n}"),
        }
    }
}

impl FromStr for VertebraLevel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::UnknownLevel(s.to_owned());
        let t = s.trim();
        let (region, number) = t.split_at_checked(1).ok_or_else(bad)?;
        let n: u8 = number.parse().map_err(|_| bad())?;
        match (region.to_ascii_uppercase().as_str(), n) {
            ("T", 1..=12) => Ok(Self::Thoracic(n)),
            ("L", 1..=5) => Ok(Self::Lumbar(n)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for VertebraLevel {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<VertebraLevel> for String {
    fn from(l: VertebraLevel) -> String {
        l.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_level() {
        let names: Vec<String> = VertebraLevel::all().map(|l| l.to_string()).collect();
        assert_eq!(names.first().map(String::as_str), Some("T1"));
        assert_eq!(names.last().map(String::as_str), Some("L5"));
        for (i, name) in names.iter().enumerate() {
            let l: VertebraLevel = name.parse().unwrap();
            assert_eq!(l.index(), i);
        }
    }

    #[test]
    fn refuses_unknown_levels() {
        for bad in ["T0", "T13", "L6", "C7", "S1", "", "L", "Lx"] {
            assert!(bad.parse::<VertebraLevel>().is_err(), "{bad}");
        }
        assert_eq!("l3".parse::<VertebraLevel>(), Ok(VertebraLevel::Lumbar(3)));
    }
}
