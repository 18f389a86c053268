//! The queue's JSON API: the worklist contract, filters, priority order, decisions with
//! their audit trail, and the error statuses.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{findings, instance, vertebra};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use spinewatch_triage::{ManualClock, Outcome, Store, api};
use time::format_description::well_known::Rfc3339;
use time::macros::date;
use tower::ServiceExt;

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri);
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{method} {uri}: not JSON ({e}): {bytes:?}"));
    (status, json)
}

/// `(level, grade, probability)`.
type Vertebra = (&'static str, u8, f64);

fn positive(vertebrae: &[Vertebra], study_date: Option<time::Date>) -> Outcome {
    Outcome::Positive {
        findings: findings(
            vertebrae
                .iter()
                .map(|&(level, grade, p)| vertebra(level, grade, p))
                .collect(),
        ),
        study_date,
    }
}

fn uids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["study_instance_uid"].as_str().unwrap())
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<_> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// Cases of different priority:
/// - `1.1` grade 3, p 0.80, study 2025-01-10
/// - `1.2` grade 2, p 0.95, study 2025-02-10
/// - `1.3` grade 2, p 0.70, study 2025-03-01, queued before `1.4`
/// - `1.4` grade 2, p 0.70, no study date (queued 2025-03-03)
/// - `1.5` grade 1, p 0.60, study 2025-01-20
fn worklist() -> (Store, ManualClock, Router) {
    let (store, clock) = common::store();
    let cases: [(&str, &[Vertebra], Option<time::Date>); 5] = [
        ("1.3", &[("L2", 2, 0.70)], Some(date!(2025 - 03 - 01))),
        ("1.4", &[("T12", 2, 0.70)], None),
        (
            "1.1",
            &[("T11", 0, 0.20), ("L1", 3, 0.80)],
            Some(date!(2025 - 01 - 10)),
        ),
        (
            "1.2",
            &[("L3", 2, 0.95), ("L4", 1, 0.55)],
            Some(date!(2025 - 02 - 10)),
        ),
        ("1.5", &[("L5", 1, 0.60)], Some(date!(2025 - 01 - 20))),
    ];
    for (uid, vertebrae, study_date) in cases {
        common::analyse(&store, &clock, uid, positive(vertebrae, study_date));
        clock.advance(Duration::from_secs(60));
    }
    let app = api::router(store.clone());
    (store, clock, app)
}

#[tokio::test]
async fn open_cases_follow_the_contract() {
    let (store, clock) = common::store();
    let outcome = positive(&[("T12", 0, 0.10), ("L1", 2, 0.93)], None);
    common::analyse(&store, &clock, "1.2.3", outcome);
    let app = api::router(store);

    let (status, list) = call(&app, "GET", "/api/cases?status=open", None).await;
    assert_eq!(status, StatusCode::OK);
    let cases = list.as_array().unwrap();
    assert_eq!(cases.len(), 1);
    let case = &cases[0];
    for key in ["study_instance_uid", "patient_key", "status", "flagged"] {
        assert!(case.get(key).is_some(), "{key} missing from {case}");
    }
    assert_eq!(case["study_instance_uid"], "1.2.3");
    assert_eq!(
        case["patient_key"],
        spinewatch_triage::patient_key(b"test secret", "patient of 1.2.3")
    );
    assert_eq!(case["status"], "open");
    // Flagged vertebrae only, exactly these keys, level as text and grade as a number.
    assert_eq!(
        case["flagged"],
        json!([{"level": "L1", "grade": 2, "probability": 0.93}])
    );
    assert_eq!(keys(&case["flagged"][0]), ["grade", "level", "probability"]);
    assert_eq!(case["probability"], 0.93);
    let created = time::OffsetDateTime::parse(case["created_at"].as_str().unwrap(), &Rfc3339);
    assert!(created.is_ok(), "{}", case["created_at"]);
    // No patient identifier anywhere in the answer.
    assert!(!list.to_string().contains("patient of"));
}

#[tokio::test]
async fn worklist_is_sorted_by_priority_and_filtered() {
    let (_store, _clock, app) = worklist();
    let list = |q: &'static str| {
        let app = app.clone();
        async move {
            let (status, body) = call(&app, "GET", q, None).await;
            assert_eq!(status, StatusCode::OK, "{q}: {body}");
            body
        }
    };
    // Grade, then probability, then newest first (1.4 was queued after 1.3).
    assert_eq!(
        uids(&list("/api/cases").await),
        ["1.1", "1.2", "1.4", "1.3", "1.5"]
    );
    assert_eq!(
        uids(&list("/api/cases?status=open&grade=2").await),
        ["1.2", "1.4", "1.3"]
    );
    assert_eq!(
        uids(&list("/api/cases?min_grade=2").await),
        ["1.1", "1.2", "1.4", "1.3"]
    );
    assert_eq!(
        uids(&list("/api/cases?from=2025-02-01&to=2025-03-01").await),
        ["1.2", "1.3"]
    );
    // Without a study date, the day the case was queued counts.
    assert_eq!(uids(&list("/api/cases?from=2025-03-03").await), ["1.4"]);
    assert_eq!(
        uids(&list("/api/cases?to=2025-01-31").await),
        ["1.1", "1.5"]
    );
    assert_eq!(
        uids(&list("/api/cases?limit=2&offset=1").await),
        ["1.2", "1.4"]
    );
    assert!(uids(&list("/api/cases?status=confirmed").await).is_empty());

    for bad in [
        "/api/cases?status=closed",
        "/api/cases?grade=4",
        "/api/cases?grade=two",
        "/api/cases?from=2025-13-01",
        "/api/cases?from=2025-03-02&to=2025-03-01",
        "/api/cases?stauts=open",
    ] {
        let (status, body) = call(&app, "GET", bad, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(keys(&body), ["error"], "{bad}: {body}");
    }
}

#[tokio::test]
async fn decisions_change_status_and_are_audited() {
    let (_store, clock, app) = worklist();
    let at = |clock: &ManualClock| {
        use spinewatch_triage::Clock;
        clock.now().format(&Rfc3339).unwrap()
    };

    let body = json!({"user": "nurse.a", "grade": 2, "level": "L3", "note": "wedge"});
    let (status, case) = call(&app, "POST", "/api/cases/1.2/confirm", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert_eq!(case["status"], "confirmed");
    assert_eq!(
        case["decisions"],
        json!([{
            "id": case["decisions"][0]["id"],
            "user": "nurse.a",
            "action": "confirm",
            "grade": 2,
            "level": "L3",
            "note": "wedge",
            "previous_status": "open",
            "new_status": "confirmed",
            "at": at(&clock),
        }])
    );

    clock.advance(Duration::from_secs(5));
    let (status, case) = call(
        &app,
        "POST",
        "/api/cases/1.2/refer",
        Some(json!({"user": "nurse.b"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert_eq!(case["status"], "referred");

    clock.advance(Duration::from_secs(5));
    let (status, _) = call(
        &app,
        "POST",
        "/api/cases/1.5/dismiss",
        Some(json!({"user": "nurse.a", "note": "old, known"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, detail) = call(&app, "GET", "/api/cases/1.2", None).await;
    assert_eq!(status, StatusCode::OK);
    let trail: Vec<_> = detail["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["user"].as_str().unwrap(),
                d["action"].as_str().unwrap(),
                d["previous_status"].as_str().unwrap(),
                d["new_status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            ("nurse.a", "confirm", "open", "confirmed"),
            ("nurse.b", "refer", "confirmed", "referred"),
        ]
    );
    let first = detail["decisions"][0]["at"].as_str().unwrap();
    let second = detail["decisions"][1]["at"].as_str().unwrap();
    assert!(first < second, "{first} {second}");
    // The detail has every vertebra, flagged or not, and the key images.
    assert_eq!(detail["findings"]["vertebrae"].as_array().unwrap().len(), 2);
    assert_eq!(detail["findings"]["key_images"], json!(["key/L1.png"]));
    assert_eq!(detail["findings"]["vertebrae"][1]["label"], "L4");

    let (_, open) = call(&app, "GET", "/api/cases?status=open", None).await;
    assert_eq!(uids(&open), ["1.1", "1.4", "1.3"]);
    let (_, dismissed) = call(&app, "GET", "/api/cases?status=dismissed", None).await;
    assert_eq!(uids(&dismissed), ["1.5"]);
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let (store, _clock, app) = worklist();
    let cases = [
        ("GET", "/api/cases/9.9.9", None, StatusCode::NOT_FOUND),
        (
            "POST",
            "/api/cases/9.9.9/dismiss",
            Some(json!({"user": "nurse.a"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/api/cases/1.1/dismiss",
            Some(json!({"user": "  "})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/cases/1.1/refer",
            Some(json!({"note": "no user"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/cases/1.1/confirm",
            Some(json!({"user": "nurse.a", "grade": 0, "level": "L1"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/cases/1.1/confirm",
            Some(json!({"user": "nurse.a", "grade": 2, "level": "L9"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/cases/1.1/confirm",
            Some(json!({"user": "nurse.a", "grade": 5, "level": "L1"})),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, uri, body, expected) in cases {
        let (status, json) = call(&app, method, uri, body.clone()).await;
        assert_eq!(status, expected, "{method} {uri} {body:?}: {json}");
        assert_eq!(keys(&json), ["error"], "{json}");
        assert!(!json["error"].as_str().unwrap().is_empty());
    }
    let (_, case) = call(&app, "GET", "/api/cases/1.1", None).await;
    assert!(case["decisions"].as_array().unwrap().is_empty());

    // A late instance re-opens the study: decisions wait for the new findings.
    store.record_instance(&instance("1.1", 7)).unwrap();
    let (status, json) = call(
        &app,
        "POST",
        "/api/cases/1.1/dismiss",
        Some(json!({"user": "nurse.a"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(keys(&json), ["error"]);
}
