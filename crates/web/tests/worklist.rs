//! The worklist: one entry per patient with their studies grouped (issue 6: two studies of
//! one patient are one entry with both), priority order, what was decided about a
//! patient's other studies, filters and counts, and no patient identifier in any URL.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::StatusCode;
use common::{
    Fixture, JANE, JOHN, NURSE, Study, attr, identifiers, input_value, patient_bodies, urls,
};
use spinewatch_triage::patient_key;
use time::macros::date;

#[tokio::test]
async fn issue_6_two_studies_of_one_patient_are_one_entry_with_both() {
    let f = Fixture::new();
    let first = f.queue(&Study::l1("1.2.826.0.10.1", JANE, date!(2025 - 01 - 10)));
    let john = f.queue(&Study {
        vertebrae: vec![("L3", 3, 0.97)],
        ..Study::l1("1.2.826.0.10.2", JOHN, date!(2025 - 01 - 20))
    });
    let second = f.queue(&Study::l1("1.2.826.0.10.3", JANE, date!(2025 - 02 - 14)));
    let mut b = f.signed_in(NURSE).await;
    let page = b.get("/worklist").await;
    assert_eq!(page.status, StatusCode::OK);
    let bodies = patient_bodies(&page.body);
    assert_eq!(bodies.len(), 2, "{}", page.body);

    // John's grade 3 comes first; Jane's two studies are one entry.
    let keys: Vec<String> = bodies
        .iter()
        .map(|b| attr(&format!(" {b}"), "data-patient-key").unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            patient_key(common::SECRET, JOHN.id),
            patient_key(common::SECRET, JANE.id)
        ]
    );
    let jane = bodies[1];
    assert_eq!(jane.matches("<tr class=\"study\">").count(), 2, "{jane}");
    for n in [first, second] {
        assert!(
            jane.contains(&format!("<a class=\"case-link\" href=\"/cases/{n}\">")),
            "{n}"
        );
    }
    assert!(jane.contains("Quimby, Jane Ann") && jane.contains(JANE.id));
    assert_eq!(bodies[0].matches("<tr class=\"study\">").count(), 1);
    assert!(bodies[0].contains(&format!("href=\"/cases/{john}\"")));
    assert!(
        page.body
            .contains("<p id=\"counts\">2 patients, 3 studies shown.")
    );
}

#[tokio::test]
async fn a_patients_decided_study_is_shown_beside_the_open_one() {
    let f = Fixture::new();
    let earlier = f.queue(&Study::l1("1.2.826.0.11.1", JANE, date!(2024 - 06 - 01)));
    let mut b = f.signed_in(NURSE).await;
    let csrf = input_value(&b.get(&format!("/cases/{earlier}")).await.body, "csrf");
    let r = b
        .post_form(
            &format!("/cases/{earlier}/decision"),
            &[
                ("csrf", &csrf),
                ("action", "confirm"),
                ("level", "L1"),
                ("grade", "2"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let later = f.queue(&Study::l1("1.2.826.0.11.2", JANE, date!(2025 - 02 - 01)));

    let page = b.get("/worklist").await;
    let bodies = patient_bodies(&page.body);
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0].matches("<tr class=\"study\">").count(), 1);
    assert!(bodies[0].contains(&format!("href=\"/cases/{later}\"")));
    assert!(
        bodies[0].contains(&format!(
            "<li class=\"earlier-decision\"><a href=\"/cases/{earlier}\">Case {earlier}</a> (2024-06-01): confirmed L1 grade 2</li>"
        )),
        "{}",
        bodies[0]
    );
    // The case page says so too.
    let case = b.get(&format!("/cases/{later}")).await;
    assert!(case.body.contains("id=\"other-studies\""));
    assert!(case.body.contains("confirmed L1 grade 2"));
    assert!(
        page.body
            .contains("<span data-status=\"open\">1 open</span>")
    );
    assert!(
        page.body
            .contains("<span data-status=\"confirmed\">1 confirmed</span>")
    );
}

#[tokio::test]
async fn filters_select_by_status_date_grade_and_scanner() {
    let f = Fixture::new();
    let a = f.queue(&Study::l1("1.2.826.0.12.1", JANE, date!(2025 - 01 - 10)));
    let c = f.queue(&Study {
        vertebrae: vec![("T8", 3, 0.99)],
        scanner: ("GE MEDICAL SYSTEMS", "Revolution CT"),
        ..Study::l1("1.2.826.0.12.2", JOHN, date!(2025 - 03 - 01))
    });
    let mut b = f.signed_in(NURSE).await;
    let shown = |html: &str| -> Vec<String> {
        html.split("class=\"case-link\" href=\"")
            .skip(1)
            .map(|s| s[..s.find('"').unwrap()].to_owned())
            .collect()
    };
    let case = |n: i64| format!("/cases/{n}");
    for (query, expected) in [
        ("/worklist", vec![case(c), case(a)]),
        ("/worklist?min_grade=3", vec![case(c)]),
        ("/worklist?from=2025-02-01", vec![case(c)]),
        ("/worklist?to=2025-01-31", vec![case(a)]),
        ("/worklist?scanner=SIEMENS+SOMATOM+Force", vec![case(a)]),
        ("/worklist?status=confirmed", vec![]),
        (
            "/worklist?status=any&from=&to=&min_grade=&scanner=",
            vec![case(c), case(a)],
        ),
    ] {
        let page = b.get(query).await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert_eq!(shown(&page.body), expected, "{query}");
    }
    for bad in [
        "/worklist?status=shut",
        "/worklist?from=2025-13-01",
        "/worklist?min_grade=7",
    ] {
        assert_eq!(b.get(bad).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let page = b.get("/worklist").await;
    assert!(
        page.body
            .contains("<option value=\"GE MEDICAL SYSTEMS Revolution CT\">")
    );
}

#[tokio::test]
async fn no_url_the_pages_emit_carries_a_patient_identifier() {
    let f = Fixture::new();
    let uid = "1.2.826.0.13.1";
    let n = f.queue(&Study::l1(uid, JANE, date!(2025 - 01 - 10)));
    let mut b = f.signed_in(NURSE).await;
    let mut seen = Vec::new();
    for path in [
        "/worklist".to_owned(),
        format!("/cases/{n}"),
        format!("/cases/{n}?window=soft"),
        "/exports".to_owned(),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        // The page itself does show the patient (signed in)...
        if path != "/exports" {
            assert!(page.body.contains(JANE.id), "{path}");
        }
        seen.extend(urls(&page.body));
    }
    let csrf = input_value(&b.get(&format!("/cases/{n}")).await.body, "csrf");
    let r = b
        .post_form(
            &format!("/cases/{n}/decision"),
            &[("csrf", &csrf), ("action", "dismiss")],
        )
        .await;
    seen.push(r.location().to_owned());
    assert!(seen.len() > 10, "{seen:?}");
    // ...but no link, image, form or redirect names them or the study.
    let mut forbidden = identifiers(JANE);
    forbidden.push(uid.to_owned());
    for url in &seen {
        for id in &forbidden {
            assert!(!url.contains(id.as_str()), "{url} contains {id}");
        }
    }
}
