//! `spinewatch-web`: the nurses' web UI, served by `spinewatch serve`.
//!
//! ```text
//! triage store (queue, audit, users, sessions) --> web: /login, /worklist, /cases/{n},
//!                                                       /exports, /admin/status, /api/...
//! ```
//!
//! Server-rendered HTML from compile-time templates ([askama](https://askama.rs): the
//! templates are compiled into the binary, nothing is read at run time), no script, no
//! external asset (a hospital network has no internet), readable at 1280x800 and usable
//! with the keyboard (real links, buttons and labels; a visible focus ring).
//!
//! - [`password`]: argon2id hashes (OWASP's parameters, the crate's defaults).
//! - [`session`]: sign-in and sign-out, the session cookie, CSRF checks, the failure
//!   throttle, and the extractors that refuse anonymous requests ([`session::SignedIn`]).
//! - `pages`: the worklist (one entry per patient), the case page (key image, vertebrae,
//!   study facts, decision form, audit trail), exports (CSV register, per-month counts) and
//!   the admin's status page.
//!
//! Every page needs a session: an anonymous request is sent to `/login` (303) and gets no
//! content. The JSON API (`spinewatch_triage::api`) is merged in, with bearer tokens or
//! the session (401 otherwise). Patient identifiers appear only in signed-in pages and the
//! CSV export; never in a URL (cases are `/cases/{n}`, `n` a number given at queueing) and
//! never in a log.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::time::Duration;
//! use spinewatch_triage::{SessionLimits, Store};
//! use spinewatch_web::{ModelFacts, WebSettings, WebState};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let state = WebState {
//!     store: Store::open("data/spinewatch.sqlite")?,
//!     data_dir: "data".into(),
//!     metrics: Arc::new(String::new),
//!     model: ModelFacts { version: "vertebra-fracture 1.0.0".into(), execution_provider: "cpu".into() },
//!     settings: WebSettings::default(),
//! };
//! let app = spinewatch_web::router(state);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware;
use axum::routing::{get, post};
use spinewatch_triage::{SessionLimits, Store};

pub mod error;
mod pages;
pub mod password;
mod png;
pub mod session;

pub use error::{Error, Result};

/// The Prometheus text of every metric, as `/metrics` serves it.
pub type MetricsSource = Arc<dyn Fn() -> String + Send + Sync>;

/// What the web UI works on.
#[derive(Clone)]
pub struct WebState {
    /// The queue, the audit trail, users and sessions.
    pub store: Store,
    /// The data directory: the key images' paths are relative to it.
    pub data_dir: PathBuf,
    /// The metrics `/metrics` serves (the status page shows the same numbers).
    pub metrics: MetricsSource,
    /// The model that runs.
    pub model: ModelFacts,
    /// Sessions and cookies.
    pub settings: WebSettings,
}

/// The model the service runs, for the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFacts {
    /// Name and version.
    pub version: String,
    /// The execution provider running it.
    pub execution_provider: String,
}

/// How sessions and cookies behave (`[web]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSettings {
    /// Idle and absolute session timeouts.
    pub session: SessionLimits,
    /// Mark cookies `Secure` (sent over HTTPS only): on when the browser reaches the
    /// service over TLS (a proxy in front).
    pub secure_cookies: bool,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            session: SessionLimits {
                idle: Duration::from_secs(30 * 60),
                max: Duration::from_secs(12 * 3600),
            },
            secure_cookies: false,
        }
    }
}

/// The state the handlers share: the [`WebState`] and the sign-in throttle.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) web: Arc<WebState>,
    pub(crate) throttle: Arc<session::Throttle>,
}

/// The web UI and the JSON API: every route needs a session (pages) or a session or
/// bearer token (`/api`). Add the probes (`/healthz`, `/readyz`, `/metrics`) beside it.
pub fn router(state: WebState) -> Router {
    let api = spinewatch_triage::api::router(state.store.clone());
    let app = App {
        web: Arc::new(state),
        throttle: Arc::new(session::Throttle::default()),
    };
    let pages = Router::new()
        .route("/", get(pages::root))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/worklist", get(pages::worklist::page))
        .route("/cases/{n}", get(pages::case::page))
        .route("/cases/{n}/key-image", get(pages::case::key_image))
        .route("/cases/{n}/decision", post(pages::case::decide))
        .route("/exports", get(pages::exports::page))
        .route("/exports/confirmed.csv", get(pages::exports::confirmed_csv))
        .route("/exports/monthly.csv", get(pages::exports::monthly_csv))
        .route("/admin/status", get(pages::status::page))
        .fallback(pages::not_found)
        .with_state(app)
        .layer(middleware::map_response(page_headers));
    api.merge(pages)
}

/// Headers on every page: nothing cached (pages carry patient identity), nothing framed,
/// no script, no request to anywhere but here, no referrer.
async fn page_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(headers, header::CACHE_CONTROL, "no-store");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    response
}
