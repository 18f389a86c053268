//! Where durable instances go: the [`InstanceSink`] the listener calls after an instance
//! is fsynced and renamed into the spool, and *before* it answers the C-STORE.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use spinewatch_core::Uid;

/// A received instance, durable in the spool: UIDs, modality, provenance, and the
/// PatientID behind a [`PatientId`] that never shows in `Debug`, so its `Debug` may be
/// logged at DEBUG level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstance {
    /// Final path: `spool_dir/instances/<shard>/<sop_instance_uid>.dcm`.
    pub path: PathBuf,
    /// Size of the file (preamble and file meta group included), bytes.
    pub size_bytes: u64,
    /// (0008,0016) SOP Class UID.
    pub sop_class_uid: Uid,
    /// (0008,0018) SOP Instance UID.
    pub sop_instance_uid: Uid,
    /// The transfer syntax it was received (and is stored) in.
    pub transfer_syntax_uid: Uid,
    /// (0020,000D) Study Instance UID.
    pub study_instance_uid: Uid,
    /// (0020,000E) Series Instance UID.
    pub series_instance_uid: Uid,
    /// (0008,0060) Modality, when present (`CT`, `MR`, `SR`...).
    pub modality: Option<String>,
    /// (0010,0020) Patient ID, read in the same header pass as the UIDs; `None` when
    /// absent or empty.
    pub patient_id: Option<PatientId>,
    /// The AE title that sent it.
    pub calling_ae_title: String,
    /// The address it came from.
    pub peer_addr: SocketAddr,
    /// When the last byte of its data set arrived.
    pub received_at: SystemTime,
}

/// A (0010,0020) Patient ID: patient data, so its `Debug` and `Display` print
/// `<redacted>` and it cannot leak into logs, spans or error messages by accident; read
/// it with [`PatientId::as_str`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PatientId(String);

impl PatientId {
    /// Wraps a Patient ID.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The Patient ID itself. Never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PatientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for PatientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What the sink did with an instance. Both are a success for the PACS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First time this SOP Instance UID is seen.
    New,
    /// The SOP Instance UID was already recorded; nothing changed.
    Duplicate,
}

/// Why a sink did not record an instance; each maps to a C-STORE status.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The processing backlog is full: answered 0xA700 (out of resources), so the
    /// PACS retries later.
    #[error("the processing backlog is full")]
    Backpressure,
    /// The instance is unusable in a way only the sink can tell: answered 0xC000.
    #[error("instance refused: {0}")]
    Invalid(String),
    /// The sink failed (database error...): answered 0x0110 (processing failure).
    #[error("could not record the instance")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The durable record of received instances (the database), called by every
/// association task. The listener calls [`Self::record_blocking`] (by default
/// [`Self::record`]) before the C-STORE response, so an instance the PACS sees
/// acknowledged is both on disk and recorded.
///
/// The file is durable before `record` is called (see the [`spool`](crate::spool)'s
/// durability notes), so a sink may commit its record without syncing it, provided it
/// records at startup the durable files it has no record of
/// ([`spool::durable_instances`](crate::spool::durable_instances)): a record lost to a
/// power cut then comes back from its file.
///
/// Implementations are shared by all associations (`Arc<S>`): keep `record` short and
/// make it idempotent per SOP Instance UID.
pub trait InstanceSink: Send + Sync + 'static {
    /// Records a durable instance. `Ok(New | Duplicate)` answers 0x0000;
    /// `Err(Backpressure)` 0xA700; `Err(Invalid)` 0xC000; `Err(Failed)` 0x0110. On an
    /// error the listener removes the file it just added to the spool.
    fn record(
        &self,
        instance: &StoredInstance,
    ) -> impl Future<Output = Result<Recorded, SinkError>> + Send;

    /// [`Self::record`], called from a blocking context: the listener calls this, inside
    /// the one blocking call (tokio's blocking pool) that makes an instance durable, which
    /// saves the instance a second trip to the pool. The default waits for
    /// [`Self::record`] on the runtime; a sink whose record is blocking work anyway (a
    /// database write) does it here directly.
    fn record_blocking(&self, instance: &StoredInstance) -> Result<Recorded, SinkError> {
        tokio::runtime::Handle::current().block_on(self.record(instance))
    }

    /// Whether new instances are welcome now. Asked when a C-STORE command arrives,
    /// before its data set is written: `false` makes the listener discard the data
    /// set and answer 0xA700, so a full backlog costs no disk.
    fn accepting(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_id_never_prints() {
        let id = PatientId::new("PAT-0042");
        assert_eq!(id.as_str(), "PAT-0042");
        assert_eq!(format!("{id}"), "<redacted>");
        assert_eq!(format!("{id:?}"), "<redacted>");
        assert!(!format!("{:?}", Some(&id)).contains("0042"));
    }
}
