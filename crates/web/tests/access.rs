//! Who may see what: every page refuses anonymous access (303 to /login, no content),
//! the API answers 401 JSON, a nurse cannot open the admin's status page, bearer tokens
//! work for the API until revoked, and a session ends after its idle timeout.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{ADMIN, Fixture, JANE, NURSE, Study, identifiers, input_value};
use serde_json::Value;
use time::macros::date;

#[tokio::test]
async fn anonymous_requests_get_no_page_and_no_patient_data() {
    let f = Fixture::new();
    let n = f.queue(&Study::l1("1.2.826.0.1.1", JANE, date!(2025 - 02 - 01)));
    let mut b = f.browser();
    for path in [
        "/".to_owned(),
        "/worklist".to_owned(),
        "/worklist?status=any".to_owned(),
        format!("/cases/{n}"),
        format!("/cases/{n}/key-image?window=bone"),
        "/exports".to_owned(),
        "/exports/confirmed.csv".to_owned(),
        "/exports/monthly.csv".to_owned(),
        "/admin/status".to_owned(),
        "/no/such/page".to_owned(),
    ] {
        let r = b.get(&path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            r.location() == "/worklist" || r.location().starts_with("/login"),
            "{path} -> {}",
            r.location()
        );
        for id in identifiers(JANE) {
            assert!(!r.body.contains(&id), "{path} sent {id}");
        }
        assert!(
            !r.body.contains("1.2.826.0.1.1"),
            "{path} sent the Study UID"
        );
    }
    // A forged decision and a forged sign-out change nothing.
    let r = b
        .post_form(&format!("/cases/{n}/decision"), &[("action", "dismiss")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login");
    assert!(
        f.store
            .case_by_number(n)
            .unwrap()
            .unwrap()
            .decisions
            .is_empty()
    );
    // A session cookie that was never issued is no session.
    b.cookies
        .insert("spinewatch_session".into(), "f".repeat(64));
    assert_eq!(
        b.get(&format!("/cases/{n}")).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn anonymous_api_requests_get_401_json() {
    let f = Fixture::new();
    f.queue(&Study::l1("1.2.826.0.1.1", JANE, date!(2025 - 02 - 01)));
    let mut b = f.browser();
    for path in [
        "/api/cases?status=open",
        "/api/cases/1.2.826.0.1.1",
        "/api/nothing",
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        let json: Value = serde_json::from_slice(&r.bytes).unwrap();
        assert!(json["error"].is_string(), "{json}");
        assert!(!r.body.contains(JANE.id));
    }
}

#[tokio::test]
async fn a_nurse_cannot_open_the_status_page_an_admin_can() {
    let f = Fixture::new();
    f.queue(&Study::l1("1.2.826.0.1.1", JANE, date!(2025 - 02 - 01)));
    let mut nurse = f.signed_in(NURSE).await;
    let r = nurse.get("/admin/status").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!r.body.contains("4242"));
    assert!(
        !nurse
            .get("/worklist")
            .await
            .body
            .contains("href=\"/admin/status\"")
    );

    let mut admin = f.signed_in(ADMIN).await;
    let r = admin.get("/admin/status").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The numbers of /metrics and of the database.
    for expected in [
        "<th scope=\"row\">studies positive</th><td>7</td>",
        "<th scope=\"row\">studies negative</th><td>11</td>",
        "<th scope=\"row\">instances received</th><td>4242</td>",
        "<th scope=\"row\">age</th><td>2</td>",
        "<th scope=\"row\">no_spine</th><td>2</td>",
        "<th scope=\"row\">analysis failures: panic</th><td>1</td>",
        "<th scope=\"row\">studies waiting for an outcome</th><td>0</td>",
        "<th scope=\"row\">cases open</th><td>1</td>",
        "<dd id=\"model-version\">vertebra-fracture 1.0.0</dd>",
        "<dd id=\"execution-provider\">cpu</dd>",
    ] {
        assert!(r.body.contains(expected), "{expected} missing:\n{}", r.body);
    }
    assert!(
        admin
            .get("/worklist")
            .await
            .body
            .contains("href=\"/admin/status\"")
    );
}

#[tokio::test]
async fn bearer_tokens_open_the_api_until_revoked_and_never_the_pages() {
    let f = Fixture::new();
    f.queue(&Study::l1("1.2.826.0.1.1", JANE, date!(2025 - 02 - 01)));
    let (record, token) = f.store.create_token(NURSE.0, Some("FLS")).unwrap();
    let auth = format!("Bearer {token}");
    let mut b = f.browser();
    let r = b
        .get_with("/api/cases?status=open", &[("authorization", &auth)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list: Value = serde_json::from_slice(&r.bytes).unwrap();
    assert_eq!(list[0]["study_instance_uid"], "1.2.826.0.1.1");
    assert_eq!(list[0]["flagged"][0]["level"], "L1");
    // The API's list carries no patient identity.
    assert!(!r.body.contains(JANE.id) && !r.body.contains("Quimby"));
    // A token is for the API: pages still need a session.
    let r = b.get_with("/worklist", &[("authorization", &auth)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    f.store.revoke_token(record.id).unwrap();
    let r = b
        .get_with("/api/cases?status=open", &[("authorization", &auth)])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_idle_session_ends() {
    let f = Fixture::new();
    let mut b = f.signed_in(NURSE).await;
    f.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(b.get("/worklist").await.status, StatusCode::OK);
    f.clock.advance(Duration::from_secs(29 * 60));
    let page = b.get("/worklist").await;
    assert_eq!(page.status, StatusCode::OK);
    f.clock.advance(Duration::from_secs(30 * 60));
    let r = b.get("/worklist").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Its CSRF token died with it.
    let csrf = input_value(&page.body, "csrf");
    let r = b.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login");
}
