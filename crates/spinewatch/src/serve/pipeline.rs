//! From complete studies to outcomes: a scheduler that completes quiet studies (and, on
//! start, resumes unfinished ones), a bounded channel, and workers that claim a study,
//! analyse it on a blocking thread and finish it in the journal.
//!
//! CPU work (decode, resample, spine, reformat, morphometry, inference) never runs on the
//! async runtime: each analysis is one `spawn_blocking` call, and at most `workers` run at
//! once; they share the one model session under a lock held only for the inference. The
//! channel holds at most `workers` studies, so when the workers fall behind, studies stay
//! `received` in the journal (durable) rather than in memory, and the backlog gauge rises
//! until ingest refuses instances with 0xA700.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use spinewatch_infer::model::Model;
use spinewatch_infer::{StudyFindings, detect};
use spinewatch_triage::findings::CaseFindings;
use spinewatch_triage::{Outcome, Store, StudyToAnalyse};
use spinewatch_volume::InstanceHeader;
use spinewatch_volume::analyse::{self, Analysis, NotAnalysable};
use spinewatch_volume::eligibility;
use spinewatch_volume::reformat::{self, ReformatManifest};
use spinewatch_volume::select::{Rejection, SelectRules};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::telemetry;
use crate::config::UnknownAgePolicy;

/// How often the scheduler looks for complete studies.
const TICK: Duration = Duration::from_millis(500);
/// How often the state gauges and the backlog are refreshed from the journal.
const GAUGE_REFRESH: Duration = Duration::from_secs(2);

/// What the pipeline needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Quiet period after a study's last instance.
    pub quiet_period: Duration,
    /// Latest completion after a study's first instance.
    pub force_complete: Duration,
    /// Youngest patient analysed, years.
    pub min_age_years: f64,
    /// Studies with no readable age.
    pub unknown_age: UnknownAgePolicy,
    /// Studies analysed at once.
    pub workers: usize,
    /// Where key images are written (`<data_dir>/images`).
    pub images_dir: PathBuf,
    /// Backlog over which ingest refuses instances.
    pub max_backlog_studies: u64,
}

/// The running pipeline's tasks.
pub struct Pipeline {
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Pipeline {
    /// Starts the scheduler and the workers.
    pub fn start(
        settings: Settings,
        store: Store,
        model: Model,
        accepting: Arc<AtomicBool>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.images_dir)
            .with_context(|| format!("could not create {}", settings.images_dir.display()))?;
        let workers = settings.workers.max(1);
        let (tx, rx) = mpsc::channel::<StudyToAnalyse>(workers);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let analyser = Arc::new(Analyser {
            shape: model.manifest.input.reformat,
            model: Mutex::new(model),
            rules: SelectRules::default(),
            settings: settings.clone(),
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(schedule(
            store.clone(),
            tx,
            settings,
            accepting,
            shutdown.clone(),
        ));
        for _ in 0..workers {
            tasks.spawn(work(
                rx.clone(),
                store.clone(),
                analyser.clone(),
                shutdown.clone(),
            ));
        }
        Ok(Pipeline { tasks })
    }

    /// Waits until every task has stopped (after shutdown), or the first one fails.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        while let Some(done) = self.tasks.join_next().await {
            done.context("a pipeline task panicked")??;
        }
        Ok(())
    }
}

/// Runs a journal call on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> spinewatch_triage::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .context("a journal call panicked")??)
}

/// Resumes unfinished studies, then completes quiet ones every [`TICK`], and keeps the
/// gauges and the ingest backpressure flag current.
async fn schedule(
    store: Store,
    tx: mpsc::Sender<StudyToAnalyse>,
    settings: Settings,
    accepting: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let resumed = blocking({
        let store = store.clone();
        move || store.resume()
    })
    .await
    .context("could not resume unfinished studies")?;
    if !resumed.is_empty() {
        tracing::info!(studies = resumed.len(), "resuming unfinished studies");
    }
    let mut pending = resumed
        .into_iter()
        .collect::<std::collections::VecDeque<_>>();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut refreshed: Option<Instant> = None;
    loop {
        // Hand over what is pending (the channel bounds how far ahead of the workers).
        while let Some(study) = pending.pop_front() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                sent = tx.send(study) => sent.context("the workers stopped")?,
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let (quiet, ceiling) = (settings.quiet_period, settings.force_complete);
        let due = blocking({
            let store = store.clone();
            move || store.complete_due(quiet, ceiling)
        })
        .await
        .context("could not complete quiet studies")?;
        for study in &due {
            tracing::info!(
                generation = study.generation,
                instances = study.paths.len(),
                "study complete"
            );
        }
        pending.extend(due);
        if refreshed.is_none_or(|t| t.elapsed() >= GAUGE_REFRESH) {
            refreshed = Some(Instant::now());
            let (states, backlog) = blocking({
                let store = store.clone();
                move || Ok((store.state_counts()?, store.backlog()?))
            })
            .await?;
            for (state, n) in states {
                metrics::gauge!(telemetry::STUDIES, "state" => state.as_str()).set(n as f64);
            }
            metrics::gauge!(telemetry::BACKLOG).set(backlog as f64);
            let open = backlog < settings.max_backlog_studies;
            if open != accepting.swap(open, Ordering::Relaxed) {
                tracing::warn!(backlog, open, "ingest backpressure changed");
            }
            metrics::gauge!(telemetry::ACCEPTING).set(if open { 1.0 } else { 0.0 });
        }
    }
}

/// Takes complete studies off the channel, one at a time, until shutdown.
async fn work(
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<StudyToAnalyse>>>,
    store: Store,
    analyser: Arc<Analyser>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let next = {
            let mut rx = rx.lock().await;
            tokio::select! {
                _ = shutdown.cancelled() => None,
                s = rx.recv() => s,
            }
        };
        let Some(study) = next else {
            return Ok(());
        };
        let (uid, generation) = (study.study_instance_uid.clone(), study.generation);
        let claimed = blocking({
            let (store, uid) = (store.clone(), uid.clone());
            move || store.claim(&uid, generation)
        })
        .await;
        if let Err(e) = claimed {
            // Re-opened since it was completed (its new generation comes later), or
            // already finished: nothing to do.
            tracing::debug!(error = %format!("{e:#}"), "study not claimed");
            continue;
        }
        let started = Instant::now();
        let outcome = {
            let analyser = analyser.clone();
            tokio::task::spawn_blocking(move || analyser.analyse(&study)).await
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                // A bug, not the study's fault; recorded so that it is not retried for
                // ever, and counted.
                tracing::error!(error = %e, "the analysis of a study panicked");
                metrics::counter!(telemetry::ANALYSIS_FAILURES_TOTAL, "kind" => "panic")
                    .increment(1);
                Outcome::NotAnalysable {
                    reason: "analysis_failed".to_owned(),
                }
            }
        };
        let label = outcome_label(&outcome);
        let reason = match &outcome {
            Outcome::Excluded { reason } | Outcome::NotAnalysable { reason } => {
                Some(reason.clone())
            }
            _ => None,
        };
        let finished = blocking({
            let (store, uid) = (store.clone(), uid.clone());
            move || store.finish(&uid, generation, outcome)
        })
        .await;
        match finished {
            Ok(_) => {
                metrics::counter!(telemetry::STUDIES_TOTAL, "outcome" => label).increment(1);
                match (label, reason) {
                    ("excluded", Some(r)) => {
                        metrics::counter!(telemetry::EXCLUSIONS_TOTAL, "reason" => r).increment(1);
                    }
                    ("not_analysable", Some(r)) => {
                        metrics::counter!(telemetry::NOT_ANALYSABLE_TOTAL, "reason" => r)
                            .increment(1);
                    }
                    _ => {}
                }
                metrics::histogram!(telemetry::STAGE_SECONDS, "stage" => "total")
                    .record(started.elapsed().as_secs_f64());
                tracing::info!(outcome = label, generation, "study analysed");
            }
            Err(e) => {
                // Re-opened meanwhile (its new generation is analysed instead), or the
                // database failed: the study stays where the journal has it and is
                // resumed after a restart.
                tracing::warn!(error = %format!("{e:#}"), "study outcome not recorded");
                metrics::counter!(telemetry::ANALYSIS_FAILURES_TOTAL, "kind" => "journal")
                    .increment(1);
            }
        }
    }
}

/// The metrics label of an outcome.
fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Excluded { .. } => "excluded",
        Outcome::NotAnalysable { .. } => "not_analysable",
        Outcome::Negative => "negative",
        Outcome::Positive { .. } => "positive",
    }
}

/// The analysis of one study, on a blocking thread.
struct Analyser {
    model: Mutex<Model>,
    shape: ReformatManifest,
    rules: SelectRules,
    settings: Settings,
}

impl Analyser {
    fn analyse(&self, study: &StudyToAnalyse) -> Outcome {
        let stage = |name: &'static str, since: Instant| {
            metrics::histogram!(telemetry::STAGE_SECONDS, "stage" => name)
                .record(since.elapsed().as_secs_f64());
        };
        let not_analysable = |reason: &str| Outcome::NotAnalysable {
            reason: reason.to_owned(),
        };
        let started = Instant::now();
        let mut analysis = match analyse::prepare(&study.paths, &self.rules) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "study unreadable");
                return not_analysable("unreadable");
            }
        };
        stage("read", started);
        if let Some(reason) = self.exclusion(&analysis) {
            return Outcome::Excluded {
                reason: reason.to_owned(),
            };
        }
        if let Some(na) = &analysis.not_analysable {
            return not_analysable(&reason_key(na));
        }
        let started = Instant::now();
        analyse::reconstruct(&mut analysis);
        stage("volume", started);
        if let Some(na) = &analysis.not_analysable {
            return not_analysable(&reason_key(na));
        }
        let started = Instant::now();
        let prepared = detect::prepare(&analysis, &self.shape);
        let findings = {
            let Ok(mut model) = self.model.lock() else {
                return not_analysable("analysis_failed");
            };
            detect::detect_prepared(&mut model, &analysis, prepared)
        };
        stage("detect", started);
        let findings = match findings {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "inference failed");
                return not_analysable("inference_failed");
            }
        };
        if let Some(na) = &findings.not_analysable {
            return not_analysable(&reason_key(na));
        }
        if !findings.flagged {
            return Outcome::Negative;
        }
        let flagged: Vec<bool> = findings.vertebrae.iter().map(|v| v.flagged).collect();
        let key_images = self.key_image(&study.study_instance_uid, &analysis, &flagged);
        let study_date = analysis
            .series()
            .and_then(|s| s.slices.first())
            .and_then(|h| h.study_date.as_deref())
            .and_then(parse_da);
        Outcome::Positive {
            findings: case_findings(&findings, key_images),
            study_date,
        }
    }

    /// Why the study is not one spinewatch analyses, if it is not: not CT, too young,
    /// no readable age (unless the policy analyses those).
    fn exclusion(&self, analysis: &Analysis) -> Option<&'static str> {
        let Some(h) = analysis.series().and_then(|s| s.slices.first()) else {
            // No CT image series at all: an MR, a report, a dose summary.
            let not_ct = analysis
                .choice
                .verdicts
                .iter()
                .all(|v| matches!(v.rejection, Some(Rejection::NotCtImage { .. })));
            return not_ct.then_some("not_ct");
        };
        self.eligibility(h)
    }

    fn eligibility(&self, h: &InstanceHeader) -> Option<&'static str> {
        let analyse_unknown = self.settings.unknown_age == UnknownAgePolicy::Analyse;
        eligibility::check_with(h, self.settings.min_age_years, analyse_unknown).reason()
    }

    /// Renders the sagittal reformat with the located vertebrae marked and the flagged
    /// ones boxed in red; its path relative to the data directory, or nothing when it
    /// could not be written.
    fn key_image(&self, study_uid: &str, analysis: &Analysis, flagged: &[bool]) -> Vec<String> {
        let (Some(volume), Some(spine)) = (&analysis.volume, &analysis.spine) else {
            return Vec::new();
        };
        let relative = super::key_image_path(study_uid);
        let Some(data_dir) = self.settings.images_dir.parent() else {
            return Vec::new();
        };
        let path = data_dir.join(&relative);
        let written = path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .map_err(anyhow::Error::from)
            .and_then(|_| {
                let r = reformat::sagittal(volume, spine, &ReformatManifest::default());
                crate::render::sagittal_png(&r, spine, flagged, &path)
            });
        match written {
            Ok(()) => vec![relative.to_string_lossy().into_owned()],
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not write the key image");
                Vec::new()
            }
        }
    }
}

/// The reason key (`snake_case`, a metrics label) of a not-analysable verdict.
fn reason_key(na: &NotAnalysable) -> String {
    serde_json::to_value(na)
        .ok()
        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A DICOM DA value (`YYYYMMDD`).
fn parse_da(s: &str) -> Option<time::Date> {
    let s = s.trim();
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let month: u8 = s[4..6].parse().ok()?;
    let day: u8 = s[6..].parse().ok()?;
    time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()
}

/// The queue's record of the findings.
fn case_findings(f: &StudyFindings, key_images: Vec<String>) -> CaseFindings {
    CaseFindings {
        model_version: f.model_version.clone(),
        execution_provider: f.execution_provider.config_name().to_owned(),
        probability: f.probability,
        vertebrae: f.vertebrae.clone(),
        key_images,
        study: None,
        patient: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn da_values_parse() {
        assert_eq!(
            parse_da("20261121"),
            time::Date::from_calendar_date(2026, time::Month::November, 21).ok()
        );
        assert_eq!(parse_da("2026112"), None);
        assert_eq!(parse_da("20261321"), None);
        assert_eq!(parse_da("2026-11-21"), None);
    }

    #[test]
    fn reason_keys_are_the_serde_tags() {
        assert_eq!(
            reason_key(&NotAnalysable::TooFewSlices { slices: 3 }),
            "too_few_slices"
        );
        assert_eq!(
            reason_key(&NotAnalysable::SeriesTooThick { thickness_mm: 5.0 }),
            "series_too_thick"
        );
    }
}
