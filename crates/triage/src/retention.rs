//! Spool retention, the journal's side: which studies' instance files are due for removal,
//! and the two synced steps around their removal.
//!
//! Some time after the outcome of a study's current generation (`[storage]
//! retention_days`), its instance files leave the spool; the study, its journal, its case,
//! key images and decisions stay. The caller (spinewatch's retention task):
//!
//! 1. [`Store::begin_prune`]: records, synced, the generation being pruned
//!    (`pruning_generation`) and gets the files of that generation's instances and of the
//!    earlier ones;
//! 2. removes those files and makes the removal durable (the spool's `remove_instances`);
//! 3. [`Store::end_prune`]: deletes those instance rows, synced, and clears the mark.
//!
//! A crash between 1 and 3 leaves the mark: [`Store::prune_due`] returns that study first
//! at the next pass, and 1-3 run again (files already gone are skipped). Files go before
//! their rows, durably, so the spool's startup recovery (which records every file without
//! a row) never brings a pruned instance back. An instance arriving meanwhile re-opens the
//! study in a new generation, whose rows and files the removal leaves alone; a study
//! re-opened after a removal is analysed with what it has, the instances received since.

use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use crate::journal::parse_state;
use crate::store::to_millis;
use crate::{Error, Result, Store};

/// States whose study may be pruned (the current generation's outcome), as stored.
const OUTCOME_STATES: &str = "'excluded', 'not_analysable', 'analysed', 'queued'";

/// The instances of one study to remove from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneTarget {
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Instances of this generation and the earlier ones are removed.
    pub generation: i64,
    /// Their files.
    pub paths: Vec<PathBuf>,
    /// Their size as recorded, bytes.
    pub bytes: u64,
}

impl Store {
    /// Studies whose instances are due for removal, at most `limit`: first those whose
    /// removal a crash interrupted, then those whose current generation reached its
    /// outcome at or before `outcome_before` and that still have instance rows, oldest
    /// outcome first.
    pub fn prune_due(&self, outcome_before: OffsetDateTime, limit: usize) -> Result<Vec<String>> {
        const OP: &str = "find studies to prune";
        let conn = self.lock();
        let sql = format!(
            "SELECT study_instance_uid FROM studies
             WHERE pruning_generation IS NOT NULL
                OR (state IN ({OUTCOME_STATES}) AND updated_at <= ?1
                    AND EXISTS (SELECT 1 FROM instances i
                                WHERE i.study_instance_uid = studies.study_instance_uid))
             ORDER BY pruning_generation IS NULL, updated_at
             LIMIT ?2"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(Error::sql(OP))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        stmt.query_map(params![to_millis(outcome_before), limit], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(Error::sql(OP))
    }

    /// Step 1 of a removal: marks `study`'s current generation as being pruned (synced),
    /// provided its outcome was reached at or before `outcome_before`, and returns the
    /// instances to remove. A removal already under way is returned as it was marked.
    /// `None` when there is nothing to do: no such study, or its current generation has no
    /// outcome (re-opened since), or a recent one.
    pub fn begin_prune(
        &self,
        study: &str,
        outcome_before: OffsetDateTime,
    ) -> Result<Option<PruneTarget>> {
        const OP: &str = "begin pruning a study";
        let before = to_millis(outcome_before);
        self.write(OP, |tx, _now| {
            let row: Option<(String, i64, i64, Option<i64>)> = tx
                .query_row(
                    "SELECT state, generation, updated_at, pruning_generation FROM studies
                     WHERE study_instance_uid = ?1",
                    [study],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(Error::sql(OP))?;
            let Some((state, current, updated_at, pruning)) = row else {
                return Ok(None);
            };
            let generation = match pruning {
                Some(generation) => generation,
                None => {
                    if !parse_state(study, &state)?.is_outcome() || updated_at > before {
                        return Ok(None);
                    }
                    tx.execute(
                        "UPDATE studies SET pruning_generation = ?2 WHERE study_instance_uid = ?1",
                        params![study, current],
                    )
                    .map_err(Error::sql(OP))?;
                    current
                }
            };
            let mut stmt = tx
                .prepare_cached(
                    "SELECT path, bytes FROM instances
                     WHERE study_instance_uid = ?1 AND generation <= ?2",
                )
                .map_err(Error::sql(OP))?;
            let files: Vec<(String, i64)> = stmt
                .query_map(params![study, generation], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(Error::sql(OP))?;
            Ok(Some(PruneTarget {
                study_instance_uid: study.to_owned(),
                generation,
                bytes: files
                    .iter()
                    .map(|(_, b)| u64::try_from(*b).unwrap_or(0))
                    .sum(),
                paths: files.into_iter().map(|(p, _)| PathBuf::from(p)).collect(),
            }))
        })
    }

    /// Step 3 of a removal, once its files are gone for good: deletes the rows of the
    /// instances [`Self::begin_prune`] returned and clears the mark (synced). How many
    /// rows went; 0 when no removal of `study` is under way.
    pub fn end_prune(&self, study: &str) -> Result<usize> {
        const OP: &str = "end pruning a study";
        self.write(OP, |tx, now| {
            let pruning: Option<i64> = tx
                .query_row(
                    "SELECT pruning_generation FROM studies WHERE study_instance_uid = ?1",
                    [study],
                    |r| r.get(0),
                )
                .optional()
                .map_err(Error::sql(OP))?
                .flatten();
            let Some(generation) = pruning else {
                return Ok(0);
            };
            let removed = tx
                .execute(
                    "DELETE FROM instances WHERE study_instance_uid = ?1 AND generation <= ?2",
                    params![study, generation],
                )
                .map_err(Error::sql(OP))?;
            tx.execute(
                "UPDATE studies SET pruning_generation = NULL, pruned_at = ?2
                 WHERE study_instance_uid = ?1",
                params![study, now],
            )
            .map_err(Error::sql(OP))?;
            Ok(removed)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::journal::tests::instance;
    use crate::{ManualClock, Outcome, Recorded, StudyState};

    /// Completes every due study, and claims and finishes those `which` names (negative).
    fn analyse_due(store: &Store, which: impl Fn(&str) -> bool) {
        for s in store.complete_due(Duration::ZERO, Duration::ZERO).unwrap() {
            if which(&s.study_instance_uid) {
                store.claim(&s.study_instance_uid, s.generation).unwrap();
                store
                    .finish(&s.study_instance_uid, s.generation, Outcome::Negative)
                    .unwrap();
            }
        }
    }

    #[test]
    fn a_study_is_pruned_some_time_after_its_outcome_and_re_opens_without_its_old_instances() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let clock = ManualClock::new(t0);
        let store = Store::open_in_memory().unwrap().with_clock(clock.clone());
        for n in 1..=3 {
            store.record_instance(&instance("1.2.3", n)).unwrap();
        }
        store.record_instance(&instance("1.2.4", 1)).unwrap();
        // 1.2.4 waits for its outcome; 1.2.3 has one.
        assert!(
            store.prune_due(t0, 10).unwrap().is_empty(),
            "no outcome yet"
        );
        clock.set(t0 + Duration::from_secs(10));
        analyse_due(&store, |s| s == "1.2.3");
        let outcome_at = t0 + Duration::from_secs(10);
        assert!(
            store
                .prune_due(outcome_at - Duration::from_secs(1), 10)
                .unwrap()
                .is_empty(),
            "outcome too recent"
        );
        assert_eq!(store.prune_due(outcome_at, 10).unwrap(), ["1.2.3"]);
        assert_eq!(
            store.begin_prune("1.2.4", outcome_at).unwrap(),
            None,
            "pending"
        );
        assert_eq!(
            store
                .begin_prune("1.2.3", outcome_at - Duration::from_secs(1))
                .unwrap(),
            None,
            "too recent"
        );

        let target = store.begin_prune("1.2.3", outcome_at).unwrap().unwrap();
        assert_eq!(target.generation, 1);
        assert_eq!(target.bytes, 1001 + 1002 + 1003);
        let mut paths = target.paths.clone();
        paths.sort();
        assert_eq!(
            paths,
            (1..=3)
                .map(|n| PathBuf::from(format!("spool/1.2.3.1.{n}.dcm")))
                .collect::<Vec<_>>()
        );
        // A crash here: the same removal comes first at the next pass, unchanged.
        assert_eq!(store.prune_due(t0, 10).unwrap(), ["1.2.3"]);
        assert_eq!(store.begin_prune("1.2.3", t0).unwrap(), Some(target));

        // An instance arrives meanwhile: the study re-opens, the removal keeps it.
        clock.set(t0 + Duration::from_secs(20));
        assert!(matches!(
            store.record_instance(&instance("1.2.3", 4)).unwrap(),
            Recorded::New { generation: 2, .. }
        ));
        assert_eq!(store.end_prune("1.2.3").unwrap(), 3);
        assert_eq!(store.end_prune("1.2.3").unwrap(), 0, "done once");
        let study = store.study("1.2.3").unwrap().unwrap();
        assert_eq!(study.instance_count, 1);
        assert_eq!(study.state, StudyState::Received);
        // The re-opened generation is analysed with what it has.
        let due = store.complete_due(Duration::ZERO, Duration::ZERO).unwrap();
        let again = due
            .iter()
            .find(|s| s.study_instance_uid == "1.2.3")
            .unwrap();
        assert_eq!(again.paths, [PathBuf::from("spool/1.2.3.1.4.dcm")]);
        // A pruned study with no outcome since is not due again.
        assert!(
            !store
                .prune_due(t0 + Duration::from_secs(3600), 10)
                .unwrap()
                .contains(&"1.2.3".to_owned())
        );
    }

    #[test]
    fn a_resent_instance_after_its_removal_is_new_again() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let store = Store::open_in_memory()
            .unwrap()
            .with_clock(ManualClock::new(t0));
        store.record_instance(&instance("1.2.5", 1)).unwrap();
        analyse_due(&store, |_| true);
        store.begin_prune("1.2.5", t0).unwrap().unwrap();
        assert_eq!(store.end_prune("1.2.5").unwrap(), 1);
        assert!(store.prune_due(t0, 10).unwrap().is_empty());
        assert!(matches!(
            store.record_instance(&instance("1.2.5", 1)).unwrap(),
            Recorded::New { generation: 2, .. }
        ));
        analyse_due(&store, |_| true);
        assert_eq!(store.prune_due(t0, 10).unwrap(), ["1.2.5"], "due again");
    }
}
