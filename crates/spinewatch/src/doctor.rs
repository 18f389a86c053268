//! `spinewatch doctor`: checks the installation and says what to fix.
//!
//! Checks, in order: ONNX Runtime (found, version, library path and who named it), its
//! execution providers, whether the configured provider is among them, and whether the data
//! dir, spool dir and database directory are writable (each is created if missing, then a
//! probe file is written and removed), and whether the spool's file system keeps renames
//! atomic across a power cut (a warning when it does not: ext4 without a journal, tmpfs). The exit status is non-zero when anything spinewatch
//! needs is missing, after the report is printed (lines, or one JSON object with `--json`).
//!
//! A config file that cannot be read or parsed is an error before any check runs.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;
use spinewatch_infer::runtime::{DylibRequest, DylibSource, Runtime};

use spinewatch_ingest::spool;

use crate::Cli;
use crate::config::{Config, Overrides};

/// Options of `spinewatch doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print one JSON object instead of aligned lines.
    #[arg(long)]
    pub json: bool,
}

/// Runs every check, prints the report and returns the exit status: failure when any check
/// failed.
pub fn run(cli: &Cli, args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?.with_overrides(Overrides {
        data_dir: cli.data_dir.as_deref(),
        ..Overrides::default()
    });
    let report = Report::gather(&config, cli.ort_dylib.as_deref());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.human());
        if !report.ok {
            let failed: Vec<&str> = report
                .lines()
                .iter()
                .filter(|l| l.status == Status::Failed)
                .map(|l| l.check)
                .collect();
            let n = failed.len();
            let plural = if n == 1 { "" } else { "s" };
            eprintln!(
                "error: doctor found {n} problem{plural}: {}",
                failed.join(", ")
            );
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Everything doctor found; serialised as the `--json` output.
#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    spinewatch_version: &'static str,
    onnxruntime: OrtReport,
    execution_provider: ProviderReport,
    paths: PathsReport,
    spool_file_system: FileSystemReport,
    /// One line per failed check, naming the check and the fix.
    problems: Vec<String>,
}

/// Whether the spool's file system keeps a rename atomic across a power cut (journaled):
/// a warning otherwise, not a failure (spinewatch runs, with a weaker guarantee).
#[derive(Debug, Serialize)]
struct FileSystemReport {
    safe: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct OrtReport {
    ok: bool,
    version: Option<String>,
    dylib: Option<String>,
    /// `flag`, `config`, `env`, `project_local` or `python`.
    #[serde(serialize_with = "serialize_source")]
    source: Option<DylibSource>,
    providers: Vec<String>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct ProviderReport {
    /// As in the config: `cpu`, `cuda`, `tensorrt`.
    configured: &'static str,
    /// ONNX Runtime's name for it, e.g. `CPUExecutionProvider`.
    ort_name: &'static str,
    /// `null` when ONNX Runtime could not be loaded.
    available: Option<bool>,
    allow_cpu_fallback: bool,
}

#[derive(Debug, Serialize)]
struct PathsReport {
    data_dir: PathReport,
    spool_dir: PathReport,
    database: PathReport,
}

#[derive(Debug, Serialize)]
struct PathReport {
    path: String,
    writable: bool,
    error: Option<String>,
}

/// The outcome of one check in the human output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    /// Works, with a weaker guarantee: reported, not a failure.
    Warning,
    Failed,
    Skipped,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "WARNING",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        }
    }
}

/// One line of the human output: `check: status — detail`.
struct Line {
    check: &'static str,
    status: Status,
    detail: String,
}

impl Report {
    fn gather(config: &Config, flag: Option<&Path>) -> Report {
        let request = DylibRequest {
            flag,
            config: config.runtime.ort_dylib.as_deref(),
        };
        let onnxruntime = check_onnxruntime(request);

        let ep = config.runtime.execution_provider;
        let execution_provider = ProviderReport {
            configured: ep.config_name(),
            ort_name: ep.ort_name(),
            available: onnxruntime
                .ok
                .then(|| onnxruntime.providers.iter().any(|p| p == ep.ort_name())),
            allow_cpu_fallback: config.runtime.allow_cpu_fallback,
        };

        let storage = &config.storage;
        let database_path = storage.database_path();
        let paths = PathsReport {
            data_dir: PathReport::from_check(&storage.data_dir, check_dir(&storage.data_dir)),
            spool_dir: PathReport::from_check(
                &storage.spool_dir(),
                check_dir(&storage.spool_dir()),
            ),
            database: PathReport::from_check(&database_path, check_database(&database_path)),
        };
        let spool_file_system = match spool::file_system_safety(&storage.spool_dir()) {
            Ok(safety) => FileSystemReport {
                safe: safety.is_safe(),
                detail: safety.to_string(),
            },
            Err(e) => FileSystemReport {
                safe: false,
                detail: format!("could not be read: {e}"),
            },
        };

        let mut report = Report {
            ok: true,
            spinewatch_version: env!("CARGO_PKG_VERSION"),
            onnxruntime,
            execution_provider,
            paths,
            spool_file_system,
            problems: Vec::new(),
        };
        report.problems = report
            .lines()
            .into_iter()
            .filter(|line| line.status == Status::Failed)
            .map(|line| format!("{}: {}", line.check, line.detail))
            .collect();
        report.ok = report.problems.is_empty();
        report
    }

    /// The checks as lines; the single source of both the human output and `problems`.
    fn lines(&self) -> Vec<Line> {
        let ort = &self.onnxruntime;
        let mut lines = Vec::new();

        lines.push(match (&ort.error, &ort.version, &ort.dylib, ort.source) {
            (None, Some(version), Some(dylib), Some(source)) => Line {
                check: "onnxruntime",
                status: Status::Ok,
                detail: format!("{version} at {dylib} (found via {source})"),
            },
            (error, ..) => Line {
                check: "onnxruntime",
                status: Status::Failed,
                detail: error.clone().unwrap_or_else(|| "not loaded".to_owned()),
            },
        });

        lines.push(if ort.ok {
            Line {
                check: "providers",
                status: Status::Ok,
                detail: ort.providers.join(", "),
            }
        } else {
            Line {
                check: "providers",
                status: Status::Skipped,
                detail: "ONNX Runtime not loaded".to_owned(),
            }
        });

        let ep = &self.execution_provider;
        let name = format!("{} ({})", ep.configured, ep.ort_name);
        lines.push(match ep.available {
            None => Line {
                check: "execution provider",
                status: Status::Skipped,
                detail: format!("{name}: ONNX Runtime not loaded"),
            },
            Some(true) => Line {
                check: "execution provider",
                status: Status::Ok,
                detail: format!("{name} is available"),
            },
            Some(false) if ep.allow_cpu_fallback => Line {
                check: "execution provider",
                status: Status::Ok,
                detail: format!(
                    "{name} is not available; models will run on CPU (allow_cpu_fallback = true)"
                ),
            },
            Some(false) => Line {
                check: "execution provider",
                status: Status::Failed,
                detail: format!(
                    "{name} is not available in this ONNX Runtime (it has: {}); set [runtime] \
                     execution_provider to one it has, or allow_cpu_fallback = true",
                    ort.providers.join(", ")
                ),
            },
        });

        let paths = &self.paths;
        for (check, report) in [
            ("data dir", &paths.data_dir),
            ("spool dir", &paths.spool_dir),
            ("database", &paths.database),
        ] {
            lines.push(match &report.error {
                None => Line {
                    check,
                    status: Status::Ok,
                    detail: format!("{} is writable", report.path),
                },
                Some(error) => Line {
                    check,
                    status: Status::Failed,
                    detail: format!("{} is not writable: {error}", report.path),
                },
            });
        }
        let fs = &self.spool_file_system;
        lines.push(Line {
            check: "spool file system",
            status: if fs.safe { Status::Ok } else { Status::Warning },
            detail: fs.detail.clone(),
        });
        lines
    }

    /// The aligned human-readable report.
    fn human(&self) -> String {
        let lines = self.lines();
        let check_width = lines.iter().map(|l| l.check.len() + 1).max().unwrap_or(0);
        let status_width = lines
            .iter()
            .map(|l| l.status.label().len())
            .max()
            .unwrap_or(0);
        let mut out = format!("spinewatch {}\n", self.spinewatch_version);
        for line in &lines {
            let check = format!("{}:", line.check);
            let status = line.status.label();
            out.push_str(&format!(
                "{check:<check_width$} {status:<status_width$} — {}\n",
                line.detail
            ));
        }
        out
    }
}

impl PathReport {
    fn from_check(path: &Path, result: Result<(), String>) -> PathReport {
        PathReport {
            path: path.display().to_string(),
            writable: result.is_ok(),
            error: result.err(),
        }
    }
}

/// Writes a [`DylibSource`] as its stable key (`project_local`), not its label.
fn serialize_source<S: serde::Serializer>(
    source: &Option<DylibSource>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match source {
        Some(source) => serializer.serialize_some(source.key()),
        None => serializer.serialize_none(),
    }
}

fn check_onnxruntime(request: DylibRequest<'_>) -> OrtReport {
    let failed = |error: String| OrtReport {
        ok: false,
        version: None,
        dylib: None,
        source: None,
        providers: Vec::new(),
        error: Some(error),
    };
    let runtime = match Runtime::load(request) {
        Ok(runtime) => runtime,
        Err(e) => return failed(format!("{:#}", anyhow::Error::new(e))),
    };
    let (providers, error) = match runtime.available_providers() {
        Ok(providers) => (providers, None),
        Err(e) => (Vec::new(), Some(format!("{:#}", anyhow::Error::new(e)))),
    };
    OrtReport {
        ok: error.is_none(),
        version: Some(runtime.version.clone()),
        dylib: Some(runtime.dylib.display().to_string()),
        source: Some(runtime.source),
        providers,
        error,
    }
}

/// Creates `dir` if missing, then writes and removes a probe file in it.
fn check_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("could not create directory: {e}"))?;
    let probe = dir.join(format!(".spinewatch-doctor-{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut file| file.write_all(b"spinewatch doctor probe\n"));
    let removed = fs::remove_file(&probe);
    written.map_err(|e| format!("could not write a file in it: {e}"))?;
    removed.map_err(|e| format!("could not remove the probe file {}: {e}", probe.display()))
}

/// The database's directory must be writable (SQLite writes its journal beside the file), and
/// the file itself, if it exists already.
fn check_database(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    check_dir(dir).map_err(|e| format!("its directory {}: {e}", dir.display()))?;
    if path.is_dir() {
        return Err("it is a directory".to_owned());
    }
    if path.exists() {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("could not open it for writing: {e}"))?;
    }
    Ok(())
}
