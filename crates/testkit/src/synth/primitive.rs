//! Shapes the phantom is drawn with, each with an approximate signed distance.
//!
//! Every shape answers `sample(p) -> (alpha, hu)`: `alpha` is the fraction of a voxel
//! centred at `p` the shape covers (from its signed distance, blurred over the
//! reconstruction's edge width, which models partial volume and the kernel's
//! sharpness) and `hu` the value it paints there. The renderer composites shapes in
//! order, painter-style: `v = v * (1 - alpha) + hu * alpha`.

use spinewatch_core::Vec3;

/// Coverage of a voxel by a shape whose signed distance at its centre is `d` (mm),
/// blurred over `edge_mm`: 1 well inside, 0.5 on the surface, 0 well outside.
#[inline]
pub fn coverage(d: f64, edge_mm: f64) -> f64 {
    (0.5 - d / edge_mm).clamp(0.0, 1.0)
}

/// Signed distance (approximate, exact on the axes) from `(x, y)` to an ellipse of
/// semi-axes `(a, b)` centred at the origin; negative inside.
#[inline]
pub fn ellipse_sdf(x: f64, y: f64, a: f64, b: f64) -> f64 {
    // k0 * (k0 - 1) / k1 is first-order accurate near the surface (Quilez).
    let k0 = ((x / a).powi(2) + (y / b).powi(2)).sqrt();
    if k0 == 0.0 {
        return -a.min(b);
    }
    let k1 = ((x / (a * a)).powi(2) + (y / (b * b)).powi(2)).sqrt();
    k0 * (k0 - 1.0) / k1
}

/// Signed distance to an axis-aligned ellipsoid of semi-axes `r` centred at the origin.
#[inline]
pub fn ellipsoid_sdf(p: Vec3, r: Vec3) -> f64 {
    let k0 = ((p.x / r.x).powi(2) + (p.y / r.y).powi(2) + (p.z / r.z).powi(2)).sqrt();
    if k0 == 0.0 {
        return -r.x.min(r.y).min(r.z);
    }
    let k1 =
        ((p.x / (r.x * r.x)).powi(2) + (p.y / (r.y * r.y)).powi(2) + (p.z / (r.z * r.z)).powi(2))
            .sqrt();
    k0 * (k0 - 1.0) / k1
}

/// Distance from `p` to the segment `a..b`.
#[inline]
pub fn segment_distance(p: Vec3, a: Vec3, b: Vec3) -> f64 {
    let ab = b - a;
    let t = ((p - a).dot(ab) / ab.dot(ab)).clamp(0.0, 1.0);
    (p - (a + ab * t)).norm()
}

/// An orthonormal frame attached to a vertebra: `u` anterior, `v` to the patient's
/// left, `w` cranial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Origin (centre of the vertebral body), LPS mm.
    pub origin: Vec3,
    /// Anterior unit vector.
    pub u: Vec3,
    /// Lateral (left) unit vector.
    pub v: Vec3,
    /// Cranial unit vector.
    pub w: Vec3,
}

impl Frame {
    /// Local coordinates `(u, v, w)` of a patient point.
    #[inline]
    pub fn local(&self, p: Vec3) -> Vec3 {
        let d = p - self.origin;
        Vec3::new(d.dot(self.u), d.dot(self.v), d.dot(self.w))
    }

    /// Patient point of local coordinates `(u, v, w)`.
    #[inline]
    pub fn world(&self, l: Vec3) -> Vec3 {
        self.origin + self.u * l.x + self.v * l.y + self.w * l.z
    }
}

/// Cheap deterministic value noise in `[-1, 1]`, smooth over a unit lattice.
#[inline]
pub fn value_noise(p: Vec3, seed: u64) -> f64 {
    let (fx, fy, fz) = (p.x.floor(), p.y.floor(), p.z.floor());
    let (tx, ty, tz) = (p.x - fx, p.y - fy, p.z - fz);
    let (ix, iy, iz) = (fx as i64, fy as i64, fz as i64);
    let s = |t: f64| t * t * (3.0 - 2.0 * t);
    let (sx, sy, sz) = (s(tx), s(ty), s(tz));
    let h = |dx: i64, dy: i64, dz: i64| lattice_hash(ix + dx, iy + dy, iz + dz, seed);
    let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
    let x00 = lerp(h(0, 0, 0), h(1, 0, 0), sx);
    let x10 = lerp(h(0, 1, 0), h(1, 1, 0), sx);
    let x01 = lerp(h(0, 0, 1), h(1, 0, 1), sx);
    let x11 = lerp(h(0, 1, 1), h(1, 1, 1), sx);
    lerp(lerp(x00, x10, sy), lerp(x01, x11, sy), sz)
}

#[inline]
fn lattice_hash(x: i64, y: i64, z: i64, seed: u64) -> f64 {
    let mut h = seed ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^= (z as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// Material of a shape with a cortical shell: `shell` HU within `shell_mm` of the
/// surface, `core` HU deeper, blended over the edge width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shelled {
    /// HU of the outer shell.
    pub shell: f64,
    /// HU of the core.
    pub core: f64,
    /// Shell thickness, mm.
    pub shell_mm: f64,
}

impl Shelled {
    /// Solid material (no shell).
    pub const fn solid(hu: f64) -> Self {
        Self {
            shell: hu,
            core: hu,
            shell_mm: 0.0,
        }
    }

    /// HU at signed distance `d` (negative inside).
    #[inline]
    pub fn hu(&self, d: f64, edge_mm: f64) -> f64 {
        if self.shell_mm <= 0.0 {
            return self.core;
        }
        let depth = -d;
        let t = (0.5 - (depth - self.shell_mm) / edge_mm).clamp(0.0, 1.0);
        self.core + (self.shell - self.core) * t
    }
}

/// Shape of a vertebral body in its [`Frame`].
#[derive(Debug, Clone, PartialEq)]
pub struct BodyShape {
    /// Antero-posterior depth, mm (the cross-section ellipse's `u` axis is `depth/2`).
    pub depth_mm: f64,
    /// Transverse width, mm.
    pub width_mm: f64,
    /// `u` of the flat posterior wall (negative), mm.
    pub posterior_wall_u: f64,
    /// Posterior height without deformity, mm.
    pub nominal_height_mm: f64,
    /// Height at the posterior wall and at the anterior rim for a linear wedge, mm.
    pub wedge_heights_mm: (f64, f64),
    /// Central depression of each endplate (biconcave deformity plus the normal
    /// concavity), mm.
    pub concavity_mm: f64,
    /// Schmorl's node: centre in local coordinates and radius, mm.
    pub schmorl: Option<(Vec3, f64)>,
}

impl BodyShape {
    /// Normalised radius of `(u, v)` in the cross-section (1 on the ellipse).
    #[inline]
    fn radius2(&self, u: f64, v: f64) -> f64 {
        (u / (self.depth_mm / 2.0)).powi(2) + (v / (self.width_mm / 2.0)).powi(2)
    }

    /// Full height of the body at `(u, v)`, mm.
    #[inline]
    pub fn height_at(&self, u: f64, v: f64) -> f64 {
        let (hp, ha) = self.wedge_heights_mm;
        let a = self.depth_mm / 2.0;
        let t = ((u - self.posterior_wall_u) / (a - self.posterior_wall_u)).clamp(0.0, 1.0);
        let linear = hp + (ha - hp) * t;
        let r2 = self.radius2(u, v).min(1.0);
        linear - 2.0 * self.concavity_mm * (1.0 - r2).powi(2)
    }

    /// Signed distance of local point `l` to the body (negative inside).
    #[inline]
    pub fn sdf(&self, l: Vec3) -> f64 {
        let a = self.depth_mm / 2.0;
        let b = self.width_mm / 2.0;
        let d_xy = ellipse_sdf(l.x, l.y, a, b).max(self.posterior_wall_u - l.x);
        let half = self.height_at(l.x, l.y) / 2.0;
        let d_z = l.z.abs() - half;
        let mut d = if d_xy > 0.0 && d_z > 0.0 {
            (d_xy * d_xy + d_z * d_z).sqrt()
        } else {
            d_xy.max(d_z)
        };
        if let Some((c, r)) = self.schmorl {
            d = d.max(r - (l - c).norm());
        }
        d
    }
}

/// One drawable shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// An elliptic cylinder along `z` whose centre and radii vary with `z` (the torso):
    /// tables sampled every `step_mm` from `z0`.
    Torso {
        /// `z` of the first table entry, mm.
        z0: f64,
        /// Table step, mm.
        step_mm: f64,
        /// `(cx, cy, rx, ry)` per table entry, inset already applied.
        table: Vec<[f64; 4]>,
    },
    /// An axis-aligned ellipsoid.
    Ellipsoid {
        /// Centre.
        centre: Vec3,
        /// Semi-axes.
        radii: Vec3,
    },
    /// A capsule (rounded segment).
    Capsule {
        /// One end.
        a: Vec3,
        /// The other end.
        b: Vec3,
        /// Radius, mm.
        radius: f64,
    },
    /// An elliptic slab in a vertebra's frame: ellipse centred at `(u, v)` with radii
    /// `(ru, rv)`, for `w` in `w_range`.
    LocalSlab {
        /// The frame.
        frame: Frame,
        /// Centre of the ellipse in `(u, v)`.
        centre_uv: (f64, f64),
        /// Radii along `u` and `v`.
        radii_uv: (f64, f64),
        /// Extent along `w`.
        w_range: (f64, f64),
    },
    /// An elliptic annulus in a vertebra's frame (neural arch around the canal).
    LocalRing {
        /// The frame.
        frame: Frame,
        /// Centre of the canal in `(u, v)`.
        centre_uv: (f64, f64),
        /// Inner radii (the canal) along `u` and `v`.
        inner_uv: (f64, f64),
        /// Wall thickness, mm.
        thickness_mm: f64,
        /// Extent along `w`.
        w_range: (f64, f64),
        /// Largest `u` of the ring: it stops at the body's posterior wall.
        max_u: f64,
    },
    /// A vertebral body.
    Body {
        /// The frame.
        frame: Frame,
        /// Its shape.
        shape: Box<BodyShape>,
        /// Amplitude of trabecular texture, HU.
        texture_hu: f64,
        /// Seed of the texture.
        texture_seed: u64,
    },
}

/// A shape with its material and a bounding sphere for culling.
#[derive(Debug, Clone, PartialEq)]
pub struct Primitive {
    /// Geometry.
    pub shape: Shape,
    /// Material.
    pub material: Shelled,
    /// Bounding sphere centre.
    pub bound_centre: Vec3,
    /// Bounding sphere radius (infinite for the torso).
    pub bound_radius: f64,
}

impl Primitive {
    /// Wraps a shape, computing its bounding sphere.
    pub fn new(shape: Shape, material: Shelled) -> Self {
        let (bound_centre, bound_radius) = match &shape {
            Shape::Torso { .. } => (Vec3::ZERO, f64::INFINITY),
            Shape::Ellipsoid { centre, radii } => (*centre, radii.x.max(radii.y).max(radii.z)),
            Shape::Capsule { a, b, radius } => ((*a + *b) / 2.0, (*b - *a).norm() / 2.0 + radius),
            Shape::LocalSlab {
                frame,
                centre_uv,
                radii_uv,
                w_range,
            } => {
                let mid = (w_range.0 + w_range.1) / 2.0;
                let c = frame.world(Vec3::new(centre_uv.0, centre_uv.1, mid));
                let r = radii_uv
                    .0
                    .max(radii_uv.1)
                    .hypot((w_range.1 - w_range.0) / 2.0);
                (c, r)
            }
            Shape::LocalRing {
                frame,
                centre_uv,
                inner_uv,
                thickness_mm,
                w_range,
                ..
            } => {
                let mid = (w_range.0 + w_range.1) / 2.0;
                let c = frame.world(Vec3::new(centre_uv.0, centre_uv.1, mid));
                let r = (inner_uv.0.max(inner_uv.1) + thickness_mm)
                    .hypot((w_range.1 - w_range.0) / 2.0);
                (c, r)
            }
            Shape::Body { frame, shape, .. } => {
                let r = (shape.depth_mm.max(shape.width_mm) / 2.0)
                    .hypot(shape.nominal_height_mm / 2.0 + 1.0);
                (frame.origin, r)
            }
        };
        Self {
            shape,
            material,
            bound_centre,
            bound_radius,
        }
    }

    /// Axis-aligned bounding box `(min, max)` of the shape, mm.
    pub fn aabb(&self) -> (Vec3, Vec3) {
        match &self.shape {
            Shape::Torso { z0, step_mm, table } => {
                let (mut lo, mut hi) = (
                    Vec3::new(f64::MAX, f64::MAX, *z0),
                    Vec3::new(f64::MIN, f64::MIN, 0.0),
                );
                for e in table {
                    lo.x = lo.x.min(e[0] - e[2]);
                    lo.y = lo.y.min(e[1] - e[3]);
                    hi.x = hi.x.max(e[0] + e[2]);
                    hi.y = hi.y.max(e[1] + e[3]);
                }
                hi.z = z0 + step_mm * (table.len().max(1) - 1) as f64;
                (lo, hi)
            }
            Shape::Ellipsoid { centre, radii } => (*centre - *radii, *centre + *radii),
            Shape::Capsule { a, b, radius } => {
                let r = Vec3::new(*radius, *radius, *radius);
                let lo = Vec3::new(a.x.min(b.x), a.y.min(b.y), a.z.min(b.z));
                let hi = Vec3::new(a.x.max(b.x), a.y.max(b.y), a.z.max(b.z));
                (lo - r, hi + r)
            }
            _ => {
                let r = Vec3::new(self.bound_radius, self.bound_radius, self.bound_radius);
                (self.bound_centre - r, self.bound_centre + r)
            }
        }
    }

    /// Coverage and HU at `p` for an edge width of `edge_mm`; `None` when clearly outside.
    #[inline]
    pub fn sample(&self, p: Vec3, edge_mm: f64) -> Option<(f64, f64)> {
        let d = match &self.shape {
            Shape::Torso { z0, step_mm, table } => {
                let f = ((p.z - z0) / step_mm).clamp(0.0, (table.len() - 1) as f64);
                let i = (f.floor() as usize).min(table.len().saturating_sub(2));
                let t = f - i as f64;
                let e0 = table[i];
                let e1 = table[(i + 1).min(table.len() - 1)];
                let lerp = |k: usize| e0[k] + (e1[k] - e0[k]) * t;
                ellipse_sdf(p.x - lerp(0), p.y - lerp(1), lerp(2), lerp(3))
            }
            Shape::Ellipsoid { centre, radii } => ellipsoid_sdf(p - *centre, *radii),
            Shape::Capsule { a, b, radius } => segment_distance(p, *a, *b) - radius,
            Shape::LocalSlab {
                frame,
                centre_uv,
                radii_uv,
                w_range,
            } => {
                let l = frame.local(p);
                let dz = (w_range.0 - l.z).max(l.z - w_range.1);
                let dxy = ellipse_sdf(l.x - centre_uv.0, l.y - centre_uv.1, radii_uv.0, radii_uv.1);
                dxy.max(dz)
            }
            Shape::LocalRing {
                frame,
                centre_uv,
                inner_uv,
                thickness_mm,
                w_range,
                max_u,
            } => {
                let l = frame.local(p);
                let dz = (w_range.0 - l.z).max(l.z - w_range.1).max(l.x - max_u);
                let (x, y) = (l.x - centre_uv.0, l.y - centre_uv.1);
                let inner = ellipse_sdf(x, y, inner_uv.0, inner_uv.1);
                let outer = ellipse_sdf(x, y, inner_uv.0 + thickness_mm, inner_uv.1 + thickness_mm);
                outer.max(-inner).max(dz)
            }
            Shape::Body {
                frame,
                shape,
                texture_hu,
                texture_seed,
            } => {
                let l = frame.local(p);
                let d = shape.sdf(l);
                let alpha = coverage(d, edge_mm);
                if alpha <= 0.0 {
                    return None;
                }
                let mut hu = self.material.hu(d, edge_mm);
                if *texture_hu > 0.0 {
                    // Trabecular heterogeneity on a ~2.5 mm lattice.
                    hu += texture_hu * value_noise(l * 0.4, *texture_seed);
                }
                return Some((alpha, hu));
            }
        };
        let alpha = coverage(d, edge_mm);
        if alpha <= 0.0 {
            None
        } else {
            Some((alpha, self.material.hu(d, edge_mm)))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const SDF_TOL_MM: f64 = 1e-9; // exact on the axes

    #[test]
    fn ellipse_distance_is_exact_on_axes() {
        assert!((ellipse_sdf(12.0, 0.0, 10.0, 5.0) - 2.0).abs() < SDF_TOL_MM);
        assert!((ellipse_sdf(0.0, 4.0, 10.0, 5.0) + 1.0).abs() < SDF_TOL_MM);
        assert!(
            (ellipsoid_sdf(Vec3::new(0.0, 0.0, 7.0), Vec3::new(3.0, 4.0, 5.0)) - 2.0).abs()
                < SDF_TOL_MM
        );
    }

    #[test]
    fn wedge_body_heights() {
        let s = BodyShape {
            depth_mm: 30.0,
            width_mm: 40.0,
            posterior_wall_u: -12.0,
            nominal_height_mm: 25.0,
            wedge_heights_mm: (25.0, 15.0),
            concavity_mm: 0.0,
            schmorl: None,
        };
        assert!((s.height_at(-12.0, 0.0) - 25.0).abs() < 1e-9);
        assert!((s.height_at(15.0, 0.0) - 15.0).abs() < 1e-9);
        // Just inside the top endplate at the posterior wall region.
        assert!(s.sdf(Vec3::new(-10.0, 0.0, 12.0)) < 0.0);
        assert!(s.sdf(Vec3::new(10.0, 0.0, 12.0)) > 0.0);
    }
}
