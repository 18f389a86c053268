//! `spinewatch-triage`: the durable study journal and the Fracture Liaison nurses' queue,
//! on embedded SQLite, with its HTTP JSON API.
//!
//! ```text
//! ingest --record_instance--> journal --complete_due/resume--> pipeline (claim .. finish)
//!                                                                 | positive
//!                                        nurses <--api-- queue <--+
//! ```
//!
//! - [`store`]: [`Store`], one SQLite file (WAL, `synchronous = FULL` except the
//!   listener's instance rows, which the spool rebuilds), migrations embedded.
//! - [`journal`]: instances and the per-study state machine (`received -> complete ->
//!   analysing -> excluded | not_analysable | analysed -> queued`), exactly once per
//!   generation, resumable after a crash.
//! - [`queue`]: cases, the prioritised worklist, decisions with their audit trail.
//! - [`findings`]: the typed findings stored with a case.
//! - [`auth`]: users (roles `nurse`, `admin`), browser sessions and API tokens, stored
//!   hashed; [`auth::authenticate`] finds who sent a request.
//! - [`report`]: the FLS register of confirmed cases and the per-month counts.
//! - [`retention`]: which studies' spool files are due for removal, and the journal's
//!   two steps around it.
//! - [`api`]: `router(store)`, the queue's JSON API (axum); every route needs a bearer
//!   token or a session.
//! - [`clock`]: where timestamps come from ([`ManualClock`] in tests).
//!
//! No patient identifier is logged or used as a key: studies and cases carry a
//! [`patient_key`], a keyed pseudonym of the PatientID. The patient's identity, for the
//! signed-in nurses only, is in a case's findings ([`PatientFacts`], redacted in `Debug`).
//!
//! ```
//! use std::time::Duration;
//! use spinewatch_triage::{InstanceRecord, Outcome, Recorded, Store, patient_key};
//!
//! # fn main() -> spinewatch_triage::Result<()> {
//! let store = Store::open_in_memory()?;
//! let instance = InstanceRecord {
//!     sop_instance_uid: "1.2.3.1".into(),
//!     study_instance_uid: "1.2.3".into(),
//!     series_instance_uid: "1.2.3.9".into(),
//!     sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
//!     transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
//!     modality: Some("CT".into()),
//!     patient_key: patient_key(b"site secret", "PID-42"),
//!     path: "spool/1.2.3/1.2.3.1.dcm".into(),
//!     bytes: 524_288,
//! };
//! assert!(matches!(store.record_instance(&instance)?, Recorded::New { generation: 1, .. }));
//! assert_eq!(store.record_instance(&instance)?, Recorded::Duplicate);
//!
//! let due = store.complete_due(Duration::ZERO, Duration::from_secs(3600))?;
//! let study = &due[0];
//! store.claim(&study.study_instance_uid, study.generation)?;
//! store.finish(&study.study_instance_uid, study.generation, Outcome::Negative)?;
//! assert!(store.resume()?.is_empty());
//! # Ok(())
//! # }
//! ```

use std::fmt;

use sha2::{Digest, Sha256};

pub mod api;
pub mod auth;
pub mod clock;
pub mod error;
pub mod findings;
pub mod journal;
pub mod queue;
pub mod report;
pub mod retention;
pub mod store;

pub use auth::{ApiToken, Credentials, Identity, Role, SessionLimits, User};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use findings::{CaseFindings, PatientFacts, StudyFacts, VertebraFinding};
pub use journal::{
    InstanceRecord, JournalEntry, Outcome, Recorded, StudyRecord, StudyState, StudyToAnalyse,
};
pub use queue::{
    Action, CaseDetail, CaseFilter, CaseStatus, CaseSummary, Decision, DecisionAction,
    DecisionRecord, Disposition, FlaggedVertebra,
};
pub use report::{MonthCounts, RegisterEntry};
pub use retention::PruneTarget;
pub use store::Store;

/// Hex characters of a [`patient_key`] (64 bits: no collision expected within a site).
pub const PATIENT_KEY_LEN: usize = 16;

/// The pseudonym stored instead of a PatientID: the first [`PATIENT_KEY_LEN`] hex
/// characters of SHA-256(`secret` || PatientID). The PatientID's padding and surrounding
/// spaces are not significant (PS3.5 6.2, LO) and are trimmed first. Without the site
/// secret a key cannot be linked back to a PatientID by trying candidate IDs.
pub fn patient_key(secret: &[u8], patient_id: &str) -> String {
    let id = patient_id.trim_matches(|c: char| c == ' ' || c == '\0');
    let digest = Sha256::new()
        .chain_update(secret)
        .chain_update(id.as_bytes())
        .finalize();
    digest
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(PATIENT_KEY_LEN)
        .map(|nibble| char::from_digit(u32::from(nibble), 16).unwrap_or('0'))
        .collect()
}

/// Shows an error with its whole `source` chain, `outer: inner: ...`, for logs.
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_key_is_a_keyed_pseudonym() {
        let key = patient_key(b"secret", "PID-42");
        assert_eq!(key.len(), PATIENT_KEY_LEN);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!key.contains("42"));
        // DICOM padding is not part of the ID.
        assert_eq!(patient_key(b"secret", "PID-42 "), key);
        assert_ne!(patient_key(b"other secret", "PID-42"), key);
        assert_ne!(patient_key(b"secret", "PID-43"), key);
        // SHA-256("secretPID-42"), computed independently with sha256sum.
        assert_eq!(key, EXPECTED_SECRET_PID_42);
    }

    const EXPECTED_SECRET_PID_42: &str = "be7c0f1b27c2bcfb";

    #[test]
    fn store_is_a_shareable_handle() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Store>();
    }
}
