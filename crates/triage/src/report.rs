//! What the Fracture Liaison Service reports: the register of confirmed cases and the
//! month-by-month counts.
//!
//! - [`Store::confirmed_register`]: every case confirmed now, with the confirm that made it
//!   so (who, when, grade, level, note), by the day of that confirm.
//! - [`Store::monthly_counts`]: per calendar month (UTC), the cases queued that month and the
//!   cases whose standing decision was made that month, by action. A case decided twice
//!   counts once, under its latest decision; a case re-opened by a re-analysis counts as
//!   undecided until a nurse decides it again.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::Serialize;
use time::Date;

use crate::findings::{PatientFacts, StudyFacts};
use crate::queue::{
    CaseRow, CaseSummary, DECISION_COLUMNS, DecisionRecord, DecisionRow, format_date,
};
use crate::{Error, Result, Store};

/// One confirmed case for the FLS register.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterEntry {
    /// The case.
    pub case: CaseSummary,
    /// Who the patient is (from the DICOM header), when known.
    pub patient: Option<PatientFacts>,
    /// The study's facts, when known.
    pub study: Option<StudyFacts>,
    /// The confirm that the case's status comes from.
    pub confirmation: DecisionRecord,
}

/// The counts of one calendar month (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MonthCounts {
    /// `YYYY-MM`.
    pub month: String,
    /// Cases queued.
    pub queued: u64,
    /// Cases confirmed.
    pub confirmed: u64,
    /// Cases dismissed (false positives).
    pub dismissed: u64,
    /// Cases referred to a radiologist.
    pub referred: u64,
    /// Cases closed as already known or on treatment.
    pub already_known: u64,
    /// Cases closed as on a cancer pathway.
    pub cancer_pathway: u64,
    /// Cases closed as end of life or not appropriate.
    pub not_appropriate: u64,
}

impl MonthCounts {
    fn count_mut(&mut self, action: &str) -> Option<&mut u64> {
        match action {
            "confirm" => Some(&mut self.confirmed),
            "dismiss" => Some(&mut self.dismissed),
            "refer" => Some(&mut self.referred),
            "already_known" => Some(&mut self.already_known),
            "cancer_pathway" => Some(&mut self.cancer_pathway),
            "not_appropriate" => Some(&mut self.not_appropriate),
            _ => None,
        }
    }
}

/// The UTC day of a stored time, as SQL.
fn day(column: &str) -> String {
    format!("strftime('%Y-%m-%d', {column} / 1000, 'unixepoch')")
}

impl Store {
    /// The cases confirmed now whose confirm was made between `from` and `to` (UTC days,
    /// inclusive; open-ended when `None`), in the order they were confirmed.
    pub fn confirmed_register(
        &self,
        from: Option<Date>,
        to: Option<Date>,
    ) -> Result<Vec<RegisterEntry>> {
        const OP: &str = "read the confirmed register";
        let decision_columns: String = DECISION_COLUMNS
            .split(", ")
            .map(|c| format!("d.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {}, {decision_columns}
             FROM cases c JOIN decisions d ON d.study_instance_uid = c.study_instance_uid
             WHERE c.status = 'confirmed'
               AND d.id = (SELECT max(x.id) FROM decisions x
                           WHERE x.study_instance_uid = c.study_instance_uid
                             AND x.action = 'confirm')
               AND (?1 IS NULL OR {day} >= ?1)
               AND (?2 IS NULL OR {day} <= ?2)
             ORDER BY d.at, c.case_number",
            CaseRow::columns("c"),
            day = day("d.at"),
        );
        let conn = self.lock();
        let rows: Vec<(CaseRow, DecisionRow)> = conn
            .prepare(&sql)
            .and_then(|mut s| {
                s.query_map(params![from.map(format_date), to.map(format_date)], |r| {
                    Ok((CaseRow::read(r)?, DecisionRow::read_at(r, 15)?))
                })?
                .collect()
            })
            .map_err(Error::sql(OP))?;
        rows.into_iter()
            .map(|(case, decision)| {
                let (case, findings) = case.parse()?;
                let confirmation = decision.parse(&case.study_instance_uid)?;
                Ok(RegisterEntry {
                    case,
                    patient: findings.patient,
                    study: findings.study,
                    confirmation,
                })
            })
            .collect()
    }

    /// Per month, oldest first: cases queued, and cases by their standing decision.
    pub fn monthly_counts(&self) -> Result<Vec<MonthCounts>> {
        const OP: &str = "count cases by month";
        let conn = self.lock();
        let queued: Vec<(String, i64)> = conn
            .prepare(
                "SELECT strftime('%Y-%m', created_at / 1000, 'unixepoch') AS m, count(*)
                 FROM cases GROUP BY m",
            )
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(Error::sql(OP))?;
        let decided: Vec<(String, String, i64)> = conn
            .prepare(
                "SELECT strftime('%Y-%m', d.at / 1000, 'unixepoch') AS m, d.action, count(*)
                 FROM decisions d
                 WHERE d.id = (SELECT max(x.id) FROM decisions x
                               WHERE x.study_instance_uid = d.study_instance_uid)
                   AND d.action <> 'reanalysed'
                 GROUP BY m, d.action",
            )
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(Error::sql(OP))?;
        let mut out: BTreeMap<String, MonthCounts> = BTreeMap::new();
        let blank = |m: &String| MonthCounts {
            month: m.clone(),
            ..MonthCounts::default()
        };
        for (m, n) in queued {
            out.entry(m.clone()).or_insert_with(|| blank(&m)).queued = n.unsigned_abs();
        }
        for (m, action, n) in decided {
            let counts = out.entry(m.clone()).or_insert_with(|| blank(&m));
            let slot = counts.count_mut(&action).ok_or_else(|| Error::Corrupt {
                table: "decisions",
                study: String::new(),
                why: format!("unknown action `{action}`"),
            })?;
            *slot = n.unsigned_abs();
        }
        Ok(out.into_values().collect())
    }
}
