//! Signing in and out: the session cookie's flags, the same refusal for an unknown name
//! and a wrong password, the sign-in form's CSRF check, `next`, the failure throttle,
//! and sign-out ending the session.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Fixture, NURSE, input_value};
use spinewatch_web::session::{LOGIN_ERROR, MAX_FAILURES, THROTTLED_ERROR};

#[tokio::test]
async fn sign_in_sets_an_http_only_strict_session_cookie_and_opens_the_worklist() {
    let f = Fixture::new();
    let mut b = f.browser();
    let page = b.get("/login").await;
    assert_eq!(page.status, StatusCode::OK);
    for contract in [
        "<form id=\"login-form\" method=\"post\" action=\"/login\">",
        "name=\"name\"",
        "name=\"password\" type=\"password\"",
        "<button type=\"submit\" id=\"sign-in\">",
    ] {
        assert!(
            page.body.contains(contract),
            "{contract} missing: {}",
            page.body
        );
    }
    let csrf = input_value(&page.body, "csrf");
    assert_eq!(csrf.len(), 64);
    // The form's token is double-submitted: also in an HttpOnly cookie.
    let login_cookie = &page.set_cookies()[0];
    assert!(
        login_cookie.starts_with(&format!("spinewatch_login_csrf={csrf};")),
        "{login_cookie}"
    );
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"));

    let r = b
        .post_form(
            "/login",
            &[("name", NURSE.0), ("password", NURSE.1), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/worklist");
    let session = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("spinewatch_session="))
        .expect("a session cookie");
    let attributes: Vec<&str> = session.split("; ").collect();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(&flag), "{flag} missing: {session}");
    }
    // Not Secure by default (loopback behind a TLS proxy), 12 hours at most.
    assert!(!attributes.contains(&"Secure"), "{session}");
    assert!(attributes.contains(&"Max-Age=43200"), "{session}");
    let token = attributes[0].trim_start_matches("spinewatch_session=");
    assert_eq!(token.len(), 64);

    let worklist = b.get("/worklist").await;
    assert_eq!(worklist.status, StatusCode::OK);
    assert!(worklist.body.contains("<table id=\"worklist\">"));
    assert!(worklist.body.contains("id=\"sign-out\""));
    assert!(worklist.body.contains(NURSE.0));
    // Names are matched whatever their case.
    let mut other = f.browser();
    let r = other.sign_in("NURSE.A", NURSE.1).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // Pages are not cached and cannot be framed.
    assert_eq!(worklist.headers["cache-control"], "no-store");
    assert_eq!(worklist.headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn unknown_name_and_wrong_password_get_the_same_refusal() {
    let f = Fixture::new();
    let mut b = f.browser();
    let page = b.get("/login").await;
    let csrf = input_value(&page.body, "csrf");
    let mut answers = Vec::new();
    for (name, password) in [
        (NURSE.0, "wrong password 1"),
        ("nobody.here", "wrong password 1"),
    ] {
        let r = b
            .post_form(
                "/login",
                &[("name", name), ("password", password), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}");
        assert!(
            r.body.contains(&format!(
                "<p id=\"login-error\" class=\"error\" role=\"alert\">{LOGIN_ERROR}</p>"
            )),
            "{}",
            r.body
        );
        assert!(!r.body.contains(name), "the page repeats the name {name}");
        assert!(
            r.set_cookies()
                .iter()
                .all(|c| !c.starts_with("spinewatch_session"))
        );
        answers.push(r.body);
    }
    assert_eq!(answers[0], answers[1], "the two refusals differ");
    // Still signed out.
    assert_eq!(b.get("/worklist").await.status, StatusCode::SEE_OTHER);
    // A disabled user is refused the same way, with the right password.
    f.store.disable_user(NURSE.0).unwrap();
    let r = b
        .post_form(
            "/login",
            &[("name", NURSE.0), ("password", NURSE.1), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body, answers[0]);
}

#[tokio::test]
async fn sign_in_without_the_form_token_is_refused() {
    let f = Fixture::new();
    let mut b = f.browser();
    let page = b.get("/login").await;
    let csrf = input_value(&page.body, "csrf");
    let other = "0".repeat(64);
    for fields in [
        vec![("name", NURSE.0), ("password", NURSE.1)],
        vec![("name", NURSE.0), ("password", NURSE.1), ("csrf", "")],
        vec![
            ("name", NURSE.0),
            ("password", NURSE.1),
            ("csrf", other.as_str()),
        ],
    ] {
        let r = b.post_form("/login", &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{fields:?}");
        assert!(
            r.set_cookies()
                .iter()
                .all(|c| !c.starts_with("spinewatch_session"))
        );
    }
    // The right token without its cookie (a post from another site) is refused too.
    let mut stranger = f.browser();
    let r = stranger
        .post_form(
            "/login",
            &[("name", NURSE.0), ("password", NURSE.1), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get("/worklist").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn next_returns_to_a_page_of_this_site_only() {
    let f = Fixture::new();
    let mut b = f.browser();
    let r = b.get("/cases/3?window=soft").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login?next=/cases/3%3Fwindow%3Dsoft");
    let page = b.get(r.location()).await;
    assert_eq!(input_value(&page.body, "next"), "/cases/3?window=soft");
    let csrf = input_value(&page.body, "csrf");
    let r = b
        .post_form(
            "/login",
            &[
                ("name", NURSE.0),
                ("password", NURSE.1),
                ("csrf", &csrf),
                ("next", "/cases/3?window=soft"),
            ],
        )
        .await;
    assert_eq!(r.location(), "/cases/3?window=soft");

    for evil in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let mut b = f.browser();
        let page = b.get("/login").await;
        let csrf = input_value(&page.body, "csrf");
        let r = b
            .post_form(
                "/login",
                &[
                    ("name", ADMIN.0),
                    ("password", ADMIN.1),
                    ("csrf", &csrf),
                    ("next", evil),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.location(), "/worklist", "{evil}");
    }
}

#[tokio::test]
async fn repeated_failures_throttle_a_name_whether_it_exists_or_not() {
    let f = Fixture::new();
    let mut b = f.browser();
    let page = b.get("/login").await;
    let csrf = input_value(&page.body, "csrf");
    for name in [NURSE.0, "nobody.here"] {
        for _ in 0..MAX_FAILURES {
            let r = b
                .post_form(
                    "/login",
                    &[
                        ("name", name),
                        ("password", "wrong password 1"),
                        ("csrf", &csrf),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
    }
    let mut throttled = Vec::new();
    for (name, password) in [(NURSE.0, NURSE.1), ("nobody.here", NURSE.1)] {
        let r = b
            .post_form(
                "/login",
                &[("name", name), ("password", password), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert!(r.body.contains(THROTTLED_ERROR));
        assert!(
            r.set_cookies()
                .iter()
                .all(|c| !c.starts_with("spinewatch_session"))
        );
        throttled.push(r.body);
    }
    assert_eq!(throttled[0], throttled[1]);
    // Other names are not affected.
    let r = b
        .post_form(
            "/login",
            &[("name", ADMIN.0), ("password", ADMIN.1), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sign_out_ends_the_session_and_needs_its_token() {
    let f = Fixture::new();
    let mut b = f.signed_in(NURSE).await;
    let page = b.get("/worklist").await;
    let csrf = input_value(&page.body, "csrf");
    assert!(
        page.body
            .contains("<form id=\"logout-form\" method=\"post\" action=\"/logout\">")
    );
    let cookie = b.cookies["spinewatch_session"].clone();

    for bad in [vec![], vec![("csrf", "nope")]] {
        let r = b.post_form("/logout", &bad).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad:?}");
    }
    assert_eq!(b.get("/worklist").await.status, StatusCode::OK);

    let r = b.post_form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login");
    assert!(!b.cookies.contains_key("spinewatch_session"));
    // The old cookie is dead on the server too, not only deleted in the browser.
    let mut replay = f.browser();
    replay.cookies.insert("spinewatch_session".into(), cookie);
    let r = replay.get("/worklist").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login?next=/worklist");
}

/// Found by the browser test: while signed out, the browser's own `/favicon.ico` request
/// is sent to `/login`; that second sign-in page must not invalidate the form on screen.
#[tokio::test]
async fn a_second_sign_in_page_keeps_the_first_forms_token() {
    let f = Fixture::new();
    let mut b = f.browser();
    let page = b.get("/login").await;
    let csrf = input_value(&page.body, "csrf");
    let r = b.get("/favicon.ico").await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login"));
    let again = b.get("/login").await;
    assert_eq!(input_value(&again.body, "csrf"), csrf);
    let r = b
        .post_form(
            "/login",
            &[("name", NURSE.0), ("password", NURSE.1), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // A malformed cookie is replaced, not echoed into the page.
    let mut c = f.browser();
    c.cookies
        .insert("spinewatch_login_csrf".into(), "\"><script>".into());
    let page = c.get("/login").await;
    assert_eq!(input_value(&page.body, "csrf").len(), 64);
}
