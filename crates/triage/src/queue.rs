//! The nurses' queue: cases of positive studies, the worklist, and decisions.
//!
//! A case is created by [`Store::finish`] with a positive outcome (status `open`) and
//! decided by a nurse: confirm (with the grade and level she finds), dismiss or refer. Every
//! decision is appended to `decisions` with who, when, the status before and the status
//! after; a decision may correct an earlier one (its previous status says so). A re-analysis
//! of the study (a later instance re-opened it) replaces the findings and re-opens the case,
//! recorded as action `reanalysed` by `system`; while it is pending, decisions are refused
//! ([`Error::AnalysisPending`]) because they would be about findings about to change.
//!
//! The worklist is sorted by priority: highest flagged grade, then probability, then the
//! newest first.

use std::fmt;
use std::str::FromStr;

use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};
use spinewatch_core::{GenantGrade, VertebraLevel};
use time::{Date, OffsetDateTime};

use crate::findings::CaseFindings;
use crate::journal::{StudyState, parse_state};
use crate::store::from_millis;
use crate::{Error, Result, Store};

/// The user name the store records its own decisions under (re-analysis).
pub const SYSTEM_USER: &str = "system";
/// Longest user name accepted.
pub const MAX_USER_LEN: usize = 64;
/// Longest note accepted, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// Where a case stands with the nurses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    /// Waiting for a nurse.
    Open,
    /// A fracture confirmed (grade and level recorded with the decision).
    Confirmed,
    /// Not a fracture, or not for the service.
    Dismissed,
    /// Referred on (e.g. to a clinician) for a decision.
    Referred,
}

impl CaseStatus {
    /// Every status.
    pub const ALL: [Self; 4] = [Self::Open, Self::Confirmed, Self::Dismissed, Self::Referred];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Confirmed => "confirmed",
            Self::Dismissed => "dismissed",
            Self::Referred => "referred",
        }
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CaseStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown case status `{s}` (expected open, confirmed, dismissed or referred)"
                )
            })
    }
}

/// A flagged vertebra, as the worklist shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlaggedVertebra {
    /// `"L1"`, or `null` when the vertebra could not be labelled.
    pub level: Option<VertebraLevel>,
    /// The model's Genant grade, `0..=3`.
    pub grade: GenantGrade,
    /// Fracture probability.
    pub probability: f64,
}

/// One worklist row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseSummary {
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Patient pseudonym.
    pub patient_key: String,
    /// Where the case stands.
    pub status: CaseStatus,
    /// The flagged vertebrae only, cranial first.
    pub flagged: Vec<FlaggedVertebra>,
    /// Largest vertebra fracture probability.
    pub probability: f64,
    /// Largest grade among the flagged vertebrae.
    pub max_grade: GenantGrade,
    /// DICOM Study Date, when known.
    #[serde(with = "iso_date::option")]
    pub study_date: Option<Date>,
    /// When the case entered the queue.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change (findings or decision).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A case with everything a nurse needs to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseDetail {
    /// The worklist fields.
    #[serde(flatten)]
    pub summary: CaseSummary,
    /// The study generation the findings come from.
    pub generation: i64,
    /// The study was re-opened and new findings are on their way.
    pub analysis_pending: bool,
    /// Every vertebra and the key images.
    pub findings: CaseFindings,
    /// Every decision, oldest first.
    pub decisions: Vec<DecisionRecord>,
}

/// Which cases the worklist shows. Every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    /// Only this status.
    pub status: Option<CaseStatus>,
    /// Only this highest grade.
    pub grade: Option<GenantGrade>,
    /// Only this highest grade or above.
    pub min_grade: Option<GenantGrade>,
    /// Only cases dated on or after this day: the study date when known, else the day
    /// the case was queued (UTC).
    pub from: Option<Date>,
    /// Only cases dated on or before this day (as `from`).
    pub to: Option<Date>,
    /// At most this many rows.
    pub limit: Option<u32>,
    /// Skip this many rows first.
    pub offset: Option<u32>,
}

/// A nurse's decision on a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Who decides (the signed-in user's name).
    pub user: String,
    /// What.
    pub action: Action,
    /// Free text; never logged.
    pub note: Option<String>,
}

/// What a nurse decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A fracture, of this grade (1..=3), at this level.
    Confirm {
        /// The grade the nurse finds.
        grade: GenantGrade,
        /// The level she finds it at.
        level: VertebraLevel,
    },
    /// Not a fracture (or not for the service).
    Dismiss,
    /// Referred on.
    Refer,
}

impl Action {
    fn kind(self) -> DecisionAction {
        match self {
            Self::Confirm { .. } => DecisionAction::Confirm,
            Self::Dismiss => DecisionAction::Dismiss,
            Self::Refer => DecisionAction::Refer,
        }
    }

    fn status(self) -> CaseStatus {
        match self {
            Self::Confirm { .. } => CaseStatus::Confirmed,
            Self::Dismiss => CaseStatus::Dismissed,
            Self::Refer => CaseStatus::Referred,
        }
    }
}

/// A recorded decision's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionAction {
    /// Confirmed by a nurse.
    Confirm,
    /// Dismissed by a nurse.
    Dismiss,
    /// Referred by a nurse.
    Refer,
    /// The study was analysed again (by `system`).
    Reanalysed,
}

impl DecisionAction {
    const ALL: [Self; 4] = [Self::Confirm, Self::Dismiss, Self::Refer, Self::Reanalysed];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Dismiss => "dismiss",
            Self::Refer => "refer",
            Self::Reanalysed => "reanalysed",
        }
    }
}

/// One entry of a case's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Order among all decisions.
    pub id: i64,
    /// Who.
    pub user: String,
    /// What.
    pub action: DecisionAction,
    /// Confirmed grade.
    pub grade: Option<GenantGrade>,
    /// Confirmed level.
    pub level: Option<VertebraLevel>,
    /// Free text.
    pub note: Option<String>,
    /// Status before.
    pub previous_status: CaseStatus,
    /// Status after.
    pub new_status: CaseStatus,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Decision {
    /// The trimmed user and note, or why the decision is refused.
    fn validated(&self) -> Result<(&str, Option<&str>), String> {
        let user = self.user.trim();
        if user.is_empty() {
            return Err("user is empty".into());
        }
        if user.len() > MAX_USER_LEN {
            return Err(format!("user is longer than {MAX_USER_LEN} bytes"));
        }
        if user.chars().any(char::is_control) {
            return Err("user contains control characters".into());
        }
        if user.eq_ignore_ascii_case(SYSTEM_USER) {
            return Err(format!("user `{SYSTEM_USER}` is reserved"));
        }
        if let Action::Confirm { grade, .. } = self.action
            && !grade.is_fracture()
        {
            return Err("a confirmed fracture has grade 1, 2 or 3".into());
        }
        let note = self
            .note
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
            return Err(format!("note is longer than {MAX_NOTE_CHARS} characters"));
        }
        Ok((user, note))
    }
}

/// Columns of a case row, in [`summary`]'s order.
const CASE_COLUMNS: &str = "study_instance_uid, patient_key, status, probability, max_grade, \
     findings_json, study_date, created_at, updated_at, generation";

/// The day a case is filtered by: its study date, else the UTC day it was queued.
const CASE_DAY: &str = "coalesce(study_date, strftime('%Y-%m-%d', created_at / 1000, 'unixepoch'))";

impl Store {
    /// The worklist: cases matching `filter`, highest priority first (highest flagged grade,
    /// then probability, then newest).
    pub fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>> {
        const OP: &str = "list cases";
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases
             WHERE (?1 IS NULL OR status = ?1)
               AND (?2 IS NULL OR max_grade = ?2)
               AND (?3 IS NULL OR max_grade >= ?3)
               AND (?4 IS NULL OR {CASE_DAY} >= ?4)
               AND (?5 IS NULL OR {CASE_DAY} <= ?5)
             ORDER BY max_grade DESC, probability DESC, created_at DESC, study_instance_uid
             LIMIT ?6 OFFSET ?7"
        );
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql).map_err(Error::sql(OP))?;
        let rows = stmt
            .query_map(
                params![
                    filter.status.map(CaseStatus::as_str),
                    filter.grade.map(GenantGrade::number),
                    filter.min_grade.map(GenantGrade::number),
                    filter.from.map(format_date),
                    filter.to.map(format_date),
                    filter.limit.map_or(-1, i64::from),
                    filter.offset.map_or(0, i64::from),
                ],
                CaseRow::read,
            )
            .and_then(Iterator::collect::<rusqlite::Result<Vec<CaseRow>>>)
            .map_err(Error::sql(OP))?;
        rows.into_iter().map(|row| Ok(row.parse()?.0)).collect()
    }

    /// The case of `study` with its findings and decisions, if there is one.
    pub fn case(&self, study: &str) -> Result<Option<CaseDetail>> {
        let conn = self.lock();
        case_detail(&conn, study)
    }

    /// Records a nurse's decision and returns the case as it now stands.
    pub fn decide(&self, study: &str, decision: &Decision) -> Result<CaseDetail> {
        const OP: &str = "record decision";
        let (user, note) = decision.validated().map_err(Error::InvalidDecision)?;
        let detail = self.write(OP, |tx, now| {
            let previous = case_status(tx, study)?.ok_or_else(|| Error::NotFound {
                study: study.to_owned(),
            })?;
            if study_state(tx, study)?.is_pending() {
                return Err(Error::AnalysisPending {
                    study: study.to_owned(),
                });
            }
            let status = decision.action.status();
            let (grade, level) = match decision.action {
                Action::Confirm { grade, level } => (Some(grade.number()), Some(level.to_string())),
                Action::Dismiss | Action::Refer => (None, None),
            };
            tx.execute(
                "UPDATE cases SET status = ?2, updated_at = ?3 WHERE study_instance_uid = ?1",
                params![study, status.as_str(), now],
            )
            .map_err(Error::sql(OP))?;
            tx.execute(
                "INSERT INTO decisions (study_instance_uid, user, action, grade, level, note,
                     previous_status, new_status, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    study,
                    user,
                    decision.action.kind().as_str(),
                    grade,
                    level,
                    note,
                    previous.as_str(),
                    status.as_str(),
                    now
                ],
            )
            .map_err(Error::sql(OP))?;
            case_detail(tx, study)?.ok_or_else(|| Error::NotFound {
                study: study.to_owned(),
            })
        })?;
        tracing::info!(
            study,
            action = decision.action.kind().as_str(),
            status = %detail.summary.status,
            "Case decided."
        );
        Ok(detail)
    }
}

/// Creates the case of a positive study, or gives an existing one (from an earlier
/// generation) the new findings and re-opens it, recorded as a `reanalysed` decision.
pub(crate) fn upsert_case(
    tx: &Transaction<'_>,
    study: &str,
    generation: i64,
    findings: &CaseFindings,
    study_date: Option<Date>,
    now: i64,
) -> Result<()> {
    const OP: &str = "queue case";
    let json = serde_json::to_string(findings).map_err(|e| Error::InvalidOutcome {
        study: study.to_owned(),
        why: e.to_string(),
    })?;
    let max_grade = findings.max_grade().number();
    let study_date = study_date.map(format_date);
    match case_status(tx, study)? {
        None => {
            tx.execute(
                "INSERT INTO cases (study_instance_uid, patient_key, status, probability,
                     max_grade, findings_json, model_version, execution_provider, study_date,
                     generation, created_at, updated_at)
                 SELECT study_instance_uid, patient_key, 'open', ?2, ?3, ?4, ?5, ?6, ?7, ?8,
                     ?9, ?9
                 FROM studies WHERE study_instance_uid = ?1",
                params![
                    study,
                    findings.probability,
                    max_grade,
                    json,
                    findings.model_version,
                    findings.execution_provider,
                    study_date,
                    generation,
                    now
                ],
            )
            .map_err(Error::sql(OP))?;
        }
        Some(previous) => {
            tx.execute(
                "UPDATE cases SET status = 'open', probability = ?2, max_grade = ?3,
                     findings_json = ?4, model_version = ?5, execution_provider = ?6,
                     study_date = coalesce(?7, study_date), generation = ?8, updated_at = ?9
                 WHERE study_instance_uid = ?1",
                params![
                    study,
                    findings.probability,
                    max_grade,
                    json,
                    findings.model_version,
                    findings.execution_provider,
                    study_date,
                    generation,
                    now
                ],
            )
            .map_err(Error::sql(OP))?;
            let note = format!("re-analysis of generation {generation}: case re-opened");
            append_system_decision(tx, study, previous, CaseStatus::Open, &note, now)?;
        }
    }
    Ok(())
}

/// The case's status, if the study has a case.
pub(crate) fn case_status(tx: &rusqlite::Connection, study: &str) -> Result<Option<CaseStatus>> {
    let status: Option<String> = tx
        .query_row(
            "SELECT status FROM cases WHERE study_instance_uid = ?1",
            [study],
            |r| r.get(0),
        )
        .optional()
        .map_err(Error::sql("read case status"))?;
    status.map(|s| parse_status(study, &s)).transpose()
}

/// Appends a decision by [`SYSTEM_USER`].
pub(crate) fn append_system_decision(
    tx: &Transaction<'_>,
    study: &str,
    previous: CaseStatus,
    status: CaseStatus,
    note: &str,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO decisions (study_instance_uid, user, action, note, previous_status,
             new_status, at)
         VALUES (?1, ?2, 'reanalysed', ?3, ?4, ?5, ?6)",
        params![
            study,
            SYSTEM_USER,
            note,
            previous.as_str(),
            status.as_str(),
            now
        ],
    )
    .map_err(Error::sql("record re-analysis"))?;
    Ok(())
}

fn study_state(conn: &rusqlite::Connection, study: &str) -> Result<StudyState> {
    let state: String = conn
        .query_row(
            "SELECT state FROM studies WHERE study_instance_uid = ?1",
            [study],
            |r| r.get(0),
        )
        .map_err(Error::sql("read study state"))?;
    parse_state(study, &state)
}

fn case_detail(conn: &rusqlite::Connection, study: &str) -> Result<Option<CaseDetail>> {
    const OP: &str = "read case";
    let row = conn
        .query_row(
            &format!("SELECT {CASE_COLUMNS} FROM cases WHERE study_instance_uid = ?1"),
            [study],
            CaseRow::read,
        )
        .optional()
        .map_err(Error::sql(OP))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let generation = row.generation;
    let (summary, findings) = row.parse()?;
    let rows: Vec<DecisionRow> = conn
        .prepare(
            "SELECT id, user, action, grade, level, note, previous_status, new_status, at
             FROM decisions WHERE study_instance_uid = ?1 ORDER BY id",
        )
        .and_then(|mut s| s.query_map([study], DecisionRow::read)?.collect())
        .map_err(Error::sql(OP))?;
    let decisions = rows
        .into_iter()
        .map(|r| r.parse(study))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(CaseDetail {
        analysis_pending: study_state(conn, study)?.is_pending(),
        summary,
        generation,
        findings,
        decisions,
    }))
}

/// A `cases` row as stored.
struct CaseRow {
    study_instance_uid: String,
    patient_key: String,
    status: String,
    probability: f64,
    max_grade: u8,
    findings_json: String,
    study_date: Option<String>,
    created_at: i64,
    updated_at: i64,
    generation: i64,
}

impl CaseRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            study_instance_uid: r.get(0)?,
            patient_key: r.get(1)?,
            status: r.get(2)?,
            probability: r.get(3)?,
            max_grade: r.get(4)?,
            findings_json: r.get(5)?,
            study_date: r.get(6)?,
            created_at: r.get(7)?,
            updated_at: r.get(8)?,
            generation: r.get(9)?,
        })
    }

    fn parse(self) -> Result<(CaseSummary, CaseFindings)> {
        let study = self.study_instance_uid.as_str();
        let corrupt = |why: String| Error::Corrupt {
            table: "cases",
            study: study.to_owned(),
            why,
        };
        let findings: CaseFindings =
            serde_json::from_str(&self.findings_json).map_err(|e| corrupt(e.to_string()))?;
        let study_date = self
            .study_date
            .as_deref()
            .map(|d| Date::parse(d, DATE_FORMAT).map_err(|e| corrupt(e.to_string())))
            .transpose()?;
        let summary = CaseSummary {
            status: parse_status(study, &self.status)?,
            flagged: findings
                .flagged()
                .map(|v| FlaggedVertebra {
                    level: v.label,
                    grade: v.grade,
                    probability: v.probability,
                })
                .collect(),
            probability: self.probability,
            max_grade: GenantGrade::try_from(self.max_grade).map_err(|e| corrupt(e.to_string()))?,
            study_date,
            created_at: from_millis(self.created_at),
            updated_at: from_millis(self.updated_at),
            patient_key: self.patient_key,
            study_instance_uid: self.study_instance_uid,
        };
        Ok((summary, findings))
    }
}

/// A `decisions` row as stored.
struct DecisionRow {
    id: i64,
    user: String,
    action: String,
    grade: Option<u8>,
    level: Option<String>,
    note: Option<String>,
    previous_status: String,
    new_status: String,
    at: i64,
}

impl DecisionRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            user: r.get(1)?,
            action: r.get(2)?,
            grade: r.get(3)?,
            level: r.get(4)?,
            note: r.get(5)?,
            previous_status: r.get(6)?,
            new_status: r.get(7)?,
            at: r.get(8)?,
        })
    }

    fn parse(self, study: &str) -> Result<DecisionRecord> {
        let corrupt = |why: String| Error::Corrupt {
            table: "decisions",
            study: study.to_owned(),
            why,
        };
        let action = DecisionAction::ALL
            .into_iter()
            .find(|a| a.as_str() == self.action)
            .ok_or_else(|| corrupt(format!("unknown action `{}`", self.action)))?;
        Ok(DecisionRecord {
            id: self.id,
            user: self.user,
            action,
            grade: self
                .grade
                .map(GenantGrade::try_from)
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?,
            level: self
                .level
                .map(|l| l.parse())
                .transpose()
                .map_err(|e: spinewatch_core::Error| corrupt(e.to_string()))?,
            note: self.note,
            previous_status: parse_status(study, &self.previous_status)?,
            new_status: parse_status(study, &self.new_status)?,
            at: from_millis(self.at),
        })
    }
}

/// `YYYY-MM-DD`.
const DATE_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// A date as stored and as the API takes it (`YYYY-MM-DD`).
pub fn format_date(date: Date) -> String {
    // Formatting a `Date` with year, month and day items cannot fail.
    date.format(DATE_FORMAT).unwrap_or_default()
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<Date, String> {
    Date::parse(text, DATE_FORMAT).map_err(|e| format!("`{text}` is not a YYYY-MM-DD date ({e})"))
}

fn parse_status(study: &str, s: &str) -> Result<CaseStatus> {
    s.parse().map_err(|why| Error::Corrupt {
        table: "cases",
        study: study.to_owned(),
        why,
    })
}
