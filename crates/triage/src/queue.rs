//! The nurses' queue: cases of positive studies, the worklist, and decisions.
//!
//! A case is created by [`Store::finish`] with a positive outcome (status `open`, the next
//! [case number](CaseSummary::case_number)) and decided by a nurse: confirm (with the grade
//! and level she finds), dismiss (a false positive), refer to a radiologist, or close it
//! with one of the FLS dispositions (already known or on treatment, cancer pathway, end of
//! life or not appropriate: status `closed` with a [`Disposition`]). Every decision is
//! appended to `decisions` with who, when, and the case before and after (status,
//! disposition, confirmed grade and level); a decision may correct an earlier one (its
//! previous status says so). A re-analysis
//! of the study (a later instance re-opened it) replaces the findings and re-opens the case,
//! recorded as action `reanalysed` by `system`; while it is pending, decisions are refused
//! ([`Error::AnalysisPending`]) because they would be about findings about to change.
//!
//! The worklist is sorted by priority: highest flagged grade, then probability, then the
//! newest first.

use std::collections::BTreeMap;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    /// Waiting for a nurse.
    Open,
    /// A fracture confirmed (grade and level recorded with the decision).
    Confirmed,
    /// Not a fracture, or not for the service.
    Dismissed,
    /// Referred to a radiologist for a decision.
    Referred,
    /// Not taken forward, for the reason its [`Disposition`] gives.
    Closed,
}

impl CaseStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [
        Self::Open,
        Self::Confirmed,
        Self::Dismissed,
        Self::Referred,
        Self::Closed,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Confirmed => "confirmed",
            Self::Dismissed => "dismissed",
            Self::Referred => "referred",
            Self::Closed => "closed",
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
                    "unknown case status `{s}` \
                     (expected open, confirmed, dismissed, referred or closed)"
                )
            })
    }
}

/// Why an FLS nurse does not take a case forward (status [`CaseStatus::Closed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// The fracture is already known, or the patient is on treatment.
    AlreadyKnown,
    /// The patient is on a cancer pathway (the collapse may not be osteoporotic).
    CancerPathway,
    /// End of life, or assessment not appropriate.
    NotAppropriate,
}

impl Disposition {
    /// Every disposition.
    pub const ALL: [Self; 3] = [
        Self::AlreadyKnown,
        Self::CancerPathway,
        Self::NotAppropriate,
    ];

    /// The name stored and taken by the API (`already_known`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyKnown => "already_known",
            Self::CancerPathway => "cancer_pathway",
            Self::NotAppropriate => "not_appropriate",
        }
    }

    /// What the nurses read.
    pub fn label(self) -> &'static str {
        match self {
            Self::AlreadyKnown => "already known / on treatment",
            Self::CancerPathway => "cancer pathway",
            Self::NotAppropriate => "end of life or not appropriate",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Disposition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown disposition `{s}` \
                     (expected already_known, cancer_pathway or not_appropriate)"
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
    /// The case's stable number (`/cases/{n}` in the web UI), assigned when it was queued.
    pub case_number: i64,
    /// Patient pseudonym.
    pub patient_key: String,
    /// Where the case stands.
    pub status: CaseStatus,
    /// Why it was closed (status `closed` only).
    pub disposition: Option<Disposition>,
    /// The grade a nurse confirmed (status `confirmed` only).
    pub confirmed_grade: Option<GenantGrade>,
    /// The level a nurse confirmed (status `confirmed` only).
    pub confirmed_level: Option<VertebraLevel>,
    /// The scanner (manufacturer and model, else station name), when known.
    pub scanner: Option<String>,
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
    /// Only this scanner (as [`StudyFacts::scanner`](crate::StudyFacts::scanner) gives it).
    pub scanner: Option<String>,
    /// At most this many rows.
    pub limit: Option<u32>,
    /// Skip this many rows first.
    pub offset: Option<u32>,
}

/// A nurse's decision on a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Who decides: the signed-in user's name, from the session or the API token, never
    /// from the request body.
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
    /// Not a fracture: a false positive.
    Dismiss,
    /// Referred to a radiologist.
    Refer,
    /// Not taken forward, for this reason.
    Close(Disposition),
}

impl Action {
    /// The action as recorded.
    pub fn kind(self) -> DecisionAction {
        match self {
            Self::Confirm { .. } => DecisionAction::Confirm,
            Self::Dismiss => DecisionAction::Dismiss,
            Self::Refer => DecisionAction::Refer,
            Self::Close(Disposition::AlreadyKnown) => DecisionAction::AlreadyKnown,
            Self::Close(Disposition::CancerPathway) => DecisionAction::CancerPathway,
            Self::Close(Disposition::NotAppropriate) => DecisionAction::NotAppropriate,
        }
    }

    /// The case's status after it.
    pub fn status(self) -> CaseStatus {
        match self {
            Self::Confirm { .. } => CaseStatus::Confirmed,
            Self::Dismiss => CaseStatus::Dismissed,
            Self::Refer => CaseStatus::Referred,
            Self::Close(_) => CaseStatus::Closed,
        }
    }

    /// The disposition it records, if it closes the case.
    pub fn disposition(self) -> Option<Disposition> {
        match self {
            Self::Close(d) => Some(d),
            _ => None,
        }
    }
}

/// A recorded decision's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionAction {
    /// Confirmed by a nurse.
    Confirm,
    /// Dismissed by a nurse (false positive).
    Dismiss,
    /// Referred to a radiologist by a nurse.
    Refer,
    /// Closed: already known or on treatment.
    AlreadyKnown,
    /// Closed: cancer pathway.
    CancerPathway,
    /// Closed: end of life or not appropriate.
    NotAppropriate,
    /// The study was analysed again (by `system`).
    Reanalysed,
}

impl DecisionAction {
    /// Every action.
    pub const ALL: [Self; 7] = [
        Self::Confirm,
        Self::Dismiss,
        Self::Refer,
        Self::AlreadyKnown,
        Self::CancerPathway,
        Self::NotAppropriate,
        Self::Reanalysed,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Dismiss => "dismiss",
            Self::Refer => "refer",
            Self::AlreadyKnown => "already_known",
            Self::CancerPathway => "cancer_pathway",
            Self::NotAppropriate => "not_appropriate",
            Self::Reanalysed => "reanalysed",
        }
    }
}

impl fmt::Display for DecisionAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a case's audit trail: who, what, when, and the case before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Order among all decisions.
    pub id: i64,
    /// Who.
    pub user: String,
    /// What.
    pub action: DecisionAction,
    /// Confirmed grade (after a confirm).
    pub grade: Option<GenantGrade>,
    /// Confirmed level (after a confirm).
    pub level: Option<VertebraLevel>,
    /// Disposition (after a closing action).
    pub disposition: Option<Disposition>,
    /// Free text.
    pub note: Option<String>,
    /// Status before.
    pub previous_status: CaseStatus,
    /// Status after.
    pub new_status: CaseStatus,
    /// Disposition before (when the case was closed).
    pub previous_disposition: Option<Disposition>,
    /// Confirmed grade before (when the case was confirmed).
    pub previous_grade: Option<GenantGrade>,
    /// Confirmed level before (when the case was confirmed).
    pub previous_level: Option<VertebraLevel>,
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

/// Columns of a case row, in [`CaseRow::read`]'s order.
const CASE_COLUMNS: &str = "study_instance_uid, case_number, patient_key, status, disposition, \
     confirmed_grade, confirmed_level, probability, max_grade, findings_json, study_date, \
     scanner, created_at, updated_at, generation";

/// The day a case is filtered by: its study date, else the UTC day it was queued.
const CASE_DAY: &str = "coalesce(study_date, strftime('%Y-%m-%d', created_at / 1000, 'unixepoch'))";

/// The worklist's order: highest flagged grade, then probability, then newest.
const PRIORITY: &str = "max_grade DESC, probability DESC, created_at DESC, study_instance_uid";

impl Store {
    /// The worklist: cases matching `filter`, highest priority first (highest flagged grade,
    /// then probability, then newest).
    pub fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>> {
        Ok(self
            .list_cases_with_findings(filter)?
            .into_iter()
            .map(|(summary, _)| summary)
            .collect())
    }

    /// [`list_cases`](Self::list_cases) with each case's findings (the web worklist shows
    /// the study's facts and the patient's identity).
    pub fn list_cases_with_findings(
        &self,
        filter: &CaseFilter,
    ) -> Result<Vec<(CaseSummary, CaseFindings)>> {
        const OP: &str = "list cases";
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases
             WHERE (?1 IS NULL OR status = ?1)
               AND (?2 IS NULL OR max_grade = ?2)
               AND (?3 IS NULL OR max_grade >= ?3)
               AND (?4 IS NULL OR {CASE_DAY} >= ?4)
               AND (?5 IS NULL OR {CASE_DAY} <= ?5)
               AND (?6 IS NULL OR scanner = ?6)
             ORDER BY {PRIORITY}
             LIMIT ?7 OFFSET ?8"
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
                    filter.scanner.as_deref(),
                    filter.limit.map_or(-1, i64::from),
                    filter.offset.map_or(0, i64::from),
                ],
                CaseRow::read,
            )
            .and_then(Iterator::collect::<rusqlite::Result<Vec<CaseRow>>>)
            .map_err(Error::sql(OP))?;
        rows.into_iter().map(CaseRow::parse).collect()
    }

    /// Every case of these patients (pseudonyms), in priority order: the worklist shows
    /// what was already decided about a patient beside their open studies.
    pub fn cases_of_patients(&self, patient_keys: &[String]) -> Result<Vec<CaseSummary>> {
        const OP: &str = "list a patient's cases";
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {CASE_COLUMNS} FROM cases WHERE patient_key = ?1 ORDER BY {PRIORITY}"
            ))
            .map_err(Error::sql(OP))?;
        let mut out = Vec::new();
        for key in patient_keys {
            let rows = stmt
                .query_map([key], CaseRow::read)
                .and_then(Iterator::collect::<rusqlite::Result<Vec<CaseRow>>>)
                .map_err(Error::sql(OP))?;
            for row in rows {
                out.push(row.parse()?.0);
            }
        }
        Ok(out)
    }

    /// Number of cases in each status (every status listed, zeros included).
    pub fn case_counts(&self) -> Result<BTreeMap<CaseStatus, u64>> {
        const OP: &str = "count cases";
        let conn = self.lock();
        let rows: Vec<(String, i64)> = conn
            .prepare("SELECT status, count(*) FROM cases GROUP BY status")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(Error::sql(OP))?;
        let mut counts: BTreeMap<_, _> = CaseStatus::ALL.into_iter().map(|s| (s, 0)).collect();
        for (status, n) in rows {
            counts.insert(parse_status("*", &status)?, n.unsigned_abs());
        }
        Ok(counts)
    }

    /// The scanners of the queued cases, sorted (the worklist's scanner filter).
    pub fn scanners(&self) -> Result<Vec<String>> {
        self.lock()
            .prepare("SELECT DISTINCT scanner FROM cases WHERE scanner IS NOT NULL ORDER BY 1")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(Error::sql("list scanners"))
    }

    /// The case of `study` with its findings and decisions, if there is one.
    pub fn case(&self, study: &str) -> Result<Option<CaseDetail>> {
        let conn = self.lock();
        case_detail(&conn, study)
    }

    /// The case numbered `case_number`, if there is one.
    pub fn case_by_number(&self, case_number: i64) -> Result<Option<CaseDetail>> {
        let conn = self.lock();
        let study: Option<String> = conn
            .query_row(
                "SELECT study_instance_uid FROM cases WHERE case_number = ?1",
                [case_number],
                |r| r.get(0),
            )
            .optional()
            .map_err(Error::sql("find case by number"))?;
        match study {
            Some(study) => case_detail(&conn, &study),
            None => Ok(None),
        }
    }

    /// Records a nurse's decision and returns the case as it now stands.
    pub fn decide(&self, study: &str, decision: &Decision) -> Result<CaseDetail> {
        const OP: &str = "record decision";
        let (user, note) = decision.validated().map_err(Error::InvalidDecision)?;
        let detail = self.write(OP, |tx, now| {
            let before = case_state(tx, study)?.ok_or_else(|| Error::NotFound {
                study: study.to_owned(),
            })?;
            if study_state(tx, study)?.is_pending() {
                return Err(Error::AnalysisPending {
                    study: study.to_owned(),
                });
            }
            let after = CaseState::after(decision.action);
            tx.execute(
                "UPDATE cases SET status = ?2, disposition = ?3, confirmed_grade = ?4,
                     confirmed_level = ?5, updated_at = ?6
                 WHERE study_instance_uid = ?1",
                params![
                    study,
                    after.status.as_str(),
                    after.disposition.map(Disposition::as_str),
                    after.grade.map(GenantGrade::number),
                    after.level.map(|l| l.to_string()),
                    now
                ],
            )
            .map_err(Error::sql(OP))?;
            insert_decision(
                tx,
                study,
                user,
                decision.action.kind(),
                (&before, &after),
                note,
                now,
            )?;
            case_detail(tx, study)?.ok_or_else(|| Error::NotFound {
                study: study.to_owned(),
            })
        })?;
        tracing::info!(
            case = detail.summary.case_number,
            action = decision.action.kind().as_str(),
            status = %detail.summary.status,
            "Case decided."
        );
        Ok(detail)
    }
}

/// A case's state as a decision changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CaseState {
    status: CaseStatus,
    disposition: Option<Disposition>,
    grade: Option<GenantGrade>,
    level: Option<VertebraLevel>,
}

impl CaseState {
    /// Open, nothing decided.
    const OPEN: Self = Self {
        status: CaseStatus::Open,
        disposition: None,
        grade: None,
        level: None,
    };

    /// The state `action` leaves a case in.
    fn after(action: Action) -> Self {
        let (grade, level) = match action {
            Action::Confirm { grade, level } => (Some(grade), Some(level)),
            _ => (None, None),
        };
        Self {
            status: action.status(),
            disposition: action.disposition(),
            grade,
            level,
        }
    }
}

/// Appends one decision with the case's state before and after it.
fn insert_decision(
    tx: &Transaction<'_>,
    study: &str,
    user: &str,
    action: DecisionAction,
    (before, after): (&CaseState, &CaseState),
    note: Option<&str>,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO decisions (study_instance_uid, user, action, grade, level, disposition,
             note, previous_status, new_status, previous_disposition, previous_grade,
             previous_level, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            study,
            user,
            action.as_str(),
            after.grade.map(GenantGrade::number),
            after.level.map(|l| l.to_string()),
            after.disposition.map(Disposition::as_str),
            note,
            before.status.as_str(),
            after.status.as_str(),
            before.disposition.map(Disposition::as_str),
            before.grade.map(GenantGrade::number),
            before.level.map(|l| l.to_string()),
            now
        ],
    )
    .map_err(Error::sql("record decision"))?;
    Ok(())
}

/// Creates the case of a positive study (the next case number), or gives an existing one
/// (from an earlier generation) the new findings and re-opens it, recorded as a
/// `reanalysed` decision.
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
    let scanner = findings.study.as_ref().and_then(|s| s.scanner());
    match case_status(tx, study)? {
        None => {
            // Cases are never deleted and writes are serialised (`BEGIN IMMEDIATE`), so the
            // next number is one past the largest.
            tx.execute(
                "INSERT INTO cases (study_instance_uid, case_number, patient_key, status,
                     probability, max_grade, findings_json, model_version, execution_provider,
                     study_date, scanner, generation, created_at, updated_at)
                 SELECT study_instance_uid,
                     (SELECT coalesce(max(case_number), 0) + 1 FROM cases),
                     patient_key, 'open', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10
                 FROM studies WHERE study_instance_uid = ?1",
                params![
                    study,
                    findings.probability,
                    max_grade,
                    json,
                    findings.model_version,
                    findings.execution_provider,
                    study_date,
                    scanner,
                    generation,
                    now
                ],
            )
            .map_err(Error::sql(OP))?;
        }
        Some(previous) => {
            let note = format!("re-analysis of generation {generation}: case re-opened");
            append_system_decision(tx, study, previous, CaseStatus::Open, &note, now)?;
            tx.execute(
                "UPDATE cases SET status = 'open', disposition = NULL, confirmed_grade = NULL,
                     confirmed_level = NULL, probability = ?2, max_grade = ?3,
                     findings_json = ?4, model_version = ?5, execution_provider = ?6,
                     study_date = coalesce(?7, study_date), scanner = coalesce(?8, scanner),
                     generation = ?9, updated_at = ?10
                 WHERE study_instance_uid = ?1",
                params![
                    study,
                    findings.probability,
                    max_grade,
                    json,
                    findings.model_version,
                    findings.execution_provider,
                    study_date,
                    scanner,
                    generation,
                    now
                ],
            )
            .map_err(Error::sql(OP))?;
        }
    }
    Ok(())
}

/// The case's status, if the study has a case.
pub(crate) fn case_status(tx: &rusqlite::Connection, study: &str) -> Result<Option<CaseStatus>> {
    Ok(case_state(tx, study)?.map(|s| s.status))
}

/// The case's status, disposition and confirmed grade and level, if the study has a case.
fn case_state(conn: &rusqlite::Connection, study: &str) -> Result<Option<CaseState>> {
    type Raw = (String, Option<String>, Option<u8>, Option<String>);
    let raw: Option<Raw> = conn
        .query_row(
            "SELECT status, disposition, confirmed_grade, confirmed_level
             FROM cases WHERE study_instance_uid = ?1",
            [study],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(Error::sql("read case status"))?;
    let Some((status, disposition, grade, level)) = raw else {
        return Ok(None);
    };
    let corrupt = corrupt_in("cases", study);
    Ok(Some(CaseState {
        status: parse_status(study, &status)?,
        disposition: parse_opt(disposition, &corrupt)?,
        grade: parse_grade(grade, &corrupt)?,
        level: parse_opt(level, &corrupt)?,
    }))
}

/// Appends a decision by [`SYSTEM_USER`] (a re-analysis) that takes the case from
/// `previous` to `status`; a case that keeps its status keeps its disposition and confirmed
/// grade and level.
pub(crate) fn append_system_decision(
    tx: &Transaction<'_>,
    study: &str,
    previous: CaseStatus,
    status: CaseStatus,
    note: &str,
    now: i64,
) -> Result<()> {
    let current = case_state(tx, study)?.unwrap_or(CaseState::OPEN);
    let before = CaseState {
        status: previous,
        ..current
    };
    let after = if status == current.status {
        current
    } else {
        CaseState {
            status,
            ..CaseState::OPEN
        }
    };
    insert_decision(
        tx,
        study,
        SYSTEM_USER,
        DecisionAction::Reanalysed,
        (&before, &after),
        Some(note),
        now,
    )
    .map_err(|e| match e {
        Error::Sql { source, .. } => Error::Sql {
            operation: "record re-analysis",
            source,
        },
        e => e,
    })
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
        .prepare(&format!(
            "SELECT {DECISION_COLUMNS} FROM decisions WHERE study_instance_uid = ?1 ORDER BY id"
        ))
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
pub(crate) struct CaseRow {
    study_instance_uid: String,
    case_number: i64,
    patient_key: String,
    status: String,
    disposition: Option<String>,
    confirmed_grade: Option<u8>,
    confirmed_level: Option<String>,
    probability: f64,
    max_grade: u8,
    findings_json: String,
    study_date: Option<String>,
    scanner: Option<String>,
    created_at: i64,
    updated_at: i64,
    generation: i64,
}

impl CaseRow {
    /// The columns of [`CASE_COLUMNS`], prefixed by `alias.` when given.
    pub(crate) fn columns(alias: &str) -> String {
        CASE_COLUMNS
            .split(", ")
            .map(|c| format!("{alias}.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Reads the [`CASE_COLUMNS`] starting at column 0.
    pub(crate) fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            study_instance_uid: r.get(0)?,
            case_number: r.get(1)?,
            patient_key: r.get(2)?,
            status: r.get(3)?,
            disposition: r.get(4)?,
            confirmed_grade: r.get(5)?,
            confirmed_level: r.get(6)?,
            probability: r.get(7)?,
            max_grade: r.get(8)?,
            findings_json: r.get(9)?,
            study_date: r.get(10)?,
            scanner: r.get(11)?,
            created_at: r.get(12)?,
            updated_at: r.get(13)?,
            generation: r.get(14)?,
        })
    }

    pub(crate) fn parse(self) -> Result<(CaseSummary, CaseFindings)> {
        let uid = self.study_instance_uid.clone();
        let study = uid.as_str();
        let corrupt = corrupt_in("cases", study);
        let findings: CaseFindings =
            serde_json::from_str(&self.findings_json).map_err(|e| corrupt(e.to_string()))?;
        let study_date = self
            .study_date
            .as_deref()
            .map(|d| Date::parse(d, DATE_FORMAT).map_err(|e| corrupt(e.to_string())))
            .transpose()?;
        let summary = CaseSummary {
            case_number: self.case_number,
            status: parse_status(study, &self.status)?,
            disposition: parse_opt(self.disposition, &corrupt)?,
            confirmed_grade: parse_grade(self.confirmed_grade, &corrupt)?,
            confirmed_level: parse_opt(self.confirmed_level, &corrupt)?,
            scanner: self.scanner,
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

/// Columns of a decision row, in [`DecisionRow::read`]'s order.
pub(crate) const DECISION_COLUMNS: &str = "id, user, action, grade, level, disposition, note, \
     previous_status, new_status, previous_disposition, previous_grade, previous_level, at";

/// A `decisions` row as stored.
pub(crate) struct DecisionRow {
    id: i64,
    user: String,
    action: String,
    grade: Option<u8>,
    level: Option<String>,
    disposition: Option<String>,
    note: Option<String>,
    previous_status: String,
    new_status: String,
    previous_disposition: Option<String>,
    previous_grade: Option<u8>,
    previous_level: Option<String>,
    at: i64,
}

impl DecisionRow {
    /// Reads the [`DECISION_COLUMNS`] starting at column `first`.
    pub(crate) fn read_at(r: &Row<'_>, first: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(first)?,
            user: r.get(first + 1)?,
            action: r.get(first + 2)?,
            grade: r.get(first + 3)?,
            level: r.get(first + 4)?,
            disposition: r.get(first + 5)?,
            note: r.get(first + 6)?,
            previous_status: r.get(first + 7)?,
            new_status: r.get(first + 8)?,
            previous_disposition: r.get(first + 9)?,
            previous_grade: r.get(first + 10)?,
            previous_level: r.get(first + 11)?,
            at: r.get(first + 12)?,
        })
    }

    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Self::read_at(r, 0)
    }

    pub(crate) fn parse(self, study: &str) -> Result<DecisionRecord> {
        let corrupt = corrupt_in("decisions", study);
        let action = DecisionAction::ALL
            .into_iter()
            .find(|a| a.as_str() == self.action)
            .ok_or_else(|| corrupt(format!("unknown action `{}`", self.action)))?;
        Ok(DecisionRecord {
            id: self.id,
            user: self.user,
            action,
            grade: parse_grade(self.grade, &corrupt)?,
            level: parse_opt(self.level, &corrupt)?,
            disposition: parse_opt(self.disposition, &corrupt)?,
            note: self.note,
            previous_status: parse_status(study, &self.previous_status)?,
            new_status: parse_status(study, &self.new_status)?,
            previous_disposition: parse_opt(self.previous_disposition, &corrupt)?,
            previous_grade: parse_grade(self.previous_grade, &corrupt)?,
            previous_level: parse_opt(self.previous_level, &corrupt)?,
            at: from_millis(self.at),
        })
    }
}

/// Makes the [`Error::Corrupt`] of a row of `table` for `study`.
fn corrupt_in<'a>(table: &'static str, study: &'a str) -> impl Fn(String) -> Error + 'a {
    move |why| Error::Corrupt {
        table,
        study: study.to_owned(),
        why,
    }
}

/// Parses an optional stored value with its `FromStr`.
fn parse_opt<T: FromStr>(
    value: Option<String>,
    corrupt: &impl Fn(String) -> Error,
) -> Result<Option<T>>
where
    T::Err: fmt::Display,
{
    value
        .map(|v| v.parse::<T>().map_err(|e| corrupt(format!("`{v}`: {e}"))))
        .transpose()
}

/// Parses an optional stored grade.
fn parse_grade(
    value: Option<u8>,
    corrupt: &impl Fn(String) -> Error,
) -> Result<Option<GenantGrade>> {
    value
        .map(GenantGrade::try_from)
        .transpose()
        .map_err(|e| corrupt(e.to_string()))
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

pub(crate) fn parse_status(study: &str, s: &str) -> Result<CaseStatus> {
    s.parse().map_err(|why| Error::Corrupt {
        table: "cases",
        study: study.to_owned(),
        why,
    })
}
