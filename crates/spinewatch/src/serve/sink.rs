//! Where the DICOM listener hands each durable instance: the triage journal, under the
//! patient's pseudonymous key, before the PACS hears success.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use spinewatch_ingest::{InstanceSink, PatientId, Recorded, SinkError, StoredInstance};
use spinewatch_triage::{InstanceRecord, Store, patient_key};

/// Bytes of a new patient key secret.
const SECRET_BYTES: usize = 32;

/// Records instances in the journal.
pub struct JournalSink {
    store: Store,
    secret: Arc<Vec<u8>>,
    /// Cleared by the pipeline while the backlog is over its ceiling: instances are then
    /// refused with 0xA700 and the PACS retries later.
    accepting: Arc<AtomicBool>,
}

impl JournalSink {
    /// A sink over `store`, keying patients with `secret`.
    pub fn new(store: Store, secret: Vec<u8>, accepting: Arc<AtomicBool>) -> Self {
        JournalSink {
            store,
            secret: Arc::new(secret),
            accepting,
        }
    }
}

impl InstanceSink for JournalSink {
    async fn record(&self, instance: &StoredInstance) -> Result<Recorded, SinkError> {
        let (store, secret, instance) = (self.store.clone(), self.secret.clone(), instance.clone());
        let recorded = tokio::task::spawn_blocking(move || {
            // The PatientID comes from the listener's header pass: it goes into the key
            // and nowhere else.
            let patient_id = instance.patient_id.as_ref().map_or("", PatientId::as_str);
            let record = InstanceRecord {
                sop_instance_uid: instance.sop_instance_uid.to_string(),
                study_instance_uid: instance.study_instance_uid.to_string(),
                series_instance_uid: instance.series_instance_uid.to_string(),
                sop_class_uid: instance.sop_class_uid.to_string(),
                transfer_syntax_uid: instance.transfer_syntax_uid.to_string(),
                modality: instance.modality.clone(),
                patient_key: patient_key(&secret, patient_id),
                path: instance.path.clone(),
                bytes: instance.size_bytes,
            };
            store
                .record_instance(&record)
                .map_err(|e| SinkError::Failed(Box::new(e)))
        })
        .await
        .map_err(|e| SinkError::Failed(Box::new(e)))??;
        Ok(match recorded {
            spinewatch_triage::Recorded::New { .. } => Recorded::New,
            spinewatch_triage::Recorded::Duplicate => Recorded::Duplicate,
        })
    }

    fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Relaxed)
    }
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
