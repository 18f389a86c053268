//! Signing in and out, and who is signed in.
//!
//! # Sign-in
//!
//! `GET /login` gives the form with a fresh random token, both in a hidden `csrf` field and
//! in a cookie (`spinewatch_login_csrf`, HttpOnly, SameSite=Strict): `POST /login` is
//! refused (403) unless the two match (a double-submit check: another site can make a
//! browser post the form, but cannot read or set the cookie). The name and password are
//! then checked; a name that does not exist (or is disabled) is checked against a dummy
//! argon2 hash, so it takes as long and is answered with the very same page (401, "Wrong
//! name or password.") as a wrong password. After [`MAX_FAILURES`] failures for one name
//! within [`FAILURE_WINDOW`], every attempt for that name, right or wrong, existing or not,
//! is answered 429 until the window slides past them. On success a new session is made
//! (a new token each time: no session fixation), its cookie set (`spinewatch_session`,
//! HttpOnly, SameSite=Strict, Path=/, Secure when configured) and the browser is sent
//! (303) to `next` when that is a path of this site, else to `/worklist`.
//!
//! # Signed-in requests
//!
//! [`SignedIn`] reads the session cookie; a request without a live session is sent to
//! `/login?next=...` (303) before its handler runs, so no content is ever rendered for it.
//! [`Admin`] also needs the admin role (403 otherwise). Every form of a signed-in page
//! carries the session's CSRF token; [`check_csrf`] refuses (403) a post without it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use spinewatch_triage::auth::{self, SESSION_COOKIE};
use spinewatch_triage::{ErrorChain, Identity};

use crate::error::PageError;
use crate::{App, Error, password};

/// The sign-in form's CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "spinewatch_login_csrf";
/// Failed sign-ins for one name before its attempts are refused.
pub const MAX_FAILURES: usize = 5;
/// How long a failed sign-in counts.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Names the throttle tracks at most; beyond that, stale ones are forgotten first.
const MAX_TRACKED_NAMES: usize = 10_000;
/// What a refused sign-in says, whatever was wrong.
pub const LOGIN_ERROR: &str = "Wrong name or password.";
/// What a throttled sign-in says.
pub const THROTTLED_ERROR: &str =
    "Too many failed sign-ins for this name. Wait 15 minutes, or ask an administrator.";
/// How long the sign-in form stays valid.
const LOGIN_FORM_SECS: u64 = 3600;

/// Failed sign-ins by name (lower case), in memory: a restart forgets them.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    fn key(name: &str) -> String {
        name.trim()
            .chars()
            .take(64)
            .collect::<String>()
            .to_lowercase()
    }

    /// Whether `name` has had [`MAX_FAILURES`] failures within the window.
    pub fn blocked(&self, name: &str) -> bool {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(times) = map.get_mut(&Self::key(name)) else {
            return false;
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
        {
            times.pop_front();
        }
        times.len() >= MAX_FAILURES
    }

    /// Counts a failure for `name`.
    pub fn fail(&self, name: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_TRACKED_NAMES {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
            if map.len() >= MAX_TRACKED_NAMES {
                // A flood of names: forgetting is better than growing without bound.
                map.clear();
            }
        }
        let times = map.entry(Self::key(name)).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    /// Forgets the failures of `name` (after it signed in).
    pub fn clear(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&Self::key(name));
    }
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, on `path`, `Secure` when asked;
/// `max_age_secs` 0 deletes the cookie.
fn set_cookie(name: &str, value: &str, path: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    );
    // Names are constants and values hex: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// The signed-in user of a page request (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct SignedIn(pub Identity);

impl SignedIn {
    /// The session's CSRF token, for the page's forms.
    pub fn csrf(&self) -> &str {
        self.0.csrf_token().unwrap_or_default()
    }
}

impl FromRequestParts<App> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        match session_of(app, &parts.headers).await {
            Ok(Some(identity)) => Ok(SignedIn(identity)),
            Ok(None) => Err(to_login(parts)),
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

/// A signed-in admin; a signed-in nurse is refused with 403.
#[derive(Debug, Clone)]
pub struct Admin(pub SignedIn);

impl FromRequestParts<App> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        let signed_in = SignedIn::from_request_parts(parts, app).await?;
        if signed_in.0.is_admin() {
            Ok(Admin(signed_in))
        } else {
            Err(PageError::Forbidden("This page is for administrators.".into()).into_response())
        }
    }
}

/// The live session of the request's cookie, if any (bearer tokens are for the API, not
/// for pages).
pub(crate) async fn session_of(app: &App, headers: &HeaderMap) -> Result<Option<Identity>, Error> {
    let Some(token) = auth::cookie(headers, SESSION_COOKIE).map(str::to_owned) else {
        return Ok(None);
    };
    let store = app.web.store.clone();
    crate::pages::blocking("check the session", move || store.session(&token)).await
}

/// 303 to the sign-in page, coming back to this page (GET) afterwards.
fn to_login(parts: &Parts) -> Response {
    let back = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| parts.method == Method::GET && is_local_path(p) && *p != "/");
    match back {
        Some(path) => {
            Redirect::to(&format!("/login?next={}", percent_encode(path))).into_response()
        }
        None => Redirect::to("/login").into_response(),
    }
}

/// Refuses (403) a form post whose `csrf` field is not the session's token.
pub(crate) fn check_csrf(user: &SignedIn, sent: &str) -> Result<(), PageError> {
    let expected = user.csrf();
    if !expected.is_empty() && auth::same_secret(sent, expected) {
        Ok(())
    } else {
        Err(PageError::Forbidden(
            "The form is out of date or did not come from this site. Go back, reload the \
             page and try again."
                .into(),
        ))
    }
}

/// Whether `path` is a path of this site (where `next` may send the browser): one leading
/// slash, not `//host` or `/\host`, no control characters, not the sign-in pages.
fn is_local_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !path.chars().any(char::is_control)
        && path.len() <= 512
        && !path.starts_with("/login")
        && !path.starts_with("/logout")
}

/// Percent-encodes everything but unreserved characters and `/` (RFC 3986, 2.3).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    error: Option<&'a str>,
}

/// `GET /login`'s query.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: String,
}

/// `GET /login`: the form, with a CSRF token in it and in its cookie. A browser that has
/// a well-formed token already keeps it: a second sign-in tab, or the browser's own
/// request for `/favicon.ico` (sent to `/login` while signed out), must not invalidate the
/// form on screen.
pub(crate) async fn login_page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let kept = auth::cookie(&headers, LOGIN_CSRF_COOKIE)
        .filter(|c| c.len() == 2 * auth::SECRET_BYTES && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    let csrf = match kept {
        Some(csrf) => csrf,
        None => auth::new_secret().map_err(|source| Error::Store {
            operation: "make a sign-in form token",
            source,
        })?,
    };
    let next = if is_local_path(&query.next) {
        query.next.as_str()
    } else {
        ""
    };
    let mut response = login_form(StatusCode::OK, &csrf, next, None)?;
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_CSRF_COOKIE,
            &csrf,
            "/login",
            LOGIN_FORM_SECS,
            app.web.settings.secure_cookies,
        ),
    );
    Ok(response)
}

fn login_form(
    status: StatusCode,
    csrf: &str,
    next: &str,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let html = LoginPage { csrf, next, error }
        .render()
        .map_err(|source| Error::Render {
            page: "sign-in",
            source,
        })?;
    Ok((status, Html(html)).into_response())
}

/// The sign-in form as posted; a missing field is empty.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `POST /login` (see the [module docs](self)).
pub(crate) async fn login(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let cookie_csrf = auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if form.csrf.is_empty() || !auth::same_secret(&form.csrf, cookie_csrf) {
        return Err(PageError::Forbidden(
            "The sign-in form has expired or did not come from this site. Reload the sign-in \
             page and try again."
                .into(),
        ));
    }
    let next = if is_local_path(&form.next) {
        form.next.as_str()
    } else {
        ""
    };
    if app.throttle.blocked(&form.name) {
        tracing::warn!("Sign-in refused: too many failures for the name.");
        return login_form(
            StatusCode::TOO_MANY_REQUESTS,
            &form.csrf,
            next,
            Some(THROTTLED_ERROR),
        );
    }
    let name = form.name.trim().to_owned();
    let store = app.web.store.clone();
    let lookup = name.clone();
    let credentials =
        crate::pages::blocking("read credentials", move || store.credentials(&lookup)).await?;
    let password = form.password;
    let (user, stored) = match credentials {
        Some(c) if c.user.disabled_at.is_none() => (Some(c.user), c.password_hash),
        _ => (None, password::dummy_hash().to_owned()),
    };
    let matches = tokio::task::spawn_blocking(move || password::verify(&password, &stored))
        .await
        .map_err(Error::Join)?;
    let Some(user) = user.filter(|_| matches) else {
        app.throttle.fail(&name);
        // The attempted name is not logged: people type passwords into name fields.
        tracing::info!("Sign-in refused.");
        return login_form(
            StatusCode::UNAUTHORIZED,
            &form.csrf,
            next,
            Some(LOGIN_ERROR),
        );
    };
    app.throttle.clear(&name);
    let store = app.web.store.clone();
    let limits = app.web.settings.session;
    let session = crate::pages::blocking("create a session", move || {
        store.create_session(user.id, limits)
    })
    .await?;
    tracing::info!(user = %user.name, role = %user.role, "Signed in.");
    let secure = app.web.settings.secure_cookies;
    let mut response =
        Redirect::to(if next.is_empty() { "/worklist" } else { next }).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &session.token,
            "/",
            limits.max.as_secs(),
            secure,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, "", "/login", 0, secure),
    );
    Ok(response)
}

/// A form with only its CSRF token (sign-out).
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the session and deletes its cookie.
pub(crate) async fn logout(
    State(app): State<App>,
    headers: HeaderMap,
    user: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    check_csrf(&user, &form.csrf)?;
    if let Some(token) = auth::cookie(&headers, SESSION_COOKIE).map(str::to_owned) {
        let store = app.web.store.clone();
        if let Err(e) =
            crate::pages::blocking("end the session", move || store.end_session(&token)).await
        {
            // The cookie is deleted anyway; the row expires by itself.
            tracing::warn!(error = %ErrorChain(&e), "Could not end a session.");
        }
    }
    tracing::info!(user = %user.0.name, "Signed out.");
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", 0, app.web.settings.secure_cookies),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_must_be_a_local_path() {
        for ok in ["/worklist", "/cases/3?window=soft", "/exports"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "",
            "worklist",
            "//evil.example/x",
            "/\\evil.example",
            "https://evil.example/",
            "/login?next=/x",
            "/logout",
            "/a\nb",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
        assert_eq!(
            percent_encode("/cases/3?window=soft"),
            "/cases/3%3Fwindow%3Dsoft"
        );
    }

    #[test]
    fn throttle_blocks_after_max_failures_and_forgets_on_success() {
        let t = Throttle::default();
        for _ in 0..MAX_FAILURES - 1 {
            t.fail("Nurse.A");
        }
        assert!(!t.blocked("nurse.a"));
        t.fail(" nurse.a");
        assert!(t.blocked("NURSE.A"));
        assert!(!t.blocked("nurse.b"));
        t.clear("nurse.a");
        assert!(!t.blocked("nurse.a"));
    }

    #[test]
    fn cookies_are_http_only_strict_and_optionally_secure() {
        let c = set_cookie("a", "b", "/", 60, false);
        assert_eq!(c, "a=b; Path=/; Max-Age=60; HttpOnly; SameSite=Strict");
        let c = set_cookie("a", "b", "/", 60, true);
        assert!(c.to_str().unwrap_or_default().ends_with("; Secure"));
    }
}
