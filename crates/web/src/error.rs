//! Errors of the web UI, and how a page shows one.

use std::path::PathBuf;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use spinewatch_triage::ErrorChain;

/// Result with the web [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, one variant per failing operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A new password breaks a rule.
    #[error("password refused: {0}")]
    WeakPassword(String),

    /// argon2 could not hash a password.
    #[error("could not hash the password")]
    HashPassword {
        /// Why (the password-hash crate's error).
        #[source]
        source: argon2::password_hash::Error,
    },

    /// A store call failed.
    #[error("could not {operation}")]
    Store {
        /// What was being done.
        operation: &'static str,
        /// Why.
        #[source]
        source: spinewatch_triage::Error,
    },

    /// A page could not be rendered.
    #[error("could not render the {page} page")]
    Render {
        /// Which page.
        page: &'static str,
        /// Why.
        #[source]
        source: askama::Error,
    },

    /// A key image could not be read.
    #[error("could not read the key image {}", path.display())]
    ReadKeyImage {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A key image is not a PNG file.
    #[error("the key image {} is not a PNG file", path.display())]
    NotPng {
        /// The file.
        path: PathBuf,
    },

    /// A CSV export could not be written.
    #[error("could not write the {export} export")]
    Csv {
        /// Which export.
        export: &'static str,
        /// Why.
        #[source]
        source: csv::Error,
    },

    /// A blocking task panicked.
    #[error("a blocking task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// A page's error answer: a 4xx says what is wrong, a 5xx is generic (the cause is
/// logged with its chain, without patient data: no error here carries any).
#[derive(Debug)]
pub enum PageError {
    /// 400.
    BadRequest(String),
    /// 403.
    Forbidden(String),
    /// 404.
    NotFound,
    /// 409.
    Conflict(String),
    /// 500.
    Internal(Error),
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        Self::Internal(e)
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "Not understood", m.as_str()),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m.as_str()),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page or case.",
            ),
            Self::Conflict(m) => (StatusCode::CONFLICT, "Not now", m.as_str()),
            Self::Internal(e) => {
                tracing::error!(error = %ErrorChain(e), "Web request failed.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not answer; the cause is in its log.",
                )
            }
        };
        let page = ErrorPage { title, message };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %ErrorChain(&e), "Could not render the error page.");
                (status, title.to_owned()).into_response()
            }
        }
    }
}
