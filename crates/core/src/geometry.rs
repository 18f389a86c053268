//! Geometry in the DICOM patient coordinate system (PS3.3 C.7.6.2.1.1): LPS, in mm, f64.
//!
//! `+x` points to the patient's left, `+y` posterior, `+z` superior (head).

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use serde::{Deserialize, Serialize};

/// A point or direction in patient coordinates (LPS, mm).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "[f64; 3]", into = "[f64; 3]")]
pub struct Vec3 {
    /// Towards the patient's left.
    pub x: f64,
    /// Towards the patient's back.
    pub y: f64,
    /// Towards the patient's head.
    pub z: f64,
}

impl Vec3 {
    /// The zero vector.
    pub const ZERO: Vec3 = Vec3::new(0.0, 0.0, 0.0);
    /// Unit vector to the patient's left.
    pub const X: Vec3 = Vec3::new(1.0, 0.0, 0.0);
    /// Unit vector to the patient's back.
    pub const Y: Vec3 = Vec3::new(0.0, 1.0, 0.0);
    /// Unit vector to the patient's head.
    pub const Z: Vec3 = Vec3::new(0.0, 0.0, 1.0);

    /// A vector from its components.
    pub const fn new(x: f64, y: f64, z: f64) -> Self {
        Self { x, y, z }
    }

    /// Dot product.
    pub fn dot(self, o: Vec3) -> f64 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }

    /// Cross product (right-handed).
    pub fn cross(self, o: Vec3) -> Vec3 {
        Vec3::new(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }

    /// Euclidean length.
    pub fn norm(self) -> f64 {
        self.dot(self).sqrt()
    }

    /// The unit vector in this direction (the zero vector stays zero).
    pub fn normalized(self) -> Vec3 {
        let n = self.norm();
        if n > 0.0 { self / n } else { self }
    }

    /// Components as an array.
    pub fn to_array(self) -> [f64; 3] {
        [self.x, self.y, self.z]
    }
}

impl From<[f64; 3]> for Vec3 {
    fn from(a: [f64; 3]) -> Self {
        Vec3::new(a[0], a[1], a[2])
    }
}

impl From<Vec3> for [f64; 3] {
    fn from(v: Vec3) -> Self {
        v.to_array()
    }
}

impl Add for Vec3 {
    type Output = Vec3;
    fn add(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}

impl AddAssign for Vec3 {
    fn add_assign(&mut self, o: Vec3) {
        *self = *self + o;
    }
}

impl Sub for Vec3 {
    type Output = Vec3;
    fn sub(self, o: Vec3) -> Vec3 {
        Vec3::new(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}

impl Mul<f64> for Vec3 {
    type Output = Vec3;
    fn mul(self, s: f64) -> Vec3 {
        Vec3::new(self.x * s, self.y * s, self.z * s)
    }
}

impl Div<f64> for Vec3 {
    type Output = Vec3;
    fn div(self, s: f64) -> Vec3 {
        Vec3::new(self.x / s, self.y / s, self.z / s)
    }
}

impl Neg for Vec3 {
    type Output = Vec3;
    fn neg(self) -> Vec3 {
        Vec3::new(-self.x, -self.y, -self.z)
    }
}

/// An affine map from voxel indices `(i, j, k)` = (column, row, slice) to patient
/// coordinates: `p = origin + i * col_step + j * row_step + k * slice_step`.
///
/// `col_step` is the row direction cosine (IOP first triplet) times the column spacing,
/// `row_step` the column direction cosine times the row spacing, and `slice_step` the
/// difference of consecutive ImagePositionPatient values, which need not be normal to
/// the image plane (gantry tilt makes the grid sheared).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Affine {
    /// Patient position of voxel (0, 0, 0), mm.
    pub origin: Vec3,
    /// Step for `i + 1` (along a row), mm.
    pub col_step: Vec3,
    /// Step for `j + 1` (down a column), mm.
    pub row_step: Vec3,
    /// Step for `k + 1` (next slice), mm.
    pub slice_step: Vec3,
}

impl Affine {
    /// Patient coordinates of a (fractional) voxel index.
    pub fn to_patient(&self, i: f64, j: f64, k: f64) -> Vec3 {
        self.origin + self.col_step * i + self.row_step * j + self.slice_step * k
    }

    /// Fractional voxel index `(i, j, k)` of a patient point, or `None` if the grid is
    /// degenerate (its steps are linearly dependent).
    pub fn to_index(&self, p: Vec3) -> Option<[f64; 3]> {
        let d = p - self.origin;
        let (a, b, c) = (self.col_step, self.row_step, self.slice_step);
        let det = a.dot(b.cross(c));
        if det.abs() < 1e-12 {
            return None;
        }
        // Cramer's rule on the columns a, b, c.
        let i = d.dot(b.cross(c)) / det;
        let j = a.dot(d.cross(c)) / det;
        let k = a.dot(b.cross(d)) / det;
        Some([i, j, k])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const EPS: f64 = 1e-9; // f64 round-off on mm-scale values

    #[test]
    fn affine_round_trips_with_shear() {
        let tilt = 18.5_f64.to_radians();
        let a = Affine {
            origin: Vec3::new(-120.0, -100.0, 50.0),
            col_step: Vec3::X * 0.5,
            row_step: Vec3::new(0.0, tilt.cos(), -tilt.sin()) * 0.5,
            slice_step: Vec3::new(0.0, 0.0, -2.5),
        };
        let p = a.to_patient(10.5, 200.25, 7.0);
        let [i, j, k] = a.to_index(p).unwrap();
        assert!((i - 10.5).abs() < EPS && (j - 200.25).abs() < EPS && (k - 7.0).abs() < EPS);
    }

    #[test]
    fn vectors_follow_lps_handedness() {
        assert_eq!(Vec3::X.cross(Vec3::Y), Vec3::Z);
        let json = serde_json_roundtrip(Vec3::new(1.0, 2.0, 3.0));
        assert_eq!(json, "[1.0,2.0,3.0]");
    }

    fn serde_json_roundtrip(v: Vec3) -> String {
        serde_json::to_string(&v).unwrap()
    }
}
