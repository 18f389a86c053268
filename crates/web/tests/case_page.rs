//! The case page: the key image (a real PNG, its size on the `<img>`), the window presets,
//! the vertebrae table, the study's facts, the decision form with its preselections, and
//! decisions: confirm L1 grade 2 lands in the audit trail with before and after; a form
//! without (or with a wrong) CSRF token is refused and records nothing; the FLS
//! dispositions.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::StatusCode;
use common::{Fixture, JANE, NURSE, Study, attr, element, input_value};
use time::macros::date;

fn option_selected(html: &str, select_id: &str) -> String {
    let select = element(html, "select", &format!("id=\"{select_id}\"")).unwrap();
    let at = select.find(" selected>").unwrap();
    let start = select[..at].rfind("<option").unwrap();
    attr(&select[start..at], "value").unwrap()
}

#[tokio::test]
async fn the_case_page_shows_the_key_image_the_vertebrae_and_the_study() {
    let f = Fixture::new();
    let mut study = Study::l1("1.2.826.0.2.1", JANE, date!(2025 - 02 - 01));
    study.bone = Some((140, 320));
    study.soft = Some((140, 320));
    let n = f.queue(&study);
    let mut b = f.signed_in(NURSE).await;
    let page = b.get(&format!("/cases/{n}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let html = &page.body;

    let img = common::tag(html, "id=\"key-image\"").unwrap_or_else(|| panic!("{html}"));
    assert_eq!(
        attr(img, "src").unwrap(),
        format!("/cases/{n}/key-image?window=bone")
    );
    assert_eq!(attr(img, "width").unwrap(), "140");
    assert_eq!(attr(img, "height").unwrap(), "320");
    assert!(attr(img, "alt").unwrap().contains("L1"));
    assert!(html.contains("<a id=\"window-bone\" href=\"?window=bone\""));
    assert!(html.contains("<a id=\"window-soft\" href=\"?window=soft\""));

    // The image is the file, decoded as a PNG of that size.
    let png = b.get(&format!("/cases/{n}/key-image?window=bone")).await;
    assert_eq!(png.status, StatusCode::OK);
    assert_eq!(png.headers["content-type"], "image/png");
    let decoder = png::Decoder::new(std::io::Cursor::new(png.bytes.clone()));
    let reader = decoder.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (140, 320));

    // The soft-tissue window serves its own file.
    let soft_file = common::image_path(f.data_dir(), "1.2.826.0.2.1", "sagittal-soft.png");
    common::write_png(&soft_file, 140, 320);
    let soft_bytes = std::fs::read(&soft_file).unwrap();
    let soft = b.get(&format!("/cases/{n}?window=soft")).await;
    assert!(
        soft.body
            .contains(&format!("src=\"/cases/{n}/key-image?window=soft\""))
    );
    let r = b.get(&format!("/cases/{n}/key-image?window=soft")).await;
    assert_eq!(r.bytes, soft_bytes);

    assert!(html.contains("<span id=\"case-status\" class=\"status\">open</span>"));
    let table = element(html, "table", "id=\"vertebrae\"").unwrap();
    for level in ["T12", "L1", "L2"] {
        assert!(
            table.contains(&format!("data-level=\"{level}\"")),
            "{level}"
        );
    }
    let l1 = element(table, "tr", "data-level=\"L1\"").unwrap();
    for cell in [
        "<td>2</td>",
        "<td>91%</td>",
        "<td>18.5</td>",
        "<td>21.0</td>",
        "<td>26.2</td>",
        "<td>30%</td>",
    ] {
        assert!(l1.contains(cell), "{cell} missing from {l1}");
    }
    let facts = element(html, "dl", "id=\"study-facts\"").unwrap();
    for fact in [
        "2025-02-01",
        "SIEMENS SOMATOM Force",
        "#3 Bone 1.0",
        "400",
        "B70f",
        "vertebra-fracture 1.0.0",
        "cpu",
    ] {
        assert!(facts.contains(fact), "{fact} missing from {facts}");
    }
    // The patient, for the signed-in nurse.
    assert!(html.contains("Quimby, Jane Ann") && html.contains(JANE.id));

    // The form: the flagged level of the highest grade and its grade preselected.
    let form = element(html, "form", "id=\"decision-form\"").unwrap();
    assert!(form.contains(&format!("method=\"post\" action=\"/cases/{n}/decision\"")));
    for action in [
        "confirm",
        "dismiss",
        "already_known",
        "cancer_pathway",
        "not_appropriate",
        "refer_radiologist",
    ] {
        assert!(
            form.contains(&format!("<option value=\"{action}\"")),
            "{action}"
        );
    }
    assert_eq!(option_selected(html, "level"), "L1");
    assert_eq!(option_selected(html, "grade"), "2");
    assert!(form.contains("<textarea name=\"note\" id=\"note\""));
    assert!(form.contains("<button type=\"submit\" id=\"decide\">"));

    // Without the soft image, the bone one stands in.
    std::fs::remove_file(&soft_file).unwrap();
    let only_bone = Study {
        uid: "1.2.826.0.2.2",
        soft: None,
        ..Study::l1("", JANE, date!(2025 - 02 - 02))
    };
    let m = f.queue(&only_bone);
    let r = b.get(&format!("/cases/{m}/key-image?window=soft")).await;
    assert_eq!(r.status, StatusCode::OK);
    let bone = std::fs::read(common::image_path(
        f.data_dir(),
        "1.2.826.0.2.2",
        "sagittal.png",
    ))
    .unwrap();
    assert_eq!(r.bytes, bone);
    assert_eq!(b.get("/cases/999").await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get("/cases/abc").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn confirm_l1_grade_2_is_audited_with_before_and_after() {
    let f = Fixture::new();
    let n = f.queue(&Study::l1("1.2.826.0.3.1", JANE, date!(2025 - 02 - 01)));
    let mut b = f.signed_in(NURSE).await;
    let page = b.get(&format!("/cases/{n}")).await;
    let csrf = input_value(&page.body, "csrf");
    assert!(page.body.contains("<table id=\"audit\""));
    assert!(!page.body.contains("class=\"audit-entry\""));

    let r = b
        .post_form(
            &format!("/cases/{n}/decision"),
            &[
                ("csrf", &csrf),
                ("action", "confirm"),
                ("level", "L1"),
                ("grade", "2"),
                ("note", "wedge, anterior <b>"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), format!("/cases/{n}"));

    let page = b.get(&format!("/cases/{n}")).await;
    assert!(
        page.body
            .contains("<span id=\"case-status\" class=\"status\">confirmed L1 grade 2</span>")
    );
    let entry = element(&page.body, "tr", "class=\"audit-entry\"").unwrap();
    for cell in [
        "<td>2025-03-03 08:01 UTC</td>",
        "<td>nurse.a</td>",
        "<td>confirm</td>",
        "<td>open</td>",
        "<td>confirmed L1 grade 2</td>",
        // The note is escaped, not markup.
        "<td>wedge, anterior &#60;b&#62;</td>",
    ] {
        assert!(entry.contains(cell), "{cell} missing from {entry}");
    }
    let recorded = f.store.case_by_number(n).unwrap().unwrap();
    assert_eq!(recorded.decisions.len(), 1);
    assert_eq!(recorded.decisions[0].user, NURSE.0);

    // A correction: the before is the confirm it replaces.
    let r = b
        .post_form(
            &format!("/cases/{n}/decision"),
            &[
                ("csrf", &csrf),
                ("action", "cancer_pathway"),
                ("level", "L1"),
                ("grade", "2"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = b.get(&format!("/cases/{n}")).await;
    let entries: Vec<&str> = page
        .body
        .split("<tr class=\"audit-entry\">")
        .skip(1)
        .collect();
    assert_eq!(entries.len(), 2);
    assert!(
        entries[1].contains("<td>confirmed L1 grade 2</td><td>closed (cancer pathway)</td>"),
        "{}",
        entries[1]
    );
    assert!(
        page.body
            .contains("<span id=\"case-status\" class=\"status\">closed (cancer pathway)</span>")
    );
}

#[tokio::test]
async fn a_decision_without_the_session_token_is_refused_and_records_nothing() {
    let f = Fixture::new();
    let n = f.queue(&Study::l1("1.2.826.0.4.1", JANE, date!(2025 - 02 - 01)));
    let mut b = f.signed_in(NURSE).await;
    let path = format!("/cases/{n}/decision");
    let mut other = f.signed_in(common::ADMIN).await;
    let someone_elses = input_value(&other.get("/worklist").await.body, "csrf");
    for fields in [
        vec![("action", "dismiss")],
        vec![("action", "dismiss"), ("csrf", "")],
        vec![("action", "dismiss"), ("csrf", "0123456789abcdef")],
        // Another session's token is not this session's.
        vec![("action", "dismiss"), ("csrf", someone_elses.as_str())],
    ] {
        let r = b.post_form(&path, &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{fields:?}");
    }
    assert!(
        f.store
            .case_by_number(n)
            .unwrap()
            .unwrap()
            .decisions
            .is_empty()
    );

    // Bad values are 400 and record nothing either.
    let csrf = input_value(&b.get(&format!("/cases/{n}")).await.body, "csrf");
    for fields in [
        vec![
            ("csrf", csrf.as_str()),
            ("action", "confirm"),
            ("level", "L9"),
            ("grade", "2"),
        ],
        vec![
            ("csrf", csrf.as_str()),
            ("action", "confirm"),
            ("level", "L1"),
            ("grade", "0"),
        ],
        vec![("csrf", csrf.as_str()), ("action", "shelve")],
    ] {
        let r = b.post_form(&path, &fields).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{fields:?}");
    }
    assert!(
        f.store
            .case_by_number(n)
            .unwrap()
            .unwrap()
            .decisions
            .is_empty()
    );
}

#[tokio::test]
async fn each_fls_disposition_closes_the_case_with_its_reason() {
    let f = Fixture::new();
    let mut b = f.signed_in(NURSE).await;
    for (i, (action, status)) in [
        ("dismiss", "dismissed"),
        ("already_known", "closed (already known / on treatment)"),
        ("cancer_pathway", "closed (cancer pathway)"),
        ("not_appropriate", "closed (end of life or not appropriate)"),
        ("refer_radiologist", "referred"),
    ]
    .into_iter()
    .enumerate()
    {
        let uid = format!("1.2.826.0.5.{i}");
        let n = f.queue(&Study::l1(&uid, JANE, date!(2025 - 02 - 01)));
        let csrf = input_value(&b.get(&format!("/cases/{n}")).await.body, "csrf");
        let r = b
            .post_form(
                &format!("/cases/{n}/decision"),
                &[
                    ("csrf", &csrf),
                    ("action", action),
                    ("note", "seen in clinic"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{action}: {}", r.body);
        let page = b.get(&format!("/cases/{n}")).await;
        assert!(
            page.body.contains(&format!(
                "<span id=\"case-status\" class=\"status\">{status}</span>"
            )),
            "{action}"
        );
        let entry = element(&page.body, "tr", "class=\"audit-entry\"").unwrap();
        assert!(
            entry.contains(&format!(
                "<td>open</td><td>{status}</td><td>seen in clinic</td>"
            )),
            "{entry}"
        );
    }
}
