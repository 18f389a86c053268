//! Where the DICOM listener hands each durable instance: the triage journal, under the
//! patient's pseudonymous key, before the PACS hears success.
//!
//! # Durability: the spool is the source of truth
//!
//! An instance is acknowledged once (1) its file is durable in the spool (sealed and
//! fdatasynced, then renamed into place: `spinewatch_ingest::spool`) and (2) its row is
//! in the journal. Syncing the row too would cost a third flush of the disk per instance (the WAL's
//! fsync, 0.2 to 3 ms on the benchmark's virtual disk), and it is not needed for an
//! acknowledged instance to survive a power cut, provided the row can be rebuilt from the
//! file. So, once [`recover_spool`] has run at this start, the sink records rows with
//! [`Store::record_instance_unsynced`] (`synchronous = NORMAL` for that transaction only):
//!
//! - process crash (`kill -9`, panic, OOM): the row is in the WAL, in the page cache, and
//!   survives; nothing to recover;
//! - power cut or kernel crash: the WAL is replayed up to its last synced commit, so the
//!   rows lost are the last unsynced ones, those no synced transaction (a study's
//!   completion, claim or outcome, a nurse's decision, a checkpoint) followed. Their files
//!   are durable (1 before 2), and [`recover_spool`] records every durable file without a
//!   row at the next start, before the pipeline and the listener run. A lost row is thus
//!   recorded again, as if the instance had arrived again at restart; no study can have
//!   been completed without it, since its completion would have synced it;
//! - a row never exists without its durable file: it is written after (1), and recovery
//!   syncs a file again before recording it. (A power cut may undo the unsynced rename
//!   of (1): the file is then back in the spool's `tmp/`, sealed, and is put into place
//!   again at the next start, before anything reads it.) A second copy of an instance is answered
//!   as a [`Recorded::Duplicate`] only after the listener found the first one's durable
//!   file in place, or put the new copy there, so the dedupe never answers success for a
//!   missing file.
//!
//! Without [`JournalSink::spool_is_truth`] every row is synced, as before.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use spinewatch_ingest::spool::{self, Header, SpooledFile};
use spinewatch_ingest::{InstanceSink, PatientId, Recorded, SinkError, StoredInstance};
use spinewatch_triage::{InstanceRecord, Store, patient_key};

/// Instances recorded per transaction by [`recover_spool`].
const RECOVERY_BATCH: usize = 512;

/// Bytes of a new patient key secret.
const SECRET_BYTES: usize = 32;

/// Records instances in the journal.
///
/// One transaction per instance, from tokio's blocking pool. A group commit (one writer
/// thread committing the records of concurrent associations together) was measured on
/// 2026-11-21 and did not pay: with unsynced rows a transaction is a fraction of a
/// millisecond, rarely overlapping another, and even with synced rows the benchmark saw
/// no difference with 4 associations.
pub struct JournalSink {
    store: Store,
    secret: Arc<Vec<u8>>,
    /// Cleared by the pipeline while the backlog is over its ceiling: instances are then
    /// refused with 0xA700 and the PACS retries later.
    accepting: Arc<AtomicBool>,
    /// Whether rows are committed without a sync (see the module docs).
    unsynced: bool,
}

impl JournalSink {
    /// A sink over `store`, keying patients with `secret`; every row is synced before the
    /// instance is acknowledged.
    pub fn new(store: Store, secret: Vec<u8>, accepting: Arc<AtomicBool>) -> Self {
        JournalSink {
            store,
            secret: Arc::new(secret),
            accepting,
            unsynced: false,
        }
    }

    /// The same sink, committing rows without a sync: the spool is the source of truth,
    /// which `recovered` (only [`recover_spool`] makes one) shows was reconciled with the
    /// journal at this start. See the module docs for why no acknowledged instance is
    /// lost.
    pub fn spool_is_truth(mut self, recovered: &SpoolRecovered) -> Self {
        tracing::debug!(
            files = recovered.files,
            recorded = recovered.recorded,
            "Instance rows committed unsynced: the spool is the source of truth."
        );
        self.unsynced = true;
        self
    }
}

impl JournalSink {
    /// The journal row of `instance`.
    fn row(&self, instance: &StoredInstance) -> InstanceRecord {
        // The PatientID comes from the listener's header pass: it goes into the key and
        // nowhere else.
        let patient_id = instance.patient_id.as_ref().map_or("", PatientId::as_str);
        InstanceRecord {
            sop_instance_uid: instance.sop_instance_uid.to_string(),
            study_instance_uid: instance.study_instance_uid.to_string(),
            series_instance_uid: instance.series_instance_uid.to_string(),
            sop_class_uid: instance.sop_class_uid.to_string(),
            transfer_syntax_uid: instance.transfer_syntax_uid.to_string(),
            modality: instance.modality.clone(),
            patient_key: patient_key(&self.secret, patient_id),
            path: instance.path.clone(),
            bytes: instance.size_bytes,
        }
    }
}

/// Writes `record` (blocking).
fn record_row(
    store: &Store,
    record: &InstanceRecord,
    unsynced: bool,
) -> Result<Recorded, SinkError> {
    let recorded = if unsynced {
        store.record_instance_unsynced(record)
    } else {
        store.record_instance(record)
    };
    match recorded.map_err(|e| SinkError::Failed(Box::new(e)))? {
        spinewatch_triage::Recorded::New { .. } => Ok(Recorded::New),
        spinewatch_triage::Recorded::Duplicate => Ok(Recorded::Duplicate),
    }
}

impl InstanceSink for JournalSink {
    async fn record(&self, instance: &StoredInstance) -> Result<Recorded, SinkError> {
        let record = self.row(instance);
        let (store, unsynced) = (self.store.clone(), self.unsynced);
        tokio::task::spawn_blocking(move || record_row(&store, &record, unsynced))
            .await
            .map_err(|e| SinkError::Failed(Box::new(e)))?
    }

    /// The listener's path: the row is written in its blocking call, with no trip to
    /// the pool of its own.
    fn record_blocking(&self, instance: &StoredInstance) -> Result<Recorded, SinkError> {
        record_row(&self.store, &self.row(instance), self.unsynced)
    }

    fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Relaxed)
    }
}

/// What [`recover_spool`] did; also the proof, for [`JournalSink::spool_is_truth`], that
/// it ran.
#[derive(Debug)]
pub struct SpoolRecovered {
    /// Durable instance files in the spool.
    pub files: usize,
    /// Of those, files that had no row and were recorded now.
    pub recorded: usize,
    /// Files without a row that could not be recorded (unreadable header, or one that
    /// does not match the file's name); left in place, logged at ERROR.
    pub unreadable: usize,
    /// Only [`recover_spool`] makes one.
    _proof: (),
}

/// Records every durable spool file that has no journal row (blocking): the rows an
/// unsynced commit lost to a power cut, or a file a dead process made durable but never
/// recorded. First the synced instances whose rename a power cut lost are put into
/// place ([`spool::recover`]). Each file is synced again, its header parsed, and
/// it is recorded with a synced commit, in batches. Run it at startup before the pipeline
/// (so that no study completes without its instances) and before the listener.
///
/// It lists the whole spool (one shard folder at a time) and looks every file up by
/// primary key: about 1 s per 100 000 instances on a warm cache.
pub fn recover_spool(
    store: &Store,
    secret: &[u8],
    spool_dir: &Path,
) -> anyhow::Result<SpoolRecovered> {
    let started = std::time::Instant::now();
    let mut report = SpoolRecovered {
        files: 0,
        recorded: 0,
        unreadable: 0,
        _proof: (),
    };
    // First the instances a power cut left synced in `tmp/`, their rename lost.
    spool::recover(spool_dir)
        .with_context(|| format!("could not recover the spool {}", spool_dir.display()))?;
    let shards = spool::durable_instances(spool_dir)
        .with_context(|| format!("could not list the spool {}", spool_dir.display()))?;
    let mut batch = Vec::new();
    for shard in shards {
        let files = shard.context("could not list the spool")?;
        report.files += files.len();
        let uids: Vec<&str> = files.iter().map(|f| f.sop_instance_uid.as_str()).collect();
        let missing = store
            .unrecorded_instances(&uids)
            .context("could not look instances up in the journal")?;
        let missing: std::collections::HashSet<&str> = missing.into_iter().collect();
        for file in files
            .iter()
            .filter(|f| missing.contains(f.sop_instance_uid.as_str()))
        {
            match recovered_record(file, secret) {
                Ok(record) => batch.push(record),
                Err(e) => {
                    report.unreadable += 1;
                    // A file in `instances/` passed its checks before its rename: one
                    // that cannot be read back now is damaged. Left for an operator.
                    tracing::error!(
                        error = %format!("{e:#}"),
                        path = %file.path.display(),
                        "Spooled instance without a journal row cannot be recorded."
                    );
                }
            }
            if batch.len() == RECOVERY_BATCH {
                report.recorded += record_batch(store, &mut batch)?;
            }
        }
    }
    report.recorded += record_batch(store, &mut batch)?;
    if report.recorded > 0 || report.unreadable > 0 {
        tracing::warn!(
            files = report.files,
            recorded = report.recorded,
            unreadable = report.unreadable,
            took_ms = started.elapsed().as_millis(),
            "Spooled instances without a journal row recorded (the journal lost its last \
             unsynced rows, or a process died between spooling and recording)."
        );
    } else {
        tracing::info!(
            files = report.files,
            took_ms = started.elapsed().as_millis(),
            "Spool and journal agree."
        );
    }
    Ok(report)
}

/// Records `batch` in one synced transaction and empties it; how many were new.
fn record_batch(store: &Store, batch: &mut Vec<InstanceRecord>) -> anyhow::Result<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    let recorded = store
        .record_instances(batch)
        .context("could not record the spool's instances")?;
    batch.clear();
    Ok(recorded
        .iter()
        .filter(|r| matches!(r, spinewatch_triage::Recorded::New { .. }))
        .count())
}

/// The journal row of a spooled file found without one: synced again, header parsed.
fn recovered_record(file: &SpooledFile, secret: &[u8]) -> anyhow::Result<InstanceRecord> {
    spool::sync_instance(&file.path)?;
    let bytes = std::fs::metadata(&file.path)
        .with_context(|| format!("could not read the size of {}", file.path.display()))?
        .len();
    let Header {
        transfer_syntax_uid,
        sop_class_uid,
        sop_instance_uid,
        study_instance_uid,
        series_instance_uid,
        modality,
        patient_id,
    } = spool::read_header(&file.path)?;
    if sop_instance_uid.as_deref() != Some(file.sop_instance_uid.as_str()) {
        anyhow::bail!("its SOP Instance UID differs from its file name");
    }
    let (Some(study), Some(series), Some(sop_class)) =
        (study_instance_uid, series_instance_uid, sop_class_uid)
    else {
        anyhow::bail!("its header lacks the Study, Series or SOP Class UID");
    };
    let patient_id = patient_id.as_ref().map_or("", PatientId::as_str);
    Ok(InstanceRecord {
        sop_instance_uid: file.sop_instance_uid.to_string(),
        study_instance_uid: study,
        series_instance_uid: series,
        sop_class_uid: sop_class,
        transfer_syntax_uid,
        modality,
        patient_key: patient_key(secret, patient_id),
        path: file.path.clone(),
        bytes,
    })
}

/// The site's patient key secret at `path`, created (random, mode 0600) when missing.
pub fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 16 => return Ok(bytes),
        Ok(_) => anyhow::bail!(
            "the patient key secret {} is shorter than 16 bytes",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("could not read {}", path.display()));
        }
    }
    let secret: [u8; SECRET_BYTES] = rand::random();
    let dir: PathBuf = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(&secret)?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "created a new patient key secret");
    Ok(secret.to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    use spinewatch_core::Uid;
    use spinewatch_ingest::spool::Spool;
    use spinewatch_testkit::synth::{SynthSpec, generate};
    use spinewatch_triage::StudyState;

    const SECRET: &[u8] = b"a test site secret";

    /// A small synthetic CT series: its files, sorted.
    fn series(dir: &Path, slices: usize) -> Vec<PathBuf> {
        let mut spec = SynthSpec::new(5);
        spec.matrix = 64;
        spec.pixel_spacing_mm = 4.0;
        spec.slices = Some(slices);
        spec.slice_thickness_mm = 2.5;
        spec.slice_spacing_mm = 2.5;
        generate(&spec, dir).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(dir.join("series-002-axial"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
            .collect();
        files.sort();
        assert_eq!(files.len(), slices);
        files
    }

    /// Puts `file` where the listener would have made it durable; its header.
    fn spool_file(spool: &Spool, file: &Path) -> (PathBuf, Header) {
        let header = spool::read_header(file).unwrap();
        let uid = Uid::new(header.sop_instance_uid.as_deref().unwrap()).unwrap();
        let to = spool.final_path(&uid);
        std::fs::copy(file, &to).unwrap();
        (to, header)
    }

    /// What the listener hands the sink for a spooled file.
    fn stored(path: &Path, h: &Header) -> StoredInstance {
        let uid = |v: &Option<String>| Uid::new(v.as_deref().unwrap()).unwrap();
        StoredInstance {
            path: path.to_owned(),
            size_bytes: std::fs::metadata(path).unwrap().len(),
            sop_class_uid: uid(&h.sop_class_uid),
            sop_instance_uid: uid(&h.sop_instance_uid),
            transfer_syntax_uid: Uid::new(&h.transfer_syntax_uid).unwrap(),
            study_instance_uid: uid(&h.study_instance_uid),
            series_instance_uid: uid(&h.series_instance_uid),
            modality: h.modality.clone(),
            patient_id: h.patient_id.clone(),
            calling_ae_title: "PACS".into(),
            peer_addr: "127.0.0.1:104".parse().unwrap(),
            received_at: std::time::SystemTime::now(),
        }
    }

    fn instance_count(store: &Store, study: &str) -> i64 {
        store.study(study).unwrap().map_or(0, |s| s.instance_count)
    }

    /// Replaces the database at `db` with `snapshot`: the state of its last sync.
    fn power_cut(db: &Path, snapshot: &Path) {
        for suffix in ["-wal", "-shm"] {
            let mut side = db.as_os_str().to_owned();
            side.push(suffix);
            if let Err(e) = std::fs::remove_file(PathBuf::from(side)) {
                assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
            }
        }
        std::fs::copy(snapshot, db).unwrap();
    }

    #[tokio::test]
    async fn a_row_lost_to_a_power_cut_comes_back_from_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let files = series(&dir.path().join("synth"), 4);
        let spool_dir = dir.path().join("spool");
        let spool = Spool::open(&spool_dir, 0).unwrap();
        let db = dir.path().join("spinewatch.sqlite");

        // Three instances in the spool, none in a new journal: recovery records them,
        // under the patient's key, once.
        let mut headers = Vec::new();
        for f in &files[..3] {
            headers.push(spool_file(&spool, f));
        }
        let study = headers[0].1.study_instance_uid.clone().unwrap();
        let store = Store::open(&db).unwrap();
        let recovered = recover_spool(&store, SECRET, &spool_dir).unwrap();
        assert_eq!((recovered.files, recovered.recorded), (3, 3));
        assert_eq!(recovered.unreadable, 0);
        assert_eq!(instance_count(&store, &study), 3);
        let pid = headers[0]
            .1
            .patient_id
            .as_ref()
            .map_or("", PatientId::as_str);
        let record = store.study(&study).unwrap().unwrap();
        assert_eq!(record.patient_key, patient_key(SECRET, pid));
        let again = recover_spool(&store, SECRET, &spool_dir).unwrap();
        assert_eq!((again.files, again.recorded), (3, 0));
        drop(store);
        let snapshot = dir.path().join("snapshot.sqlite");
        std::fs::copy(&db, &snapshot).unwrap();

        // Next start: spool and journal agree. The fourth instance is then acknowledged:
        // durable in the spool, then its row committed unsynced.
        let store = Store::open(&db).unwrap();
        let recovered = recover_spool(&store, SECRET, &spool_dir).unwrap();
        assert_eq!((recovered.files, recovered.recorded), (3, 0));
        let accepting = Arc::new(AtomicBool::new(true));
        let sink =
            JournalSink::new(store.clone(), SECRET.to_vec(), accepting).spool_is_truth(&recovered);
        let (path, header) = spool_file(&spool, &files[3]);
        let stored4 = stored(&path, &header);
        assert_eq!(sink.record(&stored4).await.unwrap(), Recorded::New);
        assert_eq!(instance_count(&store, &study), 4);
        drop(sink);
        drop(store);

        // Power cut: the journal as of its last sync, without the fourth row.
        power_cut(&db, &snapshot);
        let store = Store::open(&db).unwrap();
        assert_eq!(instance_count(&store, &study), 3, "the row is lost");
        let recovered = recover_spool(&store, SECRET, &spool_dir).unwrap();
        assert_eq!((recovered.files, recovered.recorded), (4, 1));
        assert_eq!(instance_count(&store, &study), 4, "the row is back");
        let due = store
            .complete_due(
                std::time::Duration::ZERO,
                std::time::Duration::from_secs(3600),
            )
            .unwrap();
        assert_eq!(due.len(), 1);
        assert!(due[0].paths.contains(&path), "{:?}", due[0].paths);
    }

    #[tokio::test]
    async fn an_instance_whose_rename_a_power_cut_lost_is_put_in_place_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let files = series(&dir.path().join("synth"), 2);
        let spool_dir = dir.path().join("spool");
        let spool = Spool::open(&spool_dir, 0).unwrap();
        // Received as the listener does: the data set after the file's meta group.
        let bytes = std::fs::read(&files[0]).unwrap();
        let meta = dicom_object::FileMetaTable::from_reader(&bytes[128..]).unwrap();
        let data_set = &bytes[132 + 12 + meta.information_group_length as usize..];
        let header = spool::read_header(&files[0]).unwrap();
        let uid = Uid::new(header.sop_instance_uid.as_deref().unwrap()).unwrap();
        let mut part = spool.create(&meta).unwrap();
        part.write(data_set).await.unwrap();
        let accept = |_: &spool::PartData<'_>| Ok::<_, ()>(());
        let Ok((committed, ())) = spool
            .finish(part, &uid, accept, |_, ()| Ok::<_, ()>(()))
            .await
        else {
            panic!("not committed");
        };
        // The power went after the fdatasync: the rename and the row are lost.
        let part = spool.tmp_dir().join("0000000000000001.part");
        std::fs::rename(&committed.path, &part).unwrap();
        drop(spool);

        let store = Store::open(dir.path().join("spinewatch.sqlite")).unwrap();
        let recovered = recover_spool(&store, SECRET, &spool_dir).unwrap();
        assert_eq!((recovered.files, recovered.recorded), (1, 1));
        assert!(
            committed.path.exists() && !part.exists(),
            "put back in place"
        );
        let study = header.study_instance_uid.unwrap();
        assert_eq!(instance_count(&store, &study), 1);
        assert_eq!(
            spool::read_header(&committed.path)
                .unwrap()
                .sop_instance_uid,
            header.sop_instance_uid
        );
    }

    #[tokio::test]
    async fn a_spooled_file_never_recorded_reopens_its_analysed_study_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = series(&dir.path().join("synth"), 3);
        let spool_dir = dir.path().join("spool");
        let spool = Spool::open(&spool_dir, 0).unwrap();
        let store = Store::open(dir.path().join("db.sqlite")).unwrap();
        let sink = JournalSink::new(
            store.clone(),
            SECRET.to_vec(),
            Arc::new(AtomicBool::new(true)),
        )
        .spool_is_truth(&recover_spool(&store, SECRET, &spool_dir).unwrap());
        for f in &files[..2] {
            let (path, header) = spool_file(&spool, f);
            assert_eq!(
                sink.record(&stored(&path, &header)).await.unwrap(),
                Recorded::New
            );
        }
        let study = spool::read_header(&files[0])
            .unwrap()
            .study_instance_uid
            .unwrap();
        let due = store
            .complete_due(
                std::time::Duration::ZERO,
                std::time::Duration::from_secs(3600),
            )
            .unwrap();
        store.claim(&study, due[0].generation).unwrap();
        store
            .finish(&study, 1, spinewatch_triage::Outcome::Negative)
            .unwrap();

        // A process died between making the third durable and recording it (the PACS
        // got no answer); the study was analysed without it meanwhile.
        spool_file(&spool, &files[2]);
        let recovered = recover_spool(&store, SECRET, &spool_dir).unwrap();
        assert_eq!(recovered.recorded, 1);
        let record = store.study(&study).unwrap().unwrap();
        assert_eq!(record.state, StudyState::Received);
        assert_eq!((record.generation, record.instance_count), (2, 3));
        // Recovering again changes nothing; the PACS's resend is a duplicate.
        assert_eq!(
            recover_spool(&store, SECRET, &spool_dir).unwrap().recorded,
            0
        );
        let (path, header) = spool_file(&spool, &files[2]);
        assert_eq!(
            sink.record(&stored(&path, &header)).await.unwrap(),
            Recorded::Duplicate
        );
        assert_eq!(store.study(&study).unwrap().unwrap().generation, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_records_each_get_their_own_answer() {
        let store = Store::open_in_memory().unwrap();
        let sink = Arc::new(JournalSink::new(
            store.clone(),
            SECRET.to_vec(),
            Arc::new(AtomicBool::new(true)),
        ));
        let dir = tempfile::tempdir().unwrap();
        let files = series(&dir.path().join("synth"), 8);
        let spool = Spool::open(&dir.path().join("spool"), 0).unwrap();
        let stored: Vec<_> = files
            .iter()
            .map(|f| {
                let (path, header) = spool_file(&spool, f);
                stored(&path, &header)
            })
            .collect();
        // Each instance from two associations at once: one of each pair is new.
        let tasks: Vec<_> = stored
            .iter()
            .chain(&stored)
            .cloned()
            .map(|i| {
                let sink = sink.clone();
                tokio::spawn(async move { (i.sop_instance_uid.to_string(), sink.record(&i).await) })
            })
            .collect();
        let mut news = std::collections::HashMap::new();
        for t in tasks {
            let (uid, answer) = t.await.unwrap();
            if answer.unwrap() == Recorded::New {
                *news.entry(uid).or_insert(0) += 1;
            }
        }
        assert_eq!(news.len(), 8);
        assert!(news.values().all(|&n| n == 1), "{news:?}");
        let study = spool::read_header(&files[0])
            .unwrap()
            .study_instance_uid
            .unwrap();
        assert_eq!(store.study(&study).unwrap().unwrap().instance_count, 8);
        assert_eq!(store.journal(&study).unwrap().len(), 1, "opened once");
    }

    #[test]
    fn a_damaged_spooled_file_is_reported_and_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let files = series(&dir.path().join("synth"), 2);
        let spool_dir = dir.path().join("spool");
        let spool = Spool::open(&spool_dir, 0).unwrap();
        let store = Store::open_in_memory().unwrap();
        spool_file(&spool, &files[0]);
        // Not DICOM at all, and a whole file under another instance's name.
        let garbage = spool.final_path(&Uid::new("1.2.3.4").unwrap());
        std::fs::write(&garbage, b"not a DICOM file").unwrap();
        let misnamed = spool.final_path(&Uid::new("1.2.3.5").unwrap());
        std::fs::copy(&files[1], &misnamed).unwrap();
        let recovered = recover_spool(&store, SECRET, &spool_dir).unwrap();
        assert_eq!(
            (recovered.files, recovered.recorded, recovered.unreadable),
            (3, 1, 2)
        );
        assert!(garbage.exists() && misnamed.exists());
        assert_eq!(
            store
                .unrecorded_instances(&["1.2.3.4", "1.2.3.5"])
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn secret_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/patient-key.secret");
        let first = load_or_create_secret(&path).unwrap();
        assert_eq!(first.len(), SECRET_BYTES);
        assert_eq!(load_or_create_secret(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn short_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, b"short").unwrap();
        assert!(load_or_create_secret(&path).is_err());
    }
}
