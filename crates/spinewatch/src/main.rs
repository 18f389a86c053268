//! `spinewatch`: the command-line entry point.
//!
//! The binary is thin: it parses the command line (clap), loads the one config file
//! ([`config`]), installs the tracing subscriber and hands over to one module per
//! subcommand. Library crates do the work:
//!
//! ```text
//! synth  -> spinewatch-testkit (phantom + DICOM writer)
//! volume -> spinewatch-volume  (series reading, geometry, HU)
//! dataset -> testkit + volume  (the model's training patches)
//! scan   -> volume + infer      (eligibility, spine, model, morphometry)
//! eval   -> testkit + scan's path (held-out synthetic studies, AUC, sensitivity)
//! doctor -> spinewatch-infer   (ONNX Runtime discovery) + config paths
//! serve  -> ingest + triage + web + scan's path (the DICOM listener, the journal, the
//!           nurses' queue and web UI, metrics)
//! user, token -> triage + web (accounts and API tokens in serve's database)
//! ```

mod accounts;
mod config;
mod dataset;
mod doctor;
mod eval;
mod render;
mod scan;
mod serve;
mod synth;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// spinewatch finds vertebral fractures on CT scans taken for other reasons.
#[derive(Debug, Parser)]
#[command(name = "spinewatch", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML); every key has a default, so the file is optional.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the spool and the database (overrides `[storage] data_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// ONNX Runtime shared library (overrides `[runtime] ort_dylib` and `ORT_DYLIB_PATH`).
    #[arg(long, global = true, value_name = "FILE")]
    pub ort_dylib: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The step to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the installation: ONNX Runtime, execution providers, data paths.
    Doctor(doctor::DoctorArgs),
    /// Write a deterministic synthetic CT study (DICOM + ground-truth JSON).
    Synth(Box<synth::SynthArgs>),
    /// Read the DICOM files of one study and report its series and geometry.
    Volume(volume::VolumeArgs),
    /// Analyse studies offline: findings per vertebra, or why a study was not analysed.
    Scan(scan::ScanArgs),
    /// Measure the model and the whole path on held-out synthetic studies.
    Eval(eval::EvalArgs),
    /// Write the model's training set: synthetic studies through the volume stage.
    Dataset(dataset::DatasetArgs),
    /// Run the service: receive studies from the PACS over DICOM, analyse them, queue the
    /// positive ones for the nurses; web UI, JSON API, metrics and health over HTTP.
    Serve(serve::ServeArgs),
    /// Manage the web UI's users (in serve's database; `--config`/`--data-dir` as serve).
    User(accounts::UserArgs),
    /// Manage the JSON API's bearer tokens (in serve's database).
    Token(accounts::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Doctor(args) => doctor::run(&cli, args),
        Command::Synth(args) => synth::run(args),
        Command::Volume(args) => volume::run(args),
        Command::Dataset(args) => dataset::run(args),
        Command::Scan(args) => scan::run(&cli, args),
        Command::Eval(args) => eval::run(&cli, args),
        Command::Serve(args) => serve::run(&cli, args),
        Command::User(args) => accounts::run_user(&cli, args),
        Command::Token(args) => accounts::run_token(&cli, args),
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("SPINEWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
