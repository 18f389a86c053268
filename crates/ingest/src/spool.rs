//! The durable spool: an instance arrives in memory (spilling to `tmp/<random>.part`
//! past 4 MiB), is checked, sealed, written and fdatasynced in its `.part` file, whose
//! name was made durable when it was created, then renamed to
//! `instances/<shard>/<sop_instance_uid>.dcm`. One flush of the disk per instance.
//!
//! ```text
//! spool_dir/
//!   tmp/        3f9c0a1be2d4c5f6.part   empty (created ahead), being received, or sealed
//!                                       and synced but not renamed yet (a crash): sorted
//!                                       out at startup
//!   instances/  a7/1.2.840.113619.2.55.3.1234.dcm   durable, sealed
//! ```
//!
//! Latency, not CPU, bounds one association: the PACS sends the next instance only once
//! the previous one is answered, and every awaited trip to tokio's blocking pool waits
//! for a thread to be scheduled, which on a loaded machine costs more than the I/O it
//! does. So an instance makes as few awaited trips and flushes as possible:
//!
//! - its `.part` file is created ahead of need, its name made durable, in blocking tasks
//!   nobody waits for: [`Spool::spare`] hands out one of a pool of such files, refilled
//!   [`POOL_BATCH`] at a time with one fsync of `tmp/` for the batch. An association
//!   asks for one once it has answered a C-STORE (the PACS takes a millisecond or more
//!   to prepare the next instance, whose data set then arrives within a fraction of
//!   one). Creating a file took 0.4-1.4 ms on the benchmark's busy ext4, so it is never
//!   done when the data set is in;
//! - a [`PartFile`] gathers the preamble, the file meta group and the data set bytes in
//!   memory, up to [`PART_BUFFER_BYTES`]; a full buffer is written out in one blocking
//!   call. An association thus holds at most that buffer plus one PDU, whatever the
//!   instance size. Writing PDVs out as they arrive (128-256 KiB chunks, each from a
//!   blocking task, with writeback started by `posix_fadvise(DONTNEED)`), so that the
//!   final fdatasync had less to do, did not pay (2026-11-21 benchmark): 18-26 % slower
//!   once every instance used it. A 0.5 MB data set arrives in a fraction of a
//!   millisecond, and the fdatasync's cost on that disk is its flush, not its bytes;
//! - [`Spool::finish`] does the rest in one blocking call: the caller's check of the
//!   bytes (from memory when the whole file fitted in the buffer, so nothing is read
//!   back), the seal, the last bytes, fdatasync, the rename into place, and the caller's
//!   record (the sink's: a second trip to the pool cost 0.1-0.2 ms per instance with
//!   four associations);
//! - [`Spool::has_room`] measures the disk at most every [`FREE_SPACE_MAX_AGE`], unless
//!   free space is close to the watermark.
//!
//! A CT instance (about 0.5 MB) therefore waits on one blocking call here and one flush.
//! Writing a full buffer from `spawn_blocking`, rather than from a writer thread per
//! association fed by a channel, keeps one owner of the file at a time and no idle
//! threads; its call is awaited, so the association does not read while it writes,
//! which costs little as it happens once per 4 MiB. Each step's time is recorded
//! ([`metrics::STORE_STEP_SECONDS`]).
//!
//! The file of a [`PartFile`] (or [`SparePart`]) is deleted when dropped unless it was
//! committed: an aborted association, a truncated instance, a refused one or a
//! panicking task leave nothing behind. The handle that deletes it travels with the
//! file into the blocking calls (the creation included), so the file is deleted even
//! when the task awaiting such a call goes away: tokio drops the output of a task whose
//! `JoinHandle` was dropped.
//!
//! # Durability
//!
//! An instance is answered once its bytes are durable under a durable name, with one
//! flush: the fdatasync of its part. The part's name in `tmp/` was made durable when the
//! part was created; the rename into `instances/` that follows the fdatasync is not
//! synced (that fsync of the shard folder was a second flush per instance: 35 % of the
//! throughput on a journaled ext4, 2026-11-21). A power cut may thus undo a rename, and
//! leave a synced instance in `tmp/`. [`Spool::open`] tells such a part from the parts
//! that were never answered by its **seal**: once the check of an instance has passed,
//! and before its fdatasync, its preamble (128 bytes that PS3.10 section 7.1 leaves to
//! the implementation) gets a seal: a magic, the file's length and the CRC-32 of every
//! byte after the preamble ([`sealed_uid`]). A part with a whole seal that matches its
//! bytes was synced (or was about to be) after its check passed, and is put into place;
//! any other part (empty, received in part, refused, or torn because the power went
//! before its fdatasync was done) is removed. Rename is atomic on the file systems the
//! spool is meant for (ext4, xfs: journaled), so a crash leaves the file under one name
//! or the other. [`Spool::open`] then makes the whole spool durable (`syncfs`).
//!
//! So a file in `instances/` is whole and durable, and the spool can be the source of
//! truth: a sink that commits its records without syncing them rebuilds the lost ones
//! at startup from [`durable_instances`] (spinewatch's journal does).
//!
//! One SOP Instance UID is one file: [`Spool::finish`] keeps the first durable copy and
//! discards later ones (a DICOM instance never changes under its UID; a corrected one
//! gets a new UID, PS3.3 C.12.1.1.1). A copy whose file has gone (a record kept, the
//! file lost) is put in place again, so a duplicate is never answered without its file.
//! Finish and the sink's record run under a lock per shard, so two associations
//! sending the same instance at once cannot interleave.

use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, FileMetaTable, OpenFileOptions};
use spinewatch_core::Uid;
use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::error::{Error, ErrorChain, Result};
use crate::metrics::{self, StoreStep};
use crate::sink::PatientId;
use crate::syntax::trim_uid;

/// Folder of instances being received.
pub const TMP_DIR: &str = "tmp";
/// Folder of durable instances.
pub const INSTANCES_DIR: &str = "instances";
/// Extension of instances being received.
pub const PART_EXTENSION: &str = "part";
/// Number of shard folders under `instances/` (two hex digits).
const SHARDS: usize = 256;

/// Parts a refill of the spool's pool creates, with one fsync of `tmp/` for them all.
pub const POOL_BATCH: usize = 16;
/// A refill starts when fewer parts than this are ready.
const POOL_LOW: usize = POOL_BATCH / 2;

/// Bytes of the Part 10 preamble (PS3.10 section 7.1), where the spool writes its seal.
pub const PREAMBLE_BYTES: usize = 128;
/// What a seal starts with.
const SEAL_MAGIC: &[u8; 16] = b"spinewatch:seal1";
/// Bytes of a seal that carry information: magic, length, CRC, the seal's own CRC.
const SEAL_BYTES: usize = 32;

/// Bytes a [`PartFile`] gathers in memory before writing them out (4 MiB). A whole CT or
/// MR instance fits (a 512x512 16-bit slice is 0.5 MB), so most instances are written by
/// the single blocking call of [`Spool::finish`]; a larger one (multi-frame) makes one
/// more call per 4 MiB, little next to the time those take to arrive. Memory: this plus
/// one PDU per association.
pub const PART_BUFFER_BYTES: usize = 4 << 20;

/// Part buffers kept for reuse once their instance is committed (a fresh 1 MiB buffer
/// per instance cost page faults and the clearing of fresh pages: 6-10 % of the
/// listener's CPU in profiles with four associations, 2026-11-21),
const BUFFERS_KEPT: usize = 8;
/// each of at most this capacity (a larger one, grown by a multi-frame instance, is
/// freed): so they hold at most 16 MiB.
const BUFFER_KEPT_MAX_BYTES: usize = 2 << 20;

/// A free-space reading answers [`Spool::has_room`] for at most this long,
pub const FREE_SPACE_MAX_AGE: Duration = Duration::from_millis(250);
/// and until this much was written to the spool since it was taken,
pub const FREE_SPACE_MAX_WRITTEN_BYTES: u64 = 64 << 20;
/// and only while it is at least this far above the watermark, less what was written
/// since; closer than that, the disk is measured for every instance.
pub const FREE_SPACE_MARGIN_BYTES: u64 = 256 << 20;

/// The spool folders, the disk watermark and the per-shard commit locks.
#[derive(Debug)]
pub struct Spool {
    tmp: PathBuf,
    instances: PathBuf,
    min_free_disk_bytes: u64,
    /// Bytes ever written by this spool's parts (for [`Self::has_room`]).
    written_bytes: Arc<AtomicU64>,
    /// The last free-space reading. A std mutex: held for a copy, never across `.await`.
    free_space: std::sync::Mutex<Option<FreeSpace>>,
    /// Empty parts whose names are durable, for [`Self::spare`].
    pool: Arc<std::sync::Mutex<PartPool>>,
    /// Emptied part buffers, for [`Self::create_in`].
    buffers: Buffers,
    locks: Box<[Mutex<()>]>,
}

/// Empty `.part` files created ahead of need, their names made durable together by one
/// fsync of `tmp/` (dropped with the spool, which deletes them). A std mutex: held
/// for a push or a pop, never across `.await`.
#[derive(Debug, Default)]
struct PartPool {
    ready: Vec<OpenPart>,
    /// Whether a refill is under way.
    refilling: bool,
}

impl PartPool {
    /// Creates [`POOL_BATCH`] parts in `tmp` and makes their names durable with one fsync
    /// of the folder, then adds them to the pool (blocking). On an error the parts made
    /// are deleted, the error logged; [`Spool::spare`] then creates parts one by one,
    /// and tries a refill again the next time.
    fn refill(pool: &std::sync::Mutex<Self>, tmp: &Path) {
        let made = (0..POOL_BATCH)
            .map(|_| OpenPart::create_unsynced(&part_path(tmp)))
            .collect::<Result<Vec<_>>>()
            .and_then(|parts| {
                sync_dir(tmp).map_err(prepare(tmp))?;
                Ok(parts)
            });
        let mut pool = pool.lock().unwrap_or_else(PoisonError::into_inner);
        pool.refilling = false;
        match made {
            Ok(parts) => pool.ready.extend(parts),
            Err(e) => warn!(error = %ErrorChain(&e), "Could not create parts ahead of need."),
        }
    }
}

/// A reading of the free disk space.
#[derive(Debug, Clone, Copy)]
struct FreeSpace {
    /// Taken just before measuring.
    at: Instant,
    free_bytes: u64,
    /// [`Spool::written_bytes`] when it was taken.
    written_bytes: u64,
}

impl FreeSpace {
    /// Whether this reading still shows room above `min_free_disk_bytes` at `now`, once
    /// `written_bytes` were written in all. It does while it is younger than
    /// [`FREE_SPACE_MAX_AGE`], fewer than [`FREE_SPACE_MAX_WRITTEN_BYTES`] were written
    /// since, and it minus those is [`FREE_SPACE_MARGIN_BYTES`] above the watermark: so
    /// a cached `true` is wrong only if other processes filled that margin (256 MiB) in
    /// those 250 ms (1 GB/s). A `false` is never cached.
    fn shows_room(&self, now: Instant, written_bytes: u64, min_free_disk_bytes: u64) -> bool {
        let since = written_bytes.saturating_sub(self.written_bytes);
        now.saturating_duration_since(self.at) < FREE_SPACE_MAX_AGE
            && since < FREE_SPACE_MAX_WRITTEN_BYTES
            && self.free_bytes.saturating_sub(since)
                >= min_free_disk_bytes.saturating_add(FREE_SPACE_MARGIN_BYTES)
    }
}

impl Spool {
    /// Opens the spool at `root` after [`recover`]ing it. Blocking: call it at startup or
    /// from `spawn_blocking`.
    pub fn open(root: &Path, min_free_disk_bytes: u64) -> Result<Self> {
        recover(root)?;
        Ok(Self {
            tmp: root.join(TMP_DIR),
            instances: root.join(INSTANCES_DIR),
            min_free_disk_bytes,
            written_bytes: Arc::new(AtomicU64::new(0)),
            free_space: std::sync::Mutex::new(None),
            pool: Arc::default(),
            buffers: Buffers::default(),
            locks: (0..SHARDS).map(|_| Mutex::new(())).collect(),
        })
    }

    /// Folder of instances being received.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Folder of durable instances.
    pub fn instances_dir(&self) -> &Path {
        &self.instances
    }

    /// Where the instance `uid` is kept once durable.
    pub fn final_path(&self, uid: &Uid) -> PathBuf {
        final_path_in(&self.instances, uid)
    }

    /// Whether the disk holding the spool has more free space than the watermark. The
    /// disk is measured (a blocking call) only when the last reading no longer shows
    /// room: see `FreeSpace::shows_room` for how stale an answer can be.
    pub async fn has_room(&self) -> Result<bool> {
        let min = self.min_free_disk_bytes;
        if min == 0 {
            return Ok(true);
        }
        let at = Instant::now();
        let written_bytes = self.written_bytes.load(Ordering::Relaxed);
        let last = *self
            .free_space
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|r| r.shows_room(at, written_bytes, min)) {
            return Ok(true);
        }
        let dir = self.tmp.clone();
        let free_bytes = tokio::task::spawn_blocking(move || free_bytes(&dir))
            .await
            .map_err(Error::Join)??;
        *self
            .free_space
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(FreeSpace {
            at,
            free_bytes,
            written_bytes,
        });
        Ok(free_bytes >= min)
    }

    /// Starts a part: preamble, `DICM`, then `meta`, in memory, and the creation of its
    /// file, not awaited (see the module documentation). Outside a tokio runtime the
    /// file is created by the first write-out.
    pub fn create(&self, meta: &FileMetaTable) -> Result<PartFile> {
        self.create_in(meta, self.spare())
    }

    /// An empty `.part` file, its name durable, for an instance that has not arrived
    /// yet: one from the pool of parts created ahead (refilled [`POOL_BATCH`] at a time
    /// in a blocking task nobody waits for, with one fsync of `tmp/` for the batch), or
    /// when the pool is empty, one being created in such a task. An association asks for
    /// one once it has answered a C-STORE, so that the file is ready when the next
    /// instance arrives. Deleted when dropped unused.
    pub fn spare(&self) -> SparePart {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (ready, refill) = {
            let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
            let ready = pool.ready.pop();
            let refill = runtime.is_some() && !pool.refilling && pool.ready.len() < POOL_LOW;
            pool.refilling |= refill;
            (ready, refill)
        };
        if let Some(runtime) = &runtime
            && refill
        {
            let (pool, tmp) = (Arc::clone(&self.pool), self.tmp.clone());
            drop(runtime.spawn_blocking(move || PartPool::refill(&pool, &tmp)));
        }
        if let Some(open) = ready {
            return SparePart {
                path: open.path.clone(),
                disk: Disk::Open(open),
            };
        }
        let path = part_path(&self.tmp);
        let disk = match runtime {
            Some(runtime) => {
                let path = path.clone();
                Disk::Creating(runtime.spawn_blocking(move || OpenPart::create(&path)))
            }
            None => Disk::NotCreated,
        };
        SparePart { path, disk }
    }

    /// [`Self::create`] in the file of `spare`.
    pub fn create_in(&self, meta: &FileMetaTable, spare: SparePart) -> Result<PartFile> {
        // A CT slice (0.5 MB) fits without growing; untouched pages cost no memory.
        let mut buf = self
            .buffers
            .take()
            .unwrap_or_else(|| Vec::with_capacity(1 << 20));
        buf.extend_from_slice(&[0_u8; PREAMBLE_BYTES]);
        buf.extend_from_slice(b"DICM");
        meta.write(&mut buf)
            .map_err(|e| Error::BuildMeta(Box::new(e)))?;
        let len = buf.len() as u64;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&buf[PREAMBLE_BYTES..]);
        let SparePart { path, disk } = spare;
        Ok(PartFile {
            path,
            disk,
            buf,
            len,
            data_offset: len,
            written_bytes: self.written_bytes.clone(),
            crc,
            buffers: self.buffers.clone(),
        })
    }

    /// Holds the commit lock of `uid`'s shard; keep it from [`Self::finish`] until the
    /// sink has answered (and the file is removed again if it failed).
    pub async fn lock(&self, uid: &Uid) -> MutexGuard<'_, ()> {
        self.locks[usize::from(shard(uid))].lock().await
    }

    /// Makes `part` durable as the instance `uid` and records it, in one blocking call:
    /// runs `verify` on its bytes (see [`PartData`]); if `verify` accepts them, seals the
    /// part, writes its last bytes, fdatasyncs it and renames it into place; then runs
    /// `record` on the result (the sink's record: see the module documentation for why
    /// it runs here). If the instance is already there, the part is discarded, the
    /// existing file kept and `record` told so (after `verify`: a broken copy is refused
    /// even so). A refused or failed part is deleted, and so is the file it added if
    /// `record` refuses it. Call under [`Self::lock`].
    pub async fn finish<T, R, E, V, C>(
        &self,
        part: PartFile,
        uid: &Uid,
        verify: V,
        record: C,
    ) -> Result<(Committed, R), FinishError<E>>
    where
        T: Send + 'static,
        R: Send + 'static,
        E: Send + 'static,
        V: FnOnce(&PartData<'_>) -> Result<T, E> + Send + 'static,
        C: FnOnce(&Committed, T) -> Result<R, E> + Send + 'static,
    {
        let to = self.final_path(uid);
        let mut part = part;
        let settling = Instant::now();
        part.settle().await.map_err(FinishError::Spool)?;
        metrics::store_step(StoreStep::Create, settling.elapsed());
        let queued = Instant::now();
        tokio::task::spawn_blocking(move || {
            metrics::store_step(StoreStep::Queue, queued.elapsed());
            part.finish_blocking(to, verify, record)
        })
        .await
        .map_err(|e| {
            // A panic in `verify` or `record` is the caller's: it goes on in the
            // caller's task, as if they had run there.
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
            FinishError::Spool(Error::Join(e))
        })?
    }
}

/// Where a committed instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Its final path.
    pub path: PathBuf,
    /// Its size, bytes.
    pub size_bytes: u64,
    /// Whether this commit added the file (`false`: it was already there).
    pub added: bool,
}

/// The bytes of a finished, synced part, as [`Spool::finish`] shows them to its check:
/// from memory when the whole file fitted in the buffer (no reading back), else from
/// the file.
#[derive(Debug, Clone, Copy)]
pub struct PartData<'a> {
    path: &'a Path,
    memory: Option<&'a [u8]>,
    data_offset: u64,
}

impl<'a> PartData<'a> {
    /// The `.part` file.
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// Where the data set starts: after the preamble, `DICM` and the file meta group.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// A reader over the file from byte `offset` (blocking when reading the file).
    pub fn reader_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + 'a>> {
        if let Some(bytes) = self.memory {
            let rest = usize::try_from(offset)
                .ok()
                .and_then(|at| bytes.get(at..))
                .ok_or_else(|| std::io::Error::from(ErrorKind::UnexpectedEof))?;
            return Ok(Box::new(rest));
        }
        let mut file = std::fs::File::open(self.path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(BufReader::with_capacity(64 << 10, file)))
    }
}

/// Why [`Spool::finish`] did not commit and record a part.
#[derive(Debug)]
pub enum FinishError<E> {
    /// Writing, syncing or moving the file failed.
    Spool(Error),
    /// The caller's check refused the part, or its record refused the committed file
    /// (which was then removed again if this part had added it).
    Refused(E),
}

/// An empty `.part` file created (or being created) ahead of need by
/// [`Spool::spare`]; deleted when dropped, whether its creation is done or not.
#[derive(Debug)]
pub struct SparePart {
    path: PathBuf,
    disk: Disk,
}

impl SparePart {
    /// Deletes the file now, waiting for its creation if it is under way (dropping it
    /// deletes it too, but maybe only once the creation is done).
    pub async fn discard(self) {
        if let Disk::Creating(task) = self.disk {
            // Created or not, the file is gone once the task is: a created one is
            // deleted when its `OpenPart` is dropped here.
            drop(task.await);
        }
    }
}

/// An instance being received: its last bytes (up to [`PART_BUFFER_BYTES`]) in memory,
/// any before them in its file in `tmp/`. The file is deleted when dropped unless
/// committed.
#[derive(Debug)]
pub struct PartFile {
    path: PathBuf,
    disk: Disk,
    /// Bytes not written out yet: at most [`PART_BUFFER_BYTES`] plus one write, and so
    /// is its capacity.
    buf: Vec<u8>,
    len: u64,
    data_offset: u64,
    /// The spool's count of bytes written, for [`Spool::has_room`].
    written_bytes: Arc<AtomicU64>,
    /// CRC-32 of the bytes received so far, the preamble excepted (for the seal).
    crc: crc32fast::Hasher,
    /// Where the buffer goes once the part is committed.
    buffers: Buffers,
}

/// Emptied part buffers kept for the next parts: at most [`BUFFERS_KEPT`], each of at
/// most [`BUFFER_KEPT_MAX_BYTES`]. A std mutex: held for a push or a pop.
#[derive(Debug, Clone, Default)]
struct Buffers(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl Buffers {
    /// An empty buffer, if one is kept.
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    /// Keeps `buf`, emptied, unless enough are kept or it grew too large.
    fn give_back(&self, mut buf: Vec<u8>) {
        if buf.capacity() > BUFFER_KEPT_MAX_BYTES {
            return;
        }
        buf.clear();
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < BUFFERS_KEPT {
            kept.push(buf);
        }
    }
}

/// The `.part` file of a [`PartFile`].
#[derive(Debug)]
enum Disk {
    /// Not created yet (outside a runtime): the first write-out creates it.
    NotCreated,
    /// Being created by a blocking task started with the part.
    Creating(JoinHandle<Result<OpenPart>>),
    /// Created: the buffer follows its contents.
    Open(OpenPart),
    /// A write-out failed or was abandoned: the bytes are gone, the part is unusable.
    Lost,
}

/// A created `.part` file, deleted when dropped unless committed. It moves into each
/// blocking call and back, so whichever side drops it deletes it.
#[derive(Debug)]
struct OpenPart {
    path: PathBuf,
    file: std::fs::File,
    committed: bool,
}

impl OpenPart {
    /// Creates the file and makes its name durable with an fsync of its folder
    /// (blocking): once its bytes are synced, the part survives a power cut under this
    /// name, whether or not its unsynced rename into place does (see the module
    /// documentation). Done ahead of need, so that this flush is not an instance's.
    fn create(path: &Path) -> Result<Self> {
        let part = Self::create_unsynced(path)?;
        // On failure `part` is dropped, which deletes the file.
        path.parent()
            .map_or(Ok(()), sync_dir)
            .map_err(write_error(path))?;
        Ok(part)
    }

    /// Creates the file, its name not durable yet (blocking).
    fn create_unsynced(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(write_error(path))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            committed: false,
        })
    }

    /// Appends `bytes` (blocking).
    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).map_err(write_error(&self.path))
    }
}

impl Drop for OpenPart {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // A single unlink: cheap enough for a destructor on the runtime, where a
        // part dropped by an aborted association lands.
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != ErrorKind::NotFound
        {
            warn!(error = %ErrorChain(&e), path = %self.path.display(),
                "Could not remove a partial instance.");
        }
    }
}

impl PartFile {
    /// The `.part` path (the file may not exist yet: see [`Spool::create`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes received so far (preamble and meta included), written out or not.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Where the data set starts: after the preamble, `DICM` and the file meta group.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Whether nothing was received yet (never after [`Spool::create`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes`; once the buffer holds [`PART_BUFFER_BYTES`], writes it out in one
    /// blocking call. After an error the part is
    /// unusable: drop it.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if matches!(self.disk, Disk::Lost) {
            return Err(lost(&self.path));
        }
        let needed = self.buf.len() + bytes.len();
        if needed > self.buf.capacity() {
            // Doubling, but never past the cap (or this write, if larger): plain
            // `extend` could double a nearly full buffer to twice the cap.
            let target = (2 * self.buf.capacity()).clamp(needed, PART_BUFFER_BYTES.max(needed));
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        // As the bytes arrive, not in `finish`, where the PACS waits (a few microseconds
        // per PDU).
        self.crc.update(bytes);
        if self.buf.len() < PART_BUFFER_BYTES {
            return Ok(());
        }
        self.settle().await?;
        // `Lost` until the call gives the file back: if this future is dropped first,
        // the part cannot go on with a hole in it.
        let disk = std::mem::replace(&mut self.disk, Disk::Lost);
        let buf = std::mem::take(&mut self.buf);
        let path = self.path.clone();
        let (open, mut buf) = tokio::task::spawn_blocking(move || {
            let mut open = match disk {
                Disk::NotCreated => OpenPart::create(&path)?,
                Disk::Open(open) => open,
                Disk::Creating(_) | Disk::Lost => return Err(lost(&path)),
            };
            open.append(&buf)?;
            Ok((open, buf))
        })
        .await
        .map_err(Error::Join)??;
        self.written_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        buf.clear();
        self.buf = buf;
        self.disk = Disk::Open(open);
        Ok(())
    }

    /// Waits for the file's creation, if it is under way (usually long done: no
    /// wait).
    async fn settle(&mut self) -> Result<()> {
        if !matches!(self.disk, Disk::Creating(_)) {
            return Ok(());
        }
        let Disk::Creating(task) = std::mem::replace(&mut self.disk, Disk::Lost) else {
            // Broken invariant: matched just above.
            unreachable!("the part file is being created");
        };
        self.disk = Disk::Open(task.await.map_err(Error::Join)??);
        Ok(())
    }

    /// The body of [`Spool::finish`] (blocking), after [`Self::settle`].
    fn finish_blocking<T, R, E>(
        self,
        to: PathBuf,
        verify: impl FnOnce(&PartData<'_>) -> Result<T, E>,
        record: impl FnOnce(&Committed, T) -> Result<R, E>,
    ) -> Result<(Committed, R), FinishError<E>> {
        let Self {
            path,
            disk,
            mut buf,
            len,
            data_offset,
            written_bytes,
            crc,
            buffers,
        } = self;
        let mut step = Instant::now();
        let mut took =
            |s| metrics::store_step(s, std::mem::replace(&mut step, Instant::now()).elapsed());
        let mut open = match disk {
            Disk::NotCreated => OpenPart::create(&path).map_err(FinishError::Spool)?,
            Disk::Open(open) => open,
            Disk::Creating(_) | Disk::Lost => return Err(FinishError::Spool(lost(&path))),
        };
        // The buffer holds the whole file unless some was written out before; then the
        // rest joins it first, so that `verify` reads the whole file.
        let in_memory = buf.len() as u64 == len;
        if !in_memory {
            open.append(&buf).map_err(FinishError::Spool)?;
            written_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            took(StoreStep::Write);
        }
        let data = PartData {
            path: &open.path,
            memory: in_memory.then_some(&buf[..]),
            data_offset,
        };
        let checked = verify(&data).map_err(FinishError::Refused)?;
        took(StoreStep::Verify);
        let from = open.path.clone();
        let commit_error = |source| {
            FinishError::Spool(Error::Commit {
                from: from.clone(),
                to: to.clone(),
                source,
            })
        };
        match std::fs::metadata(&to) {
            Ok(meta) => {
                // Already durable: its bytes synced before its rename, under this
                // shard's lock, or found at startup and synced by `Spool::open`. The
                // part is dropped unsynced, which deletes it.
                drop(open);
                took(StoreStep::Commit);
                let committed = Committed {
                    path: to,
                    size_bytes: meta.len(),
                    added: false,
                };
                let recorded = record(&committed, checked).map_err(FinishError::Refused)?;
                return Ok((committed, recorded));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(source) => return Err(commit_error(source)),
        }
        // Sealed only once verified: a sealed part is one to keep (see `sealed_uid`).
        let write_error = |e| FinishError::Spool(write_error(&from)(e));
        let seal = seal(len, crc.finalize());
        if in_memory {
            buf[..PREAMBLE_BYTES].copy_from_slice(&seal);
            open.append(&buf).map_err(FinishError::Spool)?;
            written_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            took(StoreStep::Write);
        } else {
            open.file
                .seek(SeekFrom::Start(0))
                .and_then(|_| open.file.write_all(&seal))
                .map_err(write_error)?;
        }
        buffers.give_back(buf);
        // fdatasync: the bytes and what reading them back needs (size, blocks), not the
        // times. The part's name was made durable at its creation.
        open.file.sync_data().map_err(write_error)?;
        took(StoreStep::Sync);
        // Not followed by an fsync of the folder: the part is durable under its old
        // name until this rename is (see the module documentation).
        std::fs::rename(&from, &to).map_err(commit_error)?;
        open.committed = true;
        took(StoreStep::Commit);
        let committed = Committed {
            path: to,
            size_bytes: len,
            added: true,
        };
        match record(&committed, checked) {
            Ok(recorded) => Ok((committed, recorded)),
            Err(refused) => {
                if let Err(e) = remove_synced(&committed.path) {
                    warn!(error = %ErrorChain(&e), "Could not remove an instance not recorded.");
                }
                Err(FinishError::Refused(refused))
            }
        }
    }
}

/// A durable instance file found by [`durable_instances`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledFile {
    /// The SOP Instance UID its name gives.
    pub sop_instance_uid: Uid,
    /// Its path, `root/instances/<shard>/<sop_instance_uid>.dcm`.
    pub path: PathBuf,
}

/// The durable instances of the spool at `root`, one shard folder at a time (so that a
/// large spool is never listed in memory at once): every `<uid>.dcm` file under
/// `instances/`. Blocking. A spool not created yet has none. Every file found here was
/// fsynced before it was renamed into place, so it is whole: `.part` files never are in
/// `instances/`.
pub fn durable_instances(root: &Path) -> Result<impl Iterator<Item = Result<Vec<SpooledFile>>>> {
    let instances = root.join(INSTANCES_DIR);
    let shards = match std::fs::read_dir(&instances) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()).map_err(prepare(&instances)))
            .collect::<Result<Vec<_>>>()?,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(prepare(&instances)(e)),
    };
    Ok(shards.into_iter().filter(|p| p.is_dir()).map(|dir| {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(prepare(&dir))? {
            let path = entry.map_err(prepare(&dir))?.path();
            let uid = path
                .extension()
                .is_some_and(|e| e == "dcm")
                .then(|| path.file_stem().and_then(|s| s.to_str()))
                .flatten()
                .and_then(|stem| Uid::new(stem).ok());
            if let Some(sop_instance_uid) = uid {
                files.push(SpooledFile {
                    sop_instance_uid,
                    path,
                });
            }
        }
        Ok(files)
    }))
}

/// Removes durable instance files of the spool at `root` for good (blocking): each of
/// `paths` that is there (one already gone is skipped), then one sync of the spool's
/// file system, so that no removed file can come back after a power cut (startup
/// recovery would take it for an instance never recorded). A path outside
/// `root/instances/` is refused, and nothing is removed. How many files were removed.
pub fn remove_instances(root: &Path, paths: &[PathBuf]) -> Result<usize> {
    let instances = root.join(INSTANCES_DIR);
    if let Some(outside) = paths.iter().find(|p| {
        !p.starts_with(&instances) || p.components().any(|c| c == std::path::Component::ParentDir)
    }) {
        return Err(prepare(outside)(std::io::Error::new(
            ErrorKind::InvalidInput,
            "not an instance file of this spool",
        )));
    }
    let mut removed = 0;
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(prepare(path)(e)),
        }
    }
    sync_tree(&instances).map_err(prepare(&instances))?;
    Ok(removed)
}

/// Makes an instance file durable again: fdatasync of the file, fsync of its folder
/// (blocking). For a file found in the spool at startup, whose rename a dead process
/// may not have synced.
pub fn sync_instance(path: &Path) -> Result<()> {
    sync_existing(path).map_err(|source| Error::WriteSpool {
        path: path.to_owned(),
        source,
    })
}

/// The seal of a part of `len` bytes whose bytes after the preamble have the CRC-32
/// `crc`, as its preamble: [`SEAL_MAGIC`], `len` (u64 LE), `crc` (u32 LE), the CRC-32
/// of those 28 bytes (u32 LE), zeros.
fn seal(len: u64, crc: u32) -> [u8; PREAMBLE_BYTES] {
    let mut preamble = [0_u8; PREAMBLE_BYTES];
    preamble[..16].copy_from_slice(SEAL_MAGIC);
    preamble[16..24].copy_from_slice(&len.to_le_bytes());
    preamble[24..28].copy_from_slice(&crc.to_le_bytes());
    let own = crc32fast::hash(&preamble[..28]);
    preamble[28..SEAL_BYTES].copy_from_slice(&own.to_le_bytes());
    preamble
}

/// The length and CRC-32 a preamble's seal promises; `None` if it holds no whole seal.
fn read_seal(preamble: &[u8; PREAMBLE_BYTES]) -> Option<(u64, u32)> {
    let word = |at: usize| u32::from_le_bytes([0, 1, 2, 3].map(|i| preamble[at + i]));
    let sealed = &preamble[..16] == SEAL_MAGIC
        && crc32fast::hash(&preamble[..28]) == word(28)
        && preamble[SEAL_BYTES..].iter().all(|&b| b == 0);
    let len = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7].map(|i| preamble[16 + i]));
    sealed.then_some((len, word(24)))
}

/// Whether the file at `path` is a whole sealed part, and if so the SOP Instance UID
/// of its file meta group (blocking; reads the whole file). `None` for a part never
/// sealed (received in part, refused, a duplicate's copy) or whose bytes are not all
/// those sealed (torn by a power cut before its fdatasync was done).
pub fn sealed_uid(path: &Path) -> std::io::Result<Option<Uid>> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut preamble = [0_u8; PREAMBLE_BYTES];
    match file.read_exact(&mut preamble) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let Some((len, crc)) = read_seal(&preamble) else {
        return Ok(None);
    };
    if len != size {
        return Ok(None);
    }
    let mut hasher = crc32fast::Hasher::new();
    let mut chunk = vec![0_u8; 256 << 10];
    loop {
        match file.read(&mut chunk)? {
            0 => break,
            n => hasher.update(&chunk[..n]),
        }
    }
    if hasher.finalize() != crc {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(PREAMBLE_BYTES as u64))?;
    let Ok(meta) = FileMetaTable::from_reader(BufReader::new(file)) else {
        return Ok(None);
    };
    Ok(Uid::new(trim_uid(meta.media_storage_sop_instance_uid())).ok())
}

/// Makes the spool at `root` ready after whatever a previous run left (blocking):
/// creates its folders if needed, puts into place the sealed parts a previous run left
/// in `tmp/` and removes the other `.part` files (never acknowledged: the PACS sends
/// them again), then makes the whole spool durable. [`Spool::open`] runs it; run it
/// before reading [`durable_instances`] at startup, so that none is missed. Running it
/// again changes nothing.
pub fn recover(root: &Path) -> Result<PartsRecovered> {
    let tmp = root.join(TMP_DIR);
    let instances = root.join(INSTANCES_DIR);
    for dir in [&tmp, &instances] {
        std::fs::create_dir_all(dir).map_err(prepare(dir))?;
    }
    for shard in 0..SHARDS {
        let dir = instances.join(format!("{shard:02x}"));
        std::fs::create_dir_all(&dir).map_err(prepare(&dir))?;
    }
    let parts = recover_parts(&tmp, &instances)?;
    for dir in [root, &tmp, &instances] {
        sync_dir(dir).map_err(prepare(dir))?;
    }
    // Renames are not synced one by one (see the module documentation), and so neither
    // were those just done: make the whole spool durable once, so that from here on
    // every name in `instances/` is. `finish` answers a duplicate on the strength of
    // the file it finds there.
    sync_tree(&instances).map_err(prepare(&instances))?;
    if parts.recovered > 0 {
        warn!(
            files = parts.recovered,
            "Put into place instances made durable by a previous run but not renamed."
        );
    }
    if parts.removed > 0 {
        warn!(
            files = parts.removed,
            "Removed partial instances left by a previous run."
        );
    }
    Ok(parts)
}

/// What [`recover`] did with the `.part` files of a previous run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PartsRecovered {
    /// Sealed, whole and not in place yet: renamed into place.
    pub recovered: usize,
    /// Unsealed, torn, or already in place: removed.
    pub removed: usize,
}

/// Puts the whole sealed parts of `tmp` into place under `instances` (their rename was
/// lost, or never done: the process died after the fdatasync) and removes the other
/// `.part` files, which were never acknowledged (blocking). Nothing is synced here:
/// [`recover`] syncs the whole spool next.
fn recover_parts(tmp: &Path, instances: &Path) -> Result<PartsRecovered> {
    let mut done = PartsRecovered::default();
    for entry in std::fs::read_dir(tmp).map_err(prepare(tmp))? {
        let path = entry.map_err(prepare(tmp))?.path();
        if path.extension().is_none_or(|e| e != PART_EXTENSION) {
            continue;
        }
        let to = sealed_uid(&path)
            .map_err(prepare(&path))?
            .map(|uid| final_path_in(instances, &uid))
            .filter(|to| !to.exists());
        match to {
            Some(to) => {
                std::fs::rename(&path, &to).map_err(prepare(&path))?;
                done.recovered += 1;
            }
            None => {
                std::fs::remove_file(&path).map_err(prepare(&path))?;
                done.removed += 1;
            }
        }
    }
    Ok(done)
}

/// A new, random `.part` path in `tmp`.
fn part_path(tmp: &Path) -> PathBuf {
    tmp.join(format!("{:016x}.{PART_EXTENSION}", rand::random::<u64>()))
}

/// The error of a part whose bytes were lost by an earlier failure.
fn lost(path: &Path) -> Error {
    Error::WriteSpool {
        path: path.to_owned(),
        source: std::io::Error::other("an earlier write of this instance failed"),
    }
}

/// Wraps an I/O error met while writing the part `path`.
fn write_error(path: &Path) -> impl Fn(std::io::Error) -> Error + use<> {
    let path = path.to_owned();
    move |source| Error::WriteSpool {
        path: path.clone(),
        source,
    }
}

/// Syncs an existing instance file and its folder (blocking).
fn sync_existing(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_data()?;
    path.parent().map_or(Ok(()), sync_dir)
}

/// Makes everything under `dir` durable (blocking): one `syncfs` of its file system on
/// Linux (0.1 s where fsyncing the 256 shard folders took 0.7 s), an fsync of each
/// folder below it elsewhere. Every instance file there was fsynced before its rename,
/// so only names can be missing from the disk.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::syncfs(std::fs::File::open(dir)?)?;
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                sync_dir(&path)?;
            }
        }
        Ok(())
    }
}

/// Removes a file and fsyncs its folder (blocking).
fn remove_synced(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    path.parent().map_or(Ok(()), sync_dir)
}

/// UIDs, modality and PatientID read back from a spooled file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// (0002,0010) Transfer Syntax UID of the file meta group.
    pub transfer_syntax_uid: String,
    /// (0008,0016) SOP Class UID.
    pub sop_class_uid: Option<String>,
    /// (0008,0018) SOP Instance UID.
    pub sop_instance_uid: Option<String>,
    /// (0020,000D) Study Instance UID.
    pub study_instance_uid: Option<String>,
    /// (0020,000E) Series Instance UID.
    pub series_instance_uid: Option<String>,
    /// (0008,0060) Modality.
    pub modality: Option<String>,
    /// (0010,0020) Patient ID, trimmed; `None` when absent or empty.
    pub patient_id: Option<PatientId>,
}

/// Parses the header of a spooled file, stopping before the pixel data. Blocking.
pub fn read_header(path: &Path) -> Result<Header> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| Error::ReadHeader {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
    Ok(header_of(&obj))
}

/// Parses the header of a spooled file read from `reader` (from its first byte, the
/// preamble), stopping before the pixel data; `path` names it in errors.
pub fn parse_header(reader: impl Read, path: &Path) -> Result<Header> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .read_preamble(ReadPreamble::Always)
        .from_reader(reader)
        .map_err(|e| Error::ReadHeader {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
    Ok(header_of(&obj))
}

/// The [`Header`] of a parsed file.
fn header_of(obj: &DefaultDicomObject) -> Header {
    let text = |tag| {
        obj.get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| trim_uid(s.trim_start()).to_owned())
            .filter(|s| !s.is_empty())
    };
    Header {
        transfer_syntax_uid: trim_uid(obj.meta().transfer_syntax()).to_owned(),
        sop_class_uid: text(tags::SOP_CLASS_UID),
        sop_instance_uid: text(tags::SOP_INSTANCE_UID),
        study_instance_uid: text(tags::STUDY_INSTANCE_UID),
        series_instance_uid: text(tags::SERIES_INSTANCE_UID),
        modality: text(tags::MODALITY),
        patient_id: obj
            .get(tags::PATIENT_ID)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .map(PatientId::new),
    }
}

/// Where the instance `uid` is kept under the spool's `instances` folder.
fn final_path_in(instances: &Path, uid: &Uid) -> PathBuf {
    instances
        .join(format!("{:02x}", shard(uid)))
        .join(format!("{uid}.dcm"))
}

/// The shard of an instance: FNV-1a of its UID, low byte. UID prefixes are shared by a
/// whole site, so their first characters would put everything in one folder.
fn shard(uid: &Uid) -> u8 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uid.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.to_le_bytes()[0]
}

/// Wraps an I/O error met while preparing `path`.
fn prepare(path: &Path) -> impl Fn(std::io::Error) -> Error + use<> {
    let path = path.to_owned();
    move |source| Error::PrepareSpool {
        path: path.clone(),
        source,
    }
}

/// Fsyncs a folder, so that a rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// What a power cut does to the file system holding a spool: whether a rename there is
/// atomic across it, which the spool's durability relies on (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSystemSafety {
    /// Journaled or copy-on-write (ext4 with its journal, xfs, btrfs, zfs): as the spool
    /// needs. The file system's name.
    Safe(String),
    /// ext2/3/4 without a journal: a power cut may leave names half updated, to be
    /// repaired by `fsck` (lost+found). The block device's name.
    WithoutJournal(String),
    /// In memory (tmpfs, ramfs): a power cut loses everything.
    Volatile(String),
    /// Not known (another file system, or not Linux): what is known of it.
    Unknown(String),
}

impl FileSystemSafety {
    /// Whether the spool's durability holds there.
    pub fn is_safe(&self) -> bool {
        matches!(self, Self::Safe(_))
    }
}

impl std::fmt::Display for FileSystemSafety {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Safe(fs) => write!(f, "{fs}: renames are atomic across a power cut"),
            Self::WithoutJournal(dev) => write!(
                f,
                "ext4 without a journal on {dev}: a power cut may leave renames half done \
                 (use a journaled file system)"
            ),
            Self::Volatile(fs) => write!(f, "{fs}: in memory, a power cut loses the spool"),
            Self::Unknown(what) => write!(f, "{what}: not known to be journaled"),
        }
    }
}

/// The [`FileSystemSafety`] of the file system holding `dir` (blocking). On Linux from
/// `statfs`, and for ext2/3/4 from `/proc/fs/jbd2`, which lists the journaled ones.
pub fn file_system_safety(dir: &Path) -> std::io::Result<FileSystemSafety> {
    #[cfg(target_os = "linux")]
    {
        // Magic numbers of statfs(2)'s f_type.
        const EXT: i64 = 0xEF53;
        const XFS: i64 = 0x5846_5342;
        const BTRFS: i64 = 0x9123_683E;
        const ZFS: i64 = 0x2FC1_2FC1;
        const TMPFS: i64 = 0x0102_1994;
        const RAMFS: i64 = 0x8584_58F6;
        #[allow(clippy::useless_conversion)] // the field's type differs between targets
        let kind = i64::from(rustix::fs::statfs(dir)?.f_type);
        Ok(match kind {
            XFS => FileSystemSafety::Safe("xfs".into()),
            BTRFS => FileSystemSafety::Safe("btrfs".into()),
            ZFS => FileSystemSafety::Safe("zfs".into()),
            TMPFS => FileSystemSafety::Volatile("tmpfs".into()),
            RAMFS => FileSystemSafety::Volatile("ramfs".into()),
            EXT => {
                let dev = rustix::fs::stat(dir)?.st_dev;
                let sys = format!(
                    "/sys/dev/block/{}:{}",
                    rustix::fs::major(dev),
                    rustix::fs::minor(dev)
                );
                let Some(name) = std::fs::read_link(&sys)
                    .ok()
                    .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
                else {
                    return Ok(FileSystemSafety::Unknown(format!(
                        "ext2/3/4 ({sys} not found)"
                    )));
                };
                let journaled = std::fs::read_dir("/proc/fs/jbd2")
                    .map(|entries| {
                        entries.flatten().any(|e| {
                            e.file_name()
                                .to_string_lossy()
                                .strip_prefix(name.as_str())
                                .is_some_and(|rest| rest.starts_with('-'))
                        })
                    })
                    .unwrap_or(false);
                if journaled {
                    FileSystemSafety::Safe(format!("ext4 with a journal on {name}"))
                } else {
                    FileSystemSafety::WithoutJournal(name)
                }
            }
            other => FileSystemSafety::Unknown(format!("file system type {other:#x}")),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        Ok(FileSystemSafety::Unknown("not Linux".into()))
    }
}

/// Bytes available to unprivileged users on the file system holding `dir` (blocking).
pub fn free_bytes(dir: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(|e| Error::DiskSpace {
        path: dir.to_owned(),
        source: e.into(),
    })?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use dicom_object::FileMetaTableBuilder;

    fn meta(uid: &str) -> FileMetaTable {
        FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
            .media_storage_sop_instance_uid(uid)
            .transfer_syntax("1.2.840.10008.1.2.1")
            .build()
            .unwrap()
    }

    #[test]
    fn open_creates_shards_and_removes_leftover_parts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(TMP_DIR)).unwrap();
        let stale = dir.path().join(TMP_DIR).join("dead.part");
        let other = dir.path().join(TMP_DIR).join("notes.txt");
        std::fs::write(&stale, b"x").unwrap();
        std::fs::write(&other, b"x").unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        assert!(!stale.exists());
        assert!(other.exists(), "only .part files are ours to remove");
        assert!(spool.instances_dir().join("00").is_dir());
        assert!(spool.instances_dir().join("ff").is_dir());
    }

    #[test]
    fn durable_instances_are_the_dcm_files_named_by_a_uid() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            durable_instances(dir.path()).unwrap().count(),
            0,
            "no spool yet"
        );
        let spool = Spool::open(dir.path(), 0).unwrap();
        let uids = ["1.2.3.4", "1.2.3.5", "1.2.840.113619.2.55.3.1"];
        for uid in uids {
            std::fs::write(spool.final_path(&Uid::new(uid).unwrap()), b"x").unwrap();
        }
        let shard = spool.final_path(&Uid::new(uids[0]).unwrap());
        let shard = shard.parent().unwrap();
        std::fs::write(shard.join("notes.txt"), b"x").unwrap();
        std::fs::write(shard.join("not a uid.dcm"), b"x").unwrap();
        std::fs::write(spool.tmp_dir().join("0123.part"), b"x").unwrap();
        let shards: Vec<Vec<SpooledFile>> = durable_instances(dir.path())
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(shards.len(), SHARDS, "one batch per shard folder");
        let mut found: Vec<_> = shards.into_iter().flatten().collect();
        found.sort_by(|a, b| a.sop_instance_uid.as_str().cmp(b.sop_instance_uid.as_str()));
        let expected: Vec<_> = uids
            .iter()
            .map(|u| {
                let uid = Uid::new(u).unwrap();
                SpooledFile {
                    path: spool.final_path(&uid),
                    sop_instance_uid: uid,
                }
            })
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn final_path_is_sharded_and_stable() {
        let spool = Spool::open(tempfile::tempdir().unwrap().path(), 0).unwrap();
        let uid = Uid::new("1.2.840.113619.2.55.3.1").unwrap();
        let p = spool.final_path(&uid);
        assert_eq!(p, spool.final_path(&uid));
        assert_eq!(p.file_name().unwrap(), "1.2.840.113619.2.55.3.1.dcm");
        let shard_dir = p.parent().unwrap().file_name().unwrap().to_str().unwrap();
        assert_eq!(shard_dir.len(), 2);
        // Neighbouring UIDs spread over shards.
        let shards: std::collections::HashSet<_> = (0..64)
            .map(|i| shard(&Uid::new(&format!("1.2.3.{i}")).unwrap()))
            .collect();
        assert!(shards.len() > 32, "{}", shards.len());
    }

    /// A record that keeps what the check gave.
    fn keep<T, E>(_: &Committed, checked: T) -> Result<T, E> {
        Ok(checked)
    }

    /// `finish` with a check that accepts everything.
    async fn finish(spool: &Spool, part: PartFile, uid: &Uid) -> Committed {
        let accept = |_: &PartData<'_>| Ok::<_, ()>(());
        match spool.finish(part, uid, accept, keep).await {
            Ok((c, ())) => c,
            Err(FinishError::Spool(e)) => panic!("{e}"),
            Err(FinishError::Refused(())) => unreachable!(),
        }
    }

    /// Files in `tmp/` other than the pool's parts, once no refill is under way.
    fn tmp_files(spool: &Spool) -> usize {
        loop {
            let pool = spool.pool.lock().unwrap();
            if !pool.refilling {
                let files = std::fs::read_dir(spool.tmp_dir()).unwrap().count();
                return files - pool.ready.len();
            }
            drop(pool);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits (5 s at most) until `tmp/` holds `n` files: a part's file is created and
    /// deleted by blocking tasks.
    async fn wait_for_tmp_files(spool: &Spool, n: usize) {
        for _ in 0..500 {
            if tmp_files(spool) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(tmp_files(spool), n, "files in tmp/");
    }

    #[tokio::test]
    async fn dropped_part_leaves_nothing_and_finish_keeps_the_first_copy() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let uid = Uid::new("1.2.3.4").unwrap();

        // The file is created in the background, and deleted when the part is dropped,
        // whether its creation was done or not.
        let mut part = spool.create(&meta("1.2.3.4")).unwrap();
        part.write(b"abc").await.unwrap();
        wait_for_tmp_files(&spool, 1).await;
        drop(part);
        wait_for_tmp_files(&spool, 0).await;
        drop(spool.create(&meta("1.2.3.4")).unwrap());
        wait_for_tmp_files(&spool, 0).await;

        // Over the buffer: written out, then deleted when dropped.
        let mut part = spool.create(&meta("1.2.3.4")).unwrap();
        part.write(&vec![7_u8; PART_BUFFER_BYTES]).await.unwrap();
        let path = part.path().to_owned();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), part.len());
        drop(part);
        assert!(!path.exists());

        let part = spool.create(&meta("1.2.3.4")).unwrap();
        let first_len = part.len();
        let c = finish(&spool, part, &uid).await;
        assert!(c.added);
        assert_eq!(c.size_bytes, first_len);
        assert_eq!(std::fs::metadata(&c.path).unwrap().len(), first_len);

        let mut again = spool.create(&meta("1.2.3.4")).unwrap();
        again.write(&[0_u8; 10]).await.unwrap();
        let c2 = finish(&spool, again, &uid).await;
        assert!(!c2.added);
        assert_eq!(c2.path, c.path);
        assert_eq!(c2.size_bytes, first_len);
        assert_eq!(tmp_files(&spool), 0);

        remove_synced(&c.path).unwrap();
        assert!(!c.path.exists());
    }

    #[tokio::test]
    async fn a_spare_file_is_used_by_the_next_part_or_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let spare = spool.spare();
        let path = spare.path.clone();
        wait_for_tmp_files(&spool, 1).await;
        let part = spool.create_in(&meta("1.2.3.8"), spare).unwrap();
        assert_eq!(part.path(), path, "the part fills the spare's file");
        let c = finish(&spool, part, &Uid::new("1.2.3.8").unwrap()).await;
        assert!(c.added && c.path.exists());
        assert_eq!(tmp_files(&spool), 0);

        // Discarded: gone when `discard` returns, its creation done or not.
        spool.spare().discard().await;
        assert_eq!(tmp_files(&spool), 0);
        let spare = spool.spare();
        wait_for_tmp_files(&spool, 1).await;
        spare.discard().await;
        assert_eq!(tmp_files(&spool), 0);
        // Dropped: gone once its creation is.
        drop(spool.spare());
        wait_for_tmp_files(&spool, 0).await;
    }

    #[tokio::test]
    async fn large_instances_are_written_whole_in_buffer_sized_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let uid = Uid::new("1.2.3.5").unwrap();
        let mut part = spool.create(&meta("1.2.3.5")).unwrap();
        let head = part.len();
        // 2.5 buffers in PDV-sized writes, each byte telling its position.
        let data: Vec<u8> = (0..PART_BUFFER_BYTES * 5 / 2)
            .map(|i| (i % 251) as u8)
            .collect();
        for pdv in data.chunks(65_530) {
            part.write(pdv).await.unwrap();
            assert!(part.buf.len() < PART_BUFFER_BYTES, "written out when full");
            assert!(
                part.buf.capacity() <= PART_BUFFER_BYTES + 65_530,
                "buffer bounded: {}",
                part.buf.capacity()
            );
        }
        let offset = part.data_offset();
        let verify = move |data: &PartData<'_>| {
            assert_eq!(data.data_offset(), offset);
            let mut whole = Vec::new();
            data.reader_at(0).unwrap().read_to_end(&mut whole).unwrap();
            assert_eq!(
                whole.len() as u64,
                std::fs::metadata(data.path()).unwrap().len()
            );
            Ok::<_, ()>(whole.len() as u64)
        };
        let (c, synced_len) = match spool.finish(part, &uid, verify, keep).await {
            Ok(done) => done,
            Err(_) => panic!("not committed"),
        };
        assert_eq!(
            synced_len,
            head + data.len() as u64,
            "verify sees the whole file"
        );
        let bytes = std::fs::read(&c.path).unwrap();
        assert_eq!(&bytes[128..132], b"DICM");
        assert_eq!(&bytes[usize::try_from(head).unwrap()..], &data[..]);
        assert_eq!(c.size_bytes, bytes.len() as u64);
    }

    #[tokio::test]
    async fn small_instances_are_checked_from_memory_then_sealed_and_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let uid = Uid::new("1.2.3.7").unwrap();
        let mut part = spool.create(&meta("1.2.3.7")).unwrap();
        part.write(b"0123456789").await.unwrap();
        let verify = |data: &PartData<'_>| {
            let mut tail = String::new();
            let at = data.data_offset() + 4;
            data.reader_at(at)
                .unwrap()
                .read_to_string(&mut tail)
                .unwrap();
            assert!(data.reader_at(at + 7).is_err(), "past the end");
            assert_eq!(
                std::fs::metadata(data.path()).unwrap().len(),
                0,
                "checked before anything is written"
            );
            let mut whole = Vec::new();
            data.reader_at(0).unwrap().read_to_end(&mut whole).unwrap();
            Ok::<_, ()>((tail, whole))
        };
        let Ok((c, (tail, whole))) = spool.finish(part, &uid, verify, keep).await else {
            panic!("not committed");
        };
        assert_eq!(tail, "456789");
        assert!(c.added);
        let file = std::fs::read(&c.path).unwrap();
        assert_eq!(file.len(), whole.len());
        assert_eq!(whole[..PREAMBLE_BYTES], [0_u8; PREAMBLE_BYTES]);
        assert_eq!(
            file[PREAMBLE_BYTES..],
            whole[PREAMBLE_BYTES..],
            "bytes as received"
        );
        assert_eq!(sealed_uid(&c.path).unwrap(), Some(uid), "sealed preamble");
    }

    /// How many durable instances the spool at `root` holds.
    fn durable_count(root: &Path) -> usize {
        durable_instances(root).unwrap().flatten().flatten().count()
    }

    /// Commits a small and a spilled instance; their final paths.
    async fn two_committed(spool: &Spool) -> [PathBuf; 2] {
        let mut paths = Vec::new();
        for (uid, size) in [("1.2.3.20", 1000), ("1.2.3.21", PART_BUFFER_BYTES * 3 / 2)] {
            let mut part = spool.create(&meta(uid)).unwrap();
            let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            for pdv in data.chunks(65_530) {
                part.write(pdv).await.unwrap();
            }
            paths.push(finish(spool, part, &Uid::new(uid).unwrap()).await.path);
        }
        [paths.remove(0), paths.remove(0)]
    }

    #[tokio::test]
    async fn sealed_parts_whose_rename_was_lost_are_put_in_place_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let committed = two_committed(&spool).await;
        let uids = ["1.2.3.20", "1.2.3.21"].map(|u| Uid::new(u).unwrap());
        for (path, uid) in committed.iter().zip(&uids) {
            assert_eq!(
                sealed_uid(path).unwrap().as_ref(),
                Some(uid),
                "sealed when spilled too"
            );
        }
        let originals = committed.clone().map(|p| std::fs::read(p).unwrap());
        // A power cut lost both renames: the parts are back in tmp/ under their names.
        for (i, path) in committed.iter().enumerate() {
            std::fs::rename(path, spool.tmp_dir().join(format!("{i:016x}.part"))).unwrap();
        }
        let tmp = spool.tmp_dir().to_owned();
        let spool = Spool::open(dir.path(), 0).unwrap();
        for (path, original) in committed.iter().zip(&originals) {
            assert_eq!(&std::fs::read(path).unwrap(), original);
        }
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        assert_eq!(durable_count(dir.path()), 2);
        drop(spool);
    }

    #[tokio::test]
    async fn torn_unsealed_or_duplicate_parts_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let [small, large] = two_committed(&spool).await;
        let part = |name: &str| spool.tmp_dir().join(format!("{name}.part"));
        let bytes = std::fs::read(&large).unwrap();
        // Torn: a power cut before the fdatasync was done kept the seal but not every
        // page (zeros where data was), or not the whole length.
        let mut holed = bytes.clone();
        holed[bytes.len() / 2..bytes.len() / 2 + 4096].fill(0);
        std::fs::write(part("holed"), &holed).unwrap();
        std::fs::write(part("short"), &bytes[..bytes.len() - 1]).unwrap();
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 4096]);
        std::fs::write(part("long"), &longer).unwrap();
        // Never sealed: whole bytes, zero preamble (received, not verified or refused).
        let mut unsealed = bytes.clone();
        unsealed[..PREAMBLE_BYTES].fill(0);
        std::fs::write(part("unsealed"), &unsealed).unwrap();
        // A seal with one bit off.
        let mut bad_seal = bytes.clone();
        bad_seal[20] ^= 1;
        std::fs::write(part("bad-seal"), &bad_seal).unwrap();
        std::fs::write(part("empty"), b"").unwrap();
        // Sealed and whole, but the instance is in place already.
        std::fs::copy(&small, part("duplicate")).unwrap();
        for name in ["holed", "short", "long", "unsealed", "bad-seal", "empty"] {
            assert_eq!(sealed_uid(&part(name)).unwrap(), None, "{name}");
        }
        let tmp = spool.tmp_dir().to_owned();
        drop(spool);
        Spool::open(dir.path(), 0).unwrap();
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        assert_eq!(std::fs::read(&large).unwrap(), bytes);
        assert_eq!(durable_count(dir.path()), 2);
    }

    #[tokio::test]
    async fn instances_are_removed_for_good_and_only_from_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let [small, large] = two_committed(&spool).await;
        let outside = dir.path().join("elsewhere.dcm");
        std::fs::write(&outside, b"x").unwrap();
        let sneaky = spool.instances_dir().join("00/../../elsewhere.dcm");
        for bad in [&outside, &sneaky] {
            assert!(remove_instances(dir.path(), &[small.clone(), bad.clone()]).is_err());
            assert!(small.exists() && outside.exists(), "nothing removed");
        }
        let gone = spool.instances_dir().join("00/1.2.3.99.dcm");
        assert_eq!(
            remove_instances(dir.path(), &[small.clone(), gone, large.clone()]).unwrap(),
            2
        );
        assert!(!small.exists() && !large.exists());
        assert_eq!(durable_count(dir.path()), 0);
    }

    #[tokio::test]
    async fn a_refused_record_removes_the_file_it_added_only() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let uid = Uid::new("1.2.3.30").unwrap();
        let accept = |_: &PartData<'_>| Ok::<_, &str>(());
        let refuse = |c: &Committed, ()| {
            assert!(c.path.exists(), "recorded once in place");
            Err::<(), _>("database down")
        };
        let part = spool.create(&meta("1.2.3.30")).unwrap();
        assert!(matches!(
            spool.finish(part, &uid, accept, refuse).await,
            Err(FinishError::Refused("database down"))
        ));
        assert!(!spool.final_path(&uid).exists());
        assert_eq!(tmp_files(&spool), 0);
        // A copy in place stays when the record of a duplicate fails.
        let first = finish(&spool, spool.create(&meta("1.2.3.30")).unwrap(), &uid).await;
        let part = spool.create(&meta("1.2.3.30")).unwrap();
        assert!(matches!(
            spool.finish(part, &uid, accept, refuse).await,
            Err(FinishError::Refused(_))
        ));
        assert!(first.path.exists());
        assert_eq!(tmp_files(&spool), 0);
    }

    #[tokio::test]
    async fn refused_part_is_deleted_and_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let uid = Uid::new("1.2.3.6").unwrap();
        let mut part = spool.create(&meta("1.2.3.6")).unwrap();
        part.write(&vec![1_u8; PART_BUFFER_BYTES + 1])
            .await
            .unwrap();
        let refuse = |_: &PartData<'_>| Err::<(), _>("truncated");
        assert!(matches!(
            spool.finish(part, &uid, refuse, keep).await,
            Err(FinishError::Refused("truncated"))
        ));
        assert_eq!(tmp_files(&spool), 0);
        assert!(!spool.final_path(&uid).exists());
    }

    #[test]
    fn free_space_reading_is_trusted_briefly_and_far_from_the_watermark() {
        let at = Instant::now();
        let min = 1 << 30;
        let far = FreeSpace {
            at,
            free_bytes: min + FREE_SPACE_MARGIN_BYTES + (100 << 20),
            written_bytes: 1000,
        };
        assert!(far.shows_room(at, 1000, min));
        assert!(far.shows_room(at + Duration::from_millis(100), 1000 + (50 << 20), min));
        // Too old, too much written since, or too close once that is counted.
        assert!(!far.shows_room(at + FREE_SPACE_MAX_AGE, 1000, min));
        assert!(!far.shows_room(at, 1000 + FREE_SPACE_MAX_WRITTEN_BYTES, min));
        let near = FreeSpace {
            free_bytes: min + FREE_SPACE_MARGIN_BYTES,
            ..far
        };
        assert!(near.shows_room(at, 1000, min));
        assert!(!near.shows_room(at, 1001, min));
        // A reading under the watermark never shows room.
        let under = FreeSpace {
            free_bytes: min - 1,
            ..far
        };
        assert!(!under.shows_room(at, 1000, min));
        assert!(!far.shows_room(at, 1000, u64::MAX));
    }

    #[test]
    fn file_system_safety_is_read_for_the_spool_and_memory_is_volatile() {
        let dir = tempfile::tempdir().unwrap();
        let here = file_system_safety(dir.path()).unwrap();
        eprintln!("{here}");
        assert!(!here.to_string().is_empty());
        if Path::new("/dev/shm").is_dir() {
            assert_eq!(
                file_system_safety(Path::new("/dev/shm")).unwrap(),
                FileSystemSafety::Volatile("tmpfs".into())
            );
        }
        assert!(file_system_safety(&dir.path().join("missing")).is_err());
    }

    #[tokio::test]
    async fn watermark() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Spool::open(dir.path(), 1)
                .unwrap()
                .has_room()
                .await
                .unwrap()
        );
        assert!(
            !Spool::open(dir.path(), u64::MAX)
                .unwrap()
                .has_room()
                .await
                .unwrap()
        );
    }
}
