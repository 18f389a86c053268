//! Writes the rendered series as DICOM files with the attributes a CT scanner writes.
//!
//! CT Image Storage (PS3.3 A.3) for the axial series and the localizer, Secondary
//! Capture Image Storage (PS3.3 A.8.1) for the dose report.

use std::path::{Path, PathBuf};

use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;
use spinewatch_core::Uid;

use super::Error;
use super::anatomy::Phantom;
use super::spec::{
    AgeTags, Contrast, Kernel, PatientPosition, PixelStorage, SynthSpec, TransferSyntax,
};

/// Implementation Class UID of files written by the generator.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.302548291045366316213375823620716523417";
/// Implementation Version Name of files written by the generator (at most 16 chars).
pub const IMPLEMENTATION_VERSION_NAME: &str = "SPINEWATCH_0_1";
/// RescaleIntercept of every CT image written: stored = HU + 1024.
pub const RESCALE_INTERCEPT: f64 = -1024.0;

/// Study-level values shared by every file of a study.
#[derive(Debug, Clone)]
pub struct StudyContext {
    /// Study Instance UID.
    pub study_uid: Uid,
    /// Frame of Reference UID shared by the series of one acquisition.
    pub frame_of_reference_uid: Uid,
    /// StudyDate, `YYYYMMDD`.
    pub study_date: String,
    /// PatientBirthDate, `YYYYMMDD`.
    pub birth_date: String,
    /// PatientName.
    pub patient_name: String,
    /// PatientID.
    pub patient_id: String,
    /// PatientSex.
    pub patient_sex: &'static str,
    /// AccessionNumber.
    pub accession: String,
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn da(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}")
}

/// A 128-bit number from the seed and a purpose, for deterministic UIDs.
pub fn uid_for(seed: u64, purpose: &str) -> Uid {
    let mut hi: u64 = 0x6a09_e667_f3bc_c908 ^ seed;
    let mut lo: u64 = 0xbb67_ae85_84ca_a73b ^ seed.rotate_left(17);
    for b in purpose.bytes().chain(seed.to_le_bytes()) {
        hi = (hi ^ u64::from(b))
            .wrapping_mul(0x0100_0000_01b3)
            .rotate_left(5);
        lo = (lo ^ u64::from(b) ^ hi)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(11);
    }
    // 2.25 UIDs are the decimal form of a UUID; keep it a valid 128-bit value.
    Uid::from_u128((u128::from(hi) << 64 | u128::from(lo)) >> 1)
}

impl StudyContext {
    /// Patient and study values for `spec` (deterministic by seed).
    pub fn new(spec: &SynthSpec, phantom: &Phantom) -> Self {
        let seed = spec.seed;
        // Study dates spread over 2024-2026.
        let study_days =
            days_from_civil(2024, 1, 8) + (seed.wrapping_mul(2_654_435_761) % 1000) as i64;
        let (y, m, d) = civil_from_days(study_days);
        let birthday_passed = 1 + (seed.wrapping_mul(40_503) % 360) as i64;
        let birth_days = days_from_civil(y - i64::from(spec.age_years), m, d) - birthday_passed;
        Self {
            study_uid: uid_for(seed, "study"),
            frame_of_reference_uid: uid_for(seed, "frame-of-reference"),
            study_date: da(study_days),
            birth_date: da(birth_days),
            patient_name: format!("SYNTHETIC^SEED{seed}"),
            patient_id: format!("SW{seed:010}"),
            patient_sex: if phantom.female { "F" } else { "M" },
            accession: format!("A{:09}", seed % 1_000_000_000),
        }
    }
}

/// Formats a Decimal String value (at most 16 characters, PS3.5 6.2).
pub fn ds(v: f64) -> String {
    for decimals in (0..=6).rev() {
        let s = format!("{v:.decimals$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        };
        let s = if s == "-0" { "0".to_owned() } else { s };
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:.0}")
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

fn put_ds(obj: &mut InMemDicomObject, tag: Tag, values: &[f64]) {
    let strs: Vec<String> = values.iter().map(|v| ds(*v)).collect();
    obj.put(DataElement::new(
        tag,
        VR::DS,
        PrimitiveValue::Strs(strs.into()),
    ));
}

fn put_strs(obj: &mut InMemDicomObject, tag: Tag, vr: VR, values: &[&str]) {
    let strs: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
    obj.put(DataElement::new(tag, vr, PrimitiveValue::Strs(strs.into())));
}

/// Series-level description of what is being written.
#[derive(Debug, Clone)]
pub struct SeriesContext {
    /// Series Instance UID.
    pub series_uid: Uid,
    /// SeriesNumber.
    pub number: i32,
    /// SeriesDescription.
    pub description: String,
    /// SeriesTime and AcquisitionTime, `HHMMSS`.
    pub time: String,
}

/// The patient, study, series and equipment attributes common to every image.
pub fn common(
    spec: &SynthSpec,
    study: &StudyContext,
    series: &SeriesContext,
    modality: &str,
) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
    // Patient module (PS3.3 C.7.1.1).
    put(
        &mut o,
        tags::PATIENT_NAME,
        VR::PN,
        study.patient_name.as_str(),
    );
    put(&mut o, tags::PATIENT_ID, VR::LO, study.patient_id.as_str());
    let birth = match spec.age_tags {
        AgeTags::Both | AgeTags::BirthDateOnly => study.birth_date.as_str(),
        AgeTags::AgeOnly | AgeTags::None => "",
    };
    put(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, birth);
    put(&mut o, tags::PATIENT_SEX, VR::CS, study.patient_sex);
    // General Study (C.7.2.1) and Patient Study (C.7.2.2).
    put(
        &mut o,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        study.study_uid.as_str(),
    );
    put(&mut o, tags::STUDY_DATE, VR::DA, study.study_date.as_str());
    put(&mut o, tags::STUDY_TIME, VR::TM, "101500");
    put(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put(&mut o, tags::STUDY_ID, VR::SH, "1");
    put(
        &mut o,
        tags::ACCESSION_NUMBER,
        VR::SH,
        study.accession.as_str(),
    );
    put(&mut o, tags::STUDY_DESCRIPTION, VR::LO, "CT CHEST ABDOMEN");
    if matches!(spec.age_tags, AgeTags::Both | AgeTags::AgeOnly) {
        put(
            &mut o,
            tags::PATIENT_AGE,
            VR::AS,
            format!("{:03}Y", spec.age_years),
        );
    }
    // General Series (C.7.3.1).
    put(&mut o, tags::MODALITY, VR::CS, modality);
    put(
        &mut o,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        series.series_uid.as_str(),
    );
    put(
        &mut o,
        tags::SERIES_NUMBER,
        VR::IS,
        series.number.to_string(),
    );
    put(&mut o, tags::SERIES_DATE, VR::DA, study.study_date.as_str());
    put(&mut o, tags::SERIES_TIME, VR::TM, series.time.as_str());
    put(
        &mut o,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        series.description.as_str(),
    );
    let body_part = match (
        spec.coverage.first.is_thoracic(),
        spec.coverage.last.is_thoracic(),
    ) {
        (true, true) => "CHEST",
        (false, false) => "ABDOMEN",
        _ => "CHESTABDOMEN",
    };
    put(&mut o, tags::BODY_PART_EXAMINED, VR::CS, body_part);
    // General Equipment (C.7.5.1).
    put(&mut o, tags::MANUFACTURER, VR::LO, "spinewatch");
    put(&mut o, tags::INSTITUTION_NAME, VR::LO, "Synthetic Hospital");
    put(&mut o, tags::STATION_NAME, VR::SH, "SYNTH01");
    put(
        &mut o,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        "synthetic phantom",
    );
    put(
        &mut o,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION"),
    );
    o
}

/// Writes `obj` as a Part 10 file in `ts`, encapsulating `frame` for RLE.
pub fn write_file(
    mut obj: InMemDicomObject,
    pixel_bytes: Vec<u8>,
    cols: usize,
    bytes_per_sample: usize,
    ts: TransferSyntax,
    path: &Path,
) -> Result<(), Error> {
    let pixel = match ts {
        TransferSyntax::Rle => {
            let fragment = super::rle::encode_frame(&pixel_bytes, cols, bytes_per_sample);
            DataElement::new(
                tags::PIXEL_DATA,
                VR::OB,
                Value::PixelSequence(PixelFragmentSequence::new(
                    Vec::<u32>::new(),
                    vec![fragment],
                )),
            )
        }
        _ => {
            let vr = if bytes_per_sample == 1 {
                VR::OB
            } else {
                VR::OW
            };
            DataElement::new(tags::PIXEL_DATA, vr, PrimitiveValue::U8(pixel_bytes.into()))
        }
    };
    obj.put(pixel);
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(ts.uid())
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME);
    let file = obj.with_meta(meta).map_err(|e| Error::Dicom {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    file.write_to_file(path)
        .map_err(|source| Error::WriteDicom {
            path: path.to_owned(),
            source: Box::new(source),
        })
}

/// Adds reconstruction noise to `hu` (`rows x cols`), correlated over neighbouring
/// pixels except for the bone kernel, with standard deviation `sigma`.
pub fn add_noise(
    hu: &mut [f32],
    rows: usize,
    cols: usize,
    sigma: f64,
    kernel: Kernel,
    rng: &mut Pcg64Mcg,
) {
    if sigma <= 0.0 {
        return;
    }
    let white: Vec<f32> = (0..rows * cols)
        .map(|_| StandardNormal.sample(rng))
        .collect();
    let noise = if kernel == Kernel::Bone {
        white
    } else {
        // Separable [1 2 1]/4 smoothing; its gain on white noise is 0.375 (sqrt(6/16)^2).
        let mut tmp = vec![0.0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                let at = |cc: usize| white[r * cols + cc];
                let l = at(c.saturating_sub(1));
                let rr = at((c + 1).min(cols - 1));
                tmp[r * cols + c] = 0.25 * l + 0.5 * at(c) + 0.25 * rr;
            }
        }
        let mut out = vec![0.0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                let up = tmp[r.saturating_sub(1) * cols + c];
                let dn = tmp[(r + 1).min(rows - 1) * cols + c];
                out[r * cols + c] = (0.25 * up + 0.5 * tmp[r * cols + c] + 0.25 * dn) / 0.375;
            }
        }
        out
    };
    let s = sigma as f32;
    for (v, n) in hu.iter_mut().zip(noise) {
        *v += s * n;
    }
}

/// Stored 16-bit values (little-endian bytes) of HU, with padding outside the
/// reconstruction circle.
pub fn store_pixels(hu: &[f32], rows: usize, cols: usize, spec: &SynthSpec) -> Vec<u8> {
    let (lo, hi) = match spec.pixel_storage {
        PixelStorage::Unsigned => (0.0, 4095.0),
        _ => (-32768.0, 32767.0),
    };
    let padding = spec.padding_value;
    let (cr, cc) = ((rows as f64 - 1.0) / 2.0, (cols as f64 - 1.0) / 2.0);
    let radius2 = (rows.min(cols) as f64 / 2.0).powi(2);
    let mut out = Vec::with_capacity(hu.len() * 2);
    for r in 0..rows {
        for c in 0..cols {
            let outside = (r as f64 - cr).powi(2) + (c as f64 - cc).powi(2) > radius2;
            let stored: i32 = match padding {
                Some(p) if outside => p,
                _ => {
                    let mut s = (f64::from(hu[r * cols + c]) - RESCALE_INTERCEPT)
                        .round()
                        .clamp(lo, hi) as i32;
                    if Some(s) == padding {
                        // The padding value is reserved for padding (PS3.3 C.7.5.1.1.2).
                        s += if f64::from(s) < hi { 1 } else { -1 };
                    }
                    s
                }
            };
            let bytes = match spec.pixel_storage {
                PixelStorage::Unsigned => (stored as u16).to_le_bytes(),
                _ => (stored as i16).to_le_bytes(),
            };
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// Image Pixel attributes for 16-bit CT.
fn put_pixel_module(o: &mut InMemDicomObject, rows: usize, cols: usize, spec: &SynthSpec) {
    put(o, tags::SAMPLES_PER_PIXEL, VR::US, 1u16);
    put(o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    put(o, tags::ROWS, VR::US, rows as u16);
    put(o, tags::COLUMNS, VR::US, cols as u16);
    put(o, tags::BITS_ALLOCATED, VR::US, 16u16);
    let (bits, rep) = match spec.pixel_storage {
        PixelStorage::Unsigned => (12u16, 0u16),
        _ => (16, 1),
    };
    put(o, tags::BITS_STORED, VR::US, bits);
    put(o, tags::HIGH_BIT, VR::US, bits - 1);
    put(o, tags::PIXEL_REPRESENTATION, VR::US, rep);
    if let Some(p) = spec.padding_value {
        match spec.pixel_storage {
            PixelStorage::Unsigned => put(o, tags::PIXEL_PADDING_VALUE, VR::US, p as u16),
            PixelStorage::Signed => put(o, tags::PIXEL_PADDING_VALUE, VR::SS, p as i16),
            PixelStorage::SignedPaddingAsUnsigned => {
                put(o, tags::PIXEL_PADDING_VALUE, VR::US, p as i16 as u16)
            }
        }
    }
}

/// Per-image description of a CT slice.
#[derive(Debug, Clone)]
pub struct CtImage<'a> {
    /// ImageType values.
    pub image_type: &'a [&'a str],
    /// SOP Instance UID.
    pub sop_uid: Uid,
    /// InstanceNumber.
    pub instance_number: u32,
    /// ImagePositionPatient.
    pub position: [f64; 3],
    /// ImageOrientationPatient.
    pub orientation: [f64; 6],
    /// PixelSpacing (row spacing, column spacing).
    pub pixel_spacing: [f64; 2],
    /// SliceThickness (empty when `None`).
    pub thickness_mm: Option<f64>,
    /// SliceLocation.
    pub location_mm: Option<f64>,
    /// Reconstruction kernel.
    pub kernel: Kernel,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// A complete CT Image Storage data set (without pixel data).
pub fn ct_image(
    base: &InMemDicomObject,
    spec: &SynthSpec,
    study: &StudyContext,
    img: &CtImage<'_>,
) -> InMemDicomObject {
    let mut o = base.clone();
    put_strs(&mut o, tags::IMAGE_TYPE, VR::CS, img.image_type);
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, img.sop_uid.as_str());
    put(
        &mut o,
        tags::INSTANCE_CREATION_DATE,
        VR::DA,
        study.study_date.as_str(),
    );
    put(
        &mut o,
        tags::PATIENT_POSITION,
        VR::CS,
        match spec.patient_position {
            PatientPosition::Hfs => "HFS",
            PatientPosition::Ffs => "FFS",
        },
    );
    // Frame of Reference (C.7.4.1).
    put(
        &mut o,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        study.frame_of_reference_uid.as_str(),
    );
    put(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    // General Image (C.7.6.1) and General Acquisition (C.7.10.1).
    put(
        &mut o,
        tags::INSTANCE_NUMBER,
        VR::IS,
        img.instance_number.to_string(),
    );
    put(&mut o, tags::ACQUISITION_NUMBER, VR::IS, "1");
    put(
        &mut o,
        tags::CONTENT_DATE,
        VR::DA,
        study.study_date.as_str(),
    );
    put(&mut o, tags::CONTENT_TIME, VR::TM, "101630");
    put(
        &mut o,
        tags::ACQUISITION_DATE,
        VR::DA,
        study.study_date.as_str(),
    );
    put(&mut o, tags::ACQUISITION_TIME, VR::TM, "101600");
    put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
    // Image Plane (C.7.6.2).
    put_ds(&mut o, tags::PIXEL_SPACING, &img.pixel_spacing);
    put_ds(&mut o, tags::IMAGE_ORIENTATION_PATIENT, &img.orientation);
    put_ds(&mut o, tags::IMAGE_POSITION_PATIENT, &img.position);
    match img.thickness_mm {
        Some(t) => put_ds(&mut o, tags::SLICE_THICKNESS, &[t]),
        None => put(&mut o, tags::SLICE_THICKNESS, VR::DS, ""),
    }
    if let Some(l) = img.location_mm {
        put_ds(&mut o, tags::SLICE_LOCATION, &[l]);
    }
    put_pixel_module(&mut o, img.rows, img.cols, spec);
    // CT Image (C.8.2.1).
    put(&mut o, tags::KVP, VR::DS, "120");
    put_ds(&mut o, tags::DATA_COLLECTION_DIAMETER, &[500.0]);
    put_ds(
        &mut o,
        tags::RECONSTRUCTION_DIAMETER,
        &[img.pixel_spacing[1] * img.cols as f64],
    );
    put_ds(&mut o, tags::GANTRY_DETECTOR_TILT, &[spec.gantry_tilt_deg]);
    put_ds(&mut o, tags::TABLE_HEIGHT, &[150.0]);
    put(&mut o, tags::ROTATION_DIRECTION, VR::CS, "CW");
    put(&mut o, tags::X_RAY_TUBE_CURRENT, VR::IS, "250");
    put(
        &mut o,
        tags::CONVOLUTION_KERNEL,
        VR::SH,
        img.kernel.dicom_name(),
    );
    put_ds(&mut o, tags::RESCALE_INTERCEPT, &[RESCALE_INTERCEPT]);
    put_ds(&mut o, tags::RESCALE_SLOPE, &[1.0]);
    put(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
    // VOI LUT (C.11.2): a soft-tissue window.
    put_ds(&mut o, tags::WINDOW_CENTER, &[40.0]);
    put_ds(&mut o, tags::WINDOW_WIDTH, &[400.0]);
    // Contrast/Bolus (C.7.6.4), present only when contrast was given.
    if spec.contrast != Contrast::None {
        put(&mut o, tags::CONTRAST_BOLUS_AGENT, VR::LO, "IOHEXOL 350");
        put(&mut o, tags::CONTRAST_BOLUS_ROUTE, VR::LO, "IV");
    }
    o
}

/// Writes a dose report as a Secondary Capture image: text rendered with an 8x8 font.
pub fn write_dose_report(
    spec: &SynthSpec,
    study: &StudyContext,
    series: &SeriesContext,
    lines: &[String],
    path: &Path,
) -> Result<(), Error> {
    let (rows, cols) = (512usize, 512usize);
    let mut pixels = vec![0u8; rows * cols];
    let scale = 2;
    for (li, line) in lines.iter().enumerate() {
        for (ci, ch) in line.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(ch as usize)
                .copied()
                .unwrap_or([0; 8]);
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..8 {
                    if bits >> gx & 1 == 1 {
                        for sy in 0..scale {
                            for sx in 0..scale {
                                let y = 24 + li * 24 + gy * scale + sy;
                                let x = 16 + ci * 8 * scale + gx * scale + sx;
                                if y < rows && x < cols {
                                    pixels[y * cols + x] = 255;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let mut o = common(spec, study, series, "CT");
    put_strs(
        &mut o,
        tags::IMAGE_TYPE,
        VR::CS,
        &["DERIVED", "SECONDARY", "SCREEN SAVE"],
    );
    put(
        &mut o,
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    );
    put(
        &mut o,
        tags::SOP_INSTANCE_UID,
        VR::UI,
        uid_for(spec.seed, "dose-report-image").as_str(),
    );
    put(&mut o, tags::CONVERSION_TYPE, VR::CS, "WSD");
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    put(
        &mut o,
        tags::CONTENT_DATE,
        VR::DA,
        study.study_date.as_str(),
    );
    put(&mut o, tags::CONTENT_TIME, VR::TM, "102000");
    put(&mut o, tags::PATIENT_ORIENTATION, VR::CS, "");
    put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "YES");
    put(&mut o, tags::SAMPLES_PER_PIXEL, VR::US, 1u16);
    put(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put(&mut o, tags::ROWS, VR::US, rows as u16);
    put(&mut o, tags::COLUMNS, VR::US, cols as u16);
    put(&mut o, tags::BITS_ALLOCATED, VR::US, 8u16);
    put(&mut o, tags::BITS_STORED, VR::US, 8u16);
    put(&mut o, tags::HIGH_BIT, VR::US, 7u16);
    put(&mut o, tags::PIXEL_REPRESENTATION, VR::US, 0u16);
    let ts = spec.transfer_syntax;
    write_file(o, pixels, cols, 1, ts, path)
}

/// Writes a slice series in parallel: `render(k)` gives HU of slice `k` and
/// `dataset(k)` its data set; files are named by instance number.
#[allow(clippy::too_many_arguments)] // the size, the two closures and the numbering are the call
pub fn write_series<R, D>(
    dir: &Path,
    count: usize,
    rows: usize,
    cols: usize,
    spec: &SynthSpec,
    render: R,
    dataset: D,
    instance_number: impl Fn(usize) -> u32 + Sync,
) -> Result<Vec<PathBuf>, Error>
where
    R: Fn(usize, &mut Pcg64Mcg) -> Vec<f32> + Sync,
    D: Fn(usize) -> InMemDicomObject + Sync,
{
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    (0..count)
        .into_par_iter()
        .map(|k| {
            let mut rng = Pcg64Mcg::seed_from_u64(
                spec.seed ^ (k as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F) ^ dir_hash(dir),
            );
            let hu = render(k, &mut rng);
            let bytes = store_pixels(&hu, rows, cols, spec);
            let path = dir.join(format!("CT{:05}.dcm", instance_number(k)));
            write_file(dataset(k), bytes, cols, 2, spec.transfer_syntax, &path)?;
            Ok(path)
        })
        .collect()
}

fn dir_hash(dir: &Path) -> u64 {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for days in [-1000, 0, 19_000, 20_500] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(da(0), "19700101");
    }

    #[test]
    fn decimal_strings_fit_16_chars() {
        assert_eq!(ds(1.0), "1");
        assert_eq!(ds(-0.0000001), "0");
        assert_eq!(ds(0.78125), "0.78125");
        assert_eq!(ds(-123.4567891), "-123.456789");
        assert!(ds(-123_456_789.123_456).len() <= 16);
    }

    #[test]
    fn uids_are_valid_and_distinct() {
        let a = uid_for(1, "study");
        let b = uid_for(2, "study");
        assert_ne!(a, b);
        assert!(Uid::new(a.as_str()).is_ok());
    }
}
