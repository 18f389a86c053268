//! The same SOP Instance UID twice is stored once and re-opens nothing.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use common::{CEILING, QUIET, instance};
use spinewatch_triage::{Outcome, Recorded, StudyState};

#[test]
fn duplicate_sop_instance_is_counted_once() {
    let (store, clock) = common::store();
    let first = instance("1.2.3", 1);
    assert_eq!(
        store.record_instance(&first).unwrap(),
        Recorded::New {
            generation: 1,
            reopened: false
        }
    );
    clock.advance(QUIET / 2);
    // Same SOP Instance UID, even if the peer sends it to another spool path.
    let mut again = first.clone();
    again.path = "spool/elsewhere.dcm".into();
    assert_eq!(store.record_instance(&again).unwrap(), Recorded::Duplicate);

    let study = store.study("1.2.3").unwrap().unwrap();
    assert_eq!(study.instance_count, 1);
    // The duplicate did not extend the quiet period.
    assert_eq!(study.last_instance_at, common::t0());

    clock.advance(QUIET / 2);
    let due = store.complete_due(QUIET, CEILING).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].paths, vec![first.path.clone()]);
}

#[test]
fn duplicate_after_analysis_does_not_reopen() {
    let (store, clock) = common::store();
    common::analyse(&store, &clock, "1.2.3", Outcome::Negative);
    assert_eq!(
        store.record_instance(&instance("1.2.3", 1)).unwrap(),
        Recorded::Duplicate
    );
    let study = store.study("1.2.3").unwrap().unwrap();
    assert_eq!(study.state, StudyState::Analysed);
    assert_eq!(study.generation, 1);
    assert_eq!(store.backlog().unwrap(), 0);
}
