//! The queue's HTTP JSON API (axum).
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `GET /api/cases?status=&grade=&min_grade=&from=&to=&limit=&offset=` | | `[CaseSummary]` |
//! | `GET /api/cases/{study_uid}` | | `CaseDetail`: every vertebra, key images, decisions |
//! | `POST /api/cases/{study_uid}/confirm` | `{"user", "grade", "level", "note"?}` | `CaseDetail` |
//! | `POST /api/cases/{study_uid}/dismiss` | `{"user", "note"?}` | `CaseDetail` |
//! | `POST /api/cases/{study_uid}/refer` | `{"user", "note"?}` | `CaseDetail` |
//!
//! The worklist is in priority order. `status` is `open | confirmed | dismissed | referred`;
//! `grade` (exact highest grade) and `min_grade` are `0..=3`; `from` and `to` are
//! `YYYY-MM-DD`, inclusive, on the study date (the queued day when the study has none).
//! A level is `"T1".."L5"`, a grade an integer.
//!
//! Errors are `{"error": "..."}`: 400 for a malformed request (unknown query key, bad value,
//! empty user), 404 for an unknown study, 409 while the study is being re-analysed, 500
//! (generic; the cause is logged) otherwise. Authentication comes with the web UI; until
//! then `user` is taken from the body.
//!
//! Store calls are blocking (SQLite): each runs on tokio's blocking pool.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use spinewatch_core::{GenantGrade, VertebraLevel};

use crate::queue::{Action, CaseDetail, CaseFilter, CaseStatus, CaseSummary, Decision, parse_date};
use crate::{Error, ErrorChain, Store};

/// The API's routes on `store`.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/api/cases", get(list_cases))
        .route("/api/cases/{study_uid}", get(case_detail))
        .route("/api/cases/{study_uid}/confirm", post(confirm))
        .route("/api/cases/{study_uid}/dismiss", post(dismiss))
        .route("/api/cases/{study_uid}/refer", post(refer))
        .with_state(store)
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
    user: String,
    grade: u8,
    level: String,
    note: Option<String>,
}

/// Body of `dismiss` and `refer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    user: String,
    note: Option<String>,
}

async fn list_cases(
    State(store): State<Store>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<CaseSummary>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = query.filter()?;
    blocking(move || store.list_cases(&filter)).await.map(Json)
}

async fn case_detail(
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
        user: body.user,
        action: Action::Confirm { grade, level },
        note: body.note,
    };
    decide(store, study, decision).await
}

async fn dismiss(
    State(store): State<Store>,
    Path(study): Path<String>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<CaseDetail>, ApiError> {
    let Json(body) = body.map_err(ApiError::from_json)?;
    decide(store, study, body.into_decision(Action::Dismiss)).await
}

async fn refer(
    State(store): State<Store>,
    Path(study): Path<String>,
    body: Result<Json<DecisionBody>, JsonRejection>,
) -> Result<Json<CaseDetail>, ApiError> {
    let Json(body) = body.map_err(ApiError::from_json)?;
    decide(store, study, body.into_decision(Action::Refer)).await
}

impl DecisionBody {
    fn into_decision(self, action: Action) -> Decision {
        Decision {
            user: self.user,
            action,
            note: self.note,
        }
    }
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
enum ApiError {
    BadRequest(String),
    UnsupportedMediaType(String),
    NotFound(String),
    Conflict(String),
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
