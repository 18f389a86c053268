//! `spinewatch serve`: the product as a hospital runs it. The PACS pushes CT studies over
//! DICOM; each instance is durable in the spool and recorded in the journal before the PACS
//! hears success; a study quiet for the quiet period is complete; complete studies are
//! analysed (eligibility, series, spine, model, morphometry) a bounded number at a time;
//! positive studies join the nurses' queue, served with `/metrics`, `/healthz` and
//! `/readyz` over HTTP.
//!
//! ```text
//! PACS --C-STORE--> ingest::Listener --sink--> triage journal (received)
//!                                                 | complete_due (scheduler, 0.5 s)
//!                                                 v
//!                      bounded channel --> workers (claim; CPU work on blocking threads;
//!                                                   the model shared under one lock)
//!                                                 | finish: excluded | not_analysable
//!                                                 v         | negative | positive -> queue
//!                                  HTTP: /api/cases, /metrics, /healthz, /readyz
//! ```
//!
//! Every study goes through the journal's state machine, so a crash loses nothing: on
//! start, studies left `complete` or `analysing` are analysed again (their analysis was
//! never committed), and none that reached an outcome is analysed twice.

mod pipeline;
mod sink;
mod telemetry;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Args;
use spinewatch_ingest::{IngestConfig, Listener};
use spinewatch_triage::Store;
use tokio_util::sync::CancellationToken;

use crate::Cli;
use crate::config::{Config, Overrides};

/// Arguments of `spinewatch serve` (`--config` and `--data-dir` are global).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// DICOM listener address (overrides `[dicom] bind`); port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT")]
    pub dicom_addr: Option<SocketAddr>,
    /// HTTP address (overrides `[web] bind`); port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT")]
    pub http_addr: Option<SocketAddr>,
    /// Quiet period after a study's last instance before it is complete, seconds
    /// (overrides `[study] quiet_period_secs`).
    #[arg(long, value_name = "N")]
    pub quiet_period_secs: Option<u64>,
    /// Check the configuration (file, paths, model, ONNX Runtime) and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// Runs `spinewatch serve`.
pub fn run(cli: &Cli, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?.with_overrides(Overrides {
        data_dir: cli.data_dir.as_deref(),
        dicom_addr: args.dicom_addr,
        http_addr: args.http_addr,
        quiet_period_secs: args.quiet_period_secs,
    });
    let ingest = ingest_config(&config);
    ingest.validate().context("invalid [dicom] section")?;
    if config.study.min_patient_age_years < 0.0 {
        anyhow::bail!("invalid [study] min_patient_age_years: negative");
    }
    // The model is loaded (and checked against its manifest) before anything listens, so
    // a broken installation fails at once rather than after the PACS has sent studies.
    let model = crate::scan::load_model(cli, &config)?;
    if args.check_config {
        println!(
            "configuration valid: DICOM {} on {}, HTTP on {}, data in {}, model {} {} on {}",
            config.dicom.ae_title,
            config.dicom.bind,
            config.web.bind,
            config.storage.data_dir.display(),
            model.manifest.model.name,
            model.manifest.model.version,
            model.provider,
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("spinewatch-io")
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(serve(config, ingest, model))?;
    Ok(ExitCode::SUCCESS)
}

/// The listener's settings from `[dicom]` and the spool directory.
fn ingest_config(config: &Config) -> IngestConfig {
    let d = &config.dicom;
    IngestConfig {
        ae_title: d.ae_title.clone(),
        bind: d.bind,
        allowed_calling_aes: d.allowed_calling_aes.clone(),
        max_associations: d.max_associations,
        max_pdu_bytes: d.max_pdu_bytes,
        association_timeout_secs: d.association_timeout_secs,
        read_timeout_secs: d.read_timeout_secs,
        spool_dir: config.storage.spool_dir(),
        min_free_disk_bytes: d.min_free_disk_bytes,
    }
}

async fn serve(
    config: Config,
    ingest: IngestConfig,
    model: spinewatch_infer::model::Model,
) -> anyhow::Result<()> {
    let metrics = telemetry::install(model.provider)?;
    let data_dir = config.storage.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("could not create the data directory {}", data_dir.display()))?;
    let database = config.storage.database_path();
    let store = Store::open(&database)
        .with_context(|| format!("could not open the database {}", database.display()))?;
    let secret = sink::load_or_create_secret(&config.storage.patient_key_secret())?;
    let shutdown = CancellationToken::new();
    let ready = Arc::new(AtomicBool::new(false));

    // HTTP first, so that /healthz answers while the rest starts.
    let http = tokio::net::TcpListener::bind(config.web.bind)
        .await
        .with_context(|| format!("could not listen for HTTP on {}", config.web.bind))?;
    let http_addr = http.local_addr()?;
    let app = router(
        store.clone(),
        metrics.clone(),
        ready.clone(),
        data_dir.clone(),
    );
    let http_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(http, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        })
    };

    let accepting = Arc::new(AtomicBool::new(true));
    let pipeline = pipeline::Pipeline::start(
        pipeline::Settings {
            quiet_period: Duration::from_secs(config.study.quiet_period_secs),
            force_complete: Duration::from_secs(config.study.force_complete_secs),
            min_age_years: config.study.min_patient_age_years,
            unknown_age: config.study.unknown_age,
            workers: config.model.parallel_studies.max(1),
            images_dir: data_dir.join("images"),
            max_backlog_studies: config.dicom.max_backlog_studies,
        },
        store.clone(),
        model,
        accepting.clone(),
        shutdown.clone(),
    )?;

    let listener = Listener::bind(ingest.clone())
        .await
        .with_context(|| format!("could not listen for DICOM on {}", ingest.bind))?;
    let dicom_addr = listener.local_addr()?;
    let sink = Arc::new(sink::JournalSink::new(store.clone(), secret, accepting));
    let dicom_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { listener.run(sink, shutdown).await })
    };
    ready.store(true, Ordering::SeqCst);
    // The one line a person (or a test) reads to find us; the ports are the bound ones.
    println!(
        "spinewatch serve: DICOM {} on {dicom_addr}, HTTP on http://{http_addr}, data in {}",
        ingest.ae_title,
        data_dir.display()
    );
    tracing::info!(%dicom_addr, %http_addr, "serving");

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        r = &mut Box::pin(pipeline.wait()) => {
            r.context("the pipeline stopped")?;
        }
    }
    ready.store(false, Ordering::SeqCst);
    shutdown.cancel();
    let (dicom, http) = tokio::join!(dicom_task, http_task);
    dicom.context("the DICOM listener panicked")??;
    http.context("the HTTP server panicked")??;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM (systemd, docker stop).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGTERM handler; Ctrl-C only");
                    if let Err(e) = ctrl_c.await {
                        tracing::warn!(error = %e, "no Ctrl-C handler either");
                    }
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    if let Err(e) = ctrl_c.await {
        tracing::warn!(error = %e, "no Ctrl-C handler");
    }
}

/// The HTTP routes: the queue's API, metrics, health, and the key images.
fn router(
    store: Store,
    metrics: telemetry::Metrics,
    ready: Arc<AtomicBool>,
    data_dir: PathBuf,
) -> Router {
    let probe = store.clone();
    spinewatch_triage::api::router(store)
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let (ready, store) = (ready.clone(), probe.clone());
                async move {
                    let db = tokio::task::spawn_blocking(move || store.backlog())
                        .await
                        .is_ok_and(|r| r.is_ok());
                    match (ready.load(Ordering::SeqCst), db) {
                        (true, true) => (StatusCode::OK, "ready\n"),
                        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
                        (true, false) => {
                            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
                        }
                    }
                }
            }),
        )
        .route(
            "/images/{study}/{file}",
            get(move |path| key_image(data_dir.join("images"), path)),
        )
}

/// A key image written by the pipeline (`images/<study key>/<file>.png`).
async fn key_image(
    dir: PathBuf,
    axum::extract::Path((study, file)): axum::extract::Path<(String, String)>,
) -> Result<([(axum::http::header::HeaderName, &'static str); 1], Vec<u8>), StatusCode> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !s.starts_with('.')
    };
    if !plain(&study) || !plain(&file) || !file.ends_with(".png") {
        return Err(StatusCode::NOT_FOUND);
    }
    let path: PathBuf = dir.join(&study).join(&file);
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(([(axum::http::header::CONTENT_TYPE, "image/png")], bytes)),
        Err(_) => Err(StatusCode::NOT_FOUND),
    }
}

/// `images/<study key>/sagittal.png`, relative to the data directory.
pub(crate) fn key_image_path(study_key: &str) -> PathBuf {
    Path::new("images").join(study_key).join("sagittal.png")
}
