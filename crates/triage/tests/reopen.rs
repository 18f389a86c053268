//! An instance arriving after the analysis re-opens the study: it is analysed again,
//! once, as generation 2, and the journal shows every transition in order.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use common::{CEILING, QUIET, instance};
use spinewatch_triage::journal::{REASON_FIRST_INSTANCE, REASON_QUIET_PERIOD, REASON_REOPENED};
use spinewatch_triage::{Error, Outcome, Recorded, StudyState};

#[test]
fn late_instance_reopens_and_study_is_analysed_again_once() {
    let (store, clock) = common::store();
    assert_eq!(
        common::analyse(&store, &clock, "1.2.3", Outcome::Negative),
        1
    );
    assert_eq!(store.study("1.2.3").unwrap().unwrap().analysed_count, 1);

    clock.advance(QUIET);
    assert_eq!(
        store.record_instance(&instance("1.2.3", 2)).unwrap(),
        Recorded::New {
            generation: 2,
            reopened: true
        }
    );
    let study = store.study("1.2.3").unwrap().unwrap();
    assert_eq!((study.state, study.generation), (StudyState::Received, 2));
    assert_eq!(study.reason, None);
    assert_eq!(study.completed_at, None);
    // The new generation's quiet period starts at the late instance.
    assert_eq!(study.first_instance_at, clock_now(&store));
    assert!(store.complete_due(QUIET, CEILING).unwrap().is_empty());

    clock.advance(QUIET);
    let due = store.complete_due(QUIET, CEILING).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].generation, 2);
    // The re-analysis reads the whole study, not only the late instance.
    assert_eq!(due[0].paths.len(), 2);

    assert!(matches!(
        store.claim("1.2.3", 1),
        Err(Error::StaleGeneration { current: 2, .. })
    ));
    store.claim("1.2.3", 2).unwrap();
    store.finish("1.2.3", 2, Outcome::Negative).unwrap();
    let study = store.study("1.2.3").unwrap().unwrap();
    assert_eq!(study.state, StudyState::Analysed);
    assert_eq!(study.analysed_count, 2);
    assert!(store.resume().unwrap().is_empty());
    assert!(matches!(
        store.finish("1.2.3", 2, Outcome::Negative),
        Err(Error::AlreadyFinished { generation: 2, .. })
    ));

    use StudyState::*;
    let journal = store.journal("1.2.3").unwrap();
    let steps: Vec<_> = journal
        .iter()
        .map(|e| (e.generation, e.from_state, e.to_state, e.reason.as_deref()))
        .collect();
    assert_eq!(
        steps,
        [
            (1, None, Received, Some(REASON_FIRST_INSTANCE)),
            (1, Some(Received), Complete, Some(REASON_QUIET_PERIOD)),
            (1, Some(Complete), Analysing, None),
            (1, Some(Analysing), Analysed, None),
            (2, Some(Analysed), Received, Some(REASON_REOPENED)),
            (2, Some(Received), Complete, Some(REASON_QUIET_PERIOD)),
            (2, Some(Complete), Analysing, None),
            (2, Some(Analysing), Analysed, None),
        ]
    );
    assert!(
        journal
            .windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at <= w[1].at)
    );
}

#[test]
fn instance_while_complete_reopens_before_the_analysis() {
    let (store, clock) = common::store();
    store.record_instance(&instance("1.2.3", 1)).unwrap();
    clock.advance(QUIET);
    let due = store.complete_due(QUIET, CEILING).unwrap();
    assert_eq!(due[0].generation, 1);
    store.record_instance(&instance("1.2.3", 2)).unwrap();
    // The pipeline's pending work for generation 1 is refused.
    assert!(matches!(
        store.claim("1.2.3", 1),
        Err(Error::StaleGeneration { .. })
    ));
    clock.advance(QUIET);
    let due = store.complete_due(QUIET, CEILING).unwrap();
    assert_eq!((due[0].generation, due[0].paths.len()), (2, 2));
}

fn clock_now(store: &spinewatch_triage::Store) -> time::OffsetDateTime {
    store.now()
}
