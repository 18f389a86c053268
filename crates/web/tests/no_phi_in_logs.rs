//! No patient identifier reaches the logs: every page, the key image, a decision, the
//! exports and the API are exercised with a subscriber recording everything (TRACE, every
//! field), and the record must not hold the patient's ID, name or birth date.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::{ADMIN, Fixture, JANE, NURSE, Study, identifiers, input_value};
use time::macros::date;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_patient_identifier_is_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Global: store calls run on blocking threads.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .json()
        .init();

    let f = Fixture::new();
    let n = f.queue(&Study::l1("1.2.826.0.30.1", JANE, date!(2025 - 01 - 10)));
    let mut b = f.browser();
    // A failed sign-in with the patient's ID typed as the name.
    let page = b.get("/login").await;
    let csrf = input_value(&page.body, "csrf");
    let r = b
        .post_form(
            "/login",
            &[
                ("name", JANE.id),
                ("password", JANE.birth_date),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let mut b = f.signed_in(NURSE).await;
    for path in [
        "/worklist".to_owned(),
        format!("/cases/{n}"),
        format!("/cases/{n}/key-image?window=soft"),
        "/exports".to_owned(),
        "/exports/confirmed.csv".to_owned(),
        "/cases/999".to_owned(),
    ] {
        b.get(&path).await;
    }
    let csrf = input_value(&b.get(&format!("/cases/{n}")).await.body, "csrf");
    let r = b
        .post_form(
            &format!("/cases/{n}/decision"),
            &[
                ("csrf", &csrf),
                ("action", "confirm"),
                ("level", "L1"),
                ("grade", "2"),
                ("note", "Quimby wedge"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    b.get("/exports/confirmed.csv").await;
    let mut admin = f.signed_in(ADMIN).await;
    admin.get("/admin/status").await;
    let (_, token) = f.store.create_token(NURSE.0, None).unwrap();
    b.get_with(
        "/api/cases/1.2.826.0.30.1",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The subscriber saw the service at work...
    assert!(
        log.contains("Case decided.") && log.contains("Signed in."),
        "{log}"
    );
    // ...and nothing that names the patient.
    for id in identifiers(JANE) {
        assert!(!log.contains(&id), "the log holds {id}:\n{log}");
    }
}
