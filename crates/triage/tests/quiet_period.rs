//! A study completes once its quiet period has passed since the last instance, or when
//! the force-complete ceiling has passed since its first instance, whichever comes first.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::time::Duration;

use common::{CEILING, QUIET, instance};
use spinewatch_triage::StudyState;
use spinewatch_triage::journal::{REASON_FORCE_CEILING, REASON_QUIET_PERIOD};

const EPSILON: Duration = Duration::from_millis(1);

#[test]
fn completes_once_after_the_quiet_period() {
    let (store, clock) = common::store();
    store.record_instance(&instance("1.2.3", 1)).unwrap();
    clock.advance(Duration::from_secs(1));
    store.record_instance(&instance("1.2.3", 2)).unwrap();

    clock.advance(QUIET - EPSILON);
    assert!(store.complete_due(QUIET, CEILING).unwrap().is_empty());
    assert_eq!(
        store.study("1.2.3").unwrap().unwrap().state,
        StudyState::Received
    );

    clock.advance(EPSILON);
    let due = store.complete_due(QUIET, CEILING).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].study_instance_uid, "1.2.3");
    assert_eq!(due[0].generation, 1);
    assert_eq!(
        due[0].paths,
        vec![instance("1.2.3", 1).path, instance("1.2.3", 2).path]
    );
    // Once: the study is complete now, not due again.
    clock.advance(QUIET);
    assert!(store.complete_due(QUIET, CEILING).unwrap().is_empty());

    let study = store.study("1.2.3").unwrap().unwrap();
    assert_eq!(study.state, StudyState::Complete);
    let last = store.journal("1.2.3").unwrap().pop().unwrap();
    assert_eq!(last.to_state, StudyState::Complete);
    assert_eq!(last.reason.as_deref(), Some(REASON_QUIET_PERIOD));
    assert_eq!(store.backlog().unwrap(), 1);
}

#[test]
fn force_ceiling_completes_a_study_that_keeps_receiving() {
    let (store, clock) = common::store();
    let step = Duration::from_secs(10);
    assert!(step < QUIET);
    let steps = (CEILING.as_secs() / step.as_secs()) as u32;
    for n in 0..=steps {
        store.record_instance(&instance("1.2.3", n)).unwrap();
        let due = store.complete_due(QUIET, CEILING).unwrap();
        if n < steps {
            assert!(due.is_empty(), "completed early, after {n} steps");
            clock.advance(step);
        } else {
            // The ceiling is reached although the last instance is brand new.
            assert_eq!(due.len(), 1);
            assert_eq!(due[0].paths.len(), steps as usize + 1);
        }
    }
    let last = store.journal("1.2.3").unwrap().pop().unwrap();
    assert_eq!(last.reason.as_deref(), Some(REASON_FORCE_CEILING));
}

#[test]
fn other_studies_keep_their_own_quiet_period() {
    let (store, clock) = common::store();
    store.record_instance(&instance("1.2.3", 1)).unwrap();
    clock.advance(QUIET / 2);
    store.record_instance(&instance("1.2.4", 1)).unwrap();
    clock.advance(QUIET / 2);
    let due = store.complete_due(QUIET, CEILING).unwrap();
    let uids: Vec<_> = due.iter().map(|s| s.study_instance_uid.as_str()).collect();
    assert_eq!(uids, ["1.2.3"]);
    clock.advance(QUIET / 2);
    let due = store.complete_due(QUIET, CEILING).unwrap();
    let uids: Vec<_> = due.iter().map(|s| s.study_instance_uid.as_str()).collect();
    assert_eq!(uids, ["1.2.4"]);
}
