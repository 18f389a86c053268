//! DICOM unique identifiers (PS3.5 section 9.1).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest UID allowed by PS3.5 section 9.1.
pub const MAX_UID_LEN: usize = 64;

/// A validated DICOM UID: digits and dots, at most 64 characters, no empty component
/// and no component with a leading zero. Safe to use as a file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Uid(String);

impl Uid {
    /// Validates `s` (trailing NUL or space padding, as written in DICOM, is removed).
    pub fn new(s: &str) -> Result<Self, Error> {
        let t = s.trim_end_matches(['\0', ' ']);
        let bad = |why| Error::InvalidUid {
            uid: t.to_owned(),
            why,
        };
        if t.is_empty() {
            return Err(bad("empty"));
        }
        if t.len() > MAX_UID_LEN {
            return Err(bad("longer than 64 characters"));
        }
        for component in t.split('.') {
            if component.is_empty() {
                return Err(bad("empty component"));
            }
            if !component.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("only digits and dots are allowed"));
            }
            if component.len() > 1 && component.starts_with('0') {
                return Err(bad("component with a leading zero"));
            }
        }
        Ok(Self(t.to_owned()))
    }

    /// The UID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A UID under the `2.25` root (PS3.5 B.2) from a 128-bit number, as UUID-derived
    /// UIDs are written.
    pub fn from_u128(n: u128) -> Self {
        Self(format!("2.25.{n}"))
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Uid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for Uid {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::new(&s)
    }
}

impl From<Uid> for String {
    fn from(u: Uid) -> String {
        u.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn validates_per_ps3_5() {
        assert!(Uid::new("1.2.840.10008.5.1.4.1.1.2").is_ok());
        assert_eq!(Uid::new("1.2.3\0").unwrap().as_str(), "1.2.3");
        for bad in ["", "1..2", "1.02", "1.2.a", ".1", "1.2.", &"1.".repeat(40)] {
            assert!(Uid::new(bad).is_err(), "{bad:?}");
        }
        let u = Uid::from_u128(u128::MAX);
        assert!(Uid::new(u.as_str()).is_ok());
    }
}
