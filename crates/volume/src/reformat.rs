//! Sagittal reformat along the spine: a curved planar reformation that straightens the
//! column, and per-vertebra patches cut from it.
//!
//! Row `i` of the image lies at arc length `s` along the centreline (cranial row first),
//! column `j` at an anterior offset from the vertebral bodies' centre line (most
//! anterior column first, as sagittal images are shown with the patient facing left);
//! each pixel averages a lateral slab. Sizes, spacing, slab and HU window come from a
//! [`ReformatManifest`] (the model's manifest, issue 4), never from constants here.

use ndarray::{Array2, Array4, s};
use serde::{Deserialize, Serialize};
use spinewatch_core::{Vec3, VertebraLevel};

use crate::HuVolume;
use crate::spine::Spine;

/// HU written where the reformat leaves the volume: air.
pub const OUTSIDE_HU: f32 = -1024.0;

/// How the reformat and its patches are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReformatManifest {
    /// Pixel spacing of the reformat and the patches, mm.
    pub spacing_mm: f64,
    /// Width of the reformat across the column (anterior-posterior), mm.
    pub width_mm: f64,
    /// Thickness of the lateral slab averaged into each pixel, mm.
    pub slab_mm: f64,
    /// Patch size `[rows, columns]` in pixels.
    pub patch_size: [usize; 2],
    /// HU window `[low, high]` mapped to 0..1 in the model's input.
    pub window_hu: [f64; 2],
}

impl Default for ReformatManifest {
    fn default() -> Self {
        Self {
            spacing_mm: 1.0,
            width_mm: 120.0,
            slab_mm: 5.0,
            patch_size: [64, 64],
            window_hu: [-200.0, 1300.0],
        }
    }
}

/// A straightened mid-sagittal image of the spine.
#[derive(Debug, Clone)]
pub struct SagittalReformat {
    /// HU as `[row (cranial first), column (anterior first)]`.
    pub hu: Array2<f32>,
    /// Arc length of each row, mm.
    pub s_mm: Vec<f64>,
    /// Anterior offset of each column from the bodies' centre line, mm.
    pub offset_mm: Vec<f64>,
    /// The manifest it was made with.
    pub manifest: ReformatManifest,
}

impl SagittalReformat {
    /// Row nearest to arc length `s`.
    pub fn row_of(&self, s_mm: f64) -> usize {
        let top = self.s_mm.first().copied().unwrap_or(0.0);
        (((top - s_mm) / self.manifest.spacing_mm).round().max(0.0) as usize)
            .min(self.s_mm.len().saturating_sub(1))
    }

    /// Column of anterior offset `a`.
    pub fn col_of(&self, offset_mm: f64) -> usize {
        let first = self.offset_mm.first().copied().unwrap_or(0.0);
        (((first - offset_mm) / self.manifest.spacing_mm)
            .round()
            .max(0.0) as usize)
            .min(self.offset_mm.len().saturating_sub(1))
    }
}

/// Samples the curved planar reformation of `volume` along `spine`.
pub fn sagittal(volume: &HuVolume, spine: &Spine, manifest: &ReformatManifest) -> SagittalReformat {
    let sp = manifest.spacing_mm;
    let rows = (spine.length_mm / sp).floor() as usize + 1;
    let cols = (manifest.width_mm / sp).round() as usize + 1;
    let s_mm: Vec<f64> = (0..rows).map(|i| spine.length_mm - i as f64 * sp).collect();
    let offset_mm: Vec<f64> = (0..cols)
        .map(|j| manifest.width_mm / 2.0 - j as f64 * sp)
        .collect();
    let lateral: Vec<f64> = {
        let n = (manifest.slab_mm / sp).round().max(0.0) as i32;
        (-n / 2..=n / 2).map(|k| f64::from(k) * sp).collect()
    };
    let mut hu = Array2::<f32>::from_elem((rows, cols), OUTSIDE_HU);
    use rayon::prelude::*;
    hu.axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            let p = spine.point_at(s_mm[i]);
            let centre = spine.body_line_at(s_mm[i]);
            for (j, a) in offset_mm.iter().enumerate() {
                let base: Vec3 = centre + p.anterior * *a;
                let (mut sum, mut n) = (0.0, 0);
                for l in &lateral {
                    if let Some(v) = volume.sample(base + p.lateral * *l) {
                        sum += v;
                        n += 1;
                    }
                }
                if n > 0 {
                    row[j] = (sum / f64::from(n)) as f32;
                }
            }
        });
    SagittalReformat {
        hu,
        s_mm,
        offset_mm,
        manifest: *manifest,
    }
}

/// One vertebra's patch of the reformat, centred on its body.
#[derive(Debug, Clone)]
pub struct VertebraPatch {
    /// Its label, when known.
    pub label: Option<VertebraLevel>,
    /// Its centre, LPS mm.
    pub centre_mm: Vec3,
    /// HU as `[row (cranial first), column (anterior first)]`, of the manifest's size.
    pub hu: Array2<f32>,
}

/// Cuts one patch per located vertebra out of `reformat`, padding with air.
pub fn patches(reformat: &SagittalReformat, spine: &Spine) -> Vec<VertebraPatch> {
    let [ph, pw] = reformat.manifest.patch_size;
    let (rows, cols) = reformat.hu.dim();
    spine
        .vertebrae
        .iter()
        .map(|v| {
            let r0 = reformat.row_of(v.s_mm) as i64 - (ph / 2) as i64;
            let c0 = reformat.col_of(0.0) as i64 - (pw / 2) as i64;
            let mut hu = Array2::<f32>::from_elem((ph, pw), OUTSIDE_HU);
            let (src_r0, src_c0) = (r0.max(0) as usize, c0.max(0) as usize);
            let src_r1 = ((r0 + ph as i64).max(0) as usize).min(rows);
            let src_c1 = ((c0 + pw as i64).max(0) as usize).min(cols);
            if src_r1 > src_r0 && src_c1 > src_c0 {
                let (dr, dc) = ((src_r0 as i64 - r0) as usize, (src_c0 as i64 - c0) as usize);
                hu.slice_mut(s![dr..dr + (src_r1 - src_r0), dc..dc + (src_c1 - src_c0)])
                    .assign(&reformat.hu.slice(s![src_r0..src_r1, src_c0..src_c1]));
            }
            VertebraPatch {
                label: v.label,
                centre_mm: v.centre_mm,
                hu,
            }
        })
        .collect()
}

/// The model input: patches windowed to 0..1, as `[n, 1, rows, columns]`.
pub fn input_tensor(patches: &[VertebraPatch], manifest: &ReformatManifest) -> Array4<f32> {
    let [ph, pw] = manifest.patch_size;
    let [lo, hi] = manifest.window_hu;
    let mut t = Array4::<f32>::zeros((patches.len(), 1, ph, pw));
    for (i, p) in patches.iter().enumerate() {
        t.slice_mut(s![i, 0, .., ..]).assign(
            &p.hu
                .mapv(|v| ((f64::from(v) - lo) / (hi - lo)).clamp(0.0, 1.0) as f32),
        );
    }
    t
}
