//! `spinewatch scan`: the whole offline path for one or more studies (each PATH a folder
//! of one study's DICOM files): eligibility, series choice, reconstruction, spine,
//! reformat, model, morphometry; findings or the reason a study was not analysed.
//!
//! For retrospective audits of an archive. The eligibility rules are `serve`'s (CT, age
//! 50 or more), so the output shows what would have been flagged; `--all` analyses every
//! CT study whatever the age. Studies are analysed `[model] parallel_studies` at a time;
//! the model runs one batch at a time between them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use spinewatch_infer::model::{Model, SessionOptions};
use spinewatch_infer::runtime::{DylibRequest, Runtime};
use spinewatch_infer::{StudyFindings, detect};

use spinewatch_volume::analyse;
use spinewatch_volume::eligibility::{self, Eligibility};
use spinewatch_volume::reformat::ReformatManifest;
use spinewatch_volume::select::SelectRules;

use crate::Cli;
use crate::config::Config;

/// Arguments of `spinewatch scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Study folders (each one study's DICOM files, read recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Analyse every CT study whatever the patient's age (anonymised archives often have
    /// none).
    #[arg(long)]
    pub all: bool,
    /// Print one JSON object per study (one per line) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One study's result.
#[derive(Debug, Serialize)]
pub struct ScanResult {
    /// The folder read.
    pub path: PathBuf,
    /// Whether the study is one spinewatch analyses, and why not.
    pub eligibility: Option<Eligibility>,
    /// The findings (not flagged, with no vertebrae, when not eligible).
    #[serde(flatten)]
    pub findings: StudyFindings,
    /// Wall time for the study, s.
    pub seconds: f64,
}

/// Loads the configured model on the configured provider.
pub fn load_model(cli: &Cli, config: &Config) -> anyhow::Result<Model> {
    let runtime = Runtime::load(DylibRequest {
        flag: cli.ort_dylib.as_deref(),
        config: config.runtime.ort_dylib.as_deref(),
    })?;
    let options = SessionOptions {
        provider: config.runtime.execution_provider,
        allow_cpu_fallback: config.runtime.allow_cpu_fallback,
        threads: config.model.threads,
        batch_size: config.model.batch_size,
    };
    Model::load(runtime, &config.model.manifest, options)
        .with_context(|| format!("loading the model {}", config.model.manifest.display()))
}

/// Analyses one study with `model` (locked only while it runs); `shape` is the model's
/// reformat (its manifest's `[input.reformat]`).
pub fn scan_study(
    path: &Path,
    model: &Mutex<Model>,
    shape: &ReformatManifest,
    all_ages: bool,
    rules: &SelectRules,
) -> anyhow::Result<ScanResult> {
    let started = Instant::now();
    let mut analysis = analyse::prepare(&[path.to_owned()], rules)
        .with_context(|| format!("reading {}", path.display()))?;
    let eligibility = analysis
        .series()
        .and_then(|s| s.slices.first())
        .map(|h| eligibility::check(h, all_ages));
    let eligible = eligibility.as_ref().is_none_or(Eligibility::is_eligible);
    if eligible {
        analyse::reconstruct(&mut analysis);
    }
    // Reformat and morphometry outside the lock; only the inference shares the model.
    let prepared = detect::prepare(&analysis, shape);
    let findings = {
        let mut m = model
            .lock()
            .map_err(|_| anyhow::anyhow!("model lock poisoned"))?;
        detect::detect_prepared(&mut m, &analysis, prepared)?
    };
    Ok(ScanResult {
        path: path.to_owned(),
        eligibility,
        findings,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Runs `spinewatch scan`.
pub fn run(cli: &Cli, args: &ScanArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    let model = load_model(cli, &config)?;
    let shape = model.manifest.input.reformat;
    let model = Mutex::new(model);
    let rules = SelectRules::default();
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<anyhow::Result<ScanResult>>>> =
        args.paths.iter().map(|_| Mutex::new(None)).collect();
    let workers = config
        .model
        .parallel_studies
        .clamp(1, args.paths.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = args.paths.get(i) else { break };
                    let r = scan_study(path, &model, &shape, args.all, &rules);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    let mut failed = false;
    for slot in results {
        let r = slot
            .into_inner()
            .map_err(|_| anyhow::anyhow!("result lock poisoned"))?
            .context("a study was not scanned")?;
        match r {
            Ok(r) if args.json => println!("{}", serde_json::to_string(&r)?),
            Ok(r) => print_text(&r),
            Err(e) => {
                failed = true;
                eprintln!("error: {e:#}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_text(r: &ScanResult) {
    let f = &r.findings;
    let uid = f
        .study_instance_uid
        .as_deref()
        .unwrap_or("(no Study Instance UID)");
    println!("{}  {uid}", r.path.display());
    if let Some(reason) = r.eligibility.as_ref().and_then(Eligibility::reason) {
        println!("  not eligible: {reason}");
        return;
    }
    if let Some(n) = &f.not_analysable {
        println!("  not analysable: {n}");
        return;
    }
    println!(
        "  {}: probability {:.3} ({} on {}, {:.1} s)",
        if f.flagged { "FLAGGED" } else { "not flagged" },
        f.probability,
        f.model_version,
        f.execution_provider,
        r.seconds
    );
    for v in &f.vertebrae {
        let label = v.label.map_or("?".to_owned(), |l| l.to_string());
        let heights = v.heights_mm.map_or("heights n/a".to_owned(), |h| {
            format!(
                "Ha {:.1} Hm {:.1} Hp {:.1} mm",
                h.anterior, h.middle, h.posterior
            )
        });
        println!(
            "  {label:>4}  p {:.3}{}  model grade {}  morphometry grade {}  {heights}",
            v.probability,
            if v.flagged { " *" } else { "  " },
            v.grade,
            v.morphometry_grade
                .map_or("-".to_owned(), |g| g.to_string()),
        );
    }
}
