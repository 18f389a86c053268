//! `spinewatch serve`: the product as a hospital runs it. The PACS pushes CT studies over
//! DICOM; each instance is durable in the spool and recorded in the journal before the PACS
//! hears success; a study quiet for the quiet period is complete; complete studies are
//! analysed (eligibility, series, spine, model, morphometry) a bounded number at a time;
//! positive studies join the nurses' queue, which they work in the web UI
//! (`spinewatch-web`: sign-in, worklist, case pages, exports, the IT status page; the JSON
//! API with bearer tokens), served with `/metrics`, `/healthz` and `/readyz` over HTTP.
//! Only the three probes answer without signing in; they carry no patient data.
//!
//! ```text
//! PACS --C-STORE--> ingest::Listener --sink--> triage journal (received)
//!                                                 | complete_due (scheduler, 0.5 s)
//!                                                 v
//!                      bounded channel --> workers (claim; CPU work on blocking threads;
//!                                                   the model shared under one lock)
//!                                                 | finish: excluded | not_analysable
//!                                                 v         | negative | positive -> queue
//!             HTTP: web UI + /api (signed in), /metrics, /healthz, /readyz (open)
//! ```
//!
//! Every study goes through the journal's state machine, so a crash loses nothing: on
//! start, studies left `complete` or `analysing` are analysed again (their analysis was
//! never committed), and none that reached an outcome is analysed twice. `retention_days`
//! after its outcome, a study's instance files leave the spool (`retention`).

mod pipeline;
mod retention;
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
    if config.web.session_idle_minutes == 0 || config.web.session_max_hours == 0 {
        anyhow::bail!(
            "invalid [web] session_idle_minutes or session_max_hours: must be at least 1"
        );
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
    let model_facts = spinewatch_web::ModelFacts {
        version: format!(
            "{} {}",
            model.manifest.model.name, model.manifest.model.version
        ),
        execution_provider: model.provider.config_name().to_owned(),
    };
    let web_settings = spinewatch_web::WebSettings {
        session: spinewatch_triage::SessionLimits {
            idle: Duration::from_secs(config.web.session_idle_minutes.saturating_mul(60)),
            max: Duration::from_secs(config.web.session_max_hours.saturating_mul(3600)),
        },
        secure_cookies: config.web.secure_cookies,
    };
    let data_dir = config.storage.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("could not create the data directory {}", data_dir.display()))?;
    let database = config.storage.database_path();
    let store = Store::open(&database)
        .with_context(|| format!("could not open the database {}", database.display()))?;
    let secret = sink::load_or_create_secret(&config.storage.patient_key_secret())?;
    // The spool is the source of truth for instances: record the durable files that have
    // no journal row (a power cut's lost unsynced rows) before the pipeline completes
    // any study and before the listener accepts.
    let recovered = {
        let (store, secret, spool_dir) = (store.clone(), secret.clone(), ingest.spool_dir.clone());
        tokio::task::spawn_blocking(move || sink::recover_spool(&store, &secret, &spool_dir))
            .await
            .context("spool recovery panicked")??
    };
    let shutdown = CancellationToken::new();
    let ready = Arc::new(AtomicBool::new(false));

    // HTTP first, so that /healthz answers while the rest starts.
    let http = tokio::net::TcpListener::bind(config.web.bind)
        .await
        .with_context(|| format!("could not listen for HTTP on {}", config.web.bind))?;
    let http_addr = http.local_addr()?;
    let web = spinewatch_web::WebState {
        store: store.clone(),
        data_dir: data_dir.clone(),
        metrics: {
            let metrics = metrics.clone();
            Arc::new(move || metrics.render())
        },
        model: model_facts,
        settings: web_settings,
    };
    metrics::gauge!(telemetry::SPOOL_MIN_FREE_BYTES).set(ingest.min_free_disk_bytes as f64);
    let app = router(
        web,
        metrics.clone(),
        ready.clone(),
        ingest.spool_dir.clone(),
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

    match spinewatch_ingest::spool::file_system_safety(&ingest.spool_dir) {
        Ok(safety) if !safety.is_safe() => tracing::warn!(
            spool = %ingest.spool_dir.display(),
            "The spool's file system is not journaled: {safety}."
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "The spool's file system could not be checked."),
    }
    let listener = Listener::bind(ingest.clone())
        .await
        .with_context(|| format!("could not listen for DICOM on {}", ingest.bind))?;
    let dicom_addr = listener.local_addr()?;
    let sink = Arc::new(
        sink::JournalSink::new(store.clone(), secret, accepting).spool_is_truth(&recovered),
    );
    let dicom_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { listener.run(sink, shutdown).await })
    };
    let retention_task = tokio::spawn(retention::run(
        store.clone(),
        ingest.spool_dir.clone(),
        config.storage.retention(),
        shutdown.clone(),
    ));
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
    let (dicom, http, retention) = tokio::join!(dicom_task, http_task, retention_task);
    retention.context("spool retention panicked")?;
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

/// The HTTP routes: the web UI and the JSON API (signed in), and the probes (open: no
/// patient data in them).
fn router(
    web: spinewatch_web::WebState,
    metrics: telemetry::Metrics,
    ready: Arc<AtomicBool>,
    spool_dir: PathBuf,
) -> Router {
    let probe = web.store.clone();
    let journal = web.store.clone();
    spinewatch_web::router(web)
        .route(
            "/metrics",
            get(move || {
                let (metrics, store, spool_dir) =
                    (metrics.clone(), journal.clone(), spool_dir.clone());
                async move {
                    // The journal's gauges and the spool's free space as of this scrape;
                    // on a failure the last values stand (and /readyz says the database
                    // is unreachable).
                    let refreshed = tokio::task::spawn_blocking(move || {
                        match spinewatch_ingest::spool::free_bytes(&spool_dir) {
                            Ok(free) => {
                                metrics::gauge!(telemetry::SPOOL_FREE_BYTES).set(free as f64);
                            }
                            Err(e) => tracing::warn!(error = %e, "spool free space not read"),
                        }
                        pipeline::set_study_gauges(&store)
                    })
                    .await;
                    if let Ok(Err(e)) = refreshed {
                        tracing::warn!(error = %format!("{e:#}"), "study gauges not refreshed");
                    }
                    metrics.render()
                }
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
}

/// `images/<study key>/sagittal.png`, relative to the data directory.
pub(crate) fn key_image_path(study_key: &str) -> PathBuf {
    Path::new("images").join(study_key).join("sagittal.png")
}
