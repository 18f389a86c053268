//! Exactly once across a crash: a study claimed but not finished when the process died is
//! handed back by `resume` after a restart, finished once, and never handed back again.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use common::{CEILING, QUIET, findings, instance, vertebra};
use spinewatch_triage::journal::REASON_RESUMED;
use spinewatch_triage::{CaseStatus, Error, ManualClock, Outcome, Store, StudyState};

#[test]
fn claimed_study_is_resumed_after_a_crash_and_finished_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triage.sqlite3");
    let clock = ManualClock::new(common::t0());
    {
        let store = Store::open(&path).unwrap().with_clock(clock.clone());
        // A study finished before the crash: never handed back.
        common::analyse(&store, &clock, "1.2.5", Outcome::Negative);
        store.record_instance(&instance("1.2.3", 1)).unwrap();
        // A second study completed but not yet claimed at the crash.
        store.record_instance(&instance("1.2.4", 1)).unwrap();
        clock.advance(QUIET);
        let due = store.complete_due(QUIET, CEILING).unwrap();
        assert_eq!(due.len(), 2);
        store.claim("1.2.3", 1).unwrap();
        // The process dies here: no finish, the store is dropped.
    }

    clock.advance(QUIET);
    let store = Store::open(&path).unwrap().with_clock(clock.clone());
    assert_eq!(store.backlog().unwrap(), 2);
    let resumed = store.resume().unwrap();
    let uids: Vec<_> = resumed
        .iter()
        .map(|s| (s.study_instance_uid.as_str(), s.generation))
        .collect();
    assert_eq!(uids, [("1.2.3", 1), ("1.2.4", 1)]);
    assert_eq!(resumed[0].paths, vec![instance("1.2.3", 1).path]);
    let last = store.journal("1.2.3").unwrap().pop().unwrap();
    assert_eq!(
        (last.from_state, last.to_state, last.reason.as_deref()),
        (
            Some(StudyState::Analysing),
            StudyState::Complete,
            Some(REASON_RESUMED)
        )
    );

    let positive = || Outcome::Positive {
        findings: findings(vec![vertebra("L2", 3, 0.97)]),
        study_date: None,
    };
    for s in &resumed {
        store.claim(&s.study_instance_uid, s.generation).unwrap();
        store
            .finish(&s.study_instance_uid, s.generation, positive())
            .unwrap();
    }
    // A second finish of the same generation (a duplicate worker, a retry) is refused.
    match store.finish("1.2.3", 1, positive()) {
        Err(Error::AlreadyFinished {
            generation: 1,
            state: StudyState::Queued,
            ..
        }) => {}
        other => panic!("expected AlreadyFinished, got {other:?}"),
    }
    assert!(matches!(
        store.claim("1.2.3", 1),
        Err(Error::AlreadyFinished { .. })
    ));
    let study = store.study("1.2.3").unwrap().unwrap();
    assert_eq!((study.state, study.analysed_count), (StudyState::Queued, 1));
    let case = store.case("1.2.3").unwrap().unwrap();
    assert_eq!(case.summary.status, CaseStatus::Open);
    assert!(case.decisions.is_empty());

    assert!(store.resume().unwrap().is_empty());
    assert_eq!(store.backlog().unwrap(), 0);
    // And after another restart.
    drop(store);
    assert!(Store::open(&path).unwrap().resume().unwrap().is_empty());
}
