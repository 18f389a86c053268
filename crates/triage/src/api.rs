//! The queue's HTTP JSON API (axum).
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `GET /api/cases?status=&grade=&min_grade=&from=&to=&scanner=&limit=&offset=` | | `[CaseSummary]` |
//! | `GET /api/cases/{study_uid}` | | `CaseDetail`: every vertebra, key images, decisions |
//! | `POST /api/cases/{study_uid}/confirm` | `{"grade", "level", "note"?}` | `CaseDetail` |
//! | `POST /api/cases/{study_uid}/{action}` | `{"note"?}` | `CaseDetail` |
//!
//! `{action}` is `dismiss` (false positive), `refer` (to a radiologist), or one of the
//! dispositions that close a case: `already_known`, `cancer_pathway`, `not_appropriate`.
//!
//! **Every route needs an identity**: `Authorization: Bearer <token>` (an API token from
//! `spinewatch token create`) or the web UI's session cookie; a POST by session cookie must
//! carry the session's CSRF token in `X-CSRF-Token`. Without one the answer is 401
//! (`WWW-Authenticate: Bearer`); a missing or wrong CSRF token is 403. A decision is
//! recorded under the identity's user name, never one from the body (a body naming a
//! `user` is refused as an unknown field).
//!
//! The worklist is in priority order. `status` is
//! `open | confirmed | dismissed | referred | closed`; `grade` (exact highest grade) and
//! `min_grade` are `0..=3`; `from` and `to` are `YYYY-MM-DD`, inclusive, on the study date
//! (the queued day when the study has none); `scanner` is exact. A level is `"T1".."L5"`, a
//! grade an integer.
//!
//! Errors are `{"error": "..."}`: 400 for a malformed request (unknown query key or body
//! field, bad value), 401 without an identity, 403 without the CSRF token, 404 for an
//! unknown study or action, 409 while the study is being re-analysed, 500 (generic; the
//! cause is logged) otherwise.
//!
//! Store calls are blocking (SQLite): each runs on tokio's blocking pool.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use spinewatch_core::{GenantGrade, VertebraLevel};

use crate::auth::{self, CSRF_HEADER, Identity};
use crate::queue::{
    Action, CaseDetail, CaseFilter, CaseStatus, CaseSummary, Decision, Disposition, parse_date,
};
use crate::{Error, ErrorChain, Store};

/// The API's routes on `store`.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/api/cases", get(list_cases))
        .route("/api/cases/{study_uid}", get(case_detail))
        .route("/api/cases/{study_uid}/confirm", post(confirm))
        .route("/api/cases/{study_uid}/{action}", post(decide_other))
        .with_state(store)
}

/// The identity of an API request (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct ApiUser(pub Identity);

impl FromRequestParts<Store> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, store: &Store) -> Result<Self, ApiError> {
        let headers = parts.headers.clone();
        let store = store.clone();
        let identity = blocking(move || auth::authenticate(&store, &headers))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if !parts.method.is_safe()
            && let Some(expected) = identity.csrf_token()
        {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !auth::same_secret(sent, expected) {
                return Err(ApiError::Forbidden(
                    "a request signed in by cookie needs its CSRF token in X-CSRF-Token".into(),
                ));
            }
        }
        Ok(ApiUser(identity))
    }
}

/// The worklist's query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    grade: Option<u8>,
    min_grade: Option<u8>,
    from: Option<String>,
    to: Option<String>,
    scanner: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

impl ListQuery {
    fn filter(self) -> Result<CaseFilter, ApiError> {
        let bad = ApiError::BadRequest;
        let grade = |g: Option<u8>, key: &str| {
            g.map(GenantGrade::try_from)
                .transpose()
                .map_err(|e| bad(format!("{key}: {e}")))
        };
        let date = |d: Option<String>, key: &str| {
            d.map(|d| parse_date(&d))
                .transpose()
                .map_err(|e| bad(format!("{key}: {e}")))
        };
        let filter = CaseFilter {
            status: self
                .status
                .map(|s| s.parse::<CaseStatus>())
                .transpose()
                .map_err(|e| bad(format!("status: {e}")))?,
            grade: grade(self.grade, "grade")?,
            min_grade: grade(self.min_grade, "min_grade")?,
            from: date(self.from, "from")?,
            to: date(self.to, "to")?,
            scanner: self.scanner.filter(|s| !s.is_empty()),
            limit: self.limit,
            offset: self.offset,
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err(bad("from is after to".into()));
        }
        Ok(filter)
    }
}

/// Body of `confirm`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    grade: u8,
    level: String,
    note: Option<String>,
}

/// Body of the other decisions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    note: Option<String>,
}

async fn list_cases(
    ApiUser(_): ApiUser,
    State(store): State<Store>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<CaseSummary>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = query.filter()?;
    blocking(move || store.list_cases(&filter)).await.map(Json)
}

async fn case_detail(
    ApiUser(_): ApiUser,
    State(store): State<Store>,
    Path(study): Path<String>,
) -> Result<Json<CaseDetail>, ApiError> {
    let uid = study.clone();
    match blocking(move || store.case(&uid)).await? {
        Some(case) => Ok(Json(case)),
        None => Err(ApiError::NotFound(format!("no case for study {study}"))),
    }
}

async fn confirm(
    ApiUser(identity): ApiUser,
    State(store): State<Store>,
    Path(study): Path<String>,
    body: Result<Json<ConfirmBody>, JsonRejection>,
) -> Result<Json<CaseDetail>, ApiError> {
    let Json(body) = body.map_err(ApiError::from_json)?;
    let grade = GenantGrade::try_from(body.grade)
        .map_err(|e| ApiError::BadRequest(format!("grade: {e}")))?;
    let level: VertebraLevel = body
        .level
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("level: {e}")))?;
    let decision = Decision {
        user: identity.name,
        action: Action::Confirm { grade, level },
        note: body.note,
    };
    decide(store, study, decision).await
}

/// The action of `POST /api/cases/{study_uid}/{action}` other than `confirm`.
fn other_action(name: &str) -> Option<Action> {
    match name {
        "dismiss" => Some(Action::Dismiss),
        "refer" => Some(Action::Refer),
        other => other.parse::<Disposition>().ok().map(Action::Close),
    }
}

async fn decide_other(
    ApiUser(identity): ApiUser,
    State(store): State<Store>,
    Path((study, action)): Path<(String, String)>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<CaseDetail>, ApiError> {
    let action = other_action(&action).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no action `{action}` (confirm, dismiss, refer, already_known, cancer_pathway, \
             not_appropriate)"
        ))
    })?;
    let Json(body) = body.map_err(ApiError::from_json)?;
    let decision = Decision {
        user: identity.name,
        action,
        note: body.note,
    };
    decide(store, study, decision).await
}

async fn decide(
    store: Store,
    study: String,
    decision: Decision,
) -> Result<Json<CaseDetail>, ApiError> {
    blocking(move || store.decide(&study, &decision))
        .await
        .map(Json)
}

/// Runs a store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "Triage store call panicked.");
            Err(ApiError::Internal)
        }
    }
}

/// An API error: a 4xx carries its text, a 5xx is generic (the cause is logged).
#[derive(Debug)]
pub enum ApiError {
    /// 400.
    BadRequest(String),
    /// 401: no identity.
    Unauthorized,
    /// 403.
    Forbidden(String),
    /// 415.
    UnsupportedMediaType(String),
    /// 404.
    NotFound(String),
    /// 409.
    Conflict(String),
    /// 500 (the cause is logged).
    Internal,
}

impl ApiError {
    fn from_json(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            Self::UnsupportedMediaType(rejection.body_text())
        } else {
            Self::BadRequest(rejection.body_text())
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { .. } => Self::NotFound(e.to_string()),
            Error::InvalidDecision(_) => Self::BadRequest(e.to_string()),
            Error::AnalysisPending { .. } => Self::Conflict(e.to_string()),
            e => {
                tracing::error!(error = %ErrorChain(&e), "Triage request failed.");
                Self::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::Unauthorized => {
                let body = serde_json::json!({
                    "error": "sign in, or send an API token as Authorization: Bearer"
                });
                let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            Self::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, m),
            Self::Conflict(m) => (StatusCode::CONFLICT, m),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error (see the server log)".to_owned(),
            ),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}
