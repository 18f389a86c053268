//! Helpers shared by the triage scenarios: a manual clock, instances and findings.

#![allow(clippy::unwrap_used, dead_code)] // test helpers: a panic is the failure report; not every scenario uses every helper

use std::time::Duration;

use spinewatch_core::{GenantGrade, Vec3, VertebraLevel};
use spinewatch_triage::{
    CaseFindings, InstanceRecord, ManualClock, Outcome, Recorded, Role, Store, StudyState,
    VertebraFinding, patient_key,
};
use time::OffsetDateTime;
use time::macros::datetime;

/// Quiet period the scenarios use.
pub const QUIET: Duration = Duration::from_secs(30);
/// Force-complete ceiling the scenarios use.
pub const CEILING: Duration = Duration::from_secs(120);

/// When every scenario starts.
pub fn t0() -> OffsetDateTime {
    datetime!(2025-03-03 08:00 UTC)
}

/// An in-memory store on a manual clock standing at [`t0`].
pub fn store() -> (Store, ManualClock) {
    let clock = ManualClock::new(t0());
    let store = Store::open_in_memory().unwrap().with_clock(clock.clone());
    (store, clock)
}

/// Instance `n` of `study`, in one series.
pub fn instance(study: &str, n: u32) -> InstanceRecord {
    InstanceRecord {
        sop_instance_uid: format!("{study}.1.{n}"),
        study_instance_uid: study.to_owned(),
        series_instance_uid: format!("{study}.1"),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".to_owned(),
        transfer_syntax_uid: "1.2.840.10008.1.2.1".to_owned(),
        modality: Some("CT".to_owned()),
        patient_key: patient_key(b"test secret", &format!("patient of {study}")),
        path: format!("spool/{study}/{study}.1.{n}.dcm").into(),
        bytes: 1000 + u64::from(n),
    }
}

/// A vertebra at `level` with `grade` and `probability`; flagged when the grade is not 0.
pub fn vertebra(level: &str, grade: u8, probability: f64) -> VertebraFinding {
    let level: VertebraLevel = level.parse().unwrap();
    let grade = GenantGrade::try_from(grade).unwrap();
    VertebraFinding {
        label: Some(level),
        centre_mm: Vec3::new(0.0, 10.0, -100.0 - 30.0 * level.index() as f64),
        probability,
        flagged: grade.is_fracture(),
        grade,
        morphometry_grade: Some(grade),
        heights_mm: None,
        height_loss: None,
    }
}

/// Findings of `vertebrae`; the study probability is the largest vertebra probability.
pub fn findings(vertebrae: Vec<VertebraFinding>) -> CaseFindings {
    CaseFindings {
        model_version: "vertebra-fracture 1.0.0".to_owned(),
        execution_provider: "cpu".to_owned(),
        probability: vertebrae.iter().map(|v| v.probability).fold(0.0, f64::max),
        vertebrae,
        key_images: vec!["key/L1.png".to_owned()],
        study: None,
        patient: None,
    }
}

/// A real argon2id PHC hash (of `triage-tests-password`, made by `spinewatch user add`):
/// the store keeps hashes as given and these tests never verify one.
pub const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$EUU5ivUupSHaBBkGTxu8+A$glak4VisDiFtwBoq3qAH2tsukgnBoFQWTff8s27f7cY";

/// Adds user `name` (role nurse, [`PASSWORD_HASH`]) and returns an API token of theirs.
pub fn api_token(store: &Store, name: &str) -> String {
    store.add_user(name, Role::Nurse, PASSWORD_HASH).unwrap();
    store.create_token(name, Some("tests")).unwrap().1
}

/// Records one instance of `study`, lets the quiet period pass, claims the study and
/// finishes it with `outcome`; returns the generation.
pub fn analyse(store: &Store, clock: &ManualClock, study: &str, outcome: Outcome) -> i64 {
    let n = store.study(study).unwrap().map_or(0, |s| s.instance_count) as u32;
    assert!(matches!(
        store.record_instance(&instance(study, n + 1)).unwrap(),
        Recorded::New { .. }
    ));
    clock.advance(QUIET);
    let due = store.complete_due(QUIET, CEILING).unwrap();
    let s = due
        .iter()
        .find(|s| s.study_instance_uid == study)
        .expect("the study completes after the quiet period");
    store.claim(study, s.generation).unwrap();
    let state = store.finish(study, s.generation, outcome).unwrap();
    assert!(state.is_outcome());
    assert_ne!(state, StudyState::Analysing);
    s.generation
}
