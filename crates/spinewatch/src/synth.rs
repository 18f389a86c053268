//! `spinewatch synth`: write a deterministic synthetic CT study.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use spinewatch_testkit::synth::spec::{
    AgeTags, Contrast, Coverage, DistractorSpec, ExtraSeries, Kernel, PatientPosition,
    PixelStorage, TransferSyntax,
};
use spinewatch_testkit::synth::{self, FractureSpec, SynthSpec};

/// Arguments of `spinewatch synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder (created); one sub-folder per series plus ground_truth.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed of every random choice: the same arguments write the same files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Patient age at the study date, years.
    #[arg(long, default_value_t = 65)]
    pub age: u16,
    /// Which age tags to write.
    #[arg(long, value_enum, default_value_t = AgeTags::Both)]
    pub age_tags: AgeTags,
    /// Fracture as LEVEL:GRADE[:MORPH] (grade 0-3; wedge, biconcave or crush); repeatable.
    #[arg(long = "fracture", value_name = "LEVEL:GRADE[:MORPH]")]
    pub fractures: Vec<FractureSpec>,
    /// Non-fracture finding as LEVEL:KIND (schmorl, osteophyte, wedging); repeatable.
    #[arg(long = "distractor", value_name = "LEVEL:KIND")]
    pub distractors: Vec<DistractorSpec>,
    /// Trabecular bone HU (bone density, 50-300); default from age and sex.
    #[arg(long, value_name = "HU")]
    pub trabecular_hu: Option<f64>,
    /// Thoracic kyphosis, degrees (default: drawn 25-55).
    #[arg(long, value_name = "DEG")]
    pub kyphosis: Option<f64>,
    /// Lumbar lordosis, degrees (default: drawn 35-60).
    #[arg(long, value_name = "DEG")]
    pub lordosis: Option<f64>,
    /// Peak scoliotic lateral deviation, mm.
    #[arg(long, value_name = "MM", default_value_t = 0.0)]
    pub scoliosis: f64,
    /// Levels covered: FIRST-LAST (e.g. T6-L3), spine, chest or abdomen.
    #[arg(long, default_value = "spine")]
    pub coverage: Coverage,
    /// Number of slices (centred on the coverage) instead of the coverage's own count.
    #[arg(long)]
    pub slices: Option<usize>,
    /// Slice thickness, mm.
    #[arg(long, value_name = "MM", default_value_t = 1.0)]
    pub thickness: f64,
    /// Distance between slices, mm (default: the thickness; less overlaps).
    #[arg(long, value_name = "MM")]
    pub spacing: Option<f64>,
    /// Pixel spacing, mm.
    #[arg(long, value_name = "MM", default_value_t = 0.78125)]
    pub pixel_spacing: f64,
    /// Rows and columns.
    #[arg(long, default_value_t = 512)]
    pub matrix: u16,
    /// Patient position.
    #[arg(long, value_enum, default_value_t = PatientPosition::Hfs)]
    pub position: PatientPosition,
    /// Number instances against the acquisition order.
    #[arg(long)]
    pub reverse_instance_order: bool,
    /// Gantry tilt, degrees.
    #[arg(
        long,
        value_name = "DEG",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub gantry_tilt: f64,
    /// Noise standard deviation (standard kernel, 1 mm), HU.
    #[arg(long, value_name = "HU", default_value_t = 12.0)]
    pub noise: f64,
    /// Reconstruction kernel.
    #[arg(long, value_enum, default_value_t = Kernel::Standard)]
    pub kernel: Kernel,
    /// Stored padding value outside the reconstruction circle.
    #[arg(long, allow_negative_numbers = true, conflicts_with = "no_padding")]
    pub padding_value: Option<i32>,
    /// Fill outside the reconstruction circle with air and write no PixelPaddingValue.
    #[arg(long)]
    pub no_padding: bool,
    /// Stored pixel representation.
    #[arg(long, value_enum, default_value_t = PixelStorage::Signed)]
    pub pixel_storage: PixelStorage,
    /// Intravenous contrast phase.
    #[arg(long, value_enum, default_value_t = Contrast::None)]
    pub contrast: Contrast,
    /// Transfer syntax of the files.
    #[arg(long, value_enum, default_value_t = TransferSyntax::ExplicitLe)]
    pub transfer_syntax: TransferSyntax,
    /// Extra series: localizer, thick, dose-report or all (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "KIND")]
    pub extra_series: Vec<ExtraKind>,
    /// Print the ground truth summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Extra series kinds on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExtraKind {
    /// A frontal scout.
    Localizer,
    /// A 5 mm reconstruction.
    Thick,
    /// A dose report Secondary Capture.
    DoseReport,
    /// All of them.
    All,
}

impl SynthArgs {
    /// The spec these arguments describe.
    pub fn spec(&self) -> SynthSpec {
        let has = |k| self.extra_series.contains(&k) || self.extra_series.contains(&ExtraKind::All);
        let padding_value = if self.no_padding {
            None
        } else {
            Some(self.padding_value.unwrap_or(match self.pixel_storage {
                PixelStorage::Unsigned => 0,
                _ => -2000,
            }))
        };
        SynthSpec {
            seed: self.seed,
            age_years: self.age,
            age_tags: self.age_tags,
            fractures: self.fractures.clone(),
            distractors: self.distractors.clone(),
            trabecular_hu: self.trabecular_hu,
            kyphosis_deg: self.kyphosis,
            lordosis_deg: self.lordosis,
            scoliosis_mm: self.scoliosis,
            coverage: self.coverage,
            slices: self.slices,
            slice_thickness_mm: self.thickness,
            slice_spacing_mm: self.spacing.unwrap_or(self.thickness),
            pixel_spacing_mm: self.pixel_spacing,
            matrix: self.matrix,
            patient_position: self.position,
            reverse_instance_order: self.reverse_instance_order,
            gantry_tilt_deg: self.gantry_tilt,
            noise_hu: self.noise,
            kernel: self.kernel,
            padding_value,
            pixel_storage: self.pixel_storage,
            contrast: self.contrast,
            transfer_syntax: self.transfer_syntax,
            extra_series: ExtraSeries {
                localizer: has(ExtraKind::Localizer),
                thick: has(ExtraKind::Thick),
                dose_report: has(ExtraKind::DoseReport),
            },
        }
    }
}

/// Runs `spinewatch synth`.
pub fn run(args: &SynthArgs) -> anyhow::Result<ExitCode> {
    let spec = args.spec();
    let started = Instant::now();
    let truth = synth::generate(&spec, &args.out).with_context(|| {
        format!(
            "could not generate a synthetic study in {}",
            args.out.display()
        )
    })?;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&truth)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Synthetic study written to {} in {secs:.1} s",
        args.out.display()
    );
    println!("  study  {}", truth.study_instance_uid);
    for s in &truth.series {
        println!(
            "  series {:<40} {:>4} files  {:?} ({})",
            s.directory, s.instances, s.role, s.transfer_syntax_uid
        );
    }
    println!(
        "  patient age {} y, trabecular bone {:.0} HU",
        truth.patient_age_years, truth.trabecular_hu
    );
    println!("  level  in-view  Ha/Hm/Hp (mm)        loss  grade");
    for v in &truth.vertebrae {
        let h = v.heights_mm;
        println!(
            "  {:<5}  {:<7}  {:5.1} {:5.1} {:5.1}   {:5.1}%  {}{}",
            v.label.to_string(),
            if v.in_field_of_view { "yes" } else { "no" },
            h.anterior,
            h.middle,
            h.posterior,
            v.height_loss * 100.0,
            v.grade,
            v.morphology.map(|m| format!(" {m}")).unwrap_or_default()
        );
    }
    for d in &truth.distractors {
        println!("  distractor {} {:?}", d.level, d.kind);
    }
    println!(
        "  ground truth: {}",
        args.out.join(synth::GROUND_TRUTH_FILE).display()
    );
    Ok(ExitCode::SUCCESS)
}
