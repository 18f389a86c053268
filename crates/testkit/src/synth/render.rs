//! Renders the phantom on an image plane: the "reconstruction" of one slice.

use spinewatch_core::Vec3;

use super::primitive::Primitive;

/// An image plane: pixel `(i, j)` (column `i`, row `j`) lies at
/// `origin + row_dir * i * spacing_mm + col_dir * j * spacing_mm`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plane {
    /// Centre of the first pixel (ImagePositionPatient), LPS mm.
    pub origin: Vec3,
    /// Direction of increasing column index (IOP first triplet).
    pub row_dir: Vec3,
    /// Direction of increasing row index (IOP second triplet).
    pub col_dir: Vec3,
    /// Pixel spacing (square pixels), mm.
    pub spacing_mm: f64,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl Plane {
    /// Unit normal (`row_dir x col_dir`).
    pub fn normal(&self) -> Vec3 {
        self.row_dir.cross(self.col_dir)
    }

    /// Patient position of pixel `(i, j)`.
    pub fn point(&self, i: f64, j: f64) -> Vec3 {
        self.origin + self.row_dir * (i * self.spacing_mm) + self.col_dir * (j * self.spacing_mm)
    }
}

/// Number of sub-planes averaged across a slice of `thickness_mm` (slice profile).
pub fn sub_planes(thickness_mm: f64) -> usize {
    // One sample per ~1.25 mm of thickness: below that the edge blur already spans it.
    (thickness_mm / 1.25).round().max(1.0) as usize
}

/// Renders noise-free HU on `plane` for a slice of `thickness_mm`, with edges blurred
/// over `edge_mm`. Returns HU as `[row][column]`, row-major, `rows * cols` values.
pub fn render(
    prims: &[Primitive],
    plane: &Plane,
    thickness_mm: f64,
    edge_mm: f64,
    background_hu: f64,
) -> Vec<f32> {
    let n = plane.rows * plane.cols;
    let subs = sub_planes(thickness_mm);
    let normal = plane.normal();
    let mut sum = vec![0.0f32; n];
    let mut acc = vec![0.0f64; n];
    for s in 0..subs {
        let offset = if subs == 1 {
            0.0
        } else {
            thickness_mm * ((s as f64 + 0.5) / subs as f64 - 0.5)
        };
        let sub = Plane {
            origin: plane.origin + normal * offset,
            ..*plane
        };
        acc.fill(background_hu);
        for prim in prims {
            if let Some((i0, i1, j0, j1)) = pixel_rect(prim, &sub, edge_mm) {
                paint(prim, &sub, edge_mm, (i0, i1, j0, j1), &mut acc);
            }
        }
        for (t, a) in sum.iter_mut().zip(&acc) {
            *t += *a as f32;
        }
    }
    let inv = 1.0 / subs as f32;
    sum.iter_mut().for_each(|v| *v *= inv);
    sum
}

fn paint(
    prim: &Primitive,
    plane: &Plane,
    edge_mm: f64,
    rect: (usize, usize, usize, usize),
    acc: &mut [f64],
) {
    let (i0, i1, j0, j1) = rect;
    let di = plane.row_dir * plane.spacing_mm;
    for j in j0..=j1 {
        let mut p = plane.point(i0 as f64, j as f64);
        let row = &mut acc[j * plane.cols..(j + 1) * plane.cols];
        for v in &mut row[i0..=i1] {
            if let Some((alpha, hu)) = prim.sample(p, edge_mm) {
                *v += (hu - *v) * alpha;
            }
            p += di;
        }
    }
}

/// Inclusive pixel rectangle `(i0, i1, j0, j1)` a primitive may cover on the plane, or
/// `None` when its bounding box misses the plane.
fn pixel_rect(
    prim: &Primitive,
    plane: &Plane,
    edge_mm: f64,
) -> Option<(usize, usize, usize, usize)> {
    let (lo, hi) = prim.aabb();
    let n = plane.normal();
    let margin = edge_mm;
    let (mut dmin, mut dmax) = (f64::MAX, f64::MIN);
    let (mut imin, mut imax, mut jmin, mut jmax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for k in 0..8 {
        let c = Vec3::new(
            if k & 1 == 0 { lo.x } else { hi.x },
            if k & 2 == 0 { lo.y } else { hi.y },
            if k & 4 == 0 { lo.z } else { hi.z },
        ) - plane.origin;
        let d = c.dot(n);
        dmin = dmin.min(d);
        dmax = dmax.max(d);
        let i = c.dot(plane.row_dir) / plane.spacing_mm;
        let j = c.dot(plane.col_dir) / plane.spacing_mm;
        imin = imin.min(i);
        imax = imax.max(i);
        jmin = jmin.min(j);
        jmax = jmax.max(j);
    }
    if dmin > margin || dmax < -margin {
        return None;
    }
    let pad = margin / plane.spacing_mm + 1.0;
    let clamp = |v: f64, n: usize| v.clamp(0.0, (n - 1) as f64);
    if imax + pad < 0.0
        || jmax + pad < 0.0
        || imin - pad > (plane.cols - 1) as f64
        || jmin - pad > (plane.rows - 1) as f64
    {
        return None;
    }
    let i0 = clamp((imin - pad).floor(), plane.cols) as usize;
    let i1 = clamp((imax + pad).ceil(), plane.cols) as usize;
    let j0 = clamp((jmin - pad).floor(), plane.rows) as usize;
    let j1 = clamp((jmax + pad).ceil(), plane.rows) as usize;
    Some((i0, i1, j0, j1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::synth::primitive::{Shape, Shelled};

    #[test]
    fn sphere_renders_with_partial_volume_edge() {
        let prims = vec![Primitive::new(
            Shape::Ellipsoid {
                centre: Vec3::ZERO,
                radii: Vec3::new(10.0, 10.0, 10.0),
            },
            Shelled::solid(1000.0),
        )];
        let plane = Plane {
            origin: Vec3::new(-20.0, -20.0, 0.0),
            row_dir: Vec3::X,
            col_dir: Vec3::Y,
            spacing_mm: 1.0,
            rows: 41,
            cols: 41,
        };
        let img = render(&prims, &plane, 1.0, 1.0, 0.0);
        assert_eq!(img[20 * 41 + 20], 1000.0);
        assert_eq!(img[0], 0.0);
        // On the surface (x = 10) the voxel is half covered.
        assert!((img[20 * 41 + 30] - 500.0).abs() < 1.0);
    }
}
