//! Random study parameters for training and evaluation (issue 4): the domain
//! randomisation of the reference model.
//!
//! A study is drawn from its seed and its [`Split`]. The two splits never share a
//! study: each seeds its own random stream, and for the acquisition parameters that
//! vary continuously (pixel spacing, slice thickness, noise, gantry tilt) they draw
//! from interleaved bands, so an evaluation study is acquired with values no training
//! study had. Anatomy and findings (curvature, bone density, fracture levels, grades
//! and shapes, distractors) are drawn from the same ranges in both: the evaluation
//! measures detection on unseen acquisitions and unseen patients.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use spinewatch_core::truth::DistractorKind;
use spinewatch_core::{GenantGrade, Morphology, VertebraLevel};

use crate::synth::spec::{
    Contrast, Coverage, DistractorSpec, FractureSpec, Kernel, PatientPosition, SynthSpec,
};

/// Which population a study is drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Split {
    /// Studies the model is trained on.
    Train,
    /// Held-out studies of `spinewatch eval`.
    Eval,
}

impl Split {
    /// Salt of the split's random stream.
    fn salt(self) -> u64 {
        match self {
            Self::Train => 0x7472_6169_6e00_0001,
            Self::Eval => 0x6576_616c_0000_0002,
        }
    }

    /// Pixel spacing bands, mm (clinical 0.6-1.0 mm, 512 matrix).
    fn pixel_spacing_bands(self) -> &'static [(f64, f64)] {
        match self {
            Self::Train => &[(0.60, 0.70), (0.78, 0.88), (0.94, 1.00)],
            Self::Eval => &[(0.70, 0.78), (0.88, 0.94)],
        }
    }

    /// Slice (thickness, spacing) choices, mm: thin originals and overlapping
    /// reconstructions.
    fn slices(self) -> &'static [(f64, f64)] {
        match self {
            Self::Train => &[(1.0, 1.0), (1.0, 0.8), (2.0, 2.0), (2.0, 1.5), (3.0, 3.0)],
            Self::Eval => &[(1.25, 1.25), (1.5, 1.0), (2.5, 2.5), (3.0, 2.0)],
        }
    }

    /// Noise bands for the standard kernel, HU.
    fn noise_bands(self) -> &'static [(f64, f64)] {
        match self {
            Self::Train => &[(5.0, 10.0), (14.0, 20.0), (24.0, 30.0)],
            Self::Eval => &[(10.0, 14.0), (20.0, 24.0)],
        }
    }

    /// Gantry tilt bands, degrees (most studies have none).
    fn tilt_bands(self) -> &'static [(f64, f64)] {
        match self {
            Self::Train => &[(-20.0, -12.0), (-6.0, 6.0), (12.0, 20.0)],
            Self::Eval => &[(-12.0, -6.0), (6.0, 12.0)],
        }
    }
}

/// Share of studies with at least one fracture.
const FRACTURED_STUDY_SHARE: f64 = 0.6;
/// Most fractures in one study.
const MAX_FRACTURES: usize = 3;
/// Levels where osteoporotic fractures are drawn: T4-L5 (T1-T3 fractures are rare and
/// usually traumatic).
const FRACTURE_LEVELS: (usize, usize) = (3, 16);
/// Share of studies with a gantry tilt.
const TILTED_SHARE: f64 = 0.15;

/// The parameters of study `seed` of `split`.
pub fn draw(seed: u64, split: Split) -> SynthSpec {
    let mut rng = Pcg64::seed_from_u64(seed ^ split.salt());
    let mut s = SynthSpec::new(seed);
    s.age_years = rng.random_range(50..=95);
    s.kyphosis_deg = Some(rng.random_range(20.0..65.0));
    s.lordosis_deg = Some(rng.random_range(30.0..65.0));
    s.scoliosis_mm = if rng.random_bool(0.25) {
        rng.random_range(3.0..25.0)
    } else {
        0.0
    };
    s.coverage = match rng.random_range(0..4) {
        0 => Coverage {
            first: VertebraLevel::Thoracic(1),
            last: VertebraLevel::Thoracic(12),
        },
        1 => Coverage {
            first: VertebraLevel::Thoracic(11),
            last: VertebraLevel::Lumbar(5),
        },
        _ => Coverage::default(),
    };
    let (thickness, spacing) = pick(&mut rng, split.slices());
    s.slice_thickness_mm = thickness;
    s.slice_spacing_mm = spacing;
    s.pixel_spacing_mm = band(&mut rng, split.pixel_spacing_bands());
    s.noise_hu = band(&mut rng, split.noise_bands());
    s.kernel = pick(&mut rng, &[Kernel::Soft, Kernel::Standard, Kernel::Bone]);
    s.contrast = pick(
        &mut rng,
        &[Contrast::None, Contrast::Arterial, Contrast::Portal],
    );
    s.patient_position = if rng.random_bool(0.2) {
        PatientPosition::Ffs
    } else {
        PatientPosition::Hfs
    };
    s.gantry_tilt_deg = if rng.random_bool(TILTED_SHARE) {
        band(&mut rng, split.tilt_bands())
    } else {
        0.0
    };
    // Findings: fractures on distinct levels, distractors on others.
    let mut levels: Vec<usize> = (FRACTURE_LEVELS.0..=FRACTURE_LEVELS.1).collect();
    let n_fractures = if rng.random_bool(FRACTURED_STUDY_SHARE) {
        rng.random_range(1..=MAX_FRACTURES)
    } else {
        0
    };
    for _ in 0..n_fractures {
        let level = levels.swap_remove(rng.random_range(0..levels.len()));
        s.fractures.push(FractureSpec {
            level: VertebraLevel::from_index(level).expect("fracture level in T1-L5"),
            grade: pick(
                &mut rng,
                &[
                    GenantGrade::Mild,
                    GenantGrade::Moderate,
                    GenantGrade::Severe,
                ],
            ),
            morphology: pick(&mut rng, &Morphology::ALL),
        });
    }
    for _ in 0..rng.random_range(0..=2) {
        let level = levels.swap_remove(rng.random_range(0..levels.len()));
        let level = VertebraLevel::from_index(level).expect("distractor level in T1-L5");
        let kind = pick(
            &mut rng,
            &[
                DistractorKind::SchmorlNode,
                DistractorKind::Osteophyte,
                DistractorKind::PhysiologicalWedging,
            ],
        );
        // Physiological wedging is a mid-thoracic finding.
        if kind == DistractorKind::PhysiologicalWedging && !level.is_thoracic() {
            continue;
        }
        s.distractors.push(DistractorSpec { level, kind });
    }
    s
}

fn pick<T: Copy>(rng: &mut Pcg64, choices: &[T]) -> T {
    choices[rng.random_range(0..choices.len())]
}

/// A value uniform over the union of `bands` (each band weighted by its width).
fn band(rng: &mut Pcg64, bands: &[(f64, f64)]) -> f64 {
    let total: f64 = bands.iter().map(|(a, b)| b - a).sum();
    let mut x = rng.random_range(0.0..total);
    for (a, b) in bands {
        if x < b - a {
            return a + x;
        }
        x -= b - a;
    }
    bands[bands.len() - 1].1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn draws_are_valid_reproducible_and_splits_disjoint() {
        let mut fractured = 0;
        for seed in 0..200 {
            let a = draw(seed, Split::Train);
            a.validate().unwrap();
            assert_eq!(a, draw(seed, Split::Train));
            let e = draw(seed, Split::Eval);
            e.validate().unwrap();
            // Acquisition bands do not overlap.
            let inside =
                |x: f64, bands: &[(f64, f64)]| bands.iter().any(|(lo, hi)| (*lo..*hi).contains(&x));
            assert!(inside(
                a.pixel_spacing_mm,
                Split::Train.pixel_spacing_bands()
            ));
            assert!(!inside(
                e.pixel_spacing_mm,
                Split::Train.pixel_spacing_bands()
            ));
            assert!(!inside(e.noise_hu, Split::Train.noise_bands()));
            assert!(
                !Split::Train
                    .slices()
                    .contains(&(e.slice_thickness_mm, e.slice_spacing_mm))
            );
            fractured += usize::from(!a.fractures.is_empty());
        }
        // About 60 % of studies have a fracture.
        assert!((90..150).contains(&fractured), "{fractured}");
    }
}
