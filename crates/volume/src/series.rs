//! Series grouping and slice geometry.
//!
//! Slices are ordered by the projection of ImagePositionPatient on the image normal
//! (PS3.3 C.7.6.2.1.1), never by InstanceNumber or file name. The step between
//! consecutive positions need not be parallel to the normal: with gantry tilt the
//! voxel grid is sheared, and the [`Affine`] keeps that shear.

use std::collections::BTreeMap;

use serde::Serialize;
use spinewatch_core::Affine;

use crate::header::InstanceHeader;
use crate::{Error, Result};

/// Largest difference between two orientations still called the same, per direction
/// cosine (scanners write IOP to ~6 decimals).
pub const ORIENTATION_TOL: f64 = 1e-4;
/// Two slices closer than this along the normal are the same position, mm.
pub const DUPLICATE_TOL_MM: f64 = 0.01;
/// Relative spread of slice distances tolerated in a regular series (DS rounding of
/// IPP to 6 decimals, table position jitter of 0.1 % on some scanners).
pub const SPACING_REL_TOL: f64 = 0.02;
/// Absolute spread of slice distances always tolerated, mm.
pub const SPACING_ABS_TOL_MM: f64 = 0.02;

/// The instances of one series, unsorted.
#[derive(Debug, Clone)]
pub struct SeriesHeaders {
    /// Series Instance UID (`None` when the files carry none).
    pub series_instance_uid: Option<String>,
    /// Its instances.
    pub instances: Vec<InstanceHeader>,
}

impl SeriesHeaders {
    /// A label for messages: the UID or a description of the missing one.
    pub fn label(&self) -> String {
        self.series_instance_uid
            .clone()
            .unwrap_or_else(|| "(no Series Instance UID)".to_owned())
    }

    /// The first instance (every series has at least one).
    pub fn first(&self) -> &InstanceHeader {
        &self.instances[0]
    }
}

/// Groups headers by Series Instance UID (files without one form their own group),
/// ordered by SeriesNumber then UID.
pub fn group(headers: Vec<InstanceHeader>) -> Vec<SeriesHeaders> {
    let mut map: BTreeMap<Option<String>, Vec<InstanceHeader>> = BTreeMap::new();
    for h in headers {
        map.entry(h.series_instance_uid.clone())
            .or_default()
            .push(h);
    }
    let mut out: Vec<SeriesHeaders> = map
        .into_iter()
        .map(|(series_instance_uid, instances)| SeriesHeaders {
            series_instance_uid,
            instances,
        })
        .collect();
    out.sort_by_key(|s| {
        (
            s.first().series_number.unwrap_or(i32::MAX),
            s.series_instance_uid.clone(),
        )
    });
    out
}

/// A series whose slices form one regular (possibly sheared) voxel grid.
#[derive(Debug, Clone, Serialize)]
pub struct SortedSeries {
    /// Series Instance UID.
    pub series_instance_uid: Option<String>,
    /// Slices in ascending order along the image normal.
    #[serde(skip)]
    pub slices: Vec<InstanceHeader>,
    /// Voxel index `(column, row, slice)` to patient coordinates.
    pub affine: Affine,
    /// Rows per slice.
    pub rows: u16,
    /// Columns per slice.
    pub cols: u16,
    /// Voxel spacing `[x (along a row), y (down a column), z (between slices along the normal)]`, mm.
    pub spacing_mm: [f64; 3],
    /// Angle between the slice step and the image normal (gantry tilt), degrees.
    pub shear_deg: f64,
    /// SliceThickness of the first slice, mm.
    pub thickness_mm: Option<f64>,
}

impl SortedSeries {
    /// Orders the slices of `series` and derives its geometry; refuses what is not one
    /// regular grid (mixed orientations or sizes, duplicate positions, gaps, multi-frame).
    pub fn new(series: &SeriesHeaders) -> Result<Self> {
        let label = series.label();
        let geometry = |problem: String| Error::Geometry {
            series: label.clone(),
            problem,
        };
        let first = series.first();
        if let Some(mf) = series.instances.iter().find(|h| h.frames > 1) {
            return Err(Error::UnsupportedPixels {
                path: mf.path.clone(),
                what: format!(
                    "multi-frame image ({} frames, e.g. Enhanced CT) is not supported yet",
                    mf.frames
                ),
            });
        }
        let (row_dir, col_dir) = first.orientation.ok_or_else(|| Error::MissingAttribute {
            path: first.path.clone(),
            attribute: "ImageOrientationPatient",
        })?;
        let (row_spacing, col_spacing) =
            first.pixel_spacing.ok_or_else(|| Error::MissingAttribute {
                path: first.path.clone(),
                attribute: "PixelSpacing",
            })?;
        let normal = row_dir.cross(col_dir).normalized();
        let mut keyed = Vec::with_capacity(series.instances.len());
        for h in &series.instances {
            let p = h.position.ok_or_else(|| Error::MissingAttribute {
                path: h.path.clone(),
                attribute: "ImagePositionPatient",
            })?;
            let (r, c) = h.orientation.ok_or_else(|| Error::MissingAttribute {
                path: h.path.clone(),
                attribute: "ImageOrientationPatient",
            })?;
            if (r - row_dir).norm() > ORIENTATION_TOL * 3.0
                || (c - col_dir).norm() > ORIENTATION_TOL * 3.0
            {
                return Err(geometry("slices have different orientations".into()));
            }
            if h.rows != first.rows
                || h.cols != first.cols
                || h.pixel_spacing != first.pixel_spacing
            {
                return Err(geometry(
                    "slices have different sizes or pixel spacings".into(),
                ));
            }
            keyed.push((p.dot(normal), p, h.clone()));
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in keyed.windows(2) {
            if w[1].0 - w[0].0 < DUPLICATE_TOL_MM {
                return Err(geometry(format!(
                    "two slices at the same position ({:.3} mm along the normal): {} and {}",
                    w[0].0,
                    w[0].2.path.display(),
                    w[1].2.path.display()
                )));
            }
        }
        let n = keyed.len();
        let (slice_step, dz) = if n >= 2 {
            let step = (keyed[n - 1].1 - keyed[0].1) / (n - 1) as f64;
            let dz = step.dot(normal);
            let tol = SPACING_ABS_TOL_MM.max(SPACING_REL_TOL * dz);
            for (k, (_, p, h)) in keyed.iter().enumerate() {
                let expected = keyed[0].1 + step * k as f64;
                if (*p - expected).norm() > tol {
                    let gaps: Vec<f64> = keyed.windows(2).map(|w| w[1].0 - w[0].0).collect();
                    let (lo, hi) = gaps
                        .iter()
                        .fold((f64::MAX, f64::MIN), |(l, u), g| (l.min(*g), u.max(*g)));
                    return Err(geometry(format!(
                        "slices are not evenly spaced (steps from {lo:.3} to {hi:.3} mm; first off-grid slice {})",
                        h.path.display()
                    )));
                }
            }
            (step, dz)
        } else {
            let t = first.slice_thickness_mm.unwrap_or(1.0);
            (normal * t, t)
        };
        let shear_deg = (slice_step.normalized().dot(normal))
            .clamp(-1.0, 1.0)
            .acos()
            .to_degrees();
        let affine = Affine {
            origin: keyed[0].1,
            col_step: row_dir * col_spacing,
            row_step: col_dir * row_spacing,
            slice_step,
        };
        Ok(Self {
            series_instance_uid: series.series_instance_uid.clone(),
            slices: keyed.into_iter().map(|(_, _, h)| h).collect(),
            affine,
            rows: first.rows,
            cols: first.cols,
            spacing_mm: [col_spacing, row_spacing, dz],
            shear_deg,
            thickness_mm: first.slice_thickness_mm,
        })
    }

    /// Extent of the slice centres along the patient `z` axis, `(min, max)`, mm.
    pub fn z_range_mm(&self) -> (f64, f64) {
        let a = self.affine.origin.z;
        let b = self
            .affine
            .to_patient(0.0, 0.0, (self.slices.len() - 1) as f64)
            .z;
        (a.min(b), a.max(b))
    }
}
