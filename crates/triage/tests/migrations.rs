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

/// A file at schema version 1 (issue 5) with a confirmed and an open case is brought to
/// version 2: rows kept, cases numbered in queue order, the confirmed grade and level read
/// from the confirm, the audit trail kept and still append-only.
#[test]
fn version_1_file_is_migrated_with_its_cases_and_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite3");
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(include_str!("../src/migrations/0001_journal_and_queue.sql"))
            .unwrap();
        raw.pragma_update(None, "user_version", 1).unwrap();
        let findings_json = serde_json::to_string(&findings(vec![vertebra("L1", 2, 0.9)])).unwrap();
        for (uid, status, at) in [("2.2", "open", 2000), ("1.1", "confirmed", 1000)] {
            raw.execute(
                "INSERT INTO studies (study_instance_uid, patient_key, state, generation,
                     first_instance_at, last_instance_at, created_at, updated_at)
                 VALUES (?1, 'k', 'queued', 1, ?2, ?2, ?2, ?2)",
                rusqlite::params![uid, at],
            )
            .unwrap();
            raw.execute(
                "INSERT INTO cases (study_instance_uid, patient_key, status, probability,
                     max_grade, findings_json, model_version, execution_provider, generation,
                     created_at, updated_at)
                 VALUES (?1, 'k', ?2, 0.9, 2, ?3, 'm 1', 'cpu', 1, ?4, ?4)",
                rusqlite::params![uid, status, findings_json, at],
            )
            .unwrap();
        }
        raw.execute(
            "INSERT INTO decisions (study_instance_uid, user, action, grade, level, note,
                 previous_status, new_status, at)
             VALUES ('1.1', 'nurse.a', 'confirm', 3, 'L1', 'n', 'open', 'confirmed', 1500)",
            [],
        )
        .unwrap();
    }

    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION as i64);
    let first = store.case("1.1").unwrap().unwrap();
    let second = store.case("2.2").unwrap().unwrap();
    assert_eq!(first.summary.case_number, 1);
    assert_eq!(second.summary.case_number, 2);
    assert_eq!(first.summary.status, CaseStatus::Confirmed);
    assert_eq!(first.summary.confirmed_grade.map(|g| g.number()), Some(3));
    assert_eq!(
        first.summary.confirmed_level.map(|l| l.to_string()),
        Some("L1".into())
    );
    assert_eq!(first.decisions.len(), 1);
    assert_eq!(first.decisions[0].user, "nurse.a");
    assert_eq!(first.decisions[0].note.as_deref(), Some("n"));
    assert_eq!(
        store
            .case_by_number(2)
            .unwrap()
            .unwrap()
            .summary
            .study_instance_uid,
        "2.2"
    );
    drop(store);

    let raw = rusqlite::Connection::open(&path).unwrap();
    let err = raw.execute("DELETE FROM decisions", []).unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    // The widened checks hold: `closed` needs a disposition.
    let err = raw
        .execute(
            "UPDATE cases SET status = 'closed' WHERE study_instance_uid = '2.2'",
            [],
        )
        .unwrap_err();
    assert!(err.to_string().contains("CHECK"), "{err}");
}

/// New cases take the next number; a re-analysis keeps it.
#[test]
fn case_numbers_are_assigned_in_order_and_kept() {
    let (store, clock) = common::store();
    for uid in ["9.1", "9.2", "9.3"] {
        let positive = Outcome::Positive {
            findings: findings(vec![vertebra("L1", 2, 0.93)]),
            study_date: None,
        };
        common::analyse(&store, &clock, uid, positive);
    }
    let numbers = |store: &Store| -> Vec<i64> {
        ["9.1", "9.2", "9.3"]
            .iter()
            .map(|uid| store.case(uid).unwrap().unwrap().summary.case_number)
            .collect()
    };
    assert_eq!(numbers(&store), [1, 2, 3]);
    let again = Outcome::Positive {
        findings: findings(vec![vertebra("L2", 3, 0.99)]),
        study_date: None,
    };
    common::analyse(&store, &clock, "9.2", again);
    assert_eq!(numbers(&store), [1, 2, 3]);
}
