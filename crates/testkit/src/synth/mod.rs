//! Synthetic CT studies: a seeded torso phantom with a T1-L5 spine, fractures and
//! distractors, "scanned" into real DICOM series, with the ground truth beside them.
//!
//! ```text
//! SynthSpec --anatomy::build--> Phantom (primitives + vertebra frames + truth)
//!           --acquisition::plan--> Series (slice planes)
//!           --render + noise + dicom::write_series--> CT*.dcm, ground_truth.json
//! ```
//!
//! Everything is a function of the spec (seed included): the same spec writes the same
//! pixels and UIDs, whatever the number of threads.

pub mod acquisition;
pub mod anatomy;
pub mod dicom;
pub mod draw;
pub mod primitive;
pub mod render;
pub mod rle;
pub mod spec;

use std::path::{Path, PathBuf};

use rand::Rng;
use spinewatch_core::Vec3;
use spinewatch_core::truth::{
    ContextVertebraTruth, GROUND_TRUTH_SCHEMA, GroundTruth, SeriesRole, SeriesTruth,
};

pub use spec::{FractureSpec, SynthSpec};

use self::dicom::{CtImage, SeriesContext, StudyContext};
use self::spec::Kernel;

/// File name of the ground truth written beside the series folders.
pub const GROUND_TRUTH_FILE: &str = "ground_truth.json";
/// Thickness and spacing of the optional thick reconstruction, mm.
pub const THICK_SERIES_MM: f64 = 5.0;
/// Pixel spacing of the localizer projection, mm.
const LOCALIZER_SPACING_MM: f64 = 2.0;

/// Why a study could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is out of range or malformed.
    #[error("invalid synthetic study parameter: {0}")]
    Spec(String),
    /// A directory or file could not be written.
    #[error("could not write {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A data set could not be turned into a file.
    #[error("could not build the DICOM file {path}: {message}")]
    Dicom {
        /// The path.
        path: PathBuf,
        /// What dicom-object said.
        message: String,
    },
    /// dicom-object failed to write a file.
    #[error("could not write DICOM file {path}")]
    WriteDicom {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dicom_object::WriteError>,
    },
    /// The ground truth could not be serialised.
    #[error("could not serialise the ground truth")]
    Json(#[source] serde_json::Error),
}

/// Result with the synth [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Generates the study described by `spec` into `out` (created if missing) and returns
/// its ground truth, also written to `out/ground_truth.json`.
pub fn generate(spec: &SynthSpec, out: &Path) -> Result<GroundTruth> {
    spec.validate()?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_owned(),
        source,
    })?;
    let phantom = anatomy::build(spec);
    let study = StudyContext::new(spec, &phantom);
    let mut series_truth = Vec::new();

    // Main axial series.
    let main = acquisition::plan(
        spec,
        &phantom,
        spec.slice_thickness_mm,
        spec.slice_spacing_mm,
    );
    let desc = format!(
        "{} {:.2}mm {}",
        "AXIAL",
        spec.slice_thickness_mm,
        spec.kernel.dicom_name()
    );
    series_truth.push(write_axial(
        spec,
        &phantom,
        &study,
        &main,
        out,
        "series-002-axial",
        2,
        &desc,
        spec.kernel,
        SeriesRole::Axial,
    )?);

    if spec.extra_series.thick {
        let thick = acquisition::plan(spec, &phantom, THICK_SERIES_MM, THICK_SERIES_MM);
        series_truth.push(write_axial(
            spec,
            &phantom,
            &study,
            &thick,
            out,
            "series-003-thick",
            3,
            "AXIAL 5mm STANDARD",
            Kernel::Standard,
            SeriesRole::ThickAxial,
        )?);
    }
    if spec.extra_series.localizer {
        series_truth.push(write_localizer(spec, &phantom, &study, &main, out)?);
    }
    if spec.extra_series.dose_report {
        series_truth.push(write_dose(spec, &study, &main, out)?);
    }

    let (z_lo, z_hi) = main.z_range;
    let vertebrae = phantom
        .vertebrae
        .iter()
        .map(|v| {
            let mut t = v.truth.clone();
            let half = v.body.nominal_height_mm / 2.0 + 1.0;
            let top = (v.frame.origin + v.frame.w * half)
                .z
                .max((v.frame.origin - v.frame.w * half).z);
            let bottom = (v.frame.origin + v.frame.w * half)
                .z
                .min((v.frame.origin - v.frame.w * half).z);
            t.in_field_of_view = bottom >= z_lo && top <= z_hi;
            t
        })
        .collect();
    let truth = GroundTruth {
        schema: GROUND_TRUTH_SCHEMA.to_owned(),
        generator: format!("spinewatch-testkit {}", env!("CARGO_PKG_VERSION")),
        seed: spec.seed,
        study_instance_uid: study.study_uid.clone(),
        patient_age_years: spec.age_years,
        trabecular_hu: phantom.trabecular_hu,
        series: series_truth,
        vertebrae,
        distractors: phantom.distractors.clone(),
        context_vertebrae: phantom
            .context
            .iter()
            .map(|c| ContextVertebraTruth {
                name: c.name.to_owned(),
                centre_mm: c.frame.origin,
            })
            .collect(),
    };
    let path = out.join(GROUND_TRUTH_FILE);
    let json = serde_json::to_vec_pretty(&truth).map_err(Error::Json)?;
    std::fs::write(&path, json).map_err(|source| Error::Io { path, source })?;
    Ok(truth)
}

#[allow(clippy::too_many_arguments)] // one call per series kind; a struct would only rename them
fn write_axial(
    spec: &SynthSpec,
    phantom: &anatomy::Phantom,
    study: &StudyContext,
    series: &acquisition::Series,
    out: &Path,
    dir_name: &str,
    number: i32,
    description: &str,
    kernel: Kernel,
    role: SeriesRole,
) -> Result<SeriesTruth> {
    let series_uid = dicom::uid_for(spec.seed, &format!("series-{number}"));
    let ctx = SeriesContext {
        series_uid: series_uid.clone(),
        number,
        description: description.to_owned(),
        time: "101600".into(),
    };
    let base = dicom::common(spec, study, &ctx, "CT");
    let n = usize::from(spec.matrix);
    let edge_mm = kernel.edge_factor() * spec.pixel_spacing_mm;
    // Noise falls with the square root of the slice thickness (photon count).
    let sigma = spec.noise_hu * kernel.noise_factor() / series.thickness_mm.sqrt();
    let dir = out.join(dir_name);
    let image_type: &[&str] = &["ORIGINAL", "PRIMARY", "AXIAL"];
    let files = dicom::write_series(
        &dir,
        series.slices.len(),
        n,
        n,
        spec,
        |k, rng| {
            let s = &series.slices[k];
            let mut hu = render::render(
                &phantom.primitives,
                &s.plane,
                series.thickness_mm,
                edge_mm,
                phantom.background_hu,
            );
            dicom::add_noise(&mut hu, n, n, sigma, kernel, rng);
            hu
        },
        |k| {
            let s = &series.slices[k];
            let img = CtImage {
                image_type,
                sop_uid: dicom::uid_for(spec.seed, &format!("series-{number}-image-{k}")),
                instance_number: s.instance_number,
                position: s.plane.origin.to_array(),
                orientation: {
                    let (r, c) = (s.plane.row_dir, s.plane.col_dir);
                    [r.x, r.y, r.z, c.x, c.y, c.z]
                },
                pixel_spacing: [spec.pixel_spacing_mm, spec.pixel_spacing_mm],
                thickness_mm: Some(series.thickness_mm),
                location_mm: Some(s.location_mm),
                kernel,
                rows: n,
                cols: n,
            };
            dicom::ct_image(&base, spec, study, &img)
        },
        |k| series.slices[k].instance_number,
    )?;
    Ok(SeriesTruth {
        role,
        series_instance_uid: series_uid,
        directory: dir_name.to_owned(),
        instances: files.len(),
        transfer_syntax_uid: spec.transfer_syntax.uid().to_owned(),
        slice_thickness_mm: series.thickness_mm,
    })
}

/// A frontal scout: line integrals of attenuation along `y`, from coarse axial renders.
fn write_localizer(
    spec: &SynthSpec,
    phantom: &anatomy::Phantom,
    study: &StudyContext,
    main: &acquisition::Series,
    out: &Path,
) -> Result<SeriesTruth> {
    let series_uid = dicom::uid_for(spec.seed, "series-1");
    let ctx = SeriesContext {
        series_uid: series_uid.clone(),
        number: 1,
        description: "TOPOGRAM AP".into(),
        time: "101400".into(),
    };
    let base = dicom::common(spec, study, &ctx, "CT");
    let step = LOCALIZER_SPACING_MM;
    let cols = 256usize;
    let (z_lo, z_hi) = main.z_range;
    let (top, bottom) = (z_hi + 60.0, z_lo - 60.0);
    let rows = ((top - bottom) / step).floor() as usize + 1;
    let iso_y = phantom.table_top_y - 125.0;
    let depth = 256usize;
    let x0 = -(cols as f64 - 1.0) / 2.0 * step;
    // One axial render per image row: columns are x, its rows are y; sum along y.
    use rayon::prelude::*;
    let rows_hu: Vec<Vec<f64>> = (0..rows)
        .into_par_iter()
        .map(|r| {
            let z = top - r as f64 * step;
            let plane = render::Plane {
                origin: Vec3::new(x0, iso_y - (depth as f64 - 1.0) / 2.0 * step, z),
                row_dir: Vec3::X,
                col_dir: Vec3::Y,
                spacing_mm: step,
                rows: depth,
                cols,
            };
            let img = render::render(
                &phantom.primitives,
                &plane,
                step,
                step,
                phantom.background_hu,
            );
            (0..cols)
                .map(|c| {
                    (0..depth)
                        .map(|y| ((f64::from(img[y * cols + c]) + 1000.0) / 1000.0).max(0.0) * step)
                        .sum()
                })
                .collect()
        })
        .collect();
    let mut rng = anatomy::rng_for(spec.seed, "localizer");
    let mut bytes = Vec::with_capacity(rows * cols * 2);
    for row in &rows_hu {
        for v in row {
            // Water-equivalent path length (mm) scaled into 12 bits.
            let s = (v * 8.0 + rng.random_range(-4.0..4.0)).clamp(0.0, 4095.0) as u16;
            bytes.extend_from_slice(&s.to_le_bytes());
        }
    }
    let spec_loc = SynthSpec {
        padding_value: None,
        pixel_storage: spec::PixelStorage::Unsigned,
        ..spec.clone()
    };
    let img = CtImage {
        image_type: &["ORIGINAL", "PRIMARY", "LOCALIZER"],
        sop_uid: dicom::uid_for(spec.seed, "localizer-image"),
        instance_number: 1,
        position: [x0, iso_y, top],
        orientation: [1.0, 0.0, 0.0, 0.0, 0.0, -1.0],
        pixel_spacing: [step, step],
        thickness_mm: None,
        location_mm: None,
        kernel: Kernel::Standard,
        rows,
        cols,
    };
    let mut obj = dicom::ct_image(&base, &spec_loc, study, &img);
    // A projection has no rescale to HU: values are attenuation in arbitrary units.
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::RESCALE_INTERCEPT,
        dicom_core::VR::DS,
        dicom_core::PrimitiveValue::from("0"),
    ));
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::RESCALE_TYPE,
        dicom_core::VR::LO,
        dicom_core::PrimitiveValue::from("US"),
    ));
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::WINDOW_CENTER,
        dicom_core::VR::DS,
        dicom_core::PrimitiveValue::from("1600"),
    ));
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::WINDOW_WIDTH,
        dicom_core::VR::DS,
        dicom_core::PrimitiveValue::from("3200"),
    ));
    let dir = out.join("series-001-localizer");
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    dicom::write_file(
        obj,
        bytes,
        cols,
        2,
        spec.transfer_syntax,
        &dir.join("CT00001.dcm"),
    )?;
    Ok(SeriesTruth {
        role: SeriesRole::Localizer,
        series_instance_uid: series_uid,
        directory: "series-001-localizer".into(),
        instances: 1,
        transfer_syntax_uid: spec.transfer_syntax.uid().to_owned(),
        slice_thickness_mm: 0.0,
    })
}

fn write_dose(
    spec: &SynthSpec,
    study: &StudyContext,
    main: &acquisition::Series,
    out: &Path,
) -> Result<SeriesTruth> {
    let series_uid = dicom::uid_for(spec.seed, "series-999");
    let ctx = SeriesContext {
        series_uid: series_uid.clone(),
        number: 999,
        description: "Dose Report".into(),
        time: "102000".into(),
    };
    let length_cm = (main.z_range.1 - main.z_range.0) / 10.0;
    let ctdi = 6.0 + (spec.seed % 50) as f64 / 10.0;
    let lines = vec![
        "DOSE REPORT".to_owned(),
        format!("Study date {}", study.study_date),
        String::new(),
        "Ser Type    cm    CTDIvol DLP".to_owned(),
        "1   Scout    -      -      -".to_owned(),
        format!(
            "2   Helical {length_cm:5.1} {ctdi:5.1}  {:4.0}",
            ctdi * length_cm
        ),
        String::new(),
        format!("Total DLP: {:.0} mGy*cm", ctdi * length_cm + 3.0),
        "Phantom: CTDI 32 cm".to_owned(),
    ];
    let dir = out.join("series-999-dose");
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })?;
    dicom::write_dose_report(spec, study, &ctx, &lines, &dir.join("SC00001.dcm"))?;
    Ok(SeriesTruth {
        role: SeriesRole::DoseReport,
        series_instance_uid: series_uid,
        directory: "series-999-dose".into(),
        instances: 1,
        transfer_syntax_uid: spec.transfer_syntax.uid().to_owned(),
        slice_thickness_mm: 0.0,
    })
}
