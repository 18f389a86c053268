//! Pixel decoding to Hounsfield units.

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use dicom_pixeldata::PixelDecoder;
use ndarray::{Array3, Axis};
use rayon::prelude::*;
use spinewatch_core::{Affine, Vec3};

use crate::series::SortedSeries;
use crate::{Error, Result};

/// HU given to padding pixels (outside the reconstruction circle): air.
pub const PADDING_HU: i16 = -1024;

/// A CT volume in Hounsfield units.
#[derive(Debug, Clone)]
pub struct HuVolume {
    /// Voxels as `[z, y, x]` = (slice along the normal, row, column), HU.
    pub data: Array3<i16>,
    /// Voxel index `(x, y, z)` to patient coordinates (LPS, mm).
    pub affine: Affine,
    /// Voxels that were PixelPaddingValue, set to [`PADDING_HU`].
    pub padded_voxels: usize,
}

/// Stored-value padding as declared by the file: PixelPaddingValue and the optional
/// PixelPaddingRangeLimit, both read in the pixel representation's sign (a negative
/// value written as US is reinterpreted, PS3.3 C.7.5.1.1.2).
fn padding_range(obj: &dicom_object::DefaultDicomObject, signed: bool) -> Option<(i32, i32)> {
    let read = |tag| -> Option<i32> {
        let e = obj.get(tag)?;
        let v = e.to_int::<i32>().ok()?;
        Some(if signed && v > i32::from(i16::MAX) {
            i32::from(v as u16 as i16)
        } else {
            v
        })
    };
    let a = read(tags::PIXEL_PADDING_VALUE)?;
    let b = read(tags::PIXEL_PADDING_RANGE_LIMIT).unwrap_or(a);
    Some((a.min(b), a.max(b)))
}

/// Decodes one slice into `out` (row-major HU); returns the padded pixel count.
fn decode_slice(
    path: &std::path::Path,
    rows: usize,
    cols: usize,
    out: &mut [i16],
) -> Result<usize> {
    let obj = OpenFileOptions::new()
        .open_file(path)
        .map_err(|source| Error::Open {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
    let unsupported = |what: String| Error::UnsupportedPixels {
        path: path.to_owned(),
        what,
    };
    let decoded = obj.decode_pixel_data().map_err(|source| Error::Decode {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    if decoded.samples_per_pixel() != 1 {
        return Err(unsupported(format!(
            "{} samples per pixel",
            decoded.samples_per_pixel()
        )));
    }
    if decoded.rows() as usize != rows || decoded.columns() as usize != cols {
        return Err(unsupported(format!(
            "{}x{} pixels where the header said {rows}x{cols}",
            decoded.rows(),
            decoded.columns()
        )));
    }
    let bits_allocated = decoded.bits_allocated();
    let bits_stored = u32::from(decoded.bits_stored());
    let signed = decoded.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
    let bytes = decoded.frame_data(0).map_err(|source| Error::Decode {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    let n = rows * cols;
    let slope = obj
        .get(tags::RESCALE_SLOPE)
        .and_then(|e| e.to_float64().ok())
        .unwrap_or(1.0);
    let intercept = obj
        .get(tags::RESCALE_INTERCEPT)
        .and_then(|e| e.to_float64().ok())
        .unwrap_or(0.0);
    let padding = padding_range(&obj, signed);
    let stored = |i: usize| -> i32 {
        let raw: u32 = match bits_allocated {
            8 => u32::from(bytes[i]),
            _ => u32::from(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])),
        };
        let mask = if bits_stored >= 32 {
            u32::MAX
        } else {
            (1u32 << bits_stored) - 1
        };
        let v = raw & mask;
        if signed && bits_stored < 32 && v >> (bits_stored - 1) & 1 == 1 {
            (v | !mask) as i32
        } else {
            v as i32
        }
    };
    match bits_allocated {
        8 if bytes.len() >= n => {}
        16 if bytes.len() >= 2 * n => {}
        8 | 16 => {
            return Err(unsupported(format!(
                "{} bytes of pixel data for {rows}x{cols}",
                bytes.len()
            )));
        }
        b => return Err(unsupported(format!("{b} bits allocated"))),
    }
    let mut padded = 0;
    for (i, o) in out.iter_mut().enumerate().take(n) {
        let s = stored(i);
        if padding.is_some_and(|(lo, hi)| (lo..=hi).contains(&s)) {
            *o = PADDING_HU;
            padded += 1;
        } else {
            *o = (f64::from(s) * slope + intercept)
                .round()
                .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
        }
    }
    Ok(padded)
}

impl HuVolume {
    /// Decodes every slice of `series` (in parallel) into HU.
    pub fn decode(series: &SortedSeries) -> Result<Self> {
        let (rows, cols) = (usize::from(series.rows), usize::from(series.cols));
        let mut data = Array3::<i16>::zeros((series.slices.len(), rows, cols));
        let padded: Vec<usize> = data
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(series.slices.par_iter())
            .map(|(mut plane, h)| {
                let out = plane
                    .as_slice_mut()
                    .expect("a standard-layout Array3 has contiguous planes");
                decode_slice(&h.path, rows, cols, out)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            data,
            affine: series.affine,
            padded_voxels: padded.iter().sum(),
        })
    }

    /// HU at patient point `p` by trilinear interpolation, `None` outside the volume.
    pub fn sample(&self, p: Vec3) -> Option<f64> {
        let [x, y, z] = self.affine.to_index(p)?;
        let (nz, ny, nx) = self.data.dim();
        if !(0.0..=(nx - 1) as f64).contains(&x)
            || !(0.0..=(ny - 1) as f64).contains(&y)
            || !(0.0..=(nz - 1) as f64).contains(&z)
        {
            return None;
        }
        let (x0, y0, z0) = (x.floor() as usize, y.floor() as usize, z.floor() as usize);
        let (x1, y1, z1) = (
            (x0 + 1).min(nx - 1),
            (y0 + 1).min(ny - 1),
            (z0 + 1).min(nz - 1),
        );
        let (fx, fy, fz) = (x - x0 as f64, y - y0 as f64, z - z0 as f64);
        let v = |z: usize, y: usize, x: usize| f64::from(self.data[[z, y, x]]);
        let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
        let c00 = lerp(v(z0, y0, x0), v(z0, y0, x1), fx);
        let c01 = lerp(v(z0, y1, x0), v(z0, y1, x1), fx);
        let c10 = lerp(v(z1, y0, x0), v(z1, y0, x1), fx);
        let c11 = lerp(v(z1, y1, x0), v(z1, y1, x1), fx);
        Some(lerp(lerp(c00, c01, fy), lerp(c10, c11, fy), fz))
    }
}
