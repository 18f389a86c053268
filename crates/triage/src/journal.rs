//! The study journal: instances in, studies carried through a journaled state machine.
//!
//! ```text
//!            record_instance          complete_due            claim
//! (new) ---------------------> received ----------> complete ------> analysing
//!                                 ^   (quiet period or               |  finish
//!                                 |    force ceiling)                 v
//!                                 |          excluded(reason) | not_analysable(reason)
//!                                 |          | analysed [-> queued when positive]
//!                                 +---- a new instance in any later state re-opens the
//!                                       study: generation + 1, analysed again, once
//! ```
//!
//! Exactly once: `finish` writes the outcome, the case and the journal in one transaction,
//! and only for the study's current generation while it is `analysing`; a second `finish`
//! for that generation is [`Error::AlreadyFinished`], one for an older generation is
//! [`Error::StaleGeneration`]. After a crash, [`Store::resume`] hands back every study that
//! completed but has no outcome yet (`analysing` returns to `complete`), never one that has.
//!
//! Every transition is appended to the `journal` table, in order.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::findings::CaseFindings;
use crate::queue;
use crate::store::{duration_millis, from_millis, to_millis};
use crate::{Error, Result, Store};

/// Journal reason of a study's first instance.
pub const REASON_FIRST_INSTANCE: &str = "first instance";
/// Journal reason of a re-opening by a new instance.
pub const REASON_REOPENED: &str = "reopened";
/// Journal reason of a completion after the quiet period.
pub const REASON_QUIET_PERIOD: &str = "quiet period elapsed";
/// Journal reason of a completion forced by the ceiling while instances kept arriving.
pub const REASON_FORCE_CEILING: &str = "force-complete ceiling reached";
/// Journal reason of an `analysing` study handed back by [`Store::resume`].
pub const REASON_RESUMED: &str = "resumed after restart";

/// Where a study is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StudyState {
    /// Instances are arriving; the quiet period has not elapsed.
    Received,
    /// Assembled, waiting to be analysed.
    Complete,
    /// Claimed by the pipeline.
    Analysing,
    /// Not eligible (closed reason set, e.g. not CT, patient too young).
    Excluded,
    /// Eligible but the analysis could not run (e.g. no spine found).
    NotAnalysable,
    /// Analysed, nothing flagged (or flagged: then `Queued` follows).
    Analysed,
    /// Positive: its case is in the nurses' queue.
    Queued,
}

impl StudyState {
    /// Every state, in pipeline order.
    pub const ALL: [Self; 7] = [
        Self::Received,
        Self::Complete,
        Self::Analysing,
        Self::Excluded,
        Self::NotAnalysable,
        Self::Analysed,
        Self::Queued,
    ];

    /// The name stored and shown (`not_analysable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Complete => "complete",
            Self::Analysing => "analysing",
            Self::Excluded => "excluded",
            Self::NotAnalysable => "not_analysable",
            Self::Analysed => "analysed",
            Self::Queued => "queued",
        }
    }

    /// Whether the current generation has an outcome.
    pub fn is_outcome(self) -> bool {
        matches!(
            self,
            Self::Excluded | Self::NotAnalysable | Self::Analysed | Self::Queued
        )
    }

    /// Whether the study still waits for an outcome (the backlog).
    pub fn is_pending(self) -> bool {
        !self.is_outcome()
    }
}

impl fmt::Display for StudyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StudyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown study state `{s}`"))
    }
}

/// One received SOP instance, as the ingest stage hands it over once the file is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: String,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: String,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: String,
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: String,
    /// Transfer syntax the file was stored in.
    pub transfer_syntax_uid: String,
    /// Modality (0008,0060), when present.
    pub modality: Option<String>,
    /// The patient's pseudonym ([`patient_key`](crate::patient_key)), never the PatientID.
    pub patient_key: String,
    /// Where the spool put the file (UTF-8).
    pub path: PathBuf,
    /// File size.
    pub bytes: u64,
}

/// What [`Store::record_instance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new instance, now part of the study's `generation`.
    New {
        /// The study's generation.
        generation: i64,
        /// Whether this instance re-opened a study that had completed.
        reopened: bool,
    },
    /// This SOP Instance UID was already recorded: nothing changed.
    Duplicate,
}

/// A completed study to analyse: one generation of it, with every instance's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyToAnalyse {
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// The generation to [`claim`](Store::claim) and [`finish`](Store::finish).
    pub generation: i64,
    /// Every instance's file (all generations), by series then arrival.
    pub paths: Vec<PathBuf>,
}

/// How the analysis of one generation ended.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per analysed study, moved once into `finish`: boxing the findings would only add an allocation and change the pipeline's API"
)]
pub enum Outcome {
    /// Not eligible; `reason` is a short code from a closed set (a metrics label).
    Excluded {
        /// Why, e.g. `not_ct`.
        reason: String,
    },
    /// Eligible but not analysable; `reason` is a short code from a closed set.
    NotAnalysable {
        /// Why, e.g. `no_spine`.
        reason: String,
    },
    /// Analysed, nothing flagged.
    Negative,
    /// Analysed and flagged: the case goes to the nurses' queue.
    Positive {
        /// What was found.
        findings: CaseFindings,
        /// DICOM Study Date (0008,0020), when present.
        study_date: Option<Date>,
    },
}

impl Outcome {
    fn state(&self) -> StudyState {
        match self {
            Self::Excluded { .. } => StudyState::Excluded,
            Self::NotAnalysable { .. } => StudyState::NotAnalysable,
            Self::Negative => StudyState::Analysed,
            Self::Positive { .. } => StudyState::Queued,
        }
    }
}

/// A study as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyRecord {
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Patient pseudonym.
    pub patient_key: String,
    /// Where it is.
    pub state: StudyState,
    /// Why it was excluded or not analysable.
    pub reason: Option<String>,
    /// Openings so far (1 until an instance re-opens it).
    pub generation: i64,
    /// First instance of this generation.
    #[serde(with = "time::serde::rfc3339")]
    pub first_instance_at: OffsetDateTime,
    /// Last instance of this generation.
    #[serde(with = "time::serde::rfc3339")]
    pub last_instance_at: OffsetDateTime,
    /// When this generation completed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    /// Outcomes recorded (one per generation that reached one).
    pub analysed_count: i64,
    /// Instances recorded (duplicates once).
    pub instance_count: i64,
}

/// One transition of a study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournalEntry {
    /// Order of the entry among all entries.
    pub id: i64,
    /// The study's generation at the transition.
    pub generation: i64,
    /// `None` when the study was first seen.
    pub from_state: Option<StudyState>,
    /// The new state.
    pub to_state: StudyState,
    /// Why, for completions, re-openings, exclusions and resumptions.
    pub reason: Option<String>,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Store {
    /// Records one instance (after its file is durable) and opens, extends or re-opens its
    /// study, in a transaction synced to disk before this returns. A SOP Instance UID seen
    /// before is a [`Recorded::Duplicate`] and changes nothing.
    pub fn record_instance(&self, instance: &InstanceRecord) -> Result<Recorded> {
        let checked = Checked::new(instance)?;
        let recorded = self.write(RECORD, |tx, now| record(tx, &checked, now))?;
        log_recorded(instance, recorded);
        Ok(recorded)
    }

    /// [`Self::record_instance`] with its commit not synced: `synchronous = NORMAL` for
    /// this one transaction, so no fsync; the connection is back to `FULL` before this
    /// returns. A process crash loses nothing (the commit is in the WAL, in the page
    /// cache); a power cut or kernel crash can lose the last such commits, the ones no
    /// synced transaction followed (the WAL is replayed as a prefix, and every synced
    /// commit syncs all frames before it, so no state the pipeline acted on is lost).
    ///
    /// Only for a caller for which the spool, not this table, is the source of truth: the
    /// instance's file is durable (fsynced, renamed, folder fsynced) before this call,
    /// and every start records the durable files that have no row (with
    /// [`Self::unrecorded_instances`] and [`Self::record_instances`]) before the pipeline
    /// or the listener runs. A lost row then comes back at the next start, like an
    /// instance that arrives again.
    pub fn record_instance_unsynced(&self, instance: &InstanceRecord) -> Result<Recorded> {
        let checked = Checked::new(instance)?;
        let recorded = self.write_unsynced(RECORD, |tx, now| record(tx, &checked, now))?;
        log_recorded(instance, recorded);
        Ok(recorded)
    }

    /// Records several instances in one transaction, synced before this returns, in the
    /// order given (each sees the ones before it: a study opened by the first is extended
    /// by the next); what each did, in the same order. One invalid instance fails the
    /// whole call and records none.
    pub fn record_instances(&self, instances: &[InstanceRecord]) -> Result<Vec<Recorded>> {
        let checked = instances
            .iter()
            .map(Checked::new)
            .collect::<Result<Vec<_>>>()?;
        let recorded: Vec<Recorded> = self.write(RECORD, |tx, now| {
            checked.iter().map(|c| record(tx, c, now)).collect()
        })?;
        for (instance, r) in instances.iter().zip(&recorded) {
            log_recorded(instance, *r);
        }
        Ok(recorded)
    }

    /// Which of `sop_instance_uids` have no instance row, in the order given (a read:
    /// one lookup by primary key each, under one lock).
    pub fn unrecorded_instances<'a>(&self, sop_instance_uids: &[&'a str]) -> Result<Vec<&'a str>> {
        const OP: &str = "look up instances";
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT 1 FROM instances WHERE sop_instance_uid = ?1")
            .map_err(Error::sql(OP))?;
        let mut missing = Vec::new();
        for uid in sop_instance_uids {
            if !stmt.exists([uid]).map_err(Error::sql(OP))? {
                missing.push(*uid);
            }
        }
        Ok(missing)
    }

    /// Like [`Store::write`](crate::Store), but the commit is not synced (see
    /// [`Self::record_instance_unsynced`]). `synchronous` is a setting of the connection,
    /// read at commit: it is `NORMAL` for this transaction only, under the connection's
    /// lock, and `FULL` again before the lock is released, whatever happened, so no
    /// other transaction (a study's outcome, a nurse's decision) is ever committed
    /// unsynced.
    fn write_unsynced<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Transaction<'_>, i64) -> Result<T>,
    ) -> Result<T> {
        let now = to_millis(self.now());
        let mut conn = self.lock();
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(Error::sql(operation))?;
        let out = (|| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(Error::sql(operation))?;
            let out = f(&tx, now)?;
            tx.commit().map_err(Error::sql(operation))?;
            Ok(out)
        })();
        if let Err(source) = conn.pragma_update(None, "synchronous", "FULL") {
            // Later transactions would not be synced: refuse to go on with this
            // connection's answer. (Setting a pragma does no I/O; this does not happen.)
            tracing::error!(error = %source, "Could not set synchronous = FULL again.");
            return Err(Error::Sql { operation, source });
        }
        out
    }

    /// Completes every `received` study whose last instance is at least `quiet_period` old,
    /// or whose generation's first instance is at least `force_ceiling` old (a study that
    /// keeps receiving is analysed all the same; a later instance re-opens it). Returns them,
    /// oldest first.
    pub fn complete_due(
        &self,
        quiet_period: Duration,
        force_ceiling: Duration,
    ) -> Result<Vec<StudyToAnalyse>> {
        const OP: &str = "complete due studies";
        let due = self.write(OP, |tx, now| {
            let quiet_before = now.saturating_sub(duration_millis(quiet_period));
            let ceiling_before = now.saturating_sub(duration_millis(force_ceiling));
            let mut stmt = tx
                .prepare(
                    "SELECT study_instance_uid, generation, last_instance_at <= ?1 FROM studies
                     WHERE state = 'received'
                       AND (last_instance_at <= ?1 OR first_instance_at <= ?2)
                     ORDER BY first_instance_at, study_instance_uid",
                )
                .map_err(Error::sql(OP))?;
            let due: Vec<(String, i64, bool)> = stmt
                .query_map([quiet_before, ceiling_before], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .and_then(Iterator::collect)
                .map_err(Error::sql(OP))?;
            let mut out = Vec::with_capacity(due.len());
            for (study, generation, quiet) in due {
                tx.execute(
                    "UPDATE studies SET state = 'complete', completed_at = ?2, updated_at = ?2
                     WHERE study_instance_uid = ?1",
                    params![study, now],
                )
                .map_err(Error::sql(OP))?;
                let reason = if quiet {
                    REASON_QUIET_PERIOD
                } else {
                    REASON_FORCE_CEILING
                };
                let from = Some(StudyState::Received);
                append(
                    tx,
                    &study,
                    generation,
                    from,
                    StudyState::Complete,
                    Some(reason),
                    now,
                )?;
                out.push(to_analyse(tx, study, generation, OP)?);
            }
            Ok(out)
        })?;
        for s in &due {
            tracing::info!(
                study = %s.study_instance_uid,
                generation = s.generation,
                instances = s.paths.len(),
                "Study assembled."
            );
        }
        Ok(due)
    }

    /// Claims a completed study's `generation` for analysis (`complete -> analysing`).
    pub fn claim(&self, study: &str, generation: i64) -> Result<()> {
        const OP: &str = "claim study";
        self.write(OP, |tx, now| {
            let state = current_generation(tx, study, generation, OP)?;
            if state != StudyState::Complete {
                return Err(Error::WrongState {
                    study: study.to_owned(),
                    operation: "claim",
                    state,
                });
            }
            set_state(tx, study, StudyState::Analysing, None, now, OP)?;
            append(
                tx,
                study,
                generation,
                Some(state),
                StudyState::Analysing,
                None,
                now,
            )
        })
    }

    /// Records how the analysis of `generation` ended, in one transaction: the outcome
    /// state, the journal and, for a positive, the case (queued, status open; a case from an
    /// earlier generation gets the new findings and is re-opened, recorded as a
    /// `reanalysed` decision by `system`). Returns the study's new state.
    pub fn finish(&self, study: &str, generation: i64, outcome: Outcome) -> Result<StudyState> {
        const OP: &str = "finish study";
        let reason = match &outcome {
            Outcome::Excluded { reason } | Outcome::NotAnalysable { reason } => {
                if reason.trim().is_empty() {
                    return Err(Error::InvalidOutcome {
                        study: study.to_owned(),
                        why: format!("{} without a reason", outcome.state()),
                    });
                }
                Some(reason.as_str())
            }
            Outcome::Negative => None,
            Outcome::Positive { findings, .. } => {
                findings.validate().map_err(|why| Error::InvalidOutcome {
                    study: study.to_owned(),
                    why,
                })?;
                None
            }
        };
        let target = outcome.state();
        self.write(OP, |tx, now| {
            let state = current_generation(tx, study, generation, OP)?;
            if state != StudyState::Analysing {
                return Err(Error::WrongState {
                    study: study.to_owned(),
                    operation: "finish",
                    state,
                });
            }
            let reached = match target {
                StudyState::Queued => StudyState::Analysed,
                other => other,
            };
            set_state(tx, study, reached, reason, now, OP)?;
            tx.execute(
                "UPDATE studies SET analysed_count = analysed_count + 1
                 WHERE study_instance_uid = ?1",
                [study],
            )
            .map_err(Error::sql(OP))?;
            append(tx, study, generation, Some(state), reached, reason, now)?;
            match &outcome {
                Outcome::Positive {
                    findings,
                    study_date,
                } => {
                    set_state(tx, study, StudyState::Queued, None, now, OP)?;
                    append(
                        tx,
                        study,
                        generation,
                        Some(reached),
                        StudyState::Queued,
                        None,
                        now,
                    )?;
                    queue::upsert_case(tx, study, generation, findings, *study_date, now)?;
                }
                _ => {
                    // A case from an earlier generation keeps its status: the nurses see
                    // that the new analysis did not confirm it.
                    if let Some(status) = queue::case_status(tx, study)? {
                        let note = match reason {
                            Some(r) => format!("re-analysis: {target} ({r})"),
                            None => format!("re-analysis: {target}, nothing flagged"),
                        };
                        queue::append_system_decision(tx, study, status, status, &note, now)?;
                    }
                }
            }
            Ok(())
        })?;
        tracing::info!(study, generation, outcome = %target, reason, "Study finished.");
        Ok(target)
    }

    /// Hands back every study that completed but has no outcome yet, so the pipeline
    /// analyses it after a restart: `analysing` studies (interrupted by the crash) return to
    /// `complete`, journaled. Call it once at start-up, before claiming anything.
    pub fn resume(&self) -> Result<Vec<StudyToAnalyse>> {
        const OP: &str = "resume studies";
        let resumed = self.write(OP, |tx, now| {
            let interrupted: Vec<(String, i64)> = tx
                .prepare(
                    "SELECT study_instance_uid, generation FROM studies WHERE state = 'analysing'",
                )
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .map_err(Error::sql(OP))?;
            for (study, generation) in &interrupted {
                set_state(tx, study, StudyState::Complete, None, now, OP)?;
                let from = Some(StudyState::Analysing);
                append(
                    tx,
                    study,
                    *generation,
                    from,
                    StudyState::Complete,
                    Some(REASON_RESUMED),
                    now,
                )?;
            }
            let complete: Vec<(String, i64)> = tx
                .prepare(
                    "SELECT study_instance_uid, generation FROM studies WHERE state = 'complete'
                     ORDER BY completed_at, study_instance_uid",
                )
                .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                .map_err(Error::sql(OP))?;
            complete
                .into_iter()
                .map(|(study, generation)| to_analyse(tx, study, generation, OP))
                .collect::<Result<Vec<_>>>()
        })?;
        if !resumed.is_empty() {
            tracing::info!(studies = resumed.len(), "Unfinished studies resumed.");
        }
        Ok(resumed)
    }

    /// The study, if known.
    pub fn study(&self, study: &str) -> Result<Option<StudyRecord>> {
        const OP: &str = "read study";
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT patient_key, state, reason, generation, first_instance_at,
                     last_instance_at, completed_at, analysed_count,
                     (SELECT count(*) FROM instances i
                      WHERE i.study_instance_uid = s.study_instance_uid)
                 FROM studies s WHERE study_instance_uid = ?1",
                [study],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get::<_, Option<i64>>(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                },
            )
            .optional()
            .map_err(Error::sql(OP))?;
        let Some((patient_key, state, reason, generation, first, last, completed, analysed, n)) =
            row
        else {
            return Ok(None);
        };
        Ok(Some(StudyRecord {
            study_instance_uid: study.to_owned(),
            patient_key,
            state: parse_state(study, &state)?,
            reason,
            generation,
            first_instance_at: from_millis(first),
            last_instance_at: from_millis(last),
            completed_at: completed.map(from_millis),
            analysed_count: analysed,
            instance_count: n,
        }))
    }

    /// Every transition of the study, in order.
    pub fn journal(&self, study: &str) -> Result<Vec<JournalEntry>> {
        const OP: &str = "read journal";
        let conn = self.lock();
        /// `(id, generation, from_state, to_state, reason, at)` as stored.
        type Row = (i64, i64, Option<String>, String, Option<String>, i64);
        let rows: Vec<Row> = conn
            .prepare(
                "SELECT id, generation, from_state, to_state, reason, at FROM journal
                 WHERE study_instance_uid = ?1 ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map([study], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect()
            })
            .map_err(Error::sql(OP))?;
        rows.into_iter()
            .map(|(id, generation, from, to, reason, at)| {
                Ok(JournalEntry {
                    id,
                    generation,
                    from_state: from.map(|s| parse_state(study, &s)).transpose()?,
                    to_state: parse_state(study, &to)?,
                    reason,
                    at: from_millis(at),
                })
            })
            .collect()
    }

    /// Number of studies in each state (every state listed, zeros included).
    pub fn state_counts(&self) -> Result<BTreeMap<StudyState, u64>> {
        const OP: &str = "count studies by state";
        let conn = self.lock();
        let rows: Vec<(String, i64)> = conn
            .prepare("SELECT state, count(*) FROM studies GROUP BY state")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(Error::sql(OP))?;
        let mut counts: BTreeMap<_, _> = StudyState::ALL.into_iter().map(|s| (s, 0)).collect();
        for (state, n) in rows {
            counts.insert(parse_state("*", &state)?, n.unsigned_abs());
        }
        Ok(counts)
    }

    /// Number of studies excluded now, by reason.
    pub fn exclusion_counts(&self) -> Result<BTreeMap<String, u64>> {
        const OP: &str = "count exclusions";
        let conn = self.lock();
        conn.prepare(
            "SELECT coalesce(reason, ''), count(*) FROM studies
             WHERE state = 'excluded' GROUP BY reason",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.unsigned_abs())))?
                .collect()
        })
        .map_err(Error::sql(OP))
    }

    /// Number of studies waiting for an outcome (`received + complete + analysing`).
    pub fn backlog(&self) -> Result<u64> {
        let n: i64 = self
            .lock()
            .query_row(
                "SELECT count(*) FROM studies
                 WHERE state IN ('received', 'complete', 'analysing')",
                [],
                |r| r.get(0),
            )
            .map_err(Error::sql("count the backlog"))?;
        Ok(n.unsigned_abs())
    }
}

/// The operation name of every instance record.
const RECORD: &str = "record instance";

/// An [`InstanceRecord`] checked for recording: its path as UTF-8, its size as stored.
struct Checked<'a> {
    instance: &'a InstanceRecord,
    path: &'a str,
    bytes: i64,
}

impl<'a> Checked<'a> {
    fn new(instance: &'a InstanceRecord) -> Result<Self> {
        let invalid = |why: &str| Error::InvalidInstance {
            sop_instance_uid: instance.sop_instance_uid.clone(),
            why: why.to_owned(),
        };
        if instance.sop_instance_uid.is_empty() || instance.study_instance_uid.is_empty() {
            return Err(invalid("empty SOP or Study Instance UID"));
        }
        if instance.patient_key.is_empty() {
            return Err(invalid("empty patient key"));
        }
        let path = instance
            .path
            .to_str()
            .ok_or_else(|| invalid("path is not UTF-8"))?;
        let bytes = i64::try_from(instance.bytes).map_err(|_| invalid("size overflows i64"))?;
        Ok(Self {
            instance,
            path,
            bytes,
        })
    }
}

/// Records one instance in `tx`: a duplicate changes nothing; a new one opens, extends or
/// re-opens its study, then gets its row. Statements are cached on the connection (an
/// instance arrives every few milliseconds; parsing them each time cost more than
/// running them).
fn record(tx: &Transaction<'_>, checked: &Checked<'_>, now: i64) -> Result<Recorded> {
    let instance = checked.instance;
    let seen = tx
        .prepare_cached("SELECT 1 FROM instances WHERE sop_instance_uid = ?1")
        .and_then(|mut s| s.exists([&instance.sop_instance_uid]))
        .map_err(Error::sql(RECORD))?;
    if seen {
        return Ok(Recorded::Duplicate);
    }
    let (generation, reopened) = open_study(tx, instance, now)?;
    tx.prepare_cached(
        "INSERT INTO instances (sop_instance_uid, study_instance_uid, series_instance_uid,
             sop_class_uid, transfer_syntax_uid, modality, path, bytes, generation,
             received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            instance.sop_instance_uid,
            instance.study_instance_uid,
            instance.series_instance_uid,
            instance.sop_class_uid,
            instance.transfer_syntax_uid,
            instance.modality,
            checked.path,
            checked.bytes,
            generation,
            now
        ])
    })
    .map_err(Error::sql(RECORD))?;
    Ok(Recorded::New {
        generation,
        reopened,
    })
}

/// Logs what recording `instance` did (UIDs of studies only, at DEBUG but re-openings).
fn log_recorded(instance: &InstanceRecord, recorded: Recorded) {
    let study = instance.study_instance_uid.as_str();
    match recorded {
        Recorded::New {
            generation,
            reopened: true,
        } => tracing::info!(study, generation, "Study re-opened by a new instance."),
        Recorded::New { .. } => tracing::debug!(study, "Instance recorded."),
        Recorded::Duplicate => tracing::debug!(study, "Duplicate instance ignored."),
    }
}

/// Opens the instance's study (first instance), extends it (`received`) or re-opens it
/// (any later state: generation + 1). Returns the generation and whether it re-opened.
fn open_study(tx: &Transaction<'_>, instance: &InstanceRecord, now: i64) -> Result<(i64, bool)> {
    const OP: &str = RECORD;
    let study = instance.study_instance_uid.as_str();
    let current: Option<(String, i64, String)> = tx
        .prepare_cached(
            "SELECT state, generation, patient_key FROM studies WHERE study_instance_uid = ?1",
        )
        .and_then(|mut s| {
            s.query_row([study], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(Error::sql(OP))?;
    let Some((state, generation, patient_key)) = current else {
        tx.prepare_cached(
            "INSERT INTO studies (study_instance_uid, patient_key, state, generation,
                 first_instance_at, last_instance_at, created_at, updated_at)
             VALUES (?1, ?2, 'received', 1, ?3, ?3, ?3, ?3)",
        )
        .and_then(|mut s| s.execute(params![study, instance.patient_key, now]))
        .map_err(Error::sql(OP))?;
        let reason = Some(REASON_FIRST_INSTANCE);
        append(tx, study, 1, None, StudyState::Received, reason, now)?;
        return Ok((1, false));
    };
    if patient_key != instance.patient_key {
        // Pseudonyms only, and neither is logged.
        tracing::warn!(
            study,
            "Instance of another patient than its study's; the study keeps its first patient."
        );
    }
    let state = parse_state(study, &state)?;
    if state == StudyState::Received {
        tx.prepare_cached(
            "UPDATE studies SET last_instance_at = ?2, updated_at = ?2
             WHERE study_instance_uid = ?1",
        )
        .and_then(|mut s| s.execute(params![study, now]))
        .map_err(Error::sql(OP))?;
        return Ok((generation, false));
    }
    let next = generation + 1;
    tx.execute(
        "UPDATE studies SET state = 'received', reason = NULL, generation = ?2,
             first_instance_at = ?3, last_instance_at = ?3, completed_at = NULL, updated_at = ?3
         WHERE study_instance_uid = ?1",
        params![study, next, now],
    )
    .map_err(Error::sql(OP))?;
    let reason = Some(REASON_REOPENED);
    append(
        tx,
        study,
        next,
        Some(state),
        StudyState::Received,
        reason,
        now,
    )?;
    Ok((next, true))
}

/// Appends a transition to the journal.
fn append(
    tx: &Transaction<'_>,
    study: &str,
    generation: i64,
    from: Option<StudyState>,
    to: StudyState,
    reason: Option<&str>,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO journal (study_instance_uid, generation, from_state, to_state, reason, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            study,
            generation,
            from.map(StudyState::as_str),
            to.as_str(),
            reason,
            now
        ])
    })
    .map_err(Error::sql("append to the journal"))?;
    Ok(())
}

/// Sets the study's state and reason.
fn set_state(
    tx: &Transaction<'_>,
    study: &str,
    state: StudyState,
    reason: Option<&str>,
    now: i64,
    operation: &'static str,
) -> Result<()> {
    tx.execute(
        "UPDATE studies SET state = ?2, reason = ?3, updated_at = ?4
         WHERE study_instance_uid = ?1",
        params![study, state.as_str(), reason, now],
    )
    .map_err(Error::sql(operation))?;
    Ok(())
}

/// The study's state, provided `generation` is its current one and has no outcome yet.
fn current_generation(
    tx: &Transaction<'_>,
    study: &str,
    generation: i64,
    operation: &'static str,
) -> Result<StudyState> {
    let (state, current): (String, i64) = tx
        .query_row(
            "SELECT state, generation FROM studies WHERE study_instance_uid = ?1",
            [study],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(Error::sql(operation))?
        .ok_or_else(|| Error::NotFound {
            study: study.to_owned(),
        })?;
    let state = parse_state(study, &state)?;
    if generation != current {
        return Err(Error::StaleGeneration {
            study: study.to_owned(),
            generation,
            current,
        });
    }
    if state.is_outcome() {
        return Err(Error::AlreadyFinished {
            study: study.to_owned(),
            generation,
            state,
        });
    }
    Ok(state)
}

/// The study's generation with every instance's file.
fn to_analyse(
    tx: &Transaction<'_>,
    study: String,
    generation: i64,
    operation: &'static str,
) -> Result<StudyToAnalyse> {
    let paths: Vec<String> = tx
        .prepare(
            "SELECT path FROM instances WHERE study_instance_uid = ?1
             ORDER BY series_instance_uid, received_at, sop_instance_uid",
        )
        .and_then(|mut s| s.query_map([&study], |r| r.get(0))?.collect())
        .map_err(Error::sql(operation))?;
    Ok(StudyToAnalyse {
        study_instance_uid: study,
        generation,
        paths: paths.into_iter().map(PathBuf::from).collect(),
    })
}

pub(crate) fn parse_state(study: &str, s: &str) -> Result<StudyState> {
    s.parse().map_err(|why| Error::Corrupt {
        table: "studies",
        study: study.to_owned(),
        why,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
pub(crate) mod tests {
    use super::*;

    /// Instance `n` of `study`, in one series (also for the other modules' tests).
    pub(crate) fn instance(study: &str, n: u32) -> InstanceRecord {
        InstanceRecord {
            sop_instance_uid: format!("{study}.1.{n}"),
            study_instance_uid: study.to_owned(),
            series_instance_uid: format!("{study}.1"),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".to_owned(),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".to_owned(),
            modality: Some("CT".to_owned()),
            patient_key: crate::patient_key(b"test secret", "PID-1"),
            path: format!("spool/{study}.1.{n}.dcm").into(),
            bytes: 1000 + u64::from(n),
        }
    }

    /// `PRAGMA synchronous` of the store's connection (2 is FULL).
    fn synchronous(store: &Store) -> i64 {
        store
            .lock()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn unsynced_record_leaves_the_connection_synced_whatever_happens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db.sqlite")).unwrap();
        assert_eq!(synchronous(&store), 2);
        let first = instance("1.2.3", 1);
        assert_eq!(
            store.record_instance_unsynced(&first).unwrap(),
            Recorded::New {
                generation: 1,
                reopened: false
            }
        );
        assert_eq!(synchronous(&store), 2, "FULL again after a commit");
        assert_eq!(
            store.record_instance_unsynced(&first).unwrap(),
            Recorded::Duplicate
        );
        assert_eq!(store.study("1.2.3").unwrap().unwrap().instance_count, 1);

        // A transaction that fails half-way (its table is gone) rolls back and still
        // leaves the connection synced for the next writer.
        store.lock().execute_batch("DROP TABLE instances").unwrap();
        assert!(
            store
                .record_instance_unsynced(&instance("1.2.3", 2))
                .is_err()
        );
        assert_eq!(synchronous(&store), 2, "FULL again after a failure");
        // Invalid before any SQL: nothing to restore, and still FULL.
        let mut invalid = instance("1.2.3", 3);
        invalid.patient_key.clear();
        assert!(matches!(
            store.record_instance_unsynced(&invalid),
            Err(Error::InvalidInstance { .. })
        ));
        assert_eq!(synchronous(&store), 2);
    }

    #[test]
    fn unsynced_rows_survive_the_process_closing_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let store = Store::open(&path).unwrap();
            for n in 1..=3 {
                store
                    .record_instance_unsynced(&instance("1.2.3", n))
                    .unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.study("1.2.3").unwrap().unwrap().instance_count, 3);
    }

    #[test]
    fn a_batch_is_recorded_in_order_and_all_or_nothing() {
        let store = Store::open_in_memory().unwrap();
        let (a1, a2) = (instance("1.2.3", 1), instance("1.2.3", 2));
        let recorded = store
            .record_instances(&[a1.clone(), a2.clone(), a1.clone()])
            .unwrap();
        let new = Recorded::New {
            generation: 1,
            reopened: false,
        };
        // The second extends the study the first opened; the third repeats the first.
        assert_eq!(recorded, vec![new, new, Recorded::Duplicate]);
        let study = store.study("1.2.3").unwrap().unwrap();
        assert_eq!(study.instance_count, 2);
        assert_eq!(store.journal("1.2.3").unwrap().len(), 1, "opened once");

        let mut invalid = instance("1.2.4", 2);
        invalid.patient_key.clear();
        assert!(
            store
                .record_instances(&[instance("1.2.4", 1), invalid])
                .is_err()
        );
        assert_eq!(store.study("1.2.4").unwrap(), None, "nothing of the batch");

        // A batch after the study's outcome re-opens it once.
        let due = store
            .complete_due(Duration::ZERO, Duration::from_secs(3600))
            .unwrap();
        store.claim("1.2.3", due[0].generation).unwrap();
        store.finish("1.2.3", 1, Outcome::Negative).unwrap();
        let late = store
            .record_instances(&[instance("1.2.3", 3), instance("1.2.3", 4)])
            .unwrap();
        assert_eq!(
            late,
            vec![
                Recorded::New {
                    generation: 2,
                    reopened: true
                },
                Recorded::New {
                    generation: 2,
                    reopened: false
                }
            ]
        );
    }

    #[test]
    fn unrecorded_instances_are_those_without_a_row_in_the_order_given() {
        let store = Store::open_in_memory().unwrap();
        store.record_instance(&instance("1.2.3", 2)).unwrap();
        let asked = ["1.2.3.1.3", "1.2.3.1.2", "1.2.3.1.1"];
        assert_eq!(
            store.unrecorded_instances(&asked).unwrap(),
            vec!["1.2.3.1.3", "1.2.3.1.1"]
        );
        assert!(store.unrecorded_instances(&[]).unwrap().is_empty());
    }
}
