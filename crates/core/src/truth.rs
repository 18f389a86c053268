//! Ground truth written beside a synthetic study (`ground_truth.json`).
//!
//! The synthetic generator knows every vertebra it drew; this is what it knows, in the
//! same patient frame (LPS, mm) as the DICOM it wrote, so that tests, training and
//! evaluation compare against exact values.
//!
//! Heights are measured along [`VertebraTruth::superior_axis`] through the mid-sagittal
//! plane of the body, at [`VertebraTruth::anterior_axis`] offsets given by
//! [`MeasurementOffsets`] from the centre, between the outer surfaces of the endplates.

use serde::{Deserialize, Serialize};

use crate::genant::Heights;
use crate::{GenantGrade, Morphology, Uid, Vec3, VertebraLevel};

/// Schema identifier of [`GroundTruth`].
pub const GROUND_TRUTH_SCHEMA: &str = "spinewatch.ground_truth/1";

/// Everything the generator knows about one synthetic study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Always [`GROUND_TRUTH_SCHEMA`].
    pub schema: String,
    /// Generator name and version.
    pub generator: String,
    /// Seed the study was generated from.
    pub seed: u64,
    /// Study Instance UID of every series written.
    pub study_instance_uid: Uid,
    /// Patient age at the study date, in years.
    pub patient_age_years: u16,
    /// Mean HU of trabecular bone (the bone-density parameter).
    pub trabecular_hu: f64,
    /// The series written, main axial series first.
    pub series: Vec<SeriesTruth>,
    /// Every vertebra of the phantom, T1 first (also those outside the scanned range).
    pub vertebrae: Vec<VertebraTruth>,
    /// Findings that look abnormal but are not fractures.
    pub distractors: Vec<DistractorTruth>,
    /// Vertebrae drawn beyond T1-L5 for context (C6, C7, the sacral segments): not
    /// graded, but a located body there is no false detection.
    #[serde(default)]
    pub context_vertebrae: Vec<ContextVertebraTruth>,
}

/// A vertebra beyond T1-L5 in the phantom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextVertebraTruth {
    /// Anatomical name: C6, C7, S1..S4.
    pub name: String,
    /// Centre of its body, LPS mm.
    pub centre_mm: Vec3,
}

/// Role of a series in a synthetic study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesRole {
    /// The thin axial series the pipeline should choose.
    Axial,
    /// A thick (5 mm) axial reconstruction of the same acquisition.
    ThickAxial,
    /// A projection scout (ImageType ORIGINAL\PRIMARY\LOCALIZER).
    Localizer,
    /// A dose report stored as a Secondary Capture image.
    DoseReport,
}

/// One series written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesTruth {
    /// What the series is.
    pub role: SeriesRole,
    /// Series Instance UID.
    pub series_instance_uid: Uid,
    /// Folder (relative to the study folder) holding its files.
    pub directory: String,
    /// Number of instances (files).
    pub instances: usize,
    /// Transfer syntax UID the files were written in.
    pub transfer_syntax_uid: String,
    /// Slice thickness, mm (0 for projections and captures).
    pub slice_thickness_mm: f64,
}

/// Where heights are measured, as offsets along the anterior axis from the centre.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasurementOffsets {
    /// Offset of the anterior height line (positive: anterior), mm.
    pub anterior_mm: f64,
    /// Offset of the posterior height line (negative: posterior), mm.
    pub posterior_mm: f64,
}

/// One vertebra of the phantom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VertebraTruth {
    /// Level, T1..L5.
    pub label: VertebraLevel,
    /// Centre of the vertebral body: mid-point of the middle height line (LPS, mm).
    pub centre_mm: Vec3,
    /// Unit vector along the body's cranio-caudal axis, pointing cranially.
    pub superior_axis: Vec3,
    /// Unit vector in the mid-sagittal plane of the body, pointing anteriorly.
    pub anterior_axis: Vec3,
    /// Antero-posterior depth of the body, mm.
    pub depth_mm: f64,
    /// Transverse width of the body, mm.
    pub width_mm: f64,
    /// Anterior, middle and posterior heights, mm.
    pub heights_mm: Heights,
    /// Where those heights are measured.
    pub measurement_offsets: MeasurementOffsets,
    /// Posterior height this vertebra would have without a fracture, mm (the height
    /// expected from its neighbours).
    pub reference_height_mm: f64,
    /// Height loss by the morphology's definition (wedge if none), fraction.
    pub height_loss: f64,
    /// Genant grade (0 for a normal vertebra).
    pub grade: GenantGrade,
    /// Fracture morphology, if fractured.
    pub morphology: Option<Morphology>,
    /// Whether the whole body lies inside the main axial series' scanned range.
    pub in_field_of_view: bool,
}

/// Kinds of non-fracture findings drawn to test specificity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistractorKind {
    /// Intravertebral disc herniation: a focal endplate pit with a sclerotic rim.
    SchmorlNode,
    /// Anterior marginal bony spurs at both endplates.
    Osteophyte,
    /// Physiological anterior wedging of a mid-thoracic level (under 20% loss).
    PhysiologicalWedging,
}

/// One non-fracture finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistractorTruth {
    /// Level it is on.
    pub level: VertebraLevel,
    /// What it is.
    pub kind: DistractorKind,
}
