//! Header-only reading: every attribute selection and geometry need, and what the nurses'
//! case page shows of the study and the patient, without the pixels.
//!
//! The patient's identifiers (PatientID, PatientName, PatientBirthDate) and the
//! AccessionNumber are held as [`Phi`], whose `Debug` is redacted: a `{:?}` of a header
//! (a `tracing` field, a panic message, an assertion) cannot leak them.

use std::io::Read;
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_core::header::HasLength;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use spinewatch_core::Vec3;

use crate::{Error, Result};

/// What one file says about itself, read up to (not including) Pixel Data.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceHeader {
    /// The file.
    pub path: PathBuf,
    /// Transfer syntax UID from the file meta group.
    pub transfer_syntax_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UID (from the data set, else the file meta group).
    pub sop_instance_uid: Option<String>,
    /// Study Instance UID.
    pub study_instance_uid: Option<String>,
    /// Series Instance UID.
    pub series_instance_uid: Option<String>,
    /// Modality.
    pub modality: Option<String>,
    /// ImageType values, upper case.
    pub image_type: Vec<String>,
    /// SeriesNumber.
    pub series_number: Option<i32>,
    /// SeriesDescription.
    pub series_description: Option<String>,
    /// InstanceNumber.
    pub instance_number: Option<i32>,
    /// ImagePositionPatient, LPS mm.
    pub position: Option<Vec3>,
    /// ImageOrientationPatient: row direction, column direction.
    pub orientation: Option<(Vec3, Vec3)>,
    /// PixelSpacing: (row spacing, column spacing), mm.
    pub pixel_spacing: Option<(f64, f64)>,
    /// SliceThickness, mm.
    pub slice_thickness_mm: Option<f64>,
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
    /// NumberOfFrames (1 when absent).
    pub frames: u32,
    /// ConvolutionKernel (first value).
    pub convolution_kernel: Option<String>,
    /// GantryDetectorTilt, degrees.
    pub gantry_tilt_deg: Option<f64>,
    /// PatientAge as written (`nnnY`, `nnnM`, `nnnW`, `nnnD`).
    pub patient_age: Option<String>,
    /// PatientBirthDate (0010,0030), `YYYYMMDD`.
    pub patient_birth_date: Option<Phi>,
    /// PatientID (0010,0020).
    pub patient_id: Option<Phi>,
    /// PatientName (0010,0010), DICOM PN as stored (`Family^Given^Middle^Prefix^Suffix`).
    pub patient_name: Option<Phi>,
    /// PatientSex (0010,0040): `M`, `F` or `O`.
    pub patient_sex: Option<String>,
    /// StudyDate (`YYYYMMDD`).
    pub study_date: Option<String>,
    /// AccessionNumber (0008,0050): it names the patient's order in the RIS.
    pub accession_number: Option<Phi>,
    /// StudyDescription (0008,1030).
    pub study_description: Option<String>,
    /// Manufacturer (0008,0070).
    pub manufacturer: Option<String>,
    /// ManufacturerModelName (0008,1090).
    pub manufacturer_model_name: Option<String>,
    /// StationName (0008,1010).
    pub station_name: Option<String>,
    /// InstitutionName (0008,0080).
    pub institution_name: Option<String>,
}

/// A value that identifies a patient (an ID, a name, a birth date, an accession number).
/// Its `Debug` shows no part of it and it has no `Display`, so it reaches a log only by an
/// explicit [`Phi::as_str`] (or deref), which the code that shows it to a signed-in nurse
/// calls.
#[derive(Clone, PartialEq, Eq)]
pub struct Phi(String);

impl Phi {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the people allowed to see it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::ops::Deref for Phi {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Phi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// CT Image Storage.
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Enhanced CT Image Storage (multi-frame).
pub const ENHANCED_CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2.1";

impl InstanceHeader {
    /// Whether ImageType marks a projection scout.
    pub fn is_localizer(&self) -> bool {
        self.image_type.iter().any(|t| t == "LOCALIZER")
    }

    /// Whether ImageType's first value is ORIGINAL.
    pub fn is_original(&self) -> bool {
        self.image_type.first().is_some_and(|t| t == "ORIGINAL")
    }

    /// Whether ImageType's second value is PRIMARY.
    pub fn is_primary(&self) -> bool {
        self.image_type.get(1).is_some_and(|t| t == "PRIMARY")
    }

    /// Unit normal of the image plane (row x column), if the orientation is known.
    pub fn normal(&self) -> Option<Vec3> {
        self.orientation.map(|(r, c)| r.cross(c).normalized())
    }
}

/// Whether the file at `path` has the Part 10 preamble and `DICM` prefix.
pub fn is_part10(path: &Path) -> bool {
    let mut buf = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
        && &buf[128..] == b"DICM"
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_owned())
}

fn floats(
    obj: &DefaultDicomObject,
    tag: Tag,
    path: &Path,
    attribute: &'static str,
) -> Result<Option<Vec<f64>>> {
    let Some(e) = obj.get(tag) else {
        return Ok(None);
    };
    if e.is_empty() {
        return Ok(None);
    }
    e.to_multi_float64()
        .map(Some)
        .map_err(|_| Error::InvalidAttribute {
            path: path.to_owned(),
            attribute,
            value: e.to_str().map(|s| s.into_owned()).unwrap_or_default(),
        })
}

fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i32> {
    obj.get(tag)?.to_int::<i32>().ok()
}

/// Reads the header of one file, leniently where its file meta group is malformed
/// ([`crate::open::open`]).
pub fn read(path: &Path) -> Result<InstanceHeader> {
    let obj = crate::open::open(path, Some(tags::PIXEL_DATA))?;
    let meta = obj.meta();
    let trim = |s: &str| s.trim_end_matches(['\0', ' ']).to_owned();
    let sop_class_uid =
        text(&obj, tags::SOP_CLASS_UID).unwrap_or_else(|| trim(meta.media_storage_sop_class_uid()));
    let sop_instance_uid = text(&obj, tags::SOP_INSTANCE_UID).or_else(|| {
        let m = trim(meta.media_storage_sop_instance_uid());
        (!m.is_empty()).then_some(m)
    });
    let position = floats(
        &obj,
        tags::IMAGE_POSITION_PATIENT,
        path,
        "ImagePositionPatient",
    )?
    .map(|v| match v.as_slice() {
        [x, y, z] => Ok(Vec3::new(*x, *y, *z)),
        _ => Err(Error::InvalidAttribute {
            path: path.to_owned(),
            attribute: "ImagePositionPatient",
            value: format!("{v:?}"),
        }),
    })
    .transpose()?;
    let orientation = floats(
        &obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        path,
        "ImageOrientationPatient",
    )?
    .map(|v| match v.as_slice() {
        [a, b, c, d, e, f] => Ok((
            Vec3::new(*a, *b, *c).normalized(),
            Vec3::new(*d, *e, *f).normalized(),
        )),
        _ => Err(Error::InvalidAttribute {
            path: path.to_owned(),
            attribute: "ImageOrientationPatient",
            value: format!("{v:?}"),
        }),
    })
    .transpose()?;
    let pixel_spacing = floats(&obj, tags::PIXEL_SPACING, path, "PixelSpacing")?
        .map(|v| match v.as_slice() {
            [r, c] if *r > 0.0 && *c > 0.0 => Ok((*r, *c)),
            _ => Err(Error::InvalidAttribute {
                path: path.to_owned(),
                attribute: "PixelSpacing",
                value: format!("{v:?}"),
            }),
        })
        .transpose()?;
    let image_type = obj
        .get(tags::IMAGE_TYPE)
        .and_then(|e| {
            e.to_multi_str()
                .ok()
                .map(|v| v.iter().map(|s| s.trim().to_ascii_uppercase()).collect())
        })
        .unwrap_or_default();
    Ok(InstanceHeader {
        path: path.to_owned(),
        transfer_syntax_uid: trim(meta.transfer_syntax()),
        sop_class_uid,
        sop_instance_uid,
        study_instance_uid: text(&obj, tags::STUDY_INSTANCE_UID),
        series_instance_uid: text(&obj, tags::SERIES_INSTANCE_UID),
        modality: text(&obj, tags::MODALITY),
        image_type,
        series_number: int(&obj, tags::SERIES_NUMBER),
        series_description: text(&obj, tags::SERIES_DESCRIPTION),
        instance_number: int(&obj, tags::INSTANCE_NUMBER),
        position,
        orientation,
        pixel_spacing,
        slice_thickness_mm: floats(&obj, tags::SLICE_THICKNESS, path, "SliceThickness")?
            .and_then(|v| v.first().copied()),
        rows: obj
            .get(tags::ROWS)
            .and_then(|e| e.to_int::<u16>().ok())
            .unwrap_or(0),
        cols: obj
            .get(tags::COLUMNS)
            .and_then(|e| e.to_int::<u16>().ok())
            .unwrap_or(0),
        frames: int(&obj, tags::NUMBER_OF_FRAMES).map_or(1, |n| n.max(1) as u32),
        convolution_kernel: text(&obj, tags::CONVOLUTION_KERNEL)
            .map(|k| k.split('\\').next().unwrap_or("").to_owned()),
        gantry_tilt_deg: floats(&obj, tags::GANTRY_DETECTOR_TILT, path, "GantryDetectorTilt")?
            .and_then(|v| v.first().copied()),
        patient_age: text(&obj, tags::PATIENT_AGE),
        patient_birth_date: text(&obj, tags::PATIENT_BIRTH_DATE).map(Phi),
        patient_id: text(&obj, tags::PATIENT_ID).map(Phi),
        patient_name: text(&obj, tags::PATIENT_NAME).map(Phi),
        patient_sex: text(&obj, tags::PATIENT_SEX),
        study_date: text(&obj, tags::STUDY_DATE),
        accession_number: text(&obj, tags::ACCESSION_NUMBER).map(Phi),
        study_description: text(&obj, tags::STUDY_DESCRIPTION),
        manufacturer: text(&obj, tags::MANUFACTURER),
        manufacturer_model_name: text(&obj, tags::MANUFACTURER_MODEL_NAME),
        station_name: text(&obj, tags::STATION_NAME),
        institution_name: text(&obj, tags::INSTITUTION_NAME),
    })
}

/// Files below `paths` (folders are walked recursively), sorted by path for stable output.
pub fn list_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).map_err(|source| Error::Io {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            let rd = std::fs::read_dir(&p).map_err(|source| Error::Io {
                path: p.clone(),
                source,
            })?;
            for entry in rd {
                let entry = entry.map_err(|source| Error::Io {
                    path: p.clone(),
                    source,
                })?;
                stack.push(entry.path());
            }
        } else if meta.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Outcome of scanning paths for DICOM headers.
#[derive(Debug, Default)]
pub struct Scan {
    /// Headers read.
    pub headers: Vec<InstanceHeader>,
    /// Files that are not Part 10 DICOM (skipped silently, counted).
    pub not_dicom: usize,
    /// DICOM files that could not be parsed, with the reason.
    pub unreadable: Vec<Error>,
}

/// Reads the headers of every Part 10 file below `paths`, in parallel.
pub fn scan(paths: &[PathBuf]) -> Result<Scan> {
    use rayon::prelude::*;
    let files = list_files(paths)?;
    let results: Vec<Option<Result<InstanceHeader>>> = files
        .par_iter()
        .map(|f| is_part10(f).then(|| read(f)))
        .collect();
    let mut scan = Scan::default();
    for r in results {
        match r {
            None => scan.not_dicom += 1,
            Some(Ok(h)) => scan.headers.push(h),
            Some(Err(e)) => scan.unreadable.push(e),
        }
    }
    Ok(scan)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::uids;
    use dicom_object::InMemDicomObject;
    use dicom_object::meta::FileMetaTableBuilder;

    use super::*;

    const PATIENT_ID: &str = "PID-83311";
    const PATIENT_NAME: &str = "DOE^JANE";
    const BIRTH_DATE: &str = "19540312";
    const ACCESSION: &str = "ACC-20261121-7";

    /// A CT header (no pixels) with the case page's attributes, some padded as DICOM pads
    /// them.
    fn write_ct(path: &Path) {
        let mut obj = InMemDicomObject::new_empty();
        let mut put = |tag, vr, value: &str| {
            obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
        };
        put(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
        put(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5");
        put(tags::MODALITY, VR::CS, "CT");
        put(tags::PATIENT_ID, VR::LO, PATIENT_ID);
        put(tags::PATIENT_NAME, VR::PN, PATIENT_NAME);
        put(tags::PATIENT_BIRTH_DATE, VR::DA, BIRTH_DATE);
        put(tags::PATIENT_SEX, VR::CS, "F ");
        put(tags::ACCESSION_NUMBER, VR::SH, ACCESSION);
        put(tags::STUDY_DESCRIPTION, VR::LO, "CT CHEST ABDOMEN");
        put(tags::MANUFACTURER, VR::LO, "ACME Medical ");
        put(tags::MANUFACTURER_MODEL_NAME, VR::LO, "Tomo 64");
        put(tags::STATION_NAME, VR::SH, "CT01");
        put(tags::INSTITUTION_NAME, VR::LO, "General Hospital");
        put(tags::STUDY_DATE, VR::DA, "20261121");
        obj.with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(CT_IMAGE_STORAGE)
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN),
        )
        .unwrap()
        .write_to_file(path)
        .unwrap();
    }

    #[test]
    fn case_page_attributes_are_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ct.dcm");
        write_ct(&path);
        let h = read(&path).unwrap();
        assert_eq!(h.patient_id.as_deref(), Some(PATIENT_ID));
        assert_eq!(h.patient_name.as_deref(), Some(PATIENT_NAME));
        assert_eq!(h.patient_birth_date.as_deref(), Some(BIRTH_DATE));
        assert_eq!(h.patient_sex.as_deref(), Some("F"));
        assert_eq!(h.accession_number.as_deref(), Some(ACCESSION));
        assert_eq!(h.study_description.as_deref(), Some("CT CHEST ABDOMEN"));
        assert_eq!(h.manufacturer.as_deref(), Some("ACME Medical"));
        assert_eq!(h.manufacturer_model_name.as_deref(), Some("Tomo 64"));
        assert_eq!(h.station_name.as_deref(), Some("CT01"));
        assert_eq!(h.institution_name.as_deref(), Some("General Hospital"));
        // Absent attributes stay absent.
        assert_eq!(h.patient_age, None);
        assert_eq!(h.convolution_kernel, None);
    }

    #[test]
    fn debug_of_a_header_shows_no_patient_identifier() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ct.dcm");
        write_ct(&path);
        let h = read(&path).unwrap();
        let shown = format!("{h:?} {h:#?}");
        for phi in [PATIENT_ID, PATIENT_NAME, "DOE", BIRTH_DATE, ACCESSION] {
            assert!(!shown.contains(phi), "`{phi}` in {shown}");
        }
        // The fields are there, redacted; what is not an identifier is shown.
        assert!(shown.contains("patient_id: Some(<redacted>)"), "{shown}");
        assert!(shown.contains("General Hospital"), "{shown}");
    }
}
