//! The queue's JSON API: the worklist contract, filters, priority order, decisions with
//! their audit trail (under the token's user), the dispositions, the error statuses, and
//! authentication (bearer tokens, revocation, session cookies with their CSRF header).

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

/// The API with the token of a nurse (`nurse.a`) that every [`Api::call`] sends.
#[derive(Clone)]
struct Api {
    app: Router,
    token: String,
}

impl Api {
    fn new(store: &Store) -> Self {
        Self {
            token: common::api_token(store, "nurse.a"),
            app: api::router(store.clone()),
        }
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let auth = format!("Bearer {}", self.token);
        call_as(&self.app, &[("authorization", &auth)], method, uri, body).await
    }
}

async fn call_as(
    app: &Router,
    headers: &[(&str, &str)],
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
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
fn worklist() -> (Store, ManualClock, Api) {
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
    let api = Api::new(&store);
    (store, clock, api)
}

#[tokio::test]
async fn open_cases_follow_the_contract() {
    let (store, clock) = common::store();
    let outcome = positive(&[("T12", 0, 0.10), ("L1", 2, 0.93)], None);
    common::analyse(&store, &clock, "1.2.3", outcome);
    let app = Api::new(&store);

    let (status, list) = app.call("GET", "/api/cases?status=open", None).await;
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
            let (status, body) = app.call("GET", q, None).await;
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
        "/api/cases?status=shut",
        "/api/cases?grade=4",
        "/api/cases?grade=two",
        "/api/cases?from=2025-13-01",
        "/api/cases?from=2025-03-02&to=2025-03-01",
        "/api/cases?stauts=open",
    ] {
        let (status, body) = app.call("GET", bad, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(keys(&body), ["error"], "{bad}: {body}");
    }
}

#[tokio::test]
async fn decisions_change_status_and_are_audited() {
    let (store, clock, app) = worklist();
    let nurse_b = Api {
        token: common::api_token(&store, "nurse.b"),
        ..app.clone()
    };
    let at = |clock: &ManualClock| {
        use spinewatch_triage::Clock;
        clock.now().format(&Rfc3339).unwrap()
    };

    let body = json!({"grade": 2, "level": "L3", "note": "wedge"});
    let (status, case) = app.call("POST", "/api/cases/1.2/confirm", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert_eq!(case["status"], "confirmed");
    assert_eq!(case["confirmed_grade"], 2);
    assert_eq!(case["confirmed_level"], "L3");
    assert_eq!(
        case["decisions"],
        json!([{
            "id": case["decisions"][0]["id"],
            "user": "nurse.a",
            "action": "confirm",
            "grade": 2,
            "level": "L3",
            "disposition": null,
            "note": "wedge",
            "previous_status": "open",
            "new_status": "confirmed",
            "previous_disposition": null,
            "previous_grade": null,
            "previous_level": null,
            "at": at(&clock),
        }])
    );

    clock.advance(Duration::from_secs(5));
    let (status, case) = nurse_b
        .call("POST", "/api/cases/1.2/refer", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert_eq!(case["status"], "referred");
    assert_eq!(case["confirmed_grade"], Value::Null);
    // The before of the referral is the confirm it replaced.
    let referral = &case["decisions"][1];
    assert_eq!(referral["user"], "nurse.b");
    assert_eq!(referral["previous_grade"], 2);
    assert_eq!(referral["previous_level"], "L3");

    clock.advance(Duration::from_secs(5));
    let (status, _) = app
        .call(
            "POST",
            "/api/cases/1.5/dismiss",
            Some(json!({"note": "old, known"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The FLS dispositions close a case, each with its reason.
    for (uid, action) in [("1.3", "already_known"), ("1.4", "cancer_pathway")] {
        let uri = format!("/api/cases/{uid}/{action}");
        let (status, case) = app.call("POST", &uri, Some(json!({}))).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {case}");
        assert_eq!(case["status"], "closed");
        assert_eq!(case["disposition"], action);
        assert_eq!(case["decisions"][0]["action"], action);
        assert_eq!(case["decisions"][0]["disposition"], action);
    }

    let (status, detail) = app.call("GET", "/api/cases/1.2", None).await;
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

    let (_, open) = app.call("GET", "/api/cases?status=open", None).await;
    assert_eq!(uids(&open), ["1.1"]);
    let (_, dismissed) = app.call("GET", "/api/cases?status=dismissed", None).await;
    assert_eq!(uids(&dismissed), ["1.5"]);
    let (_, closed) = app.call("GET", "/api/cases?status=closed", None).await;
    assert_eq!(uids(&closed), ["1.4", "1.3"]);
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let (store, _clock, app) = worklist();
    let cases = [
        ("GET", "/api/cases/9.9.9", None, StatusCode::NOT_FOUND),
        (
            "POST",
            "/api/cases/9.9.9/dismiss",
            Some(json!({})),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/api/cases/1.1/shelve",
            Some(json!({})),
            StatusCode::NOT_FOUND,
        ),
        // The user comes from the token, never from the body.
        (
            "POST",
            "/api/cases/1.1/dismiss",
            Some(json!({"user": "someone.else"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/cases/1.1/confirm",
            Some(json!({"grade": 0, "level": "L1"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/cases/1.1/confirm",
            Some(json!({"grade": 2, "level": "L9"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/api/cases/1.1/confirm",
            Some(json!({"grade": 5, "level": "L1"})),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, uri, body, expected) in cases {
        let (status, json) = app.call(method, uri, body.clone()).await;
        assert_eq!(status, expected, "{method} {uri} {body:?}: {json}");
        assert_eq!(keys(&json), ["error"], "{json}");
        assert!(!json["error"].as_str().unwrap().is_empty());
    }
    let (_, case) = app.call("GET", "/api/cases/1.1", None).await;
    assert!(case["decisions"].as_array().unwrap().is_empty());

    // A late instance re-opens the study: decisions wait for the new findings.
    store.record_instance(&instance("1.1", 7)).unwrap();
    let (status, json) = app
        .call("POST", "/api/cases/1.1/dismiss", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert_eq!(keys(&json), ["error"]);
}

#[tokio::test]
async fn every_route_needs_a_live_token_or_a_session_with_its_csrf_token() {
    let (store, _clock, app) = worklist();
    let routes = [
        ("GET", "/api/cases", None),
        ("GET", "/api/cases/1.1", None),
        ("POST", "/api/cases/1.1/dismiss", Some(json!({}))),
        (
            "POST",
            "/api/cases/1.1/confirm",
            Some(json!({"grade": 2, "level": "L1"})),
        ),
    ];
    let wrong = format!("Bearer swt_{}", "0".repeat(64));
    for headers in [
        vec![],
        vec![("authorization", wrong.as_str())],
        vec![("authorization", "Basic bnVyc2U6cGFzc3dvcmQ=")],
        vec![("cookie", "spinewatch_session=0123")],
    ] {
        for (method, uri, body) in &routes {
            let (status, json) = call_as(&app.app, &headers, method, uri, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} {headers:?}"
            );
            assert_eq!(keys(&json), ["error"], "{json}");
        }
    }
    // Nothing was decided.
    let (_, case) = app.call("GET", "/api/cases/1.1", None).await;
    assert!(case["decisions"].as_array().unwrap().is_empty());

    // Stored hashed: the token itself is nowhere in the database's tokens.
    let listed = store.tokens().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!format!("{listed:?}").contains(&app.token));

    // A revoked token is refused.
    assert!(store.revoke_token(listed[0].id).unwrap());
    let (status, _) = app.call("GET", "/api/cases", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!store.revoke_token(listed[0].id).unwrap());

    // A disabled user's token is refused too.
    let b = common::api_token(&store, "nurse.b");
    let auth_b = format!("Bearer {b}");
    let (status, _) = call_as(
        &app.app,
        &[("authorization", &auth_b)],
        "GET",
        "/api/cases",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    store.disable_user("nurse.b").unwrap();
    let (status, _) = call_as(
        &app.app,
        &[("authorization", &auth_b)],
        "GET",
        "/api/cases",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A session cookie reads; it decides only with its CSRF token in the header.
    let c = store
        .add_user(
            "nurse.c",
            spinewatch_triage::Role::Nurse,
            common::PASSWORD_HASH,
        )
        .unwrap();
    let limits = spinewatch_triage::SessionLimits {
        idle: Duration::from_secs(600),
        max: Duration::from_secs(3600),
    };
    let session = store.create_session(c.id, limits).unwrap();
    let cookie = format!("spinewatch_session={}", session.token);
    let (status, _) = call_as(&app.app, &[("cookie", &cookie)], "GET", "/api/cases", None).await;
    assert_eq!(status, StatusCode::OK);
    let dismiss = Some(json!({}));
    for csrf in [None, Some("not-the-token")] {
        let mut headers = vec![("cookie", cookie.as_str())];
        headers.extend(csrf.map(|t| ("x-csrf-token", t)));
        let (status, json) = call_as(
            &app.app,
            &headers,
            "POST",
            "/api/cases/1.1/dismiss",
            dismiss.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{csrf:?}: {json}");
    }
    let headers = [
        ("cookie", cookie.as_str()),
        ("x-csrf-token", session.csrf_token.as_str()),
    ];
    let (status, case) = call_as(
        &app.app,
        &headers,
        "POST",
        "/api/cases/1.1/dismiss",
        dismiss,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert_eq!(case["decisions"][0]["user"], "nurse.c");
}
