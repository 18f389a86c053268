//! The durable spool: `tmp/<random>.part` while an instance arrives, then fsync, atomic
//! rename to `instances/<shard>/<sop_instance_uid>.dcm`, fsync of the folder.
//!
//! ```text
//! spool_dir/
//!   tmp/        3f9c0a1be2d4c5f6.part   being received (removed on any failure and at startup)
//!   instances/  a7/1.2.840.113619.2.55.3.1234.dcm   durable: fsynced, renamed, folder fsynced
//! ```
//!
//! A `.part` file is written straight from the P-DATA PDUs as they arrive (preamble,
//! file meta group, then the data set bytes as sent), so an association holds one PDU
//! in memory whatever the instance size. [`PartFile`] deletes its file when dropped
//! unless it was committed: an aborted association, a truncated instance, a refused one
//! or a panicking task leave nothing behind.
//!
//! One SOP Instance UID is one file: [`Spool::commit`] keeps the first durable copy and
//! discards later ones (a DICOM instance never changes under its UID; a corrected one
//! gets a new UID, PS3.3 C.12.1.1.1). Commit and the sink's record run under a lock per
//! shard, so two associations sending the same instance at once cannot interleave.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTable, OpenFileOptions};
use spinewatch_core::Uid;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, MutexGuard};
use tracing::warn;

use crate::error::{Error, ErrorChain, Result};
use crate::syntax::trim_uid;

/// Folder of instances being received.
pub const TMP_DIR: &str = "tmp";
/// Folder of durable instances.
pub const INSTANCES_DIR: &str = "instances";
/// Extension of instances being received.
pub const PART_EXTENSION: &str = "part";
/// Number of shard folders under `instances/` (two hex digits).
const SHARDS: usize = 256;

/// The spool folders, the disk watermark and the per-shard commit locks.
#[derive(Debug)]
pub struct Spool {
    tmp: PathBuf,
    instances: PathBuf,
    min_free_disk_bytes: u64,
    locks: Box<[Mutex<()>]>,
}

impl Spool {
    /// Creates the folders if needed and removes `.part` files left by a previous run
    /// (they were never acknowledged: the PACS sends them again). Blocking: call it at
    /// startup or from `spawn_blocking`.
    pub fn open(root: &Path, min_free_disk_bytes: u64) -> Result<Self> {
        let tmp = root.join(TMP_DIR);
        let instances = root.join(INSTANCES_DIR);
        for dir in [&tmp, &instances] {
            std::fs::create_dir_all(dir).map_err(prepare(dir))?;
        }
        for shard in 0..SHARDS {
            let dir = instances.join(format!("{shard:02x}"));
            std::fs::create_dir_all(&dir).map_err(prepare(&dir))?;
        }
        let entries = std::fs::read_dir(&tmp).map_err(prepare(&tmp))?;
        let mut removed = 0_usize;
        for entry in entries {
            let path = entry.map_err(prepare(&tmp))?.path();
            if path.extension().is_some_and(|e| e == PART_EXTENSION) {
                std::fs::remove_file(&path).map_err(prepare(&path))?;
                removed += 1;
            }
        }
        for dir in [root, &tmp, &instances] {
            sync_dir(dir).map_err(prepare(dir))?;
        }
        if removed > 0 {
            warn!(
                files = removed,
                "Removed partial instances left by a previous run."
            );
        }
        Ok(Self {
            tmp,
            instances,
            min_free_disk_bytes,
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
        self.instances
            .join(format!("{:02x}", shard(uid)))
            .join(format!("{uid}.dcm"))
    }

    /// Whether the disk holding the spool has more free space than the watermark.
    pub async fn has_room(&self) -> Result<bool> {
        let min = self.min_free_disk_bytes;
        if min == 0 {
            return Ok(true);
        }
        let dir = self.tmp.clone();
        let free = tokio::task::spawn_blocking(move || free_bytes(&dir))
            .await
            .map_err(Error::Join)??;
        Ok(free >= min)
    }

    /// Starts a `.part` file: preamble, `DICM`, then `meta`.
    pub async fn create(&self, meta: &FileMetaTable) -> Result<PartFile> {
        let mut head = Vec::with_capacity(512);
        head.extend_from_slice(&[0_u8; 128]);
        head.extend_from_slice(b"DICM");
        meta.write(&mut head)
            .map_err(|e| Error::BuildMeta(Box::new(e)))?;
        let path = self
            .tmp
            .join(format!("{:016x}.{PART_EXTENSION}", rand::random::<u64>()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|source| Error::WriteSpool {
                path: path.clone(),
                source,
            })?;
        let mut part = PartFile {
            path,
            file,
            len: 0,
            data_offset: head.len() as u64,
            committed: false,
        };
        part.write(&head).await?;
        Ok(part)
    }

    /// Holds the commit lock of `uid`'s shard; keep it from [`Self::commit`] until the
    /// sink has answered (and the file is removed again if it failed).
    pub async fn lock(&self, uid: &Uid) -> MutexGuard<'_, ()> {
        self.locks[usize::from(shard(uid))].lock().await
    }

    /// Makes a synced part durable as the instance `uid`: renames it into place and
    /// fsyncs the folder; if the instance is already there, the part is discarded and
    /// the existing file kept. Call under [`Self::lock`].
    pub async fn commit(&self, part: PartFile, uid: &Uid) -> Result<Committed> {
        let to = self.final_path(uid);
        match tokio::fs::metadata(&to).await {
            Ok(meta) => {
                // Already durable: `part` is dropped, which deletes it.
                return Ok(Committed {
                    path: to,
                    size_bytes: meta.len(),
                    added: false,
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Commit {
                    from: part.path.clone(),
                    to,
                    source,
                });
            }
        }
        let mut part = part;
        let from = part.path.clone();
        let commit_error = |source| Error::Commit {
            from: from.clone(),
            to: to.clone(),
            source,
        };
        tokio::fs::rename(&from, &to).await.map_err(commit_error)?;
        part.committed = true;
        let dir = to.parent().map(Path::to_owned).unwrap_or_default();
        let synced = tokio::task::spawn_blocking(move || sync_dir(&dir))
            .await
            .map_err(Error::Join)?;
        if let Err(source) = synced {
            // Not durable: undo, so that the instance is not acknowledged half-done.
            self.remove(&to).await;
            return Err(commit_error(source));
        }
        Ok(Committed {
            path: to,
            size_bytes: part.len,
            added: true,
        })
    }

    /// Removes a committed instance again (the sink refused it) and fsyncs its folder;
    /// failures are logged, the PACS will send the instance again.
    pub async fn remove(&self, path: &Path) {
        let path = path.to_owned();
        let done = tokio::task::spawn_blocking(move || {
            std::fs::remove_file(&path)?;
            path.parent().map_or(Ok(()), sync_dir)
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %ErrorChain(&e), "Could not remove a refused instance."),
            Err(e) => warn!(error = %ErrorChain(&e), "Could not remove a refused instance."),
        }
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

/// An instance being received in `tmp/`. Deleted when dropped unless committed.
#[derive(Debug)]
pub struct PartFile {
    path: PathBuf,
    file: tokio::fs::File,
    len: u64,
    data_offset: u64,
    committed: bool,
}

impl PartFile {
    /// The `.part` path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far (preamble and meta included).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Where the data set starts: after the preamble, `DICM` and the file meta group.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Whether nothing was written yet (never after [`Spool::create`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes`.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|source| Error::WriteSpool {
                path: self.path.clone(),
                source,
            })?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs the file (data and metadata).
    pub async fn sync(&mut self) -> Result<()> {
        let path = &self.path;
        let error = |source| Error::WriteSpool {
            path: path.clone(),
            source,
        };
        self.file.flush().await.map_err(error)?;
        self.file.sync_all().await.map_err(error)
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // A single unlink: cheap enough for a destructor on the runtime.
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != ErrorKind::NotFound
        {
            warn!(error = %ErrorChain(&e), path = %self.path.display(),
                "Could not remove a partial instance.");
        }
    }
}

/// UIDs and modality read back from a spooled file.
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
    let text = |tag| {
        obj.get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| trim_uid(s.trim_start()).to_owned())
            .filter(|s| !s.is_empty())
    };
    Ok(Header {
        transfer_syntax_uid: trim_uid(obj.meta().transfer_syntax()).to_owned(),
        sop_class_uid: text(tags::SOP_CLASS_UID),
        sop_instance_uid: text(tags::SOP_INSTANCE_UID),
        study_instance_uid: text(tags::STUDY_INSTANCE_UID),
        series_instance_uid: text(tags::SERIES_INSTANCE_UID),
        modality: text(tags::MODALITY),
    })
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

/// Bytes available to unprivileged users on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Result<u64> {
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

    #[tokio::test]
    async fn dropped_part_leaves_nothing_and_commit_keeps_the_first_copy() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 0).unwrap();
        let uid = Uid::new("1.2.3.4").unwrap();

        let mut part = spool.create(&meta("1.2.3.4")).await.unwrap();
        part.write(b"abc").await.unwrap();
        let path = part.path().to_owned();
        assert!(path.exists());
        drop(part);
        assert!(!path.exists());

        let mut part = spool.create(&meta("1.2.3.4")).await.unwrap();
        part.sync().await.unwrap();
        let first_len = part.len();
        let c = spool.commit(part, &uid).await.unwrap();
        assert!(c.added);
        assert_eq!(c.size_bytes, first_len);
        assert_eq!(std::fs::metadata(&c.path).unwrap().len(), first_len);

        let mut again = spool.create(&meta("1.2.3.4")).await.unwrap();
        again.write(&[0_u8; 10]).await.unwrap();
        again.sync().await.unwrap();
        let c2 = spool.commit(again, &uid).await.unwrap();
        assert!(!c2.added);
        assert_eq!(c2.path, c.path);
        assert_eq!(c2.size_bytes, first_len);
        assert_eq!(std::fs::read_dir(spool.tmp_dir()).unwrap().count(), 0);

        spool.remove(&c.path).await;
        assert!(!c.path.exists());
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
