//! Issue 2: heights measured from the generated pixels match the ground truth.
//!
//! The study is written to DICOM, read back with spinewatch-volume, and each vertebral
//! body is measured like a caliper would: along its cranio-caudal axis, through its
//! mid-sagittal plane, at the anterior, middle and posterior lines, between the outer
//! half-maximum edges of the two endplates (a bone threshold set between the endplate
//! peak and the disc next to it).

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::path::Path;

use spinewatch_core::genant::Heights;
use spinewatch_core::truth::{GroundTruth, VertebraTruth};
use spinewatch_core::{GenantGrade, Morphology, Vec3};
use spinewatch_testkit::synth::spec::{PatientPosition, TransferSyntax};
use spinewatch_testkit::synth::{SynthSpec, generate};
use spinewatch_volume::select::{SelectRules, choose};
use spinewatch_volume::{HuVolume, header, series};

/// Acceptance tolerance of a measured height against the truth, mm.
const HEIGHT_TOL_MM: f64 = 1.0;
/// Sampling step along a height line, mm.
const STEP_MM: f64 = 0.1;

fn read_volume(dir: &Path) -> HuVolume {
    let scan = header::scan(&[dir.to_owned()]).unwrap();
    assert!(scan.unreadable.is_empty(), "{:?}", scan.unreadable);
    let choice = choose(&series::group(scan.headers), &SelectRules::default());
    let (_, sorted) = choice.chosen.expect("the axial series is chosen");
    HuVolume::decode(&sorted).unwrap()
}

/// Outer edge of the endplate in direction `dir` (+1 cranial, -1 caudal) from `base`.
fn endplate_edge(vol: &HuVolume, base: Vec3, axis: Vec3, dir: f64, max_mm: f64) -> Option<f64> {
    let profile: Vec<f64> = (0..=(max_mm / STEP_MM) as usize)
        .map(|i| {
            vol.sample(base + axis * (dir * i as f64 * STEP_MM))
                .unwrap_or(f64::NAN)
        })
        .collect();
    // Trabecular level near the centre; the endplate is the first run well above it.
    let core = profile[..(3.0 / STEP_MM) as usize]
        .iter()
        .copied()
        .fold(f64::MIN, f64::max);
    let first_bone = profile.iter().position(|v| *v > core + 250.0)?;
    // Peak of that endplate, then the disc level just beyond it.
    let peak_end = (first_bone + (2.5 / STEP_MM) as usize).min(profile.len() - 1);
    let (peak_i, peak) =
        profile[first_bone..=peak_end]
            .iter()
            .enumerate()
            .fold((0, f64::MIN), |acc, (i, v)| {
                if *v > acc.1 {
                    (first_bone + i, *v)
                } else {
                    acc
                }
            });
    let beyond_end = (peak_i + (2.5 / STEP_MM) as usize).min(profile.len() - 1);
    let disc = profile[peak_i..=beyond_end]
        .iter()
        .copied()
        .fold(f64::MAX, f64::min);
    let half = (peak + disc) / 2.0;
    let k = (peak_i..beyond_end).find(|&k| profile[k] >= half && profile[k + 1] < half)?;
    let frac = (profile[k] - half) / (profile[k] - profile[k + 1]);
    Some((k as f64 + frac) * STEP_MM)
}

fn measure(vol: &HuVolume, v: &VertebraTruth) -> Option<Heights> {
    let line = |offset: f64| {
        let base = v.centre_mm + v.anterior_axis * offset;
        let reach = v.reference_height_mm / 2.0 + 6.0;
        let up = endplate_edge(vol, base, v.superior_axis, 1.0, reach)?;
        let down = endplate_edge(vol, base, v.superior_axis, -1.0, reach)?;
        Some(up + down)
    };
    Some(Heights {
        anterior: line(v.measurement_offsets.anterior_mm)?,
        middle: line(0.0)?,
        posterior: line(v.measurement_offsets.posterior_mm)?,
    })
}

fn check_heights(truth: &GroundTruth, vol: &HuVolume) {
    let mut checked = 0;
    let mut failures = Vec::new();
    println!("level  measured A/M/P (mm)   truth A/M/P (mm)");
    for v in truth.vertebrae.iter().filter(|v| v.in_field_of_view) {
        let t = v.heights_mm;
        let Some(m) = measure(vol, v) else {
            failures.push(format!("{}: an endplate was not found", v.label));
            continue;
        };
        println!(
            "{:<5}  {:5.2} {:5.2} {:5.2}     {:5.2} {:5.2} {:5.2}",
            v.label.to_string(),
            m.anterior,
            m.middle,
            m.posterior,
            t.anterior,
            t.middle,
            t.posterior
        );
        for (name, got, want) in [
            ("anterior", m.anterior, t.anterior),
            ("middle", m.middle, t.middle),
            ("posterior", m.posterior, t.posterior),
        ] {
            if (got - want).abs() > HEIGHT_TOL_MM {
                failures.push(format!(
                    "{} {name} height: measured {got:.2} mm, truth {want:.2} mm",
                    v.label
                ));
            }
        }
        if let Some(morph) = v.morphology {
            let loss = morph.height_loss(m, v.reference_height_mm);
            let (lo, hi) = v.grade.loss_range();
            println!(
                "       {morph} loss measured {loss:.3}, truth {:.3}, grade {}",
                v.height_loss, v.grade
            );
            if !(loss >= lo && loss <= hi) || GenantGrade::from_height_loss(loss) != v.grade {
                failures.push(format!(
                    "{} {morph}: measured loss {loss:.3} outside grade {} range {lo}-{hi}",
                    v.label, v.grade
                ));
            }
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 3, "only {checked} vertebrae in view");
}

/// The acceptance study: `spinewatch synth --seed 1 --age 72 --fracture L1:2:wedge`.
#[test]
fn issue_2_heights_match_truth_on_acceptance_study() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SynthSpec::new(1);
    spec.age_years = 72;
    spec.fractures = vec!["L1:2:wedge".parse().unwrap()];
    let truth = generate(&spec, dir.path()).unwrap();
    assert_eq!(
        truth
            .vertebrae
            .iter()
            .filter(|v| v.in_field_of_view)
            .count(),
        17
    );
    let vol = read_volume(dir.path());
    check_heights(&truth, &vol);
    let l1 = &truth.vertebrae[12];
    assert_eq!(
        (l1.grade, l1.morphology),
        (GenantGrade::Moderate, Some(Morphology::Wedge))
    );
}

/// Every morphology, on an acquisition that exercises geometry: feet first, reversed
/// instance numbers, gantry tilt, overlapping slices, RLE.
#[test]
fn issue_2_heights_match_truth_on_tilted_overlapping_feet_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SynthSpec::new(7);
    spec.age_years = 80;
    spec.coverage = "T10-L3".parse().unwrap();
    spec.fractures = vec![
        "T11:1:biconcave".parse().unwrap(),
        "L1:3:crush".parse().unwrap(),
        "L2:2:biconcave".parse().unwrap(),
        "T12:3:wedge".parse().unwrap(),
    ];
    spec.patient_position = PatientPosition::Ffs;
    spec.reverse_instance_order = true;
    spec.gantry_tilt_deg = 12.0;
    spec.slice_thickness_mm = 1.5;
    spec.slice_spacing_mm = 1.0;
    spec.transfer_syntax = TransferSyntax::Rle;
    let truth = generate(&spec, dir.path()).unwrap();
    let vol = read_volume(dir.path());
    check_heights(&truth, &vol);
}
