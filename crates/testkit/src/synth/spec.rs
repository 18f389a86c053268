//! What to generate: every parameter of a synthetic study, with defaults.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use spinewatch_core::truth::DistractorKind;
use spinewatch_core::{GenantGrade, Morphology, VertebraLevel};

use crate::synth::Error;

/// A fracture to draw: `LEVEL:GRADE[:MORPH]`, e.g. `L1:2:wedge` (morphology defaults
/// to wedge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FractureSpec {
    /// The fractured level.
    pub level: VertebraLevel,
    /// Genant grade 0..=3 (0 draws a normal vertebra).
    pub grade: GenantGrade,
    /// Deformity shape.
    pub morphology: Morphology,
}

impl FromStr for FractureSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: String| {
            Error::Spec(format!(
                "fracture `{s}`: {why} (expected LEVEL:GRADE[:MORPH], e.g. L1:2:wedge)"
            ))
        };
        let mut parts = s.split(':');
        let level = parts
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|e| bad(format!("{e}")))?;
        let grade = parts
            .next()
            .ok_or_else(|| bad("missing grade".into()))?
            .parse()
            .map_err(|e| bad(format!("{e}")))?;
        let morphology = match parts.next() {
            Some(m) => m.parse().map_err(|e| bad(format!("{e}")))?,
            None => Morphology::Wedge,
        };
        if parts.next().is_some() {
            return Err(bad("too many fields".into()));
        }
        Ok(Self {
            level,
            grade,
            morphology,
        })
    }
}

impl fmt::Display for FractureSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.level, self.grade, self.morphology)
    }
}

/// A non-fracture finding to draw: `LEVEL:KIND` with KIND `schmorl`, `osteophyte` or
/// `wedging`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistractorSpec {
    /// The level.
    pub level: VertebraLevel,
    /// The finding.
    pub kind: DistractorKind,
}

impl FromStr for DistractorSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::Spec(format!(
                "distractor `{s}`: {why} (expected LEVEL:schmorl|osteophyte|wedging)"
            ))
        };
        let (level, kind) = s.split_once(':').ok_or_else(|| bad("missing kind"))?;
        let level = level.parse().map_err(|_| bad("unknown level"))?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "schmorl" | "schmorl_node" => DistractorKind::SchmorlNode,
            "osteophyte" | "osteophytes" => DistractorKind::Osteophyte,
            "wedging" | "physiological_wedging" => DistractorKind::PhysiologicalWedging,
            _ => return Err(bad("unknown kind")),
        };
        Ok(Self { level, kind })
    }
}

/// Which levels the main series covers: `FIRST-LAST`, e.g. `T1-L5`, or the names
/// `spine` (T1-L5), `chest` (T1-T12), `abdomen` (T11-L5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Most cranial level fully covered.
    pub first: VertebraLevel,
    /// Most caudal level fully covered.
    pub last: VertebraLevel,
}

impl Default for Coverage {
    fn default() -> Self {
        Self {
            first: VertebraLevel::Thoracic(1),
            last: VertebraLevel::Lumbar(5),
        }
    }
}

impl FromStr for Coverage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let named = match s {
            "spine" => Some(("T1", "L5")),
            "chest" => Some(("T1", "T12")),
            "abdomen" => Some(("T11", "L5")),
            _ => None,
        };
        let (a, b) = named.or_else(|| s.split_once('-')).ok_or_else(|| {
            Error::Spec(format!(
                "coverage `{s}`: expected FIRST-LAST (e.g. T6-L3), spine, chest or abdomen"
            ))
        })?;
        let first: VertebraLevel = a
            .parse()
            .map_err(|e| Error::Spec(format!("coverage `{s}`: {e}")))?;
        let last: VertebraLevel = b
            .parse()
            .map_err(|e| Error::Spec(format!("coverage `{s}`: {e}")))?;
        if first > last {
            return Err(Error::Spec(format!(
                "coverage `{s}`: {first} is caudal to {last}"
            )));
        }
        Ok(Self { first, last })
    }
}

/// Patient position (PS3.3 C.7.3.1.1.2); supine only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PatientPosition {
    /// Head first, supine; scanned from head to feet.
    #[default]
    Hfs,
    /// Feet first, supine; scanned from feet to head, images seen from the feet.
    Ffs,
}

/// Reconstruction kernel: sharpness and noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kernel {
    /// Soft tissue: smooth, low noise (ConvolutionKernel `SOFT`).
    Soft,
    /// Standard body kernel (`STANDARD`).
    #[default]
    Standard,
    /// Bone kernel: sharp edges, high noise (`BONE`).
    Bone,
}

impl Kernel {
    /// ConvolutionKernel value.
    pub fn dicom_name(self) -> &'static str {
        match self {
            Self::Soft => "SOFT",
            Self::Standard => "STANDARD",
            Self::Bone => "BONE",
        }
    }

    /// Edge width as a multiple of the pixel spacing.
    pub fn edge_factor(self) -> f64 {
        match self {
            Self::Soft => 1.5,
            Self::Standard => 1.1,
            Self::Bone => 0.75,
        }
    }

    /// Noise as a multiple of the nominal noise level.
    pub fn noise_factor(self) -> f64 {
        match self {
            Self::Soft => 0.7,
            Self::Standard => 1.0,
            Self::Bone => 2.2,
        }
    }
}

/// Intravenous contrast phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Contrast {
    /// No contrast.
    #[default]
    None,
    /// Arterial phase: bright aorta.
    Arterial,
    /// Portal venous phase: enhanced liver and kidneys.
    Portal,
}

/// Transfer syntax of the files written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TransferSyntax {
    /// Explicit VR Little Endian (1.2.840.10008.1.2.1).
    #[default]
    ExplicitLe,
    /// Implicit VR Little Endian (1.2.840.10008.1.2).
    ImplicitLe,
    /// Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99).
    Deflate,
    /// RLE Lossless (1.2.840.10008.1.2.5).
    Rle,
}

impl TransferSyntax {
    /// The transfer syntax UID.
    pub fn uid(self) -> &'static str {
        match self {
            Self::ExplicitLe => "1.2.840.10008.1.2.1",
            Self::ImplicitLe => "1.2.840.10008.1.2",
            Self::Deflate => "1.2.840.10008.1.2.1.99",
            Self::Rle => "1.2.840.10008.1.2.5",
        }
    }
}

/// Which age tags the files carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AgeTags {
    /// PatientAge and PatientBirthDate.
    #[default]
    Both,
    /// PatientAge only (birth date empty).
    AgeOnly,
    /// PatientBirthDate only (no PatientAge).
    BirthDateOnly,
    /// Neither (an anonymised archive).
    None,
}

/// How stored pixel values are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PixelStorage {
    /// Signed 16-bit, RescaleIntercept -1024 (HU = stored - 1024).
    #[default]
    Signed,
    /// Unsigned 16-bit (12 bits used), RescaleIntercept -1024.
    Unsigned,
    /// Signed 16-bit with PixelPaddingValue written as US, the negative value in its
    /// unsigned (two's complement) form, as some scanners do.
    SignedPaddingAsUnsigned,
}

/// Extra series written beside the main axial series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExtraSeries {
    /// A frontal projection scout.
    pub localizer: bool,
    /// A 5 mm axial reconstruction.
    pub thick: bool,
    /// A dose report Secondary Capture.
    pub dose_report: bool,
}

/// Every parameter of a synthetic study. [`SynthSpec::new`] gives the defaults for a
/// seed; anatomy not fixed here (curvature, body size, HU levels) is drawn from the seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthSpec {
    /// Seed of every random choice.
    pub seed: u64,
    /// Patient age at the study date, years.
    pub age_years: u16,
    /// Which age tags are written.
    pub age_tags: AgeTags,
    /// Fractures to draw.
    pub fractures: Vec<FractureSpec>,
    /// Non-fracture findings to draw.
    pub distractors: Vec<DistractorSpec>,
    /// Trabecular bone HU (50-300); `None` derives it from age and sex.
    pub trabecular_hu: Option<f64>,
    /// Thoracic kyphosis (T1-T12 Cobb-like angle), degrees; `None` draws 25-55.
    pub kyphosis_deg: Option<f64>,
    /// Lumbar lordosis, degrees; `None` draws 35-60.
    pub lordosis_deg: Option<f64>,
    /// Peak lateral deviation of a scoliotic curve, mm (0: straight).
    pub scoliosis_mm: f64,
    /// Levels covered by the main series.
    pub coverage: Coverage,
    /// Slice count; `None` derives it from the coverage. When set, the scan is centred
    /// on the coverage.
    pub slices: Option<usize>,
    /// Reconstructed slice thickness, mm.
    pub slice_thickness_mm: f64,
    /// Distance between slice centres, mm (less than the thickness: overlapping).
    pub slice_spacing_mm: f64,
    /// In-plane pixel spacing, mm (clinical: 0.5-1; up to 4 for quick, coarse test studies).
    pub pixel_spacing_mm: f64,
    /// Rows and columns of each image.
    pub matrix: u16,
    /// Patient position.
    pub patient_position: PatientPosition,
    /// Number instances against the acquisition order.
    pub reverse_instance_order: bool,
    /// Gantry tilt, degrees (the image plane rotates about the left-right axis).
    pub gantry_tilt_deg: f64,
    /// Noise standard deviation for the standard kernel, HU.
    pub noise_hu: f64,
    /// Reconstruction kernel.
    pub kernel: Kernel,
    /// Stored value outside the reconstruction circle (PixelPaddingValue); `None` fills
    /// it with air and writes no padding tag.
    pub padding_value: Option<i32>,
    /// Stored pixel representation.
    pub pixel_storage: PixelStorage,
    /// Contrast phase.
    pub contrast: Contrast,
    /// Transfer syntax of every file.
    pub transfer_syntax: TransferSyntax,
    /// Extra series.
    pub extra_series: ExtraSeries,
}

impl SynthSpec {
    /// Defaults for `seed`: a 65-year-old, T1-L5 at 1 mm, 512x512 at 0.78 mm, no fracture.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            age_years: 65,
            age_tags: AgeTags::Both,
            fractures: Vec::new(),
            distractors: Vec::new(),
            trabecular_hu: None,
            kyphosis_deg: None,
            lordosis_deg: None,
            scoliosis_mm: 0.0,
            coverage: Coverage::default(),
            slices: None,
            slice_thickness_mm: 1.0,
            slice_spacing_mm: 1.0,
            pixel_spacing_mm: 0.78125,
            matrix: 512,
            patient_position: PatientPosition::Hfs,
            reverse_instance_order: false,
            gantry_tilt_deg: 0.0,
            noise_hu: 12.0,
            kernel: Kernel::Standard,
            padding_value: Some(-2000),
            pixel_storage: PixelStorage::Signed,
            contrast: Contrast::None,
            transfer_syntax: TransferSyntax::ExplicitLe,
            extra_series: ExtraSeries::default(),
        }
    }

    /// Checks ranges; every error names the parameter.
    pub fn validate(&self) -> Result<(), Error> {
        let spec = |m: String| Err(Error::Spec(m));
        if !(0..=130).contains(&self.age_years) {
            return spec(format!("age {} out of range 0-130", self.age_years));
        }
        if let Some(hu) = self.trabecular_hu
            && !(20.0..=400.0).contains(&hu)
        {
            return spec(format!("trabecular HU {hu} out of range 20-400"));
        }
        if !(0.3..=10.0).contains(&self.slice_thickness_mm) {
            return spec(format!(
                "slice thickness {} mm out of range 0.3-10",
                self.slice_thickness_mm
            ));
        }
        if !(0.2..=10.0).contains(&self.slice_spacing_mm) {
            return spec(format!(
                "slice spacing {} mm out of range 0.2-10",
                self.slice_spacing_mm
            ));
        }
        if !(0.2..=4.0).contains(&self.pixel_spacing_mm) {
            return spec(format!(
                "pixel spacing {} mm out of range 0.2-4",
                self.pixel_spacing_mm
            ));
        }
        if !(64..=1024).contains(&self.matrix) {
            return spec(format!("matrix {} out of range 64-1024", self.matrix));
        }
        if self.gantry_tilt_deg.abs() > 30.0 {
            return spec(format!(
                "gantry tilt {} degrees beyond 30",
                self.gantry_tilt_deg
            ));
        }
        if !(0.0..=200.0).contains(&self.noise_hu) {
            return spec(format!("noise {} HU out of range 0-200", self.noise_hu));
        }
        if self.scoliosis_mm.abs() > 60.0 {
            return spec(format!("scoliosis {} mm beyond 60", self.scoliosis_mm));
        }
        if let Some(n) = self.slices
            && !(2..=4000).contains(&n)
        {
            return spec(format!("slice count {n} out of range 2-4000"));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fractures {
            if !seen.insert(f.level) {
                return spec(format!("level {} has two fractures", f.level));
            }
        }
        if let Some(p) = self.padding_value {
            let ok = match self.pixel_storage {
                PixelStorage::Unsigned => (0..=65535).contains(&p),
                _ => (-32768..=32767).contains(&p),
            };
            if !ok {
                return spec(format!("padding value {p} does not fit the pixel storage"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn parses_fracture_lists() {
        let f: FractureSpec = "L1:2:wedge".parse().unwrap();
        assert_eq!(f.level, VertebraLevel::Lumbar(1));
        assert_eq!(f.grade, GenantGrade::Moderate);
        assert_eq!(f.morphology, Morphology::Wedge);
        let f: FractureSpec = "T12:3".parse().unwrap();
        assert_eq!(f.morphology, Morphology::Wedge);
        assert_eq!(f.to_string(), "T12:3:wedge");
        for bad in ["L1", "L1:4", "X1:2", "L1:2:flat", "L1:2:wedge:x"] {
            assert!(bad.parse::<FractureSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_coverage_and_distractors() {
        let c: Coverage = "chest".parse().unwrap();
        assert_eq!(c.last, VertebraLevel::Thoracic(12));
        assert!("L5-T1".parse::<Coverage>().is_err());
        let d: DistractorSpec = "T7:schmorl".parse().unwrap();
        assert_eq!(d.kind, DistractorKind::SchmorlNode);
        assert!(SynthSpec::new(1).validate().is_ok());
    }
}
