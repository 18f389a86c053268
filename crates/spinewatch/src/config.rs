//! The one config file (TOML): a struct per section, every key with a default in code.
//!
//! `deploy/spinewatch.example.toml` lists every key with its default; `tests/config.rs` checks
//! that it parses to [`Config::default()`] and names every key. Unknown keys are refused
//! (`deny_unknown_fields`), so a misspelt key is an error rather than a silent default.
//!
//! Relative paths, in the file or on the command line, are relative to the working directory
//! of the process (as with a systemd unit's `WorkingDirectory=`), not to the config file.
//!
//! This module depends only on external crates (no `crate::` items) so that the integration
//! test can compile it on its own: a binary crate has no library to import.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use spinewatch_infer::ExecutionProvider;
use spinewatch_ingest::AllowedPeer;

/// The whole config file, a struct per section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where spinewatch keeps its files.
    pub storage: StorageConfig,
    /// The ONNX Runtime library and the execution provider.
    pub runtime: RuntimeConfig,
    /// The fracture model and how it is run.
    pub model: ModelConfig,
    /// The DICOM listener the PACS pushes to (`serve`).
    pub dicom: DicomConfig,
    /// When a study is complete, and which studies are analysed (`serve`).
    pub study: StudyConfig,
    /// The HTTP server: nurses' web UI and API, metrics, health (`serve`).
    pub web: WebConfig,
}

/// `[dicom]`: the DICOM listener (C-ECHO, C-STORE SCP) the PACS pushes studies to.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DicomConfig {
    /// Our AE title; default `SPINEWATCH`. An association calling another is rejected.
    pub ae_title: String,
    /// Address and port to listen on; default `0.0.0.0:11112`. `--dicom-addr` overrides it.
    pub bind: SocketAddr,
    /// Calling AEs allowed to associate, each `{ ae_title = "PACS", host = "10.1.2.3" }`
    /// (`host` optional). Default empty, which accepts any calling AE: list the PACS nodes
    /// in production.
    pub allowed_calling_aes: Vec<AllowedPeer>,
    /// Associations served at once (one more is rejected, transient); default 8.
    pub max_associations: usize,
    /// Largest PDU we accept, bytes (16 KiB to 16 MiB); default 65536.
    pub max_pdu_bytes: u32,
    /// Time for the A-ASSOCIATE-RQ once connected, seconds; default 30.
    pub association_timeout_secs: u64,
    /// Longest silence inside an association before it is aborted, seconds; default 60.
    pub read_timeout_secs: u64,
    /// Free disk space under which instances are refused with 0xA700 (out of resources,
    /// the PACS retries later), bytes; default 1 GiB.
    pub min_free_disk_bytes: u64,
    /// Studies received but not yet analysed above which instances are refused with
    /// 0xA700 as well; default 500.
    pub max_backlog_studies: u64,
}

impl Default for DicomConfig {
    fn default() -> Self {
        DicomConfig {
            ae_title: "SPINEWATCH".to_owned(),
            bind: SocketAddr::from(([0, 0, 0, 0], 11112)),
            allowed_calling_aes: Vec::new(),
            max_associations: 8,
            max_pdu_bytes: 65_536,
            association_timeout_secs: 30,
            read_timeout_secs: 60,
            min_free_disk_bytes: 1 << 30,
            max_backlog_studies: 500,
        }
    }
}

/// What to do with a study whose patient's age cannot be read (no PatientAge, no birth
/// date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownAgePolicy {
    /// Excluded, counted with reason `age_unknown`.
    Exclude,
    /// Analysed as if old enough (anonymised archives).
    Analyse,
}

/// `[study]`: study assembly and eligibility.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudyConfig {
    /// A study is complete once no instance of it has arrived for this long, seconds;
    /// default 60. `--quiet-period-secs` overrides it.
    pub quiet_period_secs: u64,
    /// ... or at the latest this long after its first instance, however they keep
    /// coming, seconds; default 1800.
    pub force_complete_secs: u64,
    /// Youngest patient analysed, years; default 50.
    pub min_patient_age_years: f64,
    /// Studies with no readable age: `exclude` (default) or `analyse`.
    pub unknown_age: UnknownAgePolicy,
}

impl Default for StudyConfig {
    fn default() -> Self {
        StudyConfig {
            quiet_period_secs: 60,
            force_complete_secs: 1800,
            min_patient_age_years: 50.0,
            unknown_age: UnknownAgePolicy::Exclude,
        }
    }
}

/// `[web]`: the HTTP server (nurses' web UI and JSON API, `/metrics`, `/healthz`,
/// `/readyz`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port; default `127.0.0.1:8080` (put a TLS proxy in front to open it
    /// wider). `--http-addr` overrides it.
    pub bind: SocketAddr,
    /// A signed-in session ends after this long without a request, minutes; default 30.
    pub session_idle_minutes: u64,
    /// ... and at the latest this long after sign-in, hours; default 12 (a shift).
    pub session_max_hours: u64,
    /// Mark cookies `Secure` (sent over HTTPS only); default `false`, because the default
    /// bind is loopback behind a TLS proxy. Set it when browsers reach spinewatch over
    /// HTTPS.
    pub secure_cookies: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            session_idle_minutes: 30,
            session_max_hours: 12,
            secure_cookies: false,
        }
    }
}

/// `[model]`: the fracture model and how it is run.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The model's manifest (the ONNX file is named in it, relative to it); default
    /// `models/vertebra-fracture/manifest.toml`.
    pub manifest: PathBuf,
    /// Threads inside one inference (ONNX Runtime intra-op threads); default 2.
    pub threads: usize,
    /// Vertebra patches per inference call; default 16.
    pub batch_size: usize,
    /// Studies read, located and analysed at once; default 2.
    pub parallel_studies: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            manifest: PathBuf::from("models/vertebra-fracture/manifest.toml"),
            threads: 2,
            batch_size: 16,
            parallel_studies: 2,
        }
    }
}

/// `[storage]`: where spinewatch keeps its files.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Root of everything spinewatch writes; default `data`. `--data-dir` overrides it.
    pub data_dir: PathBuf,
    /// Received DICOM instances waiting to be processed; default `<data_dir>/spool`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
    /// The SQLite database (worklist and audit trail); default `<data_dir>/spinewatch.sqlite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_path: Option<PathBuf>,
    /// The site's secret that turns a PatientID into the pseudonymous patient key of the
    /// worklist (created, random, on first start); default `<data_dir>/patient-key.secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_key_secret: Option<PathBuf>,
    /// Days a study's instances stay in the spool after its outcome; then its files are
    /// removed (the study, its case, key images and decisions stay). 0 keeps them for
    /// ever. Default 30.
    pub retention_days: u32,
}

/// Default of [`StorageConfig::retention_days`]: long enough for a nurse to review a case
/// and for the PACS's resend of a corrected study; the PACS stays the archive.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            spool_dir: None,
            database_path: None,
            patient_key_secret: None,
            retention_days: DEFAULT_RETENTION_DAYS,
        }
    }
}

impl StorageConfig {
    /// How long a study's instances stay after its outcome; `None` for ever.
    pub fn retention(&self) -> Option<std::time::Duration> {
        (self.retention_days > 0)
            .then(|| std::time::Duration::from_secs(u64::from(self.retention_days) * 86_400))
    }

    /// The spool directory: `spool_dir`, else `<data_dir>/spool`.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("spool"))
    }

    /// The patient key secret: `patient_key_secret`, else `<data_dir>/patient-key.secret`.
    pub fn patient_key_secret(&self) -> PathBuf {
        self.patient_key_secret
            .clone()
            .unwrap_or_else(|| self.data_dir.join("patient-key.secret"))
    }

    /// The database file: `database_path`, else `<data_dir>/spinewatch.sqlite`.
    pub fn database_path(&self) -> PathBuf {
        self.database_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("spinewatch.sqlite"))
    }
}

/// `[runtime]`: the ONNX Runtime library and the execution provider.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The ONNX Runtime library (`libonnxruntime.so.1.31.1`); unset means search for it
    /// (`ORT_DYLIB_PATH`, the project's `.venv`, Python). `--ort-dylib` takes precedence; it is
    /// not folded in here so that `doctor` can say which of the two named the library.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ort_dylib: Option<PathBuf>,
    /// The execution provider to run models on: `cpu` (default), `cuda` or `tensorrt`.
    pub execution_provider: ExecutionProvider,
    /// Whether to run on CPU when the configured provider is unavailable; default `false`, so
    /// a GPU deployment that lost its GPU fails loudly instead of running slowly.
    pub allow_cpu_fallback: bool,
}

/// Command-line values that override the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides<'a> {
    /// `--data-dir`: replaces `[storage] data_dir`. The spool and database follow it unless
    /// the file sets them explicitly.
    pub data_dir: Option<&'a Path>,
    /// `--dicom-addr`: replaces `[dicom] bind`.
    pub dicom_addr: Option<SocketAddr>,
    /// `--http-addr`: replaces `[web] bind`.
    pub http_addr: Option<SocketAddr>,
    /// `--quiet-period-secs`: replaces `[study] quiet_period_secs`.
    pub quiet_period_secs: Option<u64>,
}

impl Config {
    /// Reads the config file, or returns the defaults when there is none.
    ///
    /// Errors name the file, and for a bad or unknown key the key and its line.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses config text; every missing key takes its default.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        Ok(toml::from_str(text)?)
    }

    /// Applies command-line overrides.
    pub fn with_overrides(mut self, overrides: Overrides<'_>) -> Config {
        if let Some(data_dir) = overrides.data_dir {
            self.storage.data_dir = data_dir.to_path_buf();
        }
        if let Some(addr) = overrides.dicom_addr {
            self.dicom.bind = addr;
        }
        if let Some(addr) = overrides.http_addr {
            self.web.bind = addr;
        }
        if let Some(secs) = overrides.quiet_period_secs {
            self.study.quiet_period_secs = secs;
        }
        self
    }
}
