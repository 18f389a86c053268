//! `GET /worklist`: the open cases, one entry per patient (pseudonym) with their studies
//! grouped, in priority order (the patient's most urgent study first: grade, probability,
//! date), with what was decided about the patient's other studies, filters and counts.

use std::collections::{BTreeMap, HashSet};

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use spinewatch_core::GenantGrade;
use spinewatch_triage::queue::{format_date, parse_date};
use spinewatch_triage::{CaseFilter, CaseStatus, CaseSummary};

use super::{Nav, PatientView, blocking, describe, format_time, percent};
use crate::error::PageError;
use crate::session::SignedIn;
use crate::{App, Error};

/// The filters as the form sends them; an empty field is no filter. Without `status` the
/// worklist shows the open cases; `status=any` shows every case.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WorklistQuery {
    status: Option<String>,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    min_grade: String,
    #[serde(default)]
    scanner: String,
}

impl WorklistQuery {
    fn filter(&self) -> Result<CaseFilter, PageError> {
        let bad = |what: &str, e: String| PageError::BadRequest(format!("{what}: {e}"));
        let status = match self.status.as_deref().map(str::trim) {
            None => Some(CaseStatus::Open),
            Some("" | "any") => None,
            Some(s) => Some(s.parse().map_err(|e| bad("status", e))?),
        };
        let date = |text: &str, what: &str| {
            let text = text.trim();
            (!text.is_empty())
                .then(|| parse_date(text).map_err(|e| bad(what, e)))
                .transpose()
        };
        let min_grade = match self.min_grade.trim() {
            "" => None,
            g => Some(
                g.parse::<u8>()
                    .map_err(|e| e.to_string())
                    .and_then(|n| GenantGrade::try_from(n).map_err(|e| e.to_string()))
                    .map_err(|e| bad("minimum grade", e))?,
            ),
        };
        let filter = CaseFilter {
            status,
            min_grade,
            from: date(&self.from, "from")?,
            to: date(&self.to, "to")?,
            scanner: Some(self.scanner.trim().to_owned()).filter(|s| !s.is_empty()),
            ..CaseFilter::default()
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            return Err(PageError::BadRequest(
                "the from date is after the to date".into(),
            ));
        }
        Ok(filter)
    }
}

/// One study row of a patient's entry.
struct StudyRow {
    number: i64,
    date: String,
    flagged: String,
    max_grade: u8,
    probability: String,
    scanner: String,
    status: String,
    queued: String,
}

/// Another case of the patient (not among the rows shown), and what became of it.
struct EarlierCase {
    number: i64,
    date: String,
    standing: String,
}

/// One patient's entry.
struct PatientEntry {
    key: String,
    patient: PatientView,
    studies: Vec<StudyRow>,
    others: Vec<EarlierCase>,
}

/// An option of a filter's `<select>`.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "worklist.html")]
struct WorklistPage {
    nav: Nav,
    patients: Vec<PatientEntry>,
    study_count: usize,
    queue_counts: Vec<(String, u64)>,
    statuses: Vec<Choice>,
    grades: Vec<Choice>,
    scanners: Vec<Choice>,
    from: String,
    to: String,
}

fn study_date(case: &CaseSummary) -> String {
    case.study_date
        .map(format_date)
        .unwrap_or_else(|| "not recorded".to_owned())
}

/// `GET /worklist`.
pub(crate) async fn page(
    user: SignedIn,
    State(app): State<App>,
    Query(query): Query<WorklistQuery>,
) -> Result<Response, PageError> {
    let filter = query.filter()?;
    let store = app.web.store.clone();
    let list_filter = filter.clone();
    let (rows, counts, scanners) = blocking("read the worklist", move || {
        Ok((
            store.list_cases_with_findings(&list_filter)?,
            store.case_counts()?,
            store.scanners()?,
        ))
    })
    .await?;

    // Group by patient, in the order of each patient's most urgent study.
    let mut patients: Vec<PatientEntry> = Vec::new();
    for (case, findings) in &rows {
        let row = StudyRow {
            number: case.case_number,
            date: study_date(case),
            flagged: case
                .flagged
                .iter()
                .map(|v| match v.level {
                    Some(level) => format!("{level} (grade {})", v.grade.number()),
                    None => format!("unlabelled (grade {})", v.grade.number()),
                })
                .collect::<Vec<_>>()
                .join(", "),
            max_grade: case.max_grade.number(),
            probability: percent(case.probability),
            scanner: case.scanner.clone().unwrap_or_else(|| "-".to_owned()),
            status: describe(
                case.status,
                case.disposition,
                case.confirmed_grade,
                case.confirmed_level,
            ),
            queued: format_time(case.created_at),
        };
        match patients.iter_mut().find(|p| p.key == case.patient_key) {
            Some(entry) => {
                if entry.patient.id == "-" && findings.patient.is_some() {
                    entry.patient = PatientView::new(findings.patient.as_ref());
                }
                entry.studies.push(row);
            }
            None => patients.push(PatientEntry {
                key: case.patient_key.clone(),
                patient: PatientView::new(findings.patient.as_ref()),
                studies: vec![row],
                others: Vec::new(),
            }),
        }
    }

    // The same patients' other cases: what was decided about them before.
    let shown: HashSet<i64> = rows.iter().map(|(c, _)| c.case_number).collect();
    let keys: Vec<String> = patients.iter().map(|p| p.key.clone()).collect();
    let store = app.web.store.clone();
    let others = blocking("read the patients' other cases", move || {
        store.cases_of_patients(&keys)
    })
    .await?;
    let mut by_patient: BTreeMap<String, Vec<EarlierCase>> = BTreeMap::new();
    for case in others.iter().filter(|c| !shown.contains(&c.case_number)) {
        by_patient
            .entry(case.patient_key.clone())
            .or_default()
            .push(EarlierCase {
                number: case.case_number,
                date: study_date(case),
                standing: describe(
                    case.status,
                    case.disposition,
                    case.confirmed_grade,
                    case.confirmed_level,
                ),
            });
    }
    for entry in &mut patients {
        entry.others = by_patient.remove(&entry.key).unwrap_or_default();
        entry.others.sort_by_key(|c| c.number);
    }

    let status_value = filter.status.map_or("any", CaseStatus::as_str);
    let statuses = CaseStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .chain(["any"])
        .map(|s| Choice {
            value: s.to_owned(),
            label: s.to_owned(),
            selected: s == status_value,
        })
        .collect();
    let grade_value = filter
        .min_grade
        .map(|g| g.number().to_string())
        .unwrap_or_default();
    let grades = [
        ("", "any"),
        ("1", "1 or more"),
        ("2", "2 or more"),
        ("3", "3"),
    ]
    .into_iter()
    .map(|(value, label)| Choice {
        value: value.to_owned(),
        label: label.to_owned(),
        selected: value == grade_value,
    })
    .collect();
    let scanner_value = filter.scanner.clone().unwrap_or_default();
    let scanners = std::iter::once(String::new())
        .chain(scanners)
        .map(|s| Choice {
            label: if s.is_empty() {
                "any".to_owned()
            } else {
                s.clone()
            },
            selected: s == scanner_value,
            value: s,
        })
        .collect();
    let page = WorklistPage {
        nav: Nav::new(&user, "worklist"),
        study_count: rows.len(),
        patients,
        queue_counts: counts
            .into_iter()
            .map(|(status, n)| (status.to_string(), n))
            .collect(),
        statuses,
        grades,
        scanners,
        from: filter.from.map(format_date).unwrap_or_default(),
        to: filter.to.map(format_date).unwrap_or_default(),
    };
    let html = page.render().map_err(|source| Error::Render {
        page: "worklist",
        source,
    })?;
    Ok(Html(html).into_response())
}
