//! A re-analysis gives an existing case the new findings and re-opens it, recorded as a
//! `reanalysed` decision by `system`; decisions wait while it is pending.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use common::{findings, instance, vertebra};
use spinewatch_core::{GenantGrade, VertebraLevel};
use spinewatch_triage::queue::SYSTEM_USER;
use spinewatch_triage::{Action, CaseStatus, Decision, DecisionAction, Error, Outcome};

fn confirm(user: &str) -> Decision {
    Decision {
        user: user.to_owned(),
        action: Action::Confirm {
            grade: GenantGrade::Moderate,
            level: VertebraLevel::Lumbar(1),
        },
        note: Some("wedge, anterior".to_owned()),
    }
}

#[test]
fn reanalysis_reopens_a_decided_case_with_new_findings() {
    let (store, clock) = common::store();
    let first = Outcome::Positive {
        findings: findings(vec![vertebra("L1", 2, 0.8)]),
        study_date: None,
    };
    common::analyse(&store, &clock, "1.2.3", first);
    store.decide("1.2.3", &confirm("nurse.a")).unwrap();

    // A late instance: decisions wait for the new findings.
    store.record_instance(&instance("1.2.3", 9)).unwrap();
    assert!(store.case("1.2.3").unwrap().unwrap().analysis_pending);
    assert!(matches!(
        store.decide("1.2.3", &confirm("nurse.a")),
        Err(Error::AnalysisPending { .. })
    ));

    let second = findings(vec![vertebra("L1", 2, 0.8), vertebra("L2", 3, 0.95)]);
    let outcome = Outcome::Positive {
        findings: second.clone(),
        study_date: None,
    };
    common::analyse(&store, &clock, "1.2.3", outcome);
    let case = store.case("1.2.3").unwrap().unwrap();
    assert_eq!(case.summary.status, CaseStatus::Open);
    assert_eq!(case.generation, 2);
    assert_eq!(case.findings, second);
    assert_eq!(case.summary.max_grade, GenantGrade::Severe);
    assert!(!case.analysis_pending);
    let last = case.decisions.last().unwrap();
    assert_eq!(last.user, SYSTEM_USER);
    assert_eq!(last.action, DecisionAction::Reanalysed);
    assert_eq!(
        (last.previous_status, last.new_status),
        (CaseStatus::Confirmed, CaseStatus::Open)
    );
    assert_eq!(case.decisions.len(), 2);
}

#[test]
fn negative_reanalysis_keeps_the_case_and_says_so() {
    let (store, clock) = common::store();
    let first = Outcome::Positive {
        findings: findings(vec![vertebra("L1", 1, 0.6)]),
        study_date: None,
    };
    common::analyse(&store, &clock, "1.2.3", first);
    common::analyse(&store, &clock, "1.2.3", Outcome::Negative);
    let case = store.case("1.2.3").unwrap().unwrap();
    assert_eq!(case.summary.status, CaseStatus::Open);
    assert_eq!(case.generation, 1);
    let last = case.decisions.last().unwrap();
    assert_eq!(last.action, DecisionAction::Reanalysed);
    assert!(last.note.as_deref().unwrap().contains("nothing flagged"));
    // The nurses can decide again.
    store.decide("1.2.3", &confirm("nurse.b")).unwrap();
}

#[test]
fn decisions_are_validated() {
    let (store, clock) = common::store();
    let outcome = Outcome::Positive {
        findings: findings(vec![vertebra("L1", 2, 0.8)]),
        study_date: None,
    };
    common::analyse(&store, &clock, "1.2.3", outcome);
    for user in ["", "   ", "system", "SYSTEM", "nu\trse", &"n".repeat(65)] {
        assert!(
            matches!(
                store.decide("1.2.3", &confirm(user)),
                Err(Error::InvalidDecision(_))
            ),
            "{user:?}"
        );
    }
    let grade_0 = Decision {
        action: Action::Confirm {
            grade: GenantGrade::Normal,
            level: VertebraLevel::Lumbar(1),
        },
        ..confirm("nurse.a")
    };
    assert!(matches!(
        store.decide("1.2.3", &grade_0),
        Err(Error::InvalidDecision(_))
    ));
    assert!(matches!(
        store.decide("9.9.9", &confirm("nurse.a")),
        Err(Error::NotFound { .. })
    ));
    assert!(store.case("1.2.3").unwrap().unwrap().decisions.is_empty());
}

#[test]
fn key_images_must_stay_below_their_directory() {
    let (store, clock) = common::store();
    store.record_instance(&instance("1.2.3", 1)).unwrap();
    clock.advance(common::QUIET);
    store.complete_due(common::QUIET, common::CEILING).unwrap();
    store.claim("1.2.3", 1).unwrap();
    for bad in ["../etc/passwd", "/tmp/x.png", ""] {
        let mut f = findings(vec![vertebra("L1", 2, 0.8)]);
        f.key_images = vec![bad.to_owned()];
        let outcome = Outcome::Positive {
            findings: f,
            study_date: None,
        };
        assert!(
            matches!(
                store.finish("1.2.3", 1, outcome),
                Err(Error::InvalidOutcome { .. })
            ),
            "{bad:?}"
        );
    }
}
