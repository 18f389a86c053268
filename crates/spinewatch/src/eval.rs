//! `spinewatch eval`: the model and the whole path measured on held-out synthetic
//! studies (drawn from the evaluation split: seeds and acquisition ranges no training
//! study had), through the same code as `scan`.
//!
//! A study is positive when a vertebra in its field of view has a Genant grade 1-3
//! fracture. Study score: the largest vertebra probability. Vertebra scores: each true
//! T1-L5 vertebra in view takes the probability of the located body matched to it
//! (within [`MATCH_RADIUS_MM`]); one not located scores 0 (a missed fracture is
//! missed). Sensitivity and specificity are at the model's operating threshold.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use spinewatch_core::GenantGrade;
use spinewatch_infer::detect;
use spinewatch_testkit::synth::draw::Split;
use spinewatch_volume::eligibility;

use crate::Cli;
use crate::config::Config;
use crate::dataset::{MATCH_RADIUS_MM, synth_study};
use crate::scan::load_model;

/// Arguments of `spinewatch eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Number of held-out studies.
    #[arg(long, default_value_t = 200)]
    pub n: u64,
    /// Seed of the first study (study i has seed `seed + i`, evaluation split).
    #[arg(long, default_value_t = 20261121)]
    pub seed: u64,
    /// Print one JSON object (with the per-study rows) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One evaluated study.
#[derive(Debug, Clone, Serialize)]
pub struct StudyRow {
    /// Its seed.
    pub seed: u64,
    /// Worst true grade in view.
    pub true_grade: GenantGrade,
    /// Study score.
    pub probability: f64,
    /// Flagged at the operating threshold.
    pub flagged: bool,
    /// Why it was not analysed.
    pub not_analysable: Option<String>,
    /// True vertebrae in view, located (matched) ones.
    pub vertebrae: (usize, usize),
}

/// Sensitivity of a subgroup.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Positives in the group.
    pub n: usize,
    /// Flagged among them.
    pub detected: usize,
    /// detected / n.
    pub sensitivity: Option<f64>,
}

/// What `eval` reports.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Studies generated.
    pub studies: usize,
    /// Seed of the first.
    pub seed: u64,
    /// Model name and version.
    pub model_version: String,
    /// Operating threshold (vertebra probability).
    pub threshold: f64,
    /// Study-level AUC (any fracture vs none).
    pub study_auc: Option<f64>,
    /// Vertebra-level AUC over true vertebrae in view.
    pub vertebra_auc: Option<f64>,
    /// Study sensitivity at the threshold (any fracture).
    pub sensitivity: Option<f64>,
    /// Study specificity at the threshold.
    pub specificity: Option<f64>,
    /// Study sensitivity for studies whose worst fracture is grade 2-3.
    pub sensitivity_grade_2_3: Option<f64>,
    /// Study sensitivity by worst grade (1, 2, 3).
    pub study_sensitivity_by_grade: BTreeMap<String, Group>,
    /// Vertebra sensitivity by grade.
    pub vertebra_sensitivity_by_grade: BTreeMap<String, Group>,
    /// Vertebra sensitivity by morphology.
    pub vertebra_sensitivity_by_morphology: BTreeMap<String, Group>,
    /// Vertebra specificity (normal vertebrae not flagged).
    pub vertebra_specificity: Option<f64>,
    /// Share of studies not analysable.
    pub not_analysable_rate: f64,
    /// Counts by reason.
    pub not_analysable_reasons: BTreeMap<String, usize>,
    /// True vertebrae in view that were located.
    pub located_rate: f64,
    /// Morphometry: median and largest height error on located vertebrae, mm.
    pub height_error_mm: Option<(f64, f64)>,
    /// Morphometric grade equal to the true grade, share of measured vertebrae.
    pub morphometry_grade_agreement: Option<f64>,
    /// Seconds in all.
    pub seconds: f64,
    /// Per study.
    pub rows: Vec<StudyRow>,
}

/// Area under the ROC curve (Mann-Whitney, ties count half); `None` without both classes.
pub fn auc(scores: &[(f64, bool)]) -> Option<f64> {
    let pos: Vec<f64> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
    let neg: Vec<f64> = scores.iter().filter(|s| !s.1).map(|s| s.0).collect();
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut wins = 0.0;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (pos.len() * neg.len()) as f64)
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn group(entries: &mut BTreeMap<String, Group>, key: String, detected: bool) {
    let g = entries.entry(key).or_insert(Group {
        n: 0,
        detected: 0,
        sensitivity: None,
    });
    g.n += 1;
    g.detected += usize::from(detected);
    g.sensitivity = ratio(g.detected, g.n);
}

/// Runs `spinewatch eval`.
pub fn run(cli: &Cli, args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    let model = Mutex::new(load_model(cli, &config)?);
    let started = Instant::now();
    let (threshold, model_version) = {
        let m = model
            .lock()
            .map_err(|_| anyhow::anyhow!("model lock poisoned"))?;
        (
            m.manifest.thresholds.vertebra,
            format!("{} {}", m.manifest.model.name, m.manifest.model.version),
        )
    };
    let mut rows = Vec::new();
    let mut study_scores = Vec::new();
    let mut vertebra_scores = Vec::new();
    let mut by_grade = BTreeMap::new();
    let mut v_by_grade = BTreeMap::new();
    let mut v_by_morph = BTreeMap::new();
    let (mut normal_v, mut normal_v_clear) = (0usize, 0usize);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let (mut in_view_total, mut located_total) = (0usize, 0usize);
    let mut height_errors = Vec::new();
    let (mut morph_measured, mut morph_agree) = (0usize, 0usize);
    for seed in args.seed..args.seed + args.n {
        let study = synth_study(seed, Split::Eval)?;
        let eligible = study
            .analysis
            .series()
            .and_then(|s| s.slices.first())
            .is_none_or(|h| eligibility::check(h, false).is_eligible());
        anyhow::ensure!(eligible, "synthetic study {seed} is not eligible");
        let findings = {
            let mut m = model
                .lock()
                .map_err(|_| anyhow::anyhow!("model lock poisoned"))?;
            detect::detect(&mut m, &study.analysis)?
        };
        let in_view: Vec<_> = study
            .truth
            .vertebrae
            .iter()
            .filter(|v| v.in_field_of_view)
            .collect();
        let true_grade = in_view
            .iter()
            .map(|v| v.grade)
            .max()
            .unwrap_or(GenantGrade::Normal);
        let positive = true_grade.is_fracture();
        study_scores.push((findings.probability, positive));
        if positive {
            group(
                &mut by_grade,
                format!("grade_{}", true_grade.number()),
                findings.flagged,
            );
        }
        if let Some(n) = &findings.not_analysable {
            let key = serde_json::to_value(n)?
                .get("reason")
                .and_then(|r| r.as_str())
                .unwrap_or("unknown")
                .to_owned();
            *reasons.entry(key).or_default() += 1;
        }
        // Vertebrae: each true one in view, scored by its matched finding.
        let mut located = 0;
        for t in &in_view {
            let matched = findings
                .vertebrae
                .iter()
                .map(|f| ((f.centre_mm - t.centre_mm).norm(), f))
                .filter(|(d, _)| *d <= MATCH_RADIUS_MM)
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, f)| f);
            let (p, flagged) = matched.map_or((0.0, false), |f| (f.probability, f.flagged));
            located += usize::from(matched.is_some());
            vertebra_scores.push((p, t.grade.is_fracture()));
            if t.grade.is_fracture() {
                group(
                    &mut v_by_grade,
                    format!("grade_{}", t.grade.number()),
                    flagged,
                );
                if let Some(m) = t.morphology {
                    group(&mut v_by_morph, m.to_string(), flagged);
                }
            } else {
                normal_v += 1;
                normal_v_clear += usize::from(!flagged);
            }
            if let Some(h) = matched.and_then(|f| f.heights_mm) {
                let e = &t.heights_mm;
                height_errors.extend([
                    (h.anterior - e.anterior).abs(),
                    (h.middle - e.middle).abs(),
                    (h.posterior - e.posterior).abs(),
                ]);
            }
            if let Some(g) = matched.and_then(|f| f.morphometry_grade) {
                morph_measured += 1;
                morph_agree += usize::from(g == t.grade);
            }
        }
        in_view_total += in_view.len();
        located_total += located;
        rows.push(StudyRow {
            seed,
            true_grade,
            probability: findings.probability,
            flagged: findings.flagged,
            not_analysable: findings.not_analysable.as_ref().map(|n| n.to_string()),
            vertebrae: (in_view.len(), located),
        });
        if !args.json {
            eprintln!(
                "study {seed}: grade {} p {:.3} {} ({}/{} located)",
                true_grade.number(),
                findings.probability,
                if findings.flagged { "flagged" } else { "-" },
                located,
                in_view.len()
            );
        }
    }
    let flagged_pos = rows
        .iter()
        .filter(|r| r.true_grade.is_fracture() && r.flagged)
        .count();
    let pos = rows.iter().filter(|r| r.true_grade.is_fracture()).count();
    let neg_clear = rows
        .iter()
        .filter(|r| !r.true_grade.is_fracture() && !r.flagged)
        .count();
    let neg = rows.len() - pos;
    let severe = rows
        .iter()
        .filter(|r| r.true_grade >= GenantGrade::Moderate)
        .count();
    let severe_found = rows
        .iter()
        .filter(|r| r.true_grade >= GenantGrade::Moderate && r.flagged)
        .count();
    height_errors.sort_by(f64::total_cmp);
    let report = EvalReport {
        studies: rows.len(),
        seed: args.seed,
        model_version,
        threshold,
        study_auc: auc(&study_scores),
        vertebra_auc: auc(&vertebra_scores),
        sensitivity: ratio(flagged_pos, pos),
        specificity: ratio(neg_clear, neg),
        sensitivity_grade_2_3: ratio(severe_found, severe),
        study_sensitivity_by_grade: by_grade,
        vertebra_sensitivity_by_grade: v_by_grade,
        vertebra_sensitivity_by_morphology: v_by_morph,
        vertebra_specificity: ratio(normal_v_clear, normal_v),
        not_analysable_rate: reasons.values().sum::<usize>() as f64 / rows.len().max(1) as f64,
        not_analysable_reasons: reasons,
        located_rate: ratio(located_total, in_view_total).unwrap_or(0.0),
        height_error_mm: (!height_errors.is_empty()).then(|| {
            (
                height_errors[height_errors.len() / 2],
                height_errors[height_errors.len() - 1],
            )
        }),
        morphometry_grade_agreement: ratio(morph_agree, morph_measured),
        seconds: started.elapsed().as_secs_f64(),
        rows,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let mut summary = serde_json::to_value(&report)?;
        if let Some(o) = summary.as_object_mut() {
            o.remove("rows");
        }
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half() {
        assert_eq!(auc(&[(0.9, true), (0.1, false)]), Some(1.0));
        assert_eq!(auc(&[(0.1, true), (0.9, false)]), Some(0.0));
        assert_eq!(auc(&[(0.5, true), (0.5, false)]), Some(0.5));
        assert_eq!(auc(&[(0.5, true)]), None);
        let s = [(0.8, true), (0.4, true), (0.6, false), (0.2, false)];
        assert_eq!(auc(&s), Some(0.75));
    }
}
