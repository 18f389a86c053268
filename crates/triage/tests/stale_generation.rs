//! The analysis of a generation that was re-opened meanwhile is refused, and the newer
//! generation is analysed instead.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use common::{CEILING, QUIET, findings, instance, vertebra};
use spinewatch_triage::{Error, Outcome, StudyState};

#[test]
fn finish_of_a_reopened_generation_is_rejected() {
    let (store, clock) = common::store();
    store.record_instance(&instance("1.2.3", 1)).unwrap();
    clock.advance(QUIET);
    store.complete_due(QUIET, CEILING).unwrap();
    store.claim("1.2.3", 1).unwrap();
    // While generation 1 is being analysed, an instance arrives.
    store.record_instance(&instance("1.2.3", 2)).unwrap();

    let positive = || Outcome::Positive {
        findings: findings(vec![vertebra("L1", 2, 0.9)]),
        study_date: None,
    };
    match store.finish("1.2.3", 1, positive()) {
        Err(Error::StaleGeneration {
            generation: 1,
            current: 2,
            ..
        }) => {}
        other => panic!("expected StaleGeneration, got {other:?}"),
    }
    // Nothing of the stale analysis was written.
    let study = store.study("1.2.3").unwrap().unwrap();
    assert_eq!(
        (study.state, study.generation, study.analysed_count),
        (StudyState::Received, 2, 0)
    );
    assert!(store.case("1.2.3").unwrap().is_none());

    clock.advance(QUIET);
    let due = store.complete_due(QUIET, CEILING).unwrap();
    assert_eq!(due[0].generation, 2);
    store.claim("1.2.3", 2).unwrap();
    assert_eq!(
        store.finish("1.2.3", 2, positive()).unwrap(),
        StudyState::Queued
    );
    assert_eq!(store.case("1.2.3").unwrap().unwrap().generation, 2);
}

#[test]
fn finish_without_claim_and_for_unknown_study_are_refused() {
    let (store, clock) = common::store();
    store.record_instance(&instance("1.2.3", 1)).unwrap();
    assert!(matches!(
        store.finish("1.2.3", 1, Outcome::Negative),
        Err(Error::WrongState {
            state: StudyState::Received,
            ..
        })
    ));
    clock.advance(QUIET);
    store.complete_due(QUIET, CEILING).unwrap();
    assert!(matches!(
        store.finish("1.2.3", 1, Outcome::Negative),
        Err(Error::WrongState {
            state: StudyState::Complete,
            ..
        })
    ));
    assert!(matches!(
        store.claim("9.9.9", 1),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn outcomes_are_counted_by_state_and_reason() {
    let (store, clock) = common::store();
    let excluded = |reason: &str| Outcome::Excluded {
        reason: reason.to_owned(),
    };
    common::analyse(&store, &clock, "1.2.1", excluded("not_ct"));
    common::analyse(&store, &clock, "1.2.2", excluded("not_ct"));
    common::analyse(&store, &clock, "1.2.3", excluded("age_at_or_below_min"));
    let not_analysable = Outcome::NotAnalysable {
        reason: "no_spine".to_owned(),
    };
    common::analyse(&store, &clock, "1.2.4", not_analysable);
    store.record_instance(&instance("1.2.5", 1)).unwrap();

    let exclusions = store.exclusion_counts().unwrap();
    assert_eq!(exclusions.get("not_ct"), Some(&2));
    assert_eq!(exclusions.get("age_at_or_below_min"), Some(&1));
    assert_eq!(exclusions.len(), 2);
    let states = store.state_counts().unwrap();
    assert_eq!(states[&StudyState::Excluded], 3);
    assert_eq!(states[&StudyState::NotAnalysable], 1);
    assert_eq!(states[&StudyState::Received], 1);
    assert_eq!(states[&StudyState::Queued], 0);
    assert_eq!(store.backlog().unwrap(), 1);
    let study = store.study("1.2.4").unwrap().unwrap();
    assert_eq!(study.reason.as_deref(), Some("no_spine"));

    // An exclusion needs its reason.
    store.record_instance(&instance("1.2.6", 1)).unwrap();
    clock.advance(QUIET);
    store.complete_due(QUIET, CEILING).unwrap();
    store.claim("1.2.6", 1).unwrap();
    assert!(matches!(
        store.finish("1.2.6", 1, excluded(" ")),
        Err(Error::InvalidOutcome { .. })
    ));
}
