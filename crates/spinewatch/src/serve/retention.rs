//! Spool retention: a study's instance files leave the spool `[storage] retention_days`
//! after its outcome, so that the disk does not fill with studies spinewatch is done
//! with (a CT study is 100-500 MB; the PACS stays the archive). The study, its journal,
//! its case, key images and decisions stay.
//!
//! Every [`PASS_INTERVAL`], the first at start (after the spool's recovery), a pass asks the
//! journal for the studies due ([`Store::prune_due`]: interrupted removals first) and, for
//! each, in order: marks it (synced), removes its files durably
//! ([`spool::remove_instances`]), deletes its instance rows (synced). See
//! `spinewatch_triage::retention` for why that order survives a crash at any point.
//!
//! A study that cannot be pruned (a file that cannot be removed, a path outside the spool
//! after `spool_dir` was moved) is logged and skipped; the others go on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spinewatch_ingest::spool;
use spinewatch_triage::Store;
use tokio_util::sync::CancellationToken;

use super::telemetry;

/// How often a pass runs.
pub const PASS_INTERVAL: Duration = Duration::from_secs(600);

/// Studies handled per journal query.
const BATCH: usize = 64;

/// What a pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Studies whose instances were removed.
    pub studies: usize,
    /// Instance rows removed.
    pub instances: usize,
    /// Files removed (fewer than rows when some were gone already).
    pub files: usize,
    /// Their size as recorded, bytes.
    pub bytes: u64,
    /// Studies that could not be pruned (logged).
    pub failed: usize,
}

/// One pass (blocking): prunes every study whose outcome is older than `retention`.
pub fn prune(store: &Store, spool_dir: &Path, retention: Duration) -> anyhow::Result<Pruned> {
    let before = store.now() - retention;
    let mut done = Pruned::default();
    // Studies not to list again in this pass: failed, or no longer due. A failed one
    // keeps its mark and so comes first in every listing; the limit makes room for it.
    let mut skip: Vec<String> = Vec::new();
    loop {
        let due = store.prune_due(before, BATCH + skip.len())?;
        let due: Vec<String> = due.into_iter().filter(|s| !skip.contains(s)).collect();
        if due.is_empty() {
            break;
        }
        for study in due {
            match prune_study(store, spool_dir, &study, before) {
                Ok(Some((instances, files, bytes))) => {
                    done.studies += 1;
                    done.instances += instances;
                    done.files += files;
                    done.bytes += bytes;
                }
                Ok(None) => skip.push(study),
                Err(e) => {
                    // The study UID is not logged above DEBUG (house rule for UIDs).
                    tracing::warn!(error = %format!("{e:#}"), "A study's instances could not be removed from the spool.");
                    tracing::debug!(study = %study, "Study not pruned.");
                    done.failed += 1;
                    skip.push(study);
                }
            }
        }
    }
    if done.studies > 0 || done.failed > 0 {
        tracing::info!(
            studies = done.studies,
            instances = done.instances,
            bytes = done.bytes,
            failed = done.failed,
            "Spool retention: instances of finished studies removed."
        );
    }
    metrics::counter!(telemetry::PRUNED_STUDIES_TOTAL).increment(done.studies as u64);
    metrics::counter!(telemetry::PRUNED_INSTANCES_TOTAL).increment(done.files as u64);
    metrics::counter!(telemetry::PRUNED_BYTES_TOTAL).increment(done.bytes);
    Ok(done)
}

/// Prunes one study: rows, files and bytes removed; `None` when it was not due after all
/// (re-opened since it was listed).
fn prune_study(
    store: &Store,
    spool_dir: &Path,
    study: &str,
    before: time::OffsetDateTime,
) -> anyhow::Result<Option<(usize, usize, u64)>> {
    let Some(target) = store.begin_prune(study, before)? else {
        return Ok(None);
    };
    let paths: Vec<PathBuf> = target.paths;
    let files = spool::remove_instances(spool_dir, &paths)?;
    let instances = store.end_prune(study)?;
    Ok(Some((instances, files, target.bytes)))
}

/// Runs a pass every [`PASS_INTERVAL`] until `shutdown`; none when `retention` is `None`
/// (keep for ever). A pass that fails is logged; the next one tries again.
pub async fn run(
    store: Store,
    spool_dir: PathBuf,
    retention: Option<Duration>,
    shutdown: CancellationToken,
) {
    let Some(retention) = retention else {
        return;
    };
    let mut every = tokio::time::interval(PASS_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let (store, dir) = (store.clone(), spool_dir.clone());
        match tokio::task::spawn_blocking(move || prune(&store, &dir, retention)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "Spool retention pass failed."),
            Err(e) => tracing::warn!(error = %e, "Spool retention pass panicked."),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    use spinewatch_core::Uid;
    use spinewatch_ingest::spool::Spool;
    use spinewatch_triage::{InstanceRecord, ManualClock, Outcome};
    use time::OffsetDateTime;

    /// Records instance `uid` of `study`, its file at `path` (`bytes` long).
    fn record(store: &Store, study: &str, uid: &str, path: &Path, bytes: u64) {
        store
            .record_instance(&InstanceRecord {
                sop_instance_uid: uid.into(),
                study_instance_uid: study.into(),
                series_instance_uid: format!("{study}.99"),
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
                transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
                modality: Some("CT".into()),
                patient_key: "0123456789abcdef".into(),
                path: path.to_owned(),
                bytes,
            })
            .unwrap();
    }

    /// Completes every quiet study, and gives those `which` names a negative outcome.
    fn finish_negative(store: &Store, which: impl Fn(&str) -> bool) {
        for s in store.complete_due(Duration::ZERO, Duration::ZERO).unwrap() {
            if which(&s.study_instance_uid) {
                store.claim(&s.study_instance_uid, s.generation).unwrap();
                store
                    .finish(&s.study_instance_uid, s.generation, Outcome::Negative)
                    .unwrap();
            }
        }
    }

    /// A spooled instance of `study` (a file of 1000 bytes) and its row.
    fn spooled(spool: &Spool, store: &Store, study: &str, n: u32) -> PathBuf {
        let uid = format!("{study}.{n}");
        let path = spool.final_path(&Uid::new(&uid).unwrap());
        std::fs::write(&path, vec![7_u8; 1000]).unwrap();
        record(store, study, &uid, &path, 1000);
        path
    }

    #[test]
    fn finished_studies_leave_the_spool_after_the_retention_and_a_crash_is_finished_later() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let clock = ManualClock::new(t0);
        let store = Store::open(dir.path().join("db.sqlite"))
            .unwrap()
            .with_clock(clock.clone());
        let old: Vec<_> = (1..=3)
            .map(|n| spooled(&spool, &store, "1.2.3", n))
            .collect();
        let pending = spooled(&spool, &store, "1.2.4", 1);
        finish_negative(&store, |s| s == "1.2.3");
        let retention = Duration::from_secs(30 * 86_400);
        // A day before the retention is over: nothing goes.
        clock.set(t0 + retention - Duration::from_secs(86_400));
        assert_eq!(
            prune(&store, dir.path(), retention).unwrap(),
            Pruned::default()
        );
        assert!(old.iter().all(|p| p.exists()));

        // A crash after the mark and one file removed: the next pass finishes the job.
        clock.set(t0 + retention);
        let target = store
            .begin_prune("1.2.3", store.now() - retention)
            .unwrap()
            .unwrap();
        assert_eq!(target.paths.len(), 3);
        std::fs::remove_file(&old[0]).unwrap();
        let done = prune(&store, dir.path(), retention).unwrap();
        assert_eq!(
            done,
            Pruned {
                studies: 1,
                instances: 3,
                files: 2,
                bytes: 3000,
                failed: 0
            }
        );
        assert!(old.iter().all(|p| !p.exists()));
        assert!(
            pending.exists(),
            "a study without an outcome keeps its files"
        );
        assert_eq!(store.study("1.2.3").unwrap().unwrap().instance_count, 0);
        assert_eq!(store.study("1.2.4").unwrap().unwrap().instance_count, 1);
        assert_eq!(
            prune(&store, dir.path(), retention).unwrap(),
            Pruned::default()
        );
        // Recovery finds no spooled file without a row: nothing pruned comes back.
        let recovered =
            crate::serve::sink::recover_spool(&store, b"a test site secret", dir.path()).unwrap();
        assert_eq!((recovered.files, recovered.recorded), (1, 0));
    }

    #[test]
    fn a_row_naming_a_file_outside_the_spool_is_skipped_and_the_others_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool"), 0).unwrap();
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let store = Store::open(dir.path().join("db.sqlite"))
            .unwrap()
            .with_clock(ManualClock::new(t0));
        let kept = spooled(&spool, &store, "1.2.5", 1);
        // A row from an older spool location (`spool_dir` moved).
        let elsewhere = dir.path().join("old-spool/instances/00/1.2.6.1.dcm");
        std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
        std::fs::write(&elsewhere, b"x").unwrap();
        record(&store, "1.2.6", "1.2.6.1", &elsewhere, 1);
        finish_negative(&store, |_| true);
        let done = prune(&store, &dir.path().join("spool"), Duration::ZERO).unwrap();
        assert_eq!((done.studies, done.failed), (1, 1));
        assert!(!kept.exists());
        assert!(elsewhere.exists(), "nothing outside the spool is removed");
    }
}
