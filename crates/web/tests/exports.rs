//! Exports: the CSV register of confirmed cases (date range, escaping, formula
//! injection), and the per-month counts.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Fixture, JANE, JOHN, NURSE, Patient, Study, input_value};
use time::macros::date;

async fn decide(b: &mut common::Browser, n: i64, fields: &[(&str, &str)]) {
    let csrf = input_value(&b.get(&format!("/cases/{n}")).await.body, "csrf");
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let r = b.post_form(&format!("/cases/{n}/decision"), &all).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[tokio::test]
async fn the_register_is_csv_escaped_and_defused() {
    let f = Fixture::new();
    let awkward = Patient {
        id: "=HYPERLINK(\"http://x\")",
        name: "O'Neil, \"Bob\"^Ann\nMarie",
        birth_date: "1940-01-01",
    };
    let n = f.queue(&Study::l1("1.2.826.0.20.1", awkward, date!(2025 - 01 - 10)));
    let open = f.queue(&Study::l1("1.2.826.0.20.2", JOHN, date!(2025 - 01 - 11)));
    let mut b = f.signed_in(NURSE).await;
    decide(
        &mut b,
        n,
        &[
            ("action", "confirm"),
            ("level", "L1"),
            ("grade", "2"),
            ("note", "-2 cm, \"wedge\""),
        ],
    )
    .await;

    let r = b.get("/exports/confirmed.csv").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let mut reader = csv::Reader::from_reader(r.bytes.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header[..4],
        ["case_number", "study_date", "patient_id", "patient_name"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "only the confirmed case: {}", r.body);
    let row = &rows[0];
    let col = |name: &str| {
        row.get(header.iter().position(|h| h == name).unwrap())
            .unwrap()
    };
    assert_eq!(col("case_number"), n.to_string());
    assert_eq!(col("study_date"), "2025-01-10");
    // Read back exactly, commas, quotes and the line break included; formulas defused.
    assert_eq!(col("patient_id"), "'=HYPERLINK(\"http://x\")");
    assert_eq!(col("patient_name"), "O'Neil, \"Bob\", Ann\nMarie");
    assert_eq!(col("note"), "'-2 cm, \"wedge\"");
    assert_eq!(col("confirmed_level"), "L1");
    assert_eq!(col("confirmed_grade"), "2");
    assert_eq!(col("confirmed_by"), NURSE.0);
    assert_eq!(col("flagged_levels"), "L1 L2");
    assert!(!r.body.contains(&format!("\n{open},")));
}

#[tokio::test]
async fn the_register_covers_the_date_range_of_the_confirmations() {
    let f = Fixture::new();
    let mut b = f.signed_in(NURSE).await;
    let first = f.queue(&Study::l1("1.2.826.0.21.1", JANE, date!(2024 - 12 - 01)));
    decide(
        &mut b,
        first,
        &[("action", "confirm"), ("level", "L1"), ("grade", "2")],
    )
    .await;
    f.clock.advance(Duration::from_secs(40 * 86400));
    // The session ended meanwhile.
    let mut b = f.signed_in(NURSE).await;
    let second = f.queue(&Study::l1("1.2.826.0.21.2", JOHN, date!(2024 - 12 - 02)));
    decide(
        &mut b,
        second,
        &[("action", "confirm"), ("level", "L2"), ("grade", "1")],
    )
    .await;
    // Confirmed on 2025-03-03 and 2025-04-12.
    let numbers = |body: &str| -> Vec<String> {
        csv::Reader::from_reader(body.as_bytes())
            .records()
            .map(|r| r.unwrap()[0].to_owned())
            .collect()
    };
    let get = |q: &'static str| {
        let mut b = b.clone();
        async move { b.get(q).await }
    };
    assert_eq!(
        numbers(&get("/exports/confirmed.csv").await.body),
        [first.to_string(), second.to_string()]
    );
    assert_eq!(
        numbers(
            &get("/exports/confirmed.csv?from=2025-03-01&to=2025-03-31")
                .await
                .body
        ),
        [first.to_string()]
    );
    assert_eq!(
        numbers(&get("/exports/confirmed.csv?from=2025-04-12").await.body),
        [second.to_string()]
    );
    assert!(numbers(&get("/exports/confirmed.csv?to=2025-03-02").await.body).is_empty());
    assert_eq!(
        get("/exports/confirmed.csv?from=2025-05-01&to=2025-04-01")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get("/exports/confirmed.csv?from=yesterday").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn monthly_counts_count_queued_cases_and_standing_decisions() {
    let f = Fixture::new();
    let mut b = f.signed_in(NURSE).await;
    let a = f.queue(&Study::l1("1.2.826.0.22.1", JANE, date!(2025 - 03 - 01)));
    let c = f.queue(&Study::l1("1.2.826.0.22.2", JOHN, date!(2025 - 03 - 01)));
    decide(&mut b, a, &[("action", "dismiss")]).await;
    // Corrected the same month: counts once, as confirmed.
    decide(
        &mut b,
        a,
        &[("action", "confirm"), ("level", "L1"), ("grade", "2")],
    )
    .await;
    f.clock.advance(Duration::from_secs(31 * 86400));
    let mut b = f.signed_in(NURSE).await;
    decide(&mut b, c, &[("action", "already_known")]).await;
    f.queue(&Study::l1("1.2.826.0.22.3", JANE, date!(2025 - 04 - 01)));

    let page = b.get("/exports").await;
    assert!(page.body.contains("<tr data-month=\"2025-03\"><th scope=\"row\">2025-03</th><td>2</td><td>1</td><td>0</td><td>0</td><td>0</td><td>0</td><td>0</td></tr>"), "{}", page.body);
    assert!(page.body.contains("<tr data-month=\"2025-04\"><th scope=\"row\">2025-04</th><td>1</td><td>0</td><td>0</td><td>0</td><td>1</td><td>0</td><td>0</td></tr>"), "{}", page.body);
    let csv = b.get("/exports/monthly.csv").await;
    assert_eq!(
        csv.body,
        "month,queued,confirmed,dismissed,referred,already_known,cancer_pathway,not_appropriate\n\
         2025-03,2,1,0,0,0,0,0\n2025-04,1,0,0,0,1,0,0\n"
    );
}
