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

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use spinewatch_infer::ExecutionProvider;

/// The whole config file. Later stages add their sections here (`[ingest]`, `[select]`,
/// `[web]`), each a struct of its own.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where spinewatch keeps its files.
    pub storage: StorageConfig,
    /// The ONNX Runtime library and the execution provider.
    pub runtime: RuntimeConfig,
    /// The fracture model and how it is run.
    pub model: ModelConfig,
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
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            spool_dir: None,
            database_path: None,
        }
    }
}

impl StorageConfig {
    /// The spool directory: `spool_dir`, else `<data_dir>/spool`.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("spool"))
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
        self
    }
}
