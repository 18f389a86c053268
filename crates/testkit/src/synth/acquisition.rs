//! Where the slices go: scan range, order, orientation, tilt.

use spinewatch_core::Vec3;

use super::anatomy::Phantom;
use super::render::Plane;
use super::spec::{PatientPosition, SynthSpec};

/// Margin scanned beyond the first and last covered vertebral bodies, mm: as a real
/// scan, it shows the next disc and part of the next vertebra (C7, S1 at the ends).
const COVERAGE_MARGIN_MM: f64 = 30.0;
/// Distance from the scanner isocentre down to the table top, mm.
const ISOCENTRE_ABOVE_TABLE_MM: f64 = 125.0;

/// One reconstructed slice, in acquisition order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slice {
    /// The image plane (origin = ImagePositionPatient).
    pub plane: Plane,
    /// Table position of the slice centre (SliceLocation), mm.
    pub location_mm: f64,
    /// InstanceNumber.
    pub instance_number: u32,
}

/// A reconstructed series' slices and their shared parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Slices in acquisition order.
    pub slices: Vec<Slice>,
    /// Reconstructed thickness, mm.
    pub thickness_mm: f64,
    /// Distance between slice centres, mm.
    pub spacing_mm: f64,
    /// Scanned range `(inferior z, superior z)` of slice centres, mm.
    pub z_range: (f64, f64),
}

/// Plans the slices of a series of the given thickness and spacing over the spec's
/// coverage.
pub fn plan(spec: &SynthSpec, phantom: &Phantom, thickness_mm: f64, spacing_mm: f64) -> Series {
    let first = &phantom.vertebrae[spec.coverage.first.index()];
    let last = &phantom.vertebrae[spec.coverage.last.index()];
    let mut top = first.frame.origin.z + first.body.nominal_height_mm / 2.0 + COVERAGE_MARGIN_MM;
    let bottom = last.frame.origin.z - last.body.nominal_height_mm / 2.0 - COVERAGE_MARGIN_MM;
    let count = match spec.slices {
        Some(n) if spacing_mm == spec.slice_spacing_mm => {
            let mid = (top + bottom) / 2.0;
            let half = (n - 1) as f64 * spacing_mm / 2.0;
            top = mid + half;
            n
        }
        _ => ((top - bottom) / spacing_mm).floor() as usize + 1,
    };
    let bottom = top - (count - 1) as f64 * spacing_mm;
    let tilt = spec.gantry_tilt_deg.to_radians();
    let row_dir = match spec.patient_position {
        PatientPosition::Hfs => Vec3::X,
        PatientPosition::Ffs => -Vec3::X,
    };
    let col_dir = Vec3::new(0.0, tilt.cos(), tilt.sin());
    let n = usize::from(spec.matrix);
    let half = (n - 1) as f64 / 2.0 * spec.pixel_spacing_mm;
    let iso_y = phantom.table_top_y - ISOCENTRE_ABOVE_TABLE_MM;
    let slices = (0..count)
        .map(|k| {
            let z = match spec.patient_position {
                PatientPosition::Hfs => top - k as f64 * spacing_mm,
                PatientPosition::Ffs => bottom + k as f64 * spacing_mm,
            };
            let centre = Vec3::new(0.0, iso_y, z);
            let origin = centre - row_dir * half - col_dir * half;
            let instance_number = if spec.reverse_instance_order {
                count - k
            } else {
                k + 1
            } as u32;
            Slice {
                plane: Plane {
                    origin,
                    row_dir,
                    col_dir,
                    spacing_mm: spec.pixel_spacing_mm,
                    rows: n,
                    cols: n,
                },
                location_mm: z,
                instance_number,
            }
        })
        .collect();
    Series {
        slices,
        thickness_mm,
        spacing_mm,
        z_range: (bottom, top),
    }
}
