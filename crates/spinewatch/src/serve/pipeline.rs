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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use spinewatch_infer::model::Model;
use spinewatch_infer::{StudyFindings, detect};
use spinewatch_triage::findings::{
    BONE_KEY_IMAGE, CaseFindings, PatientFacts, SOFT_TISSUE_KEY_IMAGE, StudyFacts,
};
use spinewatch_triage::{Outcome, Store, StudyToAnalyse};
use spinewatch_volume::analyse::{self, Analysis, NotAnalysable};
use spinewatch_volume::eligibility;
use spinewatch_volume::reformat::{self, ReformatManifest};
use spinewatch_volume::select::{Rejection, SelectRules};
use spinewatch_volume::spine::Spine;
use spinewatch_volume::{HuVolume, InstanceHeader, SortedSeries};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::telemetry;
use crate::config::UnknownAgePolicy;
use crate::render::{self, Window};

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
            let backlog = blocking({
                let store = store.clone();
                move || set_study_gauges(&store)
            })
            .await?;
            let open = backlog < settings.max_backlog_studies;
            if open != accepting.swap(open, Ordering::Relaxed) {
                tracing::warn!(backlog, open, "ingest backpressure changed");
            }
            metrics::gauge!(telemetry::ACCEPTING).set(if open { 1.0 } else { 0.0 });
        }
    }
}

/// Sets the studies-by-state and backlog gauges from the journal (blocking), and gives
/// the backlog. The scheduler calls it every [`GAUGE_REFRESH`]; the `/metrics` route
/// calls it before each scrape, so that a scrape right after a study's outcome does not
/// show it still in the backlog.
pub fn set_study_gauges(store: &Store) -> spinewatch_triage::Result<u64> {
    let states = store.state_counts()?;
    let backlog = states
        .iter()
        .filter(|(state, _)| state.is_pending())
        .map(|(_, n)| n)
        .sum();
    for (state, n) in states {
        metrics::gauge!(telemetry::STUDIES, "state" => state.as_str()).set(n as f64);
    }
    metrics::gauge!(telemetry::BACKLOG).set(backlog as f64);
    Ok(backlog)
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
        let key_images = match (&analysis.volume, &analysis.spine) {
            (Some(volume), Some(spine)) => {
                self.key_images(&study.study_instance_uid, volume, spine, &flagged)
            }
            _ => Vec::new(),
        };
        let series = analysis.series();
        let study_date = series
            .and_then(|s| s.slices.first())
            .and_then(|h| h.study_date.as_deref())
            .and_then(parse_da);
        Outcome::Positive {
            findings: case_findings(&findings, key_images, series),
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

    /// Writes the key images of a positive study ([`write_key_images`]) below the data
    /// directory; none when it has no parent.
    fn key_images(
        &self,
        study_uid: &str,
        volume: &HuVolume,
        spine: &Spine,
        flagged: &[bool],
    ) -> Vec<String> {
        let Some(data_dir) = self.settings.images_dir.parent() else {
            return Vec::new();
        };
        write_key_images(data_dir, study_uid, volume, spine, flagged)
    }
}

/// The key image file of `window` ([`BONE_KEY_IMAGE`], [`SOFT_TISSUE_KEY_IMAGE`]).
fn key_image_name(window: Window) -> &'static str {
    match window {
        Window::Bone => BONE_KEY_IMAGE,
        Window::SoftTissue => SOFT_TISSUE_KEY_IMAGE,
    }
}

/// Renders the sagittal reformat (computed once) in every window, the located vertebrae
/// marked and the flagged ones boxed in red, to `images/<study key>/<file>` below
/// `data_dir`; returns the paths written, relative to `data_dir`, the bone window's
/// first. One that could not be written is left out (and logged).
fn write_key_images(
    data_dir: &Path,
    study_uid: &str,
    volume: &HuVolume,
    spine: &Spine,
    flagged: &[bool],
) -> Vec<String> {
    let bone = super::key_image_path(study_uid);
    if let Some(dir) = bone.parent().map(|d| data_dir.join(d))
        && let Err(e) = std::fs::create_dir_all(&dir)
    {
        tracing::warn!(error = %e, "could not create the key image folder");
        return Vec::new();
    }
    let r = reformat::sagittal(volume, spine, &ReformatManifest::default());
    let mut written = Vec::new();
    for window in Window::ALL {
        let relative = bone.with_file_name(key_image_name(window));
        match render::sagittal_png(&r, spine, flagged, window, &data_dir.join(&relative)) {
            Ok(()) => written.push(relative.to_string_lossy().into_owned()),
            Err(e) => {
                tracing::warn!(
                    window = ?window,
                    error = %format!("{e:#}"),
                    "could not write a key image"
                );
            }
        }
    }
    written
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

/// The queue's record of the findings, with the facts of the series analysed.
fn case_findings(
    f: &StudyFindings,
    key_images: Vec<String>,
    series: Option<&SortedSeries>,
) -> CaseFindings {
    // The series and the header eligibility was decided on.
    let analysed = series.and_then(|s| Some((s, s.slices.first()?)));
    CaseFindings {
        model_version: f.model_version.clone(),
        execution_provider: f.execution_provider.config_name().to_owned(),
        probability: f.probability,
        vertebrae: f.vertebrae.clone(),
        key_images,
        study: analysed.map(|(s, h)| study_facts(s, h)),
        patient: analysed.map(|(_, h)| patient_facts(h)),
    }
}

/// The study's facts from the series analysed: `h`, the header of its first slice, its
/// geometry, and the age eligibility read from `h` ([`eligibility::age`]).
fn study_facts(series: &SortedSeries, h: &InstanceHeader) -> StudyFacts {
    StudyFacts {
        accession_number: h.accession_number.as_deref().map(str::to_owned),
        study_description: h.study_description.clone(),
        manufacturer: h.manufacturer.clone(),
        scanner_model: h.manufacturer_model_name.clone(),
        station_name: h.station_name.clone(),
        institution: h.institution_name.clone(),
        series_number: h.series_number,
        series_description: h.series_description.clone(),
        slices: series.slices.len(),
        spacing_mm: series.spacing_mm,
        convolution_kernel: h.convolution_kernel.clone(),
        patient_age_years: eligibility::age(h).map(|(years, _)| years),
    }
}

/// The patient's identifiers from a header: the birth date as `YYYY-MM-DD` (none when it
/// is not a valid DA), the sex only when it is one of DICOM's `M`, `F`, `O`.
fn patient_facts(h: &InstanceHeader) -> PatientFacts {
    PatientFacts {
        id: h.patient_id.as_deref().map(str::to_owned),
        name: h.patient_name.as_deref().map(str::to_owned),
        birth_date: h
            .patient_birth_date
            .as_deref()
            .and_then(parse_da)
            .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())),
        sex: h
            .patient_sex
            .as_deref()
            .map(str::to_ascii_uppercase)
            .filter(|s| matches!(s.as_str(), "M" | "F" | "O")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use spinewatch_core::VertebraLevel;
    use spinewatch_core::truth::{GroundTruth, SeriesRole};
    use spinewatch_testkit::synth::spec::Coverage;
    use spinewatch_testkit::synth::{self, FractureSpec, SynthSpec};
    use spinewatch_volume::eligibility::age_from_dates;

    use super::*;

    /// What a small synthetic study (T12-L2, 256 x 256 at 1.5 mm, 2 mm slices, as the
    /// serve tests push) of a 72-year-old with an L1 grade 2 wedge gives the pipeline.
    fn small_study(dir: &Path) -> (GroundTruth, Analysis) {
        let spec = SynthSpec {
            age_years: 72,
            fractures: vec!["L1:2:wedge".parse::<FractureSpec>().unwrap()],
            coverage: Coverage {
                first: VertebraLevel::Thoracic(12),
                last: VertebraLevel::Lumbar(2),
            },
            matrix: 256,
            pixel_spacing_mm: 1.5,
            slice_thickness_mm: 2.0,
            slice_spacing_mm: 2.0,
            ..SynthSpec::new(11)
        };
        let truth = synth::generate(&spec, dir).unwrap();
        let mut analysis = analyse::prepare(&[dir.to_owned()], &SelectRules::default()).unwrap();
        analyse::reconstruct(&mut analysis);
        assert!(
            analysis.not_analysable.is_none(),
            "{:?}",
            analysis.not_analysable
        );
        (truth, analysis)
    }

    /// A decoded 8-bit RGB PNG: width, height, pixels.
    fn decode_png(path: &Path) -> (usize, usize, Vec<u8>) {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
        assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
        buf.truncate(info.buffer_size());
        (info.width as usize, info.height as usize, buf)
    }

    #[test]
    fn case_facts_come_from_the_analysed_series() {
        let dir = tempfile::tempdir().unwrap();
        let (truth, analysis) = small_study(dir.path());
        let series = analysis.series().unwrap();
        let axial = truth
            .series
            .iter()
            .find(|s| s.role == SeriesRole::Axial)
            .unwrap();

        let study = study_facts(series, &series.slices[0]);
        assert_eq!(study.slices, axial.instances);
        assert_eq!(study.spacing_mm, series.spacing_mm);
        // The synthetic grid, to rounding of the positions written as DS.
        for (got, want) in study.spacing_mm.iter().zip([1.5, 1.5, 2.0]) {
            assert!((got - want).abs() < 1e-3, "{:?}", study.spacing_mm);
        }
        assert_eq!(study.patient_age_years, Some(72.0));
        assert_eq!(study.accession_number.as_deref(), Some("A000000011"));
        assert_eq!(study.study_description.as_deref(), Some("CT CHEST ABDOMEN"));
        assert_eq!(study.manufacturer.as_deref(), Some("spinewatch"));
        assert_eq!(study.scanner_model.as_deref(), Some("synthetic phantom"));
        assert_eq!(
            study.scanner().as_deref(),
            Some("spinewatch synthetic phantom")
        );
        assert_eq!(study.station_name.as_deref(), Some("SYNTH01"));
        assert_eq!(study.institution.as_deref(), Some("Synthetic Hospital"));
        let first = &series.slices[0];
        assert_eq!(study.series_number, first.series_number);
        assert!(study.series_number.is_some());
        assert_eq!(study.series_description, first.series_description);
        assert_eq!(study.convolution_kernel, first.convolution_kernel);

        let patient = patient_facts(first);
        assert_eq!(patient.id.as_deref(), Some("SW0000000011"));
        assert_eq!(patient.name.as_deref(), Some("SYNTHETIC^SEED11"));
        assert!(
            matches!(patient.sex.as_deref(), Some("M" | "F")),
            "{:?}",
            patient.sex
        );
        // YYYY-MM-DD of the header's DA, 72 at the study date.
        let birth = patient.birth_date.clone().unwrap();
        let da = first.patient_birth_date.as_deref().unwrap();
        assert_eq!(birth.replace('-', ""), da);
        assert_eq!(
            (birth.len(), &birth[4..5], &birth[7..8]),
            (10, "-", "-"),
            "{birth}"
        );
        assert_eq!(
            age_from_dates(da, first.study_date.as_deref().unwrap()),
            Some(72.0)
        );

        let shown = format!("{patient:?} {study:?} {first:?}");
        for phi in ["SW0000000011", "SEED11", da, &birth, "A000000011"] {
            assert!(!shown.contains(phi), "`{phi}` in {shown}");
        }
    }

    #[test]
    fn patient_facts_drop_what_is_not_a_date_or_a_sex() {
        let dir = tempfile::tempdir().unwrap();
        let (_, analysis) = small_study(dir.path());
        let mut h = analysis.series().unwrap().slices[0].clone();
        h.patient_birth_date = Some(spinewatch_volume::header::Phi::new("1954031"));
        h.patient_sex = Some("f".to_owned());
        let p = patient_facts(&h);
        assert_eq!((p.birth_date, p.sex.as_deref()), (None, Some("F")));
        h.patient_sex = Some("U".to_owned());
        h.patient_id = None;
        let p = patient_facts(&h);
        assert_eq!((p.sex, p.id), (None, None));
    }

    #[test]
    fn key_images_in_the_bone_and_soft_tissue_windows() {
        let dir = tempfile::tempdir().unwrap();
        let (truth, analysis) = small_study(&dir.path().join("study"));
        let (volume, spine) = (
            analysis.volume.as_ref().unwrap(),
            analysis.spine.as_ref().unwrap(),
        );
        let uid = truth.study_instance_uid.as_str();
        let data = dir.path().join("data");
        let flagged: Vec<bool> = spine
            .vertebrae
            .iter()
            .map(|v| v.label == Some(VertebraLevel::Lumbar(1)))
            .collect();
        assert!(flagged.contains(&true), "L1 not located");
        let written = write_key_images(&data, uid, volume, spine, &flagged);
        assert_eq!(
            written,
            [
                format!("images/{uid}/sagittal.png"),
                format!("images/{uid}/sagittal-soft.png")
            ]
        );
        assert_eq!(
            Path::new(&written[0]),
            crate::serve::key_image_path(uid),
            "the bone image is where the server serves it"
        );
        let (bw, bh, bone) = decode_png(&data.join(&written[0]));
        let (sw, sh, soft) = decode_png(&data.join(&written[1]));
        assert_eq!((bw, bh), (sw, sh), "both windows have the same size");
        assert!(bw > 100 && bh > 100, "{bw} x {bh}");
        assert_ne!(bone, soft);

        // Where the reformat is soft tissue (0..=100 HU: muscle, blood, organs), the soft
        // window is much brighter than the bone window: by 32 grey levels at 0 HU and 68
        // at 100 HU. Marked pixels (coloured, the same in both) are left out.
        let r = reformat::sagittal(volume, spine, &ReformatManifest::default());
        let zoom = bw / r.hu.dim().1;
        assert_eq!((bw, bh), (r.hu.dim().1 * zoom, r.hu.dim().0 * zoom));
        let (mut soft_tissue, mut brighter) = (0, 0);
        for ((row, col), &hu) in r.hu.indexed_iter() {
            if !(0.0..=100.0).contains(&hu) {
                continue;
            }
            let i = ((row * zoom) * bw + col * zoom) * 3;
            let (b, s) = (&bone[i..i + 3], &soft[i..i + 3]);
            if b[0] != b[1] || b[1] != b[2] {
                assert_eq!(b, s, "a mark differs between the windows at ({row}, {col})");
                continue;
            }
            soft_tissue += 1;
            assert_eq!(b[0], Window::Bone.grey(f64::from(hu)));
            assert_eq!(s[0], Window::SoftTissue.grey(f64::from(hu)));
            if s[0] >= b[0] + 30 {
                brighter += 1;
            }
        }
        assert!(soft_tissue > 1000, "{soft_tissue} soft-tissue pixels");
        assert_eq!(brighter, soft_tissue);
        // The flagged L1 is boxed in red in both.
        let red = |p: &[u8]| p.chunks(3).filter(|c| *c == [255, 60, 60]).count();
        assert!(red(&bone) > 100, "{} red pixels", red(&bone));
        assert_eq!(red(&bone), red(&soft));
    }

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
