//! The pages: the worklist, the case page, exports, the admin's status page, and what they
//! share (the navigation bar, formatting, the store on a blocking thread).

pub(crate) mod case;
pub(crate) mod exports;
pub(crate) mod status;
pub(crate) mod worklist;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use spinewatch_triage::{CaseStatus, Disposition, PatientFacts};
use time::OffsetDateTime;

use crate::error::PageError;
use crate::session::{SignedIn, session_of};
use crate::{App, Error};

/// Runs a store call on the blocking pool (SQLite is blocking).
pub(crate) async fn blocking<T: Send + 'static>(
    operation: &'static str,
    f: impl FnOnce() -> spinewatch_triage::Result<T> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::Join)?
        .map_err(|source| Error::Store { operation, source })
}

/// `GET /`: the worklist.
pub(crate) async fn root() -> Redirect {
    Redirect::to("/worklist")
}

/// Any other path: to the sign-in page when signed out (a page) or 401 (the API), else
/// 404.
pub(crate) async fn not_found(
    State(app): State<App>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    let api = uri.path().starts_with("/api/");
    let signed_in = if api {
        let store = app.web.store.clone();
        let headers = headers.clone();
        blocking("authenticate", move || {
            spinewatch_triage::auth::authenticate(&store, &headers)
        })
        .await
    } else {
        session_of(&app, &headers).await
    };
    match (signed_in, api) {
        (Err(e), _) => PageError::from(e).into_response(),
        (Ok(None), false) => Redirect::to("/login").into_response(),
        (Ok(None), true) => (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({
                "error": "sign in, or send an API token as Authorization: Bearer"
            })),
        )
            .into_response(),
        (Ok(Some(_)), true) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no such route" })),
        )
            .into_response(),
        (Ok(Some(_)), false) => PageError::NotFound.into_response(),
    }
}

/// What the navigation bar shows: who is signed in, their links, the sign-out form.
pub(crate) struct Nav {
    pub(crate) user: String,
    pub(crate) role: &'static str,
    pub(crate) admin: bool,
    pub(crate) csrf: String,
    /// The current section: `worklist`, `exports` or `status`.
    pub(crate) current: &'static str,
}

impl Nav {
    pub(crate) fn new(user: &SignedIn, current: &'static str) -> Self {
        Self {
            user: user.0.name.clone(),
            role: user.0.role.as_str(),
            admin: user.0.is_admin(),
            csrf: user.csrf().to_owned(),
            current,
        }
    }

    /// `aria-current="page"` for the current section's link.
    pub(crate) fn current_attr(&self, section: &str) -> &'static str {
        if self.current == section {
            "page"
        } else {
            "false"
        }
    }
}

/// The patient as the pages show them: name, ID, birth date, sex (`-` when unknown).
pub(crate) struct PatientView {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) birth_date: String,
    pub(crate) sex: String,
}

impl PatientView {
    pub(crate) fn new(patient: Option<&PatientFacts>) -> Self {
        let text = |v: Option<&String>| {
            v.map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map_or_else(|| "-".to_owned(), str::to_owned)
        };
        Self {
            name: patient
                .and_then(|p| p.name.as_deref())
                .map(person_name)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "Name not recorded".to_owned()),
            id: text(patient.and_then(|p| p.id.as_ref())),
            birth_date: text(patient.and_then(|p| p.birth_date.as_ref())),
            sex: text(patient.and_then(|p| p.sex.as_ref())),
        }
    }
}

/// A DICOM person name (PS3.5 6.2, PN: `Family^Given^Middle^Prefix^Suffix`, the
/// alphabetic group before any `=`) as `Family, Given Middle`.
pub(crate) fn person_name(pn: &str) -> String {
    let alphabetic = pn.split('=').next().unwrap_or_default();
    let parts: Vec<&str> = alphabetic.split('^').map(str::trim).collect();
    let family = parts.first().copied().unwrap_or_default();
    let given: Vec<&str> = parts
        .iter()
        .skip(1)
        .take(2)
        .copied()
        .filter(|p| !p.is_empty())
        .collect();
    match (family.is_empty(), given.is_empty()) {
        (_, true) => family.to_owned(),
        (true, false) => given.join(" "),
        (false, false) => format!("{family}, {}", given.join(" ")),
    }
}

/// A time as the pages show it: `2025-03-03 08:00 UTC`.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

/// A case's standing in words: `confirmed L1 grade 2`, `closed (cancer pathway)`, `open`.
pub(crate) fn describe(
    status: CaseStatus,
    disposition: Option<Disposition>,
    grade: Option<spinewatch_core::GenantGrade>,
    level: Option<spinewatch_core::VertebraLevel>,
) -> String {
    match (status, disposition, grade, level) {
        (CaseStatus::Confirmed, _, Some(g), Some(l)) => {
            format!("confirmed {l} grade {}", g.number())
        }
        (CaseStatus::Closed, Some(d), _, _) => format!("closed ({})", d.label()),
        (status, ..) => status.to_string(),
    }
}

/// A probability as a percentage.
pub(crate) fn percent(p: f64) -> String {
    format!("{:.0}%", p * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_names_read_naturally() {
        assert_eq!(person_name("Doe^Jane^Q^Dr"), "Doe, Jane Q");
        assert_eq!(person_name("Doe^Jane=ドウ^ジェーン"), "Doe, Jane");
        assert_eq!(person_name("Doe"), "Doe");
        assert_eq!(person_name("^Jane"), "Jane");
        assert_eq!(person_name(""), "");
    }
}
