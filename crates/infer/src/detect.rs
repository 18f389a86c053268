//! Detection: a study's volume-stage analysis in, typed findings out.
//!
//! ```text
//! Analysis (volume, spine) --reformat::sagittal (the model's reformat)--> SagittalReformat
//!   --reformat::patches + input_tensor--> [n, 1, rows, cols] --Model::predict--> probabilities
//!   + morphometry::assess (heights from the volume) --> StudyFindings
//! ```
//!
//! A study is flagged when any vertebra's fracture probability reaches the model's
//! operating threshold; its probability is the largest vertebra probability. Each
//! vertebra carries the model's grade (the most probable of grades 0-3, reported as
//! 0 below the threshold) beside the morphometric grade from its measured heights, so a
//! nurse sees why a level was flagged.

use serde::Serialize;
use spinewatch_core::GenantGrade;
pub use spinewatch_core::VertebraFinding;
use spinewatch_volume::analyse::{Analysis, NotAnalysable};
use spinewatch_volume::morphometry;
use spinewatch_volume::reformat::{self, ReformatManifest};

use crate::model::{GRADES, Model};
use crate::{ExecutionProvider, Result};

/// What spinewatch found in one study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyFindings {
    /// Study Instance UID (`None` when the files carry none).
    pub study_instance_uid: Option<String>,
    /// Whether the study goes to the nurses' worklist.
    pub flagged: bool,
    /// Largest vertebra fracture probability (0 when not analysable).
    pub probability: f64,
    /// Why the study could not be analysed.
    pub not_analysable: Option<NotAnalysable>,
    /// Per located vertebra, cranial first.
    pub vertebrae: Vec<VertebraFinding>,
    /// Model name and version.
    pub model_version: String,
    /// Execution provider that ran the model.
    pub execution_provider: ExecutionProvider,
}

/// The model-independent half of detection: the model's input tensor and the
/// morphometry, computed without holding the model (so that studies running in parallel
/// share one session only for the inference itself).
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `[n, 1, rows, columns]`, one patch per located vertebra (cranial first).
    pub tensor: ndarray::Array4<f32>,
    /// Morphometry per located vertebra.
    pub morphometry: Vec<Option<morphometry::Morphometry>>,
}

/// Reformats `analysis`'s spine as `shape` says and measures its vertebrae; `None` when
/// the study has no spine.
pub fn prepare(analysis: &Analysis, shape: &ReformatManifest) -> Option<Prepared> {
    let (volume, spine) = (analysis.volume.as_ref()?, analysis.spine.as_ref()?);
    let r = reformat::sagittal(volume, spine, shape);
    let patches = reformat::patches(&r, spine);
    Some(Prepared {
        tensor: reformat::input_tensor(&patches, shape),
        morphometry: morphometry::assess(volume, spine),
    })
}

/// Runs the model on `analysis` (already through the volume stage).
pub fn detect(model: &mut Model, analysis: &Analysis) -> Result<StudyFindings> {
    let prepared = prepare(analysis, &model.manifest.input.reformat);
    detect_prepared(model, analysis, prepared)
}

/// Runs the model on what [`prepare`] made of `analysis`.
pub fn detect_prepared(
    model: &mut Model,
    analysis: &Analysis,
    prepared: Option<Prepared>,
) -> Result<StudyFindings> {
    let mut out = StudyFindings {
        study_instance_uid: analysis.scan_summary.study_instance_uids.first().cloned(),
        flagged: false,
        probability: 0.0,
        not_analysable: analysis.not_analysable.clone(),
        vertebrae: Vec::new(),
        model_version: format!(
            "{} {}",
            model.manifest.model.name, model.manifest.model.version
        ),
        execution_provider: model.provider,
    };
    let (Some(spine), Some(prepared)) = (&analysis.spine, prepared) else {
        return Ok(out);
    };
    let prediction = model.predict(prepared.tensor.view())?;
    let morph = prepared.morphometry;
    let threshold = model.manifest.thresholds.vertebra;
    for (i, v) in spine.vertebrae.iter().enumerate() {
        let p = f64::from(prediction.probability[i]);
        let flagged = p >= threshold;
        let grade = if flagged {
            // The most probable fracture grade (1-3): the vertebra is flagged.
            let row = prediction.grades.row(i);
            let k = (1..GRADES)
                .max_by(|a, b| row[*a].total_cmp(&row[*b]))
                .unwrap_or(1);
            GenantGrade::try_from(k as u8).unwrap_or(GenantGrade::Mild)
        } else {
            GenantGrade::Normal
        };
        let m = morph.get(i).copied().flatten();
        out.vertebrae.push(VertebraFinding {
            label: v.label,
            centre_mm: v.centre_mm,
            probability: p,
            flagged,
            grade,
            morphometry_grade: m.map(|m| m.grade),
            heights_mm: m.map(|m| m.heights_mm),
            height_loss: m.map(|m| m.height_loss),
        });
        out.probability = out.probability.max(p);
        out.flagged |= flagged;
    }
    Ok(out)
}
