//! `spinewatch volume`: read one study and report its series and geometry.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Arguments of `spinewatch volume`.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    /// DICOM files or folders of one study.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `spinewatch volume`.
pub fn run(_args: &VolumeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet built")
}
