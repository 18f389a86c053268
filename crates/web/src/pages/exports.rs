//! Exports for the FLS register: the confirmed cases of a date range as CSV
//! (`GET /exports/confirmed.csv?from=&to=`), and the per-month counts as a table and as
//! CSV (`GET /exports/monthly.csv`).
//!
//! CSV (RFC 4180) is written by the `csv` crate: fields with commas, quotes or line breaks
//! are quoted. A text field that a spreadsheet would read as a formula (starting with `=`,
//! `+`, `-`, `@`, a tab or a carriage return) gets a leading `'` (OWASP, CSV injection).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use spinewatch_triage::queue::{format_date, parse_date};
use spinewatch_triage::{MonthCounts, RegisterEntry};
use time::Date;

use super::{Nav, blocking, format_time, person_name};
use crate::error::PageError;
use crate::session::SignedIn;
use crate::{App, Error};

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD`; empty means open-ended.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RangeQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

impl RangeQuery {
    fn range(&self) -> Result<(Option<Date>, Option<Date>), PageError> {
        let date = |text: &str, what: &str| {
            let text = text.trim();
            (!text.is_empty())
                .then(|| {
                    parse_date(text).map_err(|e| PageError::BadRequest(format!("{what}: {e}")))
                })
                .transpose()
        };
        let (from, to) = (date(&self.from, "from")?, date(&self.to, "to")?);
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(PageError::BadRequest(
                "the from date is after the to date".into(),
            ));
        }
        Ok((from, to))
    }
}

#[derive(Template)]
#[template(path = "exports.html")]
struct ExportsPage {
    nav: Nav,
    months: Vec<MonthCounts>,
}

/// `GET /exports`.
pub(crate) async fn page(user: SignedIn, State(app): State<App>) -> Result<Response, PageError> {
    let store = app.web.store.clone();
    let months = blocking("count cases by month", move || store.monthly_counts()).await?;
    let html = ExportsPage {
        nav: Nav::new(&user, "exports"),
        months,
    }
    .render()
    .map_err(|source| Error::Render {
        page: "exports",
        source,
    })?;
    Ok(Html(html).into_response())
}

/// A text cell, defused against spreadsheet formulas.
pub(crate) fn text_cell(value: &str) -> String {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_owned(),
    }
}

/// The register's columns.
const REGISTER_HEADER: [&str; 14] = [
    "case_number",
    "study_date",
    "patient_id",
    "patient_name",
    "birth_date",
    "sex",
    "accession_number",
    "flagged_levels",
    "confirmed_level",
    "confirmed_grade",
    "confirmed_by",
    "confirmed_at",
    "note",
    "scanner",
];

/// The register as CSV.
pub(crate) fn register_csv(entries: &[RegisterEntry]) -> Result<Vec<u8>, Error> {
    let err = |source| Error::Csv {
        export: "confirmed cases",
        source,
    };
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(REGISTER_HEADER).map_err(err)?;
    for e in entries {
        let patient = e.patient.as_ref();
        let text = |v: Option<&String>| text_cell(v.map(String::as_str).unwrap_or_default());
        let c = &e.confirmation;
        let flagged: Vec<String> = e
            .case
            .flagged
            .iter()
            .filter_map(|v| v.level.map(|l| l.to_string()))
            .collect();
        out.write_record([
            e.case.case_number.to_string(),
            e.case.study_date.map(format_date).unwrap_or_default(),
            text(patient.and_then(|p| p.id.as_ref())),
            text_cell(
                &patient
                    .and_then(|p| p.name.as_deref())
                    .map(person_name)
                    .unwrap_or_default(),
            ),
            text(patient.and_then(|p| p.birth_date.as_ref())),
            text(patient.and_then(|p| p.sex.as_ref())),
            text(e.study.as_ref().and_then(|s| s.accession_number.as_ref())),
            flagged.join(" "),
            c.level.map(|l| l.to_string()).unwrap_or_default(),
            c.grade.map(|g| g.number().to_string()).unwrap_or_default(),
            text_cell(&c.user),
            format_time(c.at),
            text(c.note.as_ref()),
            text(e.case.scanner.as_ref()),
        ])
        .map_err(err)?;
    }
    out.into_inner().map_err(|e| err(e.into_error().into()))
}

/// The monthly counts as CSV.
pub(crate) fn monthly_csv_bytes(months: &[MonthCounts]) -> Result<Vec<u8>, Error> {
    let err = |source| Error::Csv {
        export: "monthly counts",
        source,
    };
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "month",
        "queued",
        "confirmed",
        "dismissed",
        "referred",
        "already_known",
        "cancer_pathway",
        "not_appropriate",
    ])
    .map_err(err)?;
    for m in months {
        out.write_record([
            m.month.clone(),
            m.queued.to_string(),
            m.confirmed.to_string(),
            m.dismissed.to_string(),
            m.referred.to_string(),
            m.already_known.to_string(),
            m.cancer_pathway.to_string(),
            m.not_appropriate.to_string(),
        ])
        .map_err(err)?;
    }
    out.into_inner().map_err(|e| err(e.into_error().into()))
}

fn csv_response(file_name: String, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /exports/confirmed.csv?from=&to=`: the cases confirmed in the range (by the day of
/// the confirm, UTC).
pub(crate) async fn confirmed_csv(
    user: SignedIn,
    State(app): State<App>,
    Query(query): Query<RangeQuery>,
) -> Result<Response, PageError> {
    let (from, to) = query.range()?;
    let store = app.web.store.clone();
    let entries = blocking("read the confirmed register", move || {
        store.confirmed_register(from, to)
    })
    .await?;
    let bytes = register_csv(&entries)?;
    tracing::info!(user = %user.0.name, rows = entries.len(), "Confirmed cases exported.");
    let name = format!(
        "spinewatch-confirmed-{}-{}.csv",
        from.map(format_date).unwrap_or_else(|| "start".into()),
        to.map(format_date).unwrap_or_else(|| "now".into())
    );
    Ok(csv_response(name, bytes))
}

/// `GET /exports/monthly.csv`.
pub(crate) async fn monthly_csv(
    _user: SignedIn,
    State(app): State<App>,
) -> Result<Response, PageError> {
    let store = app.web.store.clone();
    let months = blocking("count cases by month", move || store.monthly_counts()).await?;
    Ok(csv_response(
        "spinewatch-monthly.csv".to_owned(),
        monthly_csv_bytes(&months)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_text_is_defused() {
        for (raw, cell) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("Doe, Jane", "Doe, Jane"),
            ("", ""),
        ] {
            assert_eq!(text_cell(raw), cell);
        }
    }
}
