//! `spinewatch dataset`: the training set of the reference model (issue 4), made by the
//! same code that serves: each synthetic study is drawn ([`draw`]), written to DICOM,
//! read back, located and reformatted by spinewatch-volume, and every located body's
//! patch is written as the model's input tensor with the ground truth it matches.
//!
//! Output (in `--out`):
//! - `patches.npy`: float32 `[n, 1, rows, columns]`, exactly what the model reads
//!   (`reformat::input_tensor`, windowed by the manifest).
//! - `labels.jsonl`: one object per patch, same order: the study seed, the matched level
//!   (`null` for a false detection), whether it is fractured, its Genant grade,
//!   morphology and height loss, and the distance to the true centre.
//! - `studies.jsonl`: one object per study: its parameters and what the volume stage
//!   made of it (bodies located, or why it was not analysable).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use ndarray::{Array4, Axis, concatenate};
use serde::Serialize;
use spinewatch_core::truth::GroundTruth;
use spinewatch_core::{GenantGrade, Morphology, VertebraLevel};
use spinewatch_testkit::synth::draw::{Split, draw};
use spinewatch_testkit::synth::{SynthSpec, generate};
use spinewatch_volume::analyse::{Analysis, analyse};
use spinewatch_volume::reformat::{self, ReformatManifest};
use spinewatch_volume::select::SelectRules;

/// A located centre this close to a true centre is that vertebra, mm (half a thin
/// thoracic body's pitch).
pub const MATCH_RADIUS_MM: f64 = 12.0;

/// Arguments of `spinewatch dataset`.
#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// Output folder (created).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of studies.
    #[arg(long, default_value_t = 100)]
    pub n: u64,
    /// Seed of the first study; study i has seed `seed + i`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Population to draw from.
    #[arg(long, value_enum, default_value_t = Split::Train)]
    pub split: Split,
}

/// The ground truth matched to one located body.
#[derive(Debug, Clone, Serialize)]
pub struct PatchTruth {
    /// Seed of the study.
    pub seed: u64,
    /// Index of the body in the study's located vertebrae (cranial first).
    pub index: usize,
    /// The true level, `None` for a false detection or a context vertebra.
    pub level: Option<VertebraLevel>,
    /// The name of a matched context vertebra (C6, C7, S1..), not graded.
    pub context: Option<String>,
    /// The level the localisation gave it.
    pub located_label: Option<VertebraLevel>,
    /// Fractured (grade 1 or more).
    pub fractured: bool,
    /// Genant grade (0 unless a T1-L5 vertebra is fractured).
    pub grade: GenantGrade,
    /// Fracture shape.
    pub morphology: Option<Morphology>,
    /// Height loss by the morphology's definition.
    pub height_loss: f64,
    /// Distance from the located to the true centre, mm.
    pub error_mm: Option<f64>,
}

/// One synthetic study through the volume stage.
pub struct SynthStudy {
    /// Its parameters.
    pub spec: SynthSpec,
    /// What the generator knows.
    pub truth: GroundTruth,
    /// What the volume stage made of it.
    pub analysis: Analysis,
    /// Seconds to generate and to analyse.
    pub seconds: (f64, f64),
}

/// Draws study `seed` of `split`, writes it to a temporary folder, and runs the volume
/// stage on it.
pub fn synth_study(seed: u64, split: Split) -> anyhow::Result<SynthStudy> {
    let spec = draw(seed, split);
    let dir = tempfile::tempdir().context("temporary folder for a synthetic study")?;
    let t0 = Instant::now();
    let truth = generate(&spec, dir.path()).with_context(|| format!("synthetic study {seed}"))?;
    let t1 = Instant::now();
    let analysis = analyse(&[dir.path().to_owned()], &SelectRules::default())
        .with_context(|| format!("reading synthetic study {seed}"))?;
    let seconds = ((t1 - t0).as_secs_f64(), t1.elapsed().as_secs_f64());
    Ok(SynthStudy {
        spec,
        truth,
        analysis,
        seconds,
    })
}

/// Matches each located body of `study` to the nearest true vertebra.
pub fn match_truth(study: &SynthStudy) -> Vec<PatchTruth> {
    let Some(spine) = &study.analysis.spine else {
        return Vec::new();
    };
    spine
        .vertebrae
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let nearest = study
                .truth
                .vertebrae
                .iter()
                .map(|t| ((t.centre_mm - v.centre_mm).norm(), t))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let context = study
                .truth
                .context_vertebrae
                .iter()
                .map(|c| ((c.centre_mm - v.centre_mm).norm(), c))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let mut p = PatchTruth {
                seed: study.spec.seed,
                index,
                level: None,
                context: None,
                located_label: v.label,
                fractured: false,
                grade: GenantGrade::Normal,
                morphology: None,
                height_loss: 0.0,
                error_mm: None,
            };
            match (nearest, context) {
                (Some((d, t)), c) if d <= MATCH_RADIUS_MM && c.is_none_or(|c| d <= c.0) => {
                    p.level = Some(t.label);
                    p.fractured = t.grade.is_fracture();
                    p.grade = t.grade;
                    p.morphology = t.morphology;
                    p.height_loss = t.height_loss;
                    p.error_mm = Some(d);
                }
                (_, Some((d, c))) if d <= MATCH_RADIUS_MM => {
                    p.context = Some(c.name.clone());
                    p.error_mm = Some(d);
                }
                _ => {}
            }
            p
        })
        .collect()
}

/// Runs `spinewatch dataset`.
pub fn run(args: &DatasetArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let manifest = ReformatManifest::default();
    let create = |name: &str| -> anyhow::Result<BufWriter<File>> {
        let p = args.out.join(name);
        Ok(BufWriter::new(
            File::create(&p).with_context(|| format!("creating {}", p.display()))?,
        ))
    };
    let mut labels = create("labels.jsonl")?;
    let mut studies = create("studies.jsonl")?;
    let mut tensors: Vec<Array4<f32>> = Vec::new();
    let started = Instant::now();
    for seed in args.seed..args.seed + args.n {
        let study = synth_study(seed, args.split)?;
        let truths = match_truth(&study);
        if let (Some(volume), Some(spine)) = (&study.analysis.volume, &study.analysis.spine) {
            let r = reformat::sagittal(volume, spine, &manifest);
            let patches = reformat::patches(&r, spine);
            tensors.push(reformat::input_tensor(&patches, &manifest));
        }
        for t in &truths {
            serde_json::to_writer(&mut labels, t)?;
            labels.write_all(b"\n")?;
        }
        let in_view = study
            .truth
            .vertebrae
            .iter()
            .filter(|v| v.in_field_of_view)
            .count();
        serde_json::to_writer(
            &mut studies,
            &serde_json::json!({
                "seed": seed,
                "spec": study.spec,
                "in_view": in_view,
                "located": truths.len(),
                "matched": truths.iter().filter(|t| t.level.is_some()).count(),
                "not_analysable": study.analysis.not_analysable,
                "seconds": study.seconds,
            }),
        )?;
        studies.write_all(b"\n")?;
        eprintln!(
            "study {seed}: {} of {in_view} located, {:.1} s",
            truths.len(),
            started.elapsed().as_secs_f64()
        );
    }
    labels.flush()?;
    studies.flush()?;
    let views: Vec<_> = tensors.iter().map(|t| t.view()).collect();
    let all = if views.is_empty() {
        let [h, w] = manifest.patch_size;
        Array4::<f32>::zeros((0, 1, h, w))
    } else {
        concatenate(Axis(0), &views).context("joining patches")?
    };
    let path = args.out.join("patches.npy");
    ndarray_npy::write_npy(&path, &all).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{} patches from {} studies in {:.0} s: {}",
        all.len_of(Axis(0)),
        args.n,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
