//! The database is created with its schema on a new file, survives being closed and
//! reopened by another `Store`, and refuses a file from a newer build.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use common::{findings, vertebra};
use spinewatch_triage::store::SCHEMA_VERSION;
use spinewatch_triage::{
    Action, CaseStatus, Decision, Error, ManualClock, Outcome, Store, StudyState,
};

#[test]
fn migrates_a_new_file_and_keeps_data_across_stores() {
    let dir = tempfile::tempdir().unwrap();
    // The directory does not exist yet: open creates it.
    let path = dir.path().join("var/lib/spinewatch/triage.sqlite3");
    let clock = ManualClock::new(common::t0());

    let found = findings(vec![vertebra("T12", 0, 0.1), vertebra("L1", 2, 0.93)]);
    let (journal, case) = {
        let store = Store::open(&path).unwrap().with_clock(clock.clone());
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION as i64);
        let positive = Outcome::Positive {
            findings: found.clone(),
            study_date: None,
        };
        common::analyse(&store, &clock, "1.2.3", positive);
        (
            store.journal("1.2.3").unwrap(),
            store.case("1.2.3").unwrap().unwrap(),
        )
    };

    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION as i64);
    let study = store.study("1.2.3").unwrap().unwrap();
    assert_eq!(study.state, StudyState::Queued);
    assert_eq!(study.analysed_count, 1);
    assert_eq!(study.instance_count, 1);
    assert_eq!(store.journal("1.2.3").unwrap(), journal);
    let reread = store.case("1.2.3").unwrap().unwrap();
    assert_eq!(reread, case);
    assert_eq!(reread.summary.status, CaseStatus::Open);
    assert_eq!(reread.findings, found);

    // Durability settings are on the file, not only on the connection that made it.
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn refuses_a_database_from_a_newer_build() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triage.sqlite3");
    drop(Store::open(&path).unwrap());
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    match Store::open(&path) {
        Err(Error::NewerSchema { found, supported }) => {
            assert_eq!((found, supported), (99, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[test]
fn journal_and_decisions_are_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triage.sqlite3");
    let clock = ManualClock::new(common::t0());
    let store = Store::open(&path).unwrap().with_clock(clock.clone());
    let positive = Outcome::Positive {
        findings: findings(vec![vertebra("L1", 2, 0.93)]),
        study_date: None,
    };
    common::analyse(&store, &clock, "1.2.3", positive);
    let dismiss = Decision {
        user: "nurse.a".to_owned(),
        action: Action::Dismiss,
        note: None,
    };
    store.decide("1.2.3", &dismiss).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        "UPDATE journal SET to_state = 'received'",
        "DELETE FROM journal",
        "UPDATE decisions SET user = 'someone else'",
        "DELETE FROM decisions",
    ] {
        let err = raw.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.journal("1.2.3").unwrap().len(), 5);
    assert_eq!(store.case("1.2.3").unwrap().unwrap().decisions.len(), 1);
}
