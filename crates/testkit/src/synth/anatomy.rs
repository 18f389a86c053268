//! The phantom's anatomy: a torso with organs and a T1-L5 spine, drawn from a seed.
//!
//! The spine is built along a centreline integrated from its sagittal curvature
//! (thoracic kyphosis, lumbar lordosis, the local kyphosis of each wedged body) and an
//! optional scoliotic lateral curve; each vertebra gets a [`Frame`] on that line, and
//! every other structure (ribs, aorta, torso outline) is placed relative to the spine.
//! Sizes grow from T1 to L5 as in adult morphometry (Panjabi et al., Spine 1991/1992).

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use spinewatch_core::genant::Heights;
use spinewatch_core::truth::{DistractorKind, DistractorTruth, MeasurementOffsets, VertebraTruth};
use spinewatch_core::{GenantGrade, Morphology, Vec3, VertebraLevel};

use super::primitive::{BodyShape, Frame, Primitive, Shape, Shelled};
use super::spec::{Contrast, SynthSpec};

/// Anterior and posterior height lines lie this far inside the body's anterior rim and
/// posterior wall, mm: clear of the cortical wall (1.2 mm) and its partial-volume edge.
pub const MEASURE_INSET_MM: f64 = 3.0;
/// The flat posterior wall, fraction of depth.
const POSTERIOR_WALL_FRACTION: f64 = -0.40;
/// Step of the centreline integration, mm.
const CURVE_STEP_MM: f64 = 0.25;

/// Height loss drawn for a fracture of each grade: inside the Genant range with a
/// margin, so that a measurement within 1 mm still gives the same grade.
pub fn fracture_loss_band(grade: GenantGrade) -> (f64, f64) {
    match grade {
        GenantGrade::Normal => (0.0, 0.0),
        GenantGrade::Mild => (0.215, 0.235),
        GenantGrade::Moderate => (0.28, 0.37),
        GenantGrade::Severe => (0.44, 0.56),
    }
}

/// A seeded random source for one named purpose, independent of the others, so that
/// adding a structure does not change the draws of the rest.
pub fn rng_for(seed: u64, purpose: &str) -> Pcg64Mcg {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for b in purpose.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Pcg64Mcg::seed_from_u64(h)
}

/// One vertebra as drawn.
#[derive(Debug, Clone)]
pub struct Vertebra {
    /// Level.
    pub level: VertebraLevel,
    /// Its frame (origin: centre of the body).
    pub frame: Frame,
    /// Body shape.
    pub body: BodyShape,
    /// Disc height below this body, mm.
    pub disc_below_mm: f64,
    /// Canal radii `(u, v)`, mm, and its centre `u`.
    pub canal: (f64, f64, f64),
    /// Ground truth.
    pub truth: VertebraTruth,
}

/// A vertebra outside T1-L5 drawn for anatomical context, not graded: C6 and C7 above,
/// the sacrum (S1-S4, fused, with its alae) below. Real scans go on past T1 and L5, and
/// so must the phantom, or its end vertebrae would be unlike any patient's.
#[derive(Debug, Clone)]
pub struct ContextBone {
    /// Anatomical name (C6, C7, S1..S4).
    pub name: &'static str,
    /// Its frame (origin: centre of the body).
    pub frame: Frame,
    /// Body shape.
    pub body: BodyShape,
    /// Canal radii `(u, v)` and its centre `u`, mm.
    pub canal: (f64, f64, f64),
    /// Disc height below this body (0 where the sacrum is fused), mm.
    pub disc_below_mm: f64,
    /// Whether it is a sacral segment (no disc, no free arch).
    pub sacral: bool,
}

/// The whole phantom.
#[derive(Debug, Clone)]
pub struct Phantom {
    /// Shapes in painting order.
    pub primitives: Vec<Primitive>,
    /// Vertebrae, T1 first.
    pub vertebrae: Vec<Vertebra>,
    /// Distractors drawn.
    pub distractors: Vec<DistractorTruth>,
    /// Cervical and sacral vertebrae drawn for context, cranial first.
    pub context: Vec<ContextBone>,
    /// Trabecular HU used.
    pub trabecular_hu: f64,
    /// Value outside the patient (air), HU.
    pub background_hu: f64,
    /// `y` of the table top, mm.
    pub table_top_y: f64,
    /// Whether the phantom is female (smaller frame, PatientSex F).
    pub female: bool,
}

struct LevelSize {
    hp: f64,
    depth: f64,
    width: f64,
    disc_below: f64,
}

fn nominal_size(level: VertebraLevel) -> LevelSize {
    match level {
        VertebraLevel::Thoracic(n) => {
            let t = f64::from(n - 1) / 11.0;
            LevelSize {
                hp: 14.5 + 7.5 * t,
                depth: 15.5 + 12.5 * t,
                width: 24.0 + 16.0 * t,
                disc_below: 3.5 + 2.5 * t,
            }
        }
        VertebraLevel::Lumbar(n) => {
            let t = f64::from(n - 1) / 4.0;
            LevelSize {
                hp: 24.0 + 2.5 * t,
                depth: 30.0 + 5.0 * t,
                width: 42.0 + 8.0 * t,
                disc_below: 8.0 + 3.0 * t,
            }
        }
    }
}

/// Offsets `(anterior, posterior)` of the height lines from the body centre along `u`, mm.
pub fn measure_offsets(body: &BodyShape) -> (f64, f64) {
    (
        body.depth_mm / 2.0 - MEASURE_INSET_MM,
        body.posterior_wall_u + MEASURE_INSET_MM,
    )
}

/// Heights at the measurement lines of a body shape.
pub fn measured_heights(body: &BodyShape) -> Heights {
    let (ua, up) = measure_offsets(body);
    Heights {
        anterior: body.height_at(ua, 0.0),
        middle: body.height_at(0.0, 0.0),
        posterior: body.height_at(up, 0.0),
    }
}

/// Linear-part parameter `t` of the height model at `u`.
fn wedge_t(body: &BodyShape, u: f64) -> f64 {
    let a = body.depth_mm / 2.0;
    ((u - body.posterior_wall_u) / (a - body.posterior_wall_u)).clamp(0.0, 1.0)
}

/// Concavity weight `2 (1 - r^2)^2` at `(u, 0)`, the factor of `concavity_mm`.
fn concavity_weight(body: &BodyShape, u: f64) -> f64 {
    let r2 = (u / (body.depth_mm / 2.0)).powi(2).min(1.0);
    2.0 * (1.0 - r2).powi(2)
}

/// Angle between the endplates of a wedged body, radians (positive: shorter in front).
fn wedge_angle(body: &BodyShape) -> f64 {
    let a = body.depth_mm / 2.0;
    ((body.wedge_heights_mm.0 - body.wedge_heights_mm.1) / (a - body.posterior_wall_u)).atan()
}

/// Sets the anterior rim height so that measured `Ha / Hp = 1 - loss`.
fn set_wedge(body: &mut BodyShape, loss: f64) {
    let hp = body.wedge_heights_mm.0;
    let (ua, up) = measure_offsets(body);
    let (ta, tp) = (wedge_t(body, ua), wedge_t(body, up));
    let (ka, kp) = (
        concavity_weight(body, ua) * body.concavity_mm,
        concavity_weight(body, up) * body.concavity_mm,
    );
    // Ha = hp + x ta - ka; Hp = hp + x tp - kp; solve Ha = (1 - loss) Hp for x = ha - hp.
    let keep = 1.0 - loss;
    let x = (keep * (hp - kp) - hp + ka) / (ta - keep * tp);
    body.wedge_heights_mm.1 = hp + x;
}

/// Sets the endplate depression so that measured `Hm / Hp = 1 - loss` (no wedge).
fn set_biconcave(body: &mut BodyShape, loss: f64) {
    let hp = body.wedge_heights_mm.0;
    body.wedge_heights_mm.1 = hp;
    let fp = concavity_weight(body, measure_offsets(body).1);
    let fm = concavity_weight(body, 0.0);
    // hp - fm c = (1 - loss)(hp - fp c)
    let keep = 1.0 - loss;
    body.concavity_mm = (hp - keep * hp) / (fm - keep * fp);
}

/// Lowers the whole body so that measured `Hp = (1 - loss) * reference`.
fn set_crush(body: &mut BodyShape, loss: f64, reference: f64) {
    let kp = concavity_weight(body, measure_offsets(body).1) * body.concavity_mm;
    let hp = (1.0 - loss) * reference + kp;
    body.wedge_heights_mm = (hp, hp);
}

/// Builds the phantom for `spec`.
pub fn build(spec: &SynthSpec) -> Phantom {
    let seed = spec.seed;
    let mut rng = rng_for(seed, "anatomy");
    let female = rng.random_bool(0.5);
    let body_scale = rng.random_range(0.92..1.08) * if female { 0.94 } else { 1.0 };
    let habitus = rng.random_range(0.88..1.15);
    let kyphosis = spec
        .kyphosis_deg
        .unwrap_or_else(|| rng.random_range(25.0..55.0))
        .to_radians();
    let lordosis = spec
        .lordosis_deg
        .unwrap_or_else(|| rng.random_range(35.0..60.0))
        .to_radians();
    let age = f64::from(spec.age_years);
    let trabecular_hu = spec.trabecular_hu.unwrap_or_else(|| {
        // Roughly 2 HU per year lost after 25, more in women (QCT reference data).
        let loss_per_year = if female { 2.6 } else { 2.0 };
        (250.0 - loss_per_year * (age - 25.0).max(0.0) + rng.random_range(-20.0..20.0))
            .clamp(50.0, 300.0)
    });
    let cortical_hu = rng.random_range(750.0..950.0);
    let disc_hu = rng.random_range(75.0..105.0);
    let fat_mm = rng.random_range(8.0..30.0) * habitus;
    let edge_texture_hu = rng.random_range(10.0..25.0);

    // Vertebra shapes before placement.
    let mut shapes = Vec::with_capacity(VertebraLevel::COUNT);
    let mut truths_extra = Vec::with_capacity(VertebraLevel::COUNT);
    let mut distractors = Vec::new();
    let mut natural_kinks = Vec::with_capacity(VertebraLevel::COUNT);
    let mut vrng = rng_for(seed, "vertebrae");
    for level in VertebraLevel::all() {
        let n = nominal_size(level);
        let jitter = |r: &mut Pcg64Mcg| r.random_range(0.97..1.03);
        let hp = n.hp * body_scale * jitter(&mut vrng);
        let depth = n.depth * body_scale * jitter(&mut vrng);
        let width = n.width * body_scale * jitter(&mut vrng);
        let disc_below = n.disc_below * body_scale * jitter(&mut vrng);
        let concavity = if level.is_thoracic() { 0.4 } else { 0.6 } * vrng.random_range(0.8..1.2);
        let mut body = BodyShape {
            depth_mm: depth,
            width_mm: width,
            posterior_wall_u: POSTERIOR_WALL_FRACTION * depth,
            nominal_height_mm: hp,
            wedge_heights_mm: (hp, hp),
            concavity_mm: concavity,
            schmorl: None,
        };
        // Natural shape: mid-thoracic bodies are slightly wedged, L5 is taller in front.
        let natural_wedge = match level {
            VertebraLevel::Thoracic(4..=10) => vrng.random_range(0.0..0.07),
            VertebraLevel::Thoracic(_) => vrng.random_range(0.0..0.04),
            VertebraLevel::Lumbar(5) => -vrng.random_range(0.06..0.12),
            VertebraLevel::Lumbar(_) => -vrng.random_range(0.0..0.05),
        };
        set_wedge(&mut body, natural_wedge);
        natural_kinks.push(wedge_angle(&body));
        let reference = measured_heights(&body).posterior;
        let mut grade = GenantGrade::Normal;
        let mut morphology = None;
        let mut loss = Morphology::Wedge.height_loss(measured_heights(&body), reference);
        for d in spec.distractors.iter().filter(|d| d.level == level) {
            match d.kind {
                DistractorKind::PhysiologicalWedging => {
                    set_wedge(&mut body, vrng.random_range(0.12..0.17));
                    loss = Morphology::Wedge.height_loss(measured_heights(&body), reference);
                }
                DistractorKind::SchmorlNode => {
                    let r = vrng.random_range(3.0..4.5) * body_scale;
                    let side = if vrng.random_bool(0.5) { 1.0 } else { -1.0 };
                    let (u, v) = (0.05 * depth, side * 0.22 * width);
                    let top = body.height_at(u, v) / 2.0;
                    // Centred just above the endplate so the pit is deeper than its radius.
                    body.schmorl = Some((Vec3::new(u, v, top + 0.3 * r), r));
                }
                DistractorKind::Osteophyte => {}
            }
            distractors.push(DistractorTruth {
                level,
                kind: d.kind,
            });
        }
        if let Some(f) = spec
            .fractures
            .iter()
            .find(|f| f.level == level && f.grade.is_fracture())
        {
            let (lo, hi) = fracture_loss_band(f.grade);
            let target = vrng.random_range(lo..hi);
            match f.morphology {
                Morphology::Wedge => set_wedge(&mut body, target),
                Morphology::Biconcave => set_biconcave(&mut body, target),
                Morphology::Crush => set_crush(&mut body, target, reference),
            }
            loss = f.morphology.height_loss(measured_heights(&body), reference);
            grade = f.grade;
            morphology = Some(f.morphology);
            debug_assert_eq!(GenantGrade::from_height_loss(loss), grade);
        }
        truths_extra.push((reference, loss, grade, morphology, disc_below));
        shapes.push(body);
    }

    // Centreline: arc length s from the top of T1; theta is the sagittal angle of the
    // caudal tangent (positive: going posterior as it descends).
    // Bodies are stacked by their central heights, except a biconcave fracture: its
    // depressed centre leaves its rims, and the discs beside them, where they were, so it
    // is stacked by its rims (the mean of its anterior and posterior lines).
    let central: Vec<f64> = shapes
        .iter()
        .zip(&truths_extra)
        .map(|(b, extra)| {
            let h = measured_heights(b);
            if extra.3 == Some(Morphology::Biconcave) {
                b.height_at(0.0, 0.0).max((h.anterior + h.posterior) / 2.0)
            } else {
                b.height_at(0.0, 0.0)
            }
        })
        .collect();
    let mut body_spans = Vec::with_capacity(shapes.len());
    let mut s = 0.0;
    for (i, h) in central.iter().enumerate() {
        body_spans.push((s, s + h));
        s += h + truths_extra[i].4;
    }
    let total = s;
    let thoracic_end = body_spans[11].1 + truths_extra[11].4 / 2.0;
    // The global curvature already includes the natural wedging of the bodies: only a
    // deformity beyond it (fracture, distractor) bends the column further.
    let kinks: Vec<f64> = shapes
        .iter()
        .zip(&natural_kinks)
        .map(|(b, natural)| wedge_angle(b) - natural)
        .collect();
    let scoliosis = spec.scoliosis_mm;
    let n_steps = (total / CURVE_STEP_MM).ceil() as usize + 1;
    // The centreline bent by the global curvature and by `kinks`.
    let integrate = |kinks: &[f64]| -> (Vec<Vec3>, Vec<Vec3>) {
        let mut points = Vec::with_capacity(n_steps);
        let mut tangents = Vec::with_capacity(n_steps);
        let mut theta = kyphosis / 2.0;
        let mut p = Vec3::new(0.0, 0.0, 0.0);
        let mut body_index = 0;
        for step in 0..n_steps {
            let s = step as f64 * CURVE_STEP_MM;
            let dx =
                scoliosis * std::f64::consts::PI / total * (std::f64::consts::PI * s / total).cos();
            let t = Vec3::new(dx, theta.sin(), -theta.cos()).normalized();
            points.push(p);
            tangents.push(t);
            p += t * CURVE_STEP_MM;
            let mut kappa = if s < thoracic_end {
                -kyphosis / thoracic_end
            } else {
                lordosis / (total - thoracic_end)
            };
            while body_index < body_spans.len() && s > body_spans[body_index].1 {
                body_index += 1;
            }
            if let Some(&(a, b)) = body_spans.get(body_index)
                && s >= a
            {
                kappa -= kinks[body_index] / (b - a);
            }
            theta += kappa * CURVE_STEP_MM;
        }
        (points, tangents)
    };
    let (mut points, mut tangents) = integrate(&kinks);
    // A patient lies on the table: a fracture's kink bends the column about it, the
    // column above tipping forward and the one below back, rather than swinging the
    // whole column below it round (a grade 3 wedge alone turns it by 20-30 degrees).
    // The kinked centreline is turned about the lateral axis so that its T1-to-sacrum
    // chord lies where the unkinked one's does.
    if kinks.iter().any(|k| k.abs() > 1e-9) {
        let (plain, _) = integrate(&vec![0.0; kinks.len()]);
        let chord = |pts: &[Vec3]| pts[pts.len() - 1] - pts[0];
        let (want, got) = (chord(&plain), chord(&points));
        let angle = want.y.atan2(-want.z) - got.y.atan2(-got.z);
        let (sin, cos) = angle.sin_cos();
        let turn = |q: Vec3| Vec3::new(q.x, q.y * cos - q.z * sin, q.y * sin + q.z * cos);
        for q in points.iter_mut().chain(tangents.iter_mut()) {
            *q = turn(*q);
        }
    }
    let at = |s: f64| -> (Vec3, Vec3) {
        let i = ((s / CURVE_STEP_MM).round() as usize).min(points.len() - 1);
        (points[i], tangents[i])
    };

    let mut vertebrae = Vec::with_capacity(shapes.len());
    for (i, (level, body)) in VertebraLevel::all().zip(shapes).enumerate() {
        let (a, b) = body_spans[i];
        let (origin, t) = at((a + b) / 2.0);
        let w = -t;
        let v = (Vec3::X - w * Vec3::X.dot(w)).normalized();
        let u = v.cross(w);
        let frame = Frame { origin, u, v, w };
        let (reference, loss, grade, morphology, disc_below) = truths_extra[i];
        let canal_r = if level.is_thoracic() { 7.5 } else { 9.0 } * body_scale;
        let canal = (
            canal_r,
            canal_r * 1.25,
            body.posterior_wall_u - canal_r - 0.5,
        );
        let d = body.depth_mm;
        let truth = VertebraTruth {
            label: level,
            centre_mm: origin,
            superior_axis: w,
            anterior_axis: u,
            depth_mm: d,
            width_mm: body.width_mm,
            heights_mm: measured_heights(&body),
            measurement_offsets: {
                let (anterior_mm, posterior_mm) = measure_offsets(&body);
                MeasurementOffsets {
                    anterior_mm,
                    posterior_mm,
                }
            },
            reference_height_mm: reference,
            height_loss: loss,
            grade,
            morphology,
            in_field_of_view: true,
        };
        vertebrae.push(Vertebra {
            level,
            frame,
            body,
            disc_below_mm: disc_below,
            canal,
            truth,
        });
    }

    let context = context_bones(&vertebrae, body_scale);
    let mut ctx = Builder {
        spec,
        prims: Vec::new(),
        vertebrae: &vertebrae,
        context: &context,
        habitus,
        fat_mm,
        trabecular_hu,
        cortical_hu,
        disc_hu,
        edge_texture_hu,
        body_scale,
        female,
    };
    let table_top_y = ctx.draw_all(&mut rng_for(seed, "organs"));
    let primitives = ctx.prims;
    Phantom {
        primitives,
        vertebrae,
        distractors,
        context,
        trabecular_hu,
        background_hu: -1000.0,
        table_top_y,
        female,
    }
}

/// Rotates `f` about its lateral axis by `angle` (radians): positive tips its cranial
/// axis forward.
fn tip_forward(f: &Frame, angle: f64) -> Frame {
    let w = (f.w * angle.cos() + f.u * angle.sin()).normalized();
    let u = f.v.cross(w);
    Frame {
        origin: f.origin,
        u,
        v: f.v,
        w,
    }
}

fn plain_body(depth: f64, width: f64, height: f64) -> BodyShape {
    BodyShape {
        depth_mm: depth,
        width_mm: width,
        posterior_wall_u: POSTERIOR_WALL_FRACTION * depth,
        nominal_height_mm: height,
        wedge_heights_mm: (height, height),
        concavity_mm: 0.5,
        schmorl: None,
    }
}

/// C6 and C7 stacked above T1 along its axis, and the sacrum below L5: S1 tipped
/// forward by the lumbosacral angle, S2-S4 fused below it, curving forward (sacral
/// kyphosis) and tapering.
fn context_bones(vs: &[Vertebra], scale: f64) -> Vec<ContextBone> {
    let mut out = Vec::new();
    let t1 = &vs[0];
    let mut below = t1.frame;
    let mut below_half = t1.body.nominal_height_mm / 2.0;
    for (name, h, d, w) in [("C7", 13.5, 15.5, 24.0), ("C6", 12.5, 15.0, 22.0)] {
        let (h, d, w) = (h * scale, d * scale, w * scale);
        let disc = 4.0 * scale;
        let origin = below.origin + below.w * (below_half + disc + h / 2.0);
        let frame = Frame { origin, ..below };
        let canal_r = 7.5 * scale;
        let body = plain_body(d, w, h);
        let canal = (
            canal_r,
            canal_r * 1.3,
            body.posterior_wall_u - canal_r - 0.5,
        );
        out.insert(
            0,
            ContextBone {
                name,
                frame,
                body,
                canal,
                disc_below_mm: disc,
                sacral: false,
            },
        );
        below = frame;
        below_half = h / 2.0;
    }
    let l5 = &vs[vs.len() - 1];
    let mut above = l5.frame;
    let mut above_half = l5.body.nominal_height_mm / 2.0;
    let mut gap = l5.disc_below_mm;
    let mut tilt = 25f64.to_radians();
    for (name, h, d, w) in [
        ("S1", 26.0, 42.0, 48.0),
        ("S2", 22.0, 34.0, 40.0),
        ("S3", 18.0, 27.0, 32.0),
        ("S4", 14.0, 20.0, 24.0),
    ] {
        let (h, d, w) = (h * scale, d * scale, w * scale);
        let frame0 = tip_forward(&above, tilt);
        let down = (above.w + frame0.w).normalized();
        let origin = above.origin - above.w * above_half - down * gap - frame0.w * (h / 2.0);
        let frame = Frame { origin, ..frame0 };
        let canal_r = 6.0 * scale;
        let body = plain_body(d, w, h);
        let canal = (
            canal_r,
            canal_r * 1.6,
            body.posterior_wall_u - canal_r - 0.5,
        );
        out.push(ContextBone {
            name,
            frame,
            body,
            canal,
            disc_below_mm: 0.0,
            sacral: true,
        });
        above = frame;
        above_half = h / 2.0;
        // Fused: bone to bone, each segment tipped further forward.
        gap = -1.0;
        tilt = 12f64.to_radians();
    }
    out
}

struct Builder<'a> {
    spec: &'a SynthSpec,
    prims: Vec<Primitive>,
    vertebrae: &'a [Vertebra],
    context: &'a [ContextBone],
    habitus: f64,
    fat_mm: f64,
    trabecular_hu: f64,
    cortical_hu: f64,
    disc_hu: f64,
    edge_texture_hu: f64,
    body_scale: f64,
    female: bool,
}

/// Torso outline at a level: `(rx, ry)` semi-axes before habitus, mm.
fn torso_radii(index: f64) -> (f64, f64) {
    // Control points by level index (T1 = 0 .. L5 = 16).
    const CP: [(f64, f64, f64); 6] = [
        (-2.0, 140.0, 80.0),
        (3.0, 160.0, 105.0),
        (7.0, 165.0, 115.0),
        (11.0, 160.0, 115.0),
        (14.0, 150.0, 108.0),
        (18.0, 162.0, 105.0),
    ];
    let i = CP
        .iter()
        .position(|c| c.0 >= index)
        .unwrap_or(CP.len() - 1)
        .max(1);
    let (a, b) = (CP[i - 1], CP[i]);
    let t = ((index - a.0) / (b.0 - a.0)).clamp(0.0, 1.0);
    (a.1 + (b.1 - a.1) * t, a.2 + (b.2 - a.2) * t)
}

impl<'a> Builder<'a> {
    fn push(&mut self, shape: Shape, material: Shelled) {
        self.prims.push(Primitive::new(shape, material));
    }

    fn vert(&self, level: VertebraLevel) -> &'a Vertebra {
        &self.vertebrae[level.index()]
    }

    /// Fractional level index at height `z` (T1 = 0), extrapolated beyond the spine.
    fn level_index_at(&self, z: f64) -> f64 {
        let vs = self.vertebrae;
        let zs: Vec<f64> = vs.iter().map(|v| v.frame.origin.z).collect();
        if z >= zs[0] {
            return -(z - zs[0]) / (zs[0] - zs[1]).abs().max(1.0);
        }
        for i in 1..zs.len() {
            if z >= zs[i] {
                return (i - 1) as f64 + (zs[i - 1] - z) / (zs[i - 1] - zs[i]);
            }
        }
        let n = zs.len();
        (n - 1) as f64 + (zs[n - 1] - z) / (zs[n - 2] - zs[n - 1]).abs().max(1.0)
    }

    /// Spine body centre interpolated at height `z`.
    fn spine_at(&self, z: f64) -> Vec3 {
        let idx = self
            .level_index_at(z)
            .clamp(0.0, (self.vertebrae.len() - 1) as f64);
        let i = (idx.floor() as usize).min(self.vertebrae.len() - 2);
        let t = idx - i as f64;
        let a = self.vertebrae[i].frame.origin;
        let b = self.vertebrae[i + 1].frame.origin;
        a + (b - a) * t
    }

    /// Draws everything; returns the table top `y`.
    fn draw_all(&mut self, rng: &mut Pcg64Mcg) -> f64 {
        let top = self.vertebrae[0].frame.origin.z + 200.0;
        let bottom = self.vertebrae[16].frame.origin.z - 200.0;
        let step = 5.0;
        let mut outer = Vec::new();
        let mut z = bottom;
        let mut back_max = f64::MIN;
        while z <= top + step {
            let idx = self.level_index_at(z);
            let (rx, ry) = torso_radii(idx);
            let (rx, ry) = (rx * self.habitus, ry * self.habitus);
            let spine = self.spine_at(z);
            let li = idx.round().clamp(0.0, 16.0) as usize;
            let v = &self.vertebrae[li];
            // Skin of the back: body, canal, arch, spinous process, muscle and fat.
            let back = spine.y
                + v.body.depth_mm / 2.0
                + 2.0 * v.canal.0
                + 48.0 * self.body_scale
                + self.fat_mm;
            let cy = back - ry;
            back_max = back_max.max(back);
            outer.push([0.0, cy, rx, ry]);
            z += step;
        }
        let inner: Vec<[f64; 4]> = outer
            .iter()
            .map(|e| [e[0], e[1], e[2] - self.fat_mm, e[3] - self.fat_mm * 0.8])
            .collect();
        let table_top = back_max + 1.0;
        // Patient table: a 7 mm carbon-fibre slab under the patient.
        self.push(
            Shape::Torso {
                z0: bottom,
                step_mm: top - bottom,
                table: vec![[0.0, table_top + 3.5, 235.0, 3.5]; 2],
            },
            Shelled::solid(180.0),
        );
        self.push(
            Shape::Torso {
                z0: bottom,
                step_mm: step,
                table: outer.clone(),
            },
            Shelled::solid(-100.0),
        );
        self.push(
            Shape::Torso {
                z0: bottom,
                step_mm: step,
                table: inner.clone(),
            },
            Shelled::solid(45.0),
        );

        let contrast = self.spec.contrast;
        let blood = match contrast {
            Contrast::None => 45.0,
            Contrast::Arterial => rng.random_range(250.0..350.0),
            Contrast::Portal => rng.random_range(140.0..180.0),
        };
        let (liver_hu, kidney_hu) = match contrast {
            Contrast::None => (rng.random_range(50.0..65.0), 32.0),
            Contrast::Arterial => (75.0, 150.0),
            Contrast::Portal => (rng.random_range(100.0..120.0), 160.0),
        };
        let entry = |z: f64| -> [f64; 4] {
            let f = ((z - bottom) / step).clamp(0.0, (inner.len() - 1) as f64);
            inner[f.round() as usize]
        };
        let lv = |s: &str| -> VertebraLevel { s.parse().expect("static level name") };
        let vs = self.vertebrae;
        let z_of = move |s: &str| vs[lv(s).index()].frame.origin.z;

        // Abdomen: liver (patient's right is -x), spleen, kidneys in perirenal fat, bowel gas.
        let t11 = entry(z_of("T11"));
        self.push(
            Shape::Ellipsoid {
                centre: Vec3::new(-0.38 * t11[2], t11[1] - 0.05 * t11[3], z_of("T11") - 10.0),
                radii: Vec3::new(0.55 * t11[2], 0.75 * t11[3], 85.0 * self.habitus),
            },
            Shelled::solid(liver_hu),
        );
        self.push(
            Shape::Ellipsoid {
                centre: Vec3::new(0.6 * t11[2], t11[1] + 0.45 * t11[3], z_of("T11")),
                radii: Vec3::new(25.0, 45.0, 50.0),
            },
            Shelled::solid(liver_hu - 8.0),
        );
        for side in [-1.0, 1.0] {
            let l2 = self.vert(lv("L2"));
            let c = l2.frame.origin
                + Vec3::new(
                    side * (l2.body.width_mm / 2.0 + 42.0),
                    8.0,
                    25.0 + if side > 0.0 { 10.0 } else { 0.0 },
                );
            self.push(
                Shape::Ellipsoid {
                    centre: c,
                    radii: Vec3::new(45.0, 38.0, 75.0),
                },
                Shelled::solid(-95.0),
            );
            self.push(
                Shape::Ellipsoid {
                    centre: c,
                    radii: Vec3::new(27.0, 22.0, 55.0),
                },
                Shelled::solid(kidney_hu),
            );
        }
        let l3 = entry(z_of("L3"));
        for _ in 0..rng.random_range(5..10) {
            let c = Vec3::new(
                rng.random_range(-0.6..0.6) * l3[2],
                l3[1] - rng.random_range(0.2..0.7) * l3[3],
                rng.random_range(z_of("L5")..z_of("L1")),
            );
            let r = rng.random_range(8.0..22.0);
            self.push(
                Shape::Ellipsoid {
                    centre: c,
                    radii: Vec3::new(r * 1.3, r, r * 1.6),
                },
                Shelled::solid(if rng.random_bool(0.6) { -950.0 } else { 15.0 }),
            );
        }

        // Thorax: lungs, mediastinum, heart.
        let t6 = entry(z_of("T6"));
        let apex = self.vertebrae[0].frame.origin.z + 30.0;
        let base = z_of("T10") + rng.random_range(-15.0..10.0);
        for side in [-1.0, 1.0] {
            self.push(
                Shape::Ellipsoid {
                    centre: Vec3::new(
                        side * 0.5 * t6[2],
                        t6[1] + 0.05 * t6[3],
                        (apex + base) / 2.0,
                    ),
                    radii: Vec3::new(0.44 * t6[2], 0.82 * t6[3], (apex - base) / 2.0),
                },
                Shelled::solid(rng.random_range(-880.0..-820.0)),
            );
        }
        self.push(
            Shape::Ellipsoid {
                centre: Vec3::new(0.0, t6[1] - 0.15 * t6[3], z_of("T5")),
                radii: Vec3::new(32.0, 0.7 * t6[3], 120.0),
            },
            Shelled::solid(-60.0),
        );
        self.push(
            Shape::Ellipsoid {
                centre: Vec3::new(18.0, t6[1] - 0.35 * t6[3], z_of("T8")),
                radii: Vec3::new(62.0, 48.0, 58.0) * self.habitus.min(1.05),
            },
            Shelled::solid(blood),
        );

        // Paraspinal and psoas muscles, per vertebra.
        for v in self.vertebrae {
            let (ru, _, cu) = v.canal;
            let w_range = (
                -(v.body.nominal_height_mm / 2.0 + v.disc_below_mm + 0.5),
                v.body.nominal_height_mm / 2.0 + 0.5,
            );
            for side in [-1.0, 1.0] {
                self.prims.push(Primitive::new(
                    Shape::LocalSlab {
                        frame: v.frame,
                        centre_uv: (
                            cu - ru - 24.0 * self.body_scale,
                            side * 30.0 * self.body_scale,
                        ),
                        radii_uv: (22.0 * self.body_scale, 25.0 * self.body_scale),
                        w_range,
                    },
                    Shelled::solid(52.0),
                ));
                if let VertebraLevel::Lumbar(n) = v.level {
                    let r = (6.0 + 4.0 * f64::from(n)) * self.body_scale;
                    self.prims.push(Primitive::new(
                        Shape::LocalSlab {
                            frame: v.frame,
                            centre_uv: (
                                -0.15 * v.body.depth_mm,
                                side * (v.body.width_mm / 2.0 + r * 0.8),
                            ),
                            radii_uv: (r * 0.9, r),
                            w_range,
                        },
                        Shelled::solid(50.0),
                    ));
                }
            }
        }

        // Aorta along the left front of the spine from T4 to L4, its arch, the cava.
        let mut path = Vec::new();
        let t4 = self.vert(lv("T4"));
        path.push(Vec3::new(-8.0, t6[1] - 0.45 * t6[3], z_of("T7")));
        path.push(Vec3::new(-5.0, t6[1] - 0.5 * t6[3], z_of("T4")));
        path.push(Vec3::new(5.0, t4.frame.origin.y - 45.0, z_of("T3") + 5.0));
        for v in &self.vertebrae[3..16] {
            let r = 12.5 * self.body_scale;
            path.push(
                v.frame.origin
                    + v.frame.u * (v.body.depth_mm / 2.0 + r + 2.0)
                    + Vec3::X * (8.0 + 0.2 * v.body.width_mm),
            );
        }
        let aorta_r = 12.0 * self.body_scale * if self.female { 0.95 } else { 1.0 };
        for pair in path.windows(2) {
            self.push(
                Shape::Capsule {
                    a: pair[0],
                    b: pair[1],
                    radius: aorta_r,
                },
                Shelled::solid(blood),
            );
        }
        let l4 = self.vert(lv("L4"));
        let fork = *path.last().expect("aorta path has points");
        for side in [-1.0, 1.0] {
            let end = l4.frame.origin + l4.frame.u * 30.0 + Vec3::new(side * 55.0, -5.0, -70.0);
            self.push(
                Shape::Capsule {
                    a: fork,
                    b: end,
                    radius: aorta_r * 0.65,
                },
                Shelled::solid(blood),
            );
        }
        let cava_hu = if contrast == Contrast::Portal {
            blood
        } else {
            40.0
        };
        for pair in self.vertebrae[9..16].windows(2) {
            let p = |v: &Vertebra| {
                v.frame.origin + v.frame.u * (v.body.depth_mm / 2.0 + 14.0)
                    - Vec3::X * (0.3 * v.body.width_mm + 10.0)
            };
            self.push(
                Shape::Capsule {
                    a: p(&pair[0]),
                    b: p(&pair[1]),
                    radius: 11.0 * self.body_scale,
                },
                Shelled::solid(cava_hu),
            );
        }

        self.draw_spine();
        self.draw_context_bone();
        self.draw_ribs(rng);
        table_top
    }

    fn draw_spine(&mut self) {
        let cortical = self.cortical_hu;
        let trab = self.trabecular_hu;
        let disc = self.disc_hu;
        let vs = self.vertebrae;
        // Discs and the canal first, bone over them.
        for (i, v) in vs.iter().enumerate() {
            let hp = v.body.nominal_height_mm;
            let above = if i > 0 { vs[i - 1].disc_below_mm } else { 4.0 };
            let w_range = (
                -(hp / 2.0 + v.disc_below_mm / 2.0 + 1.0),
                hp / 2.0 + above / 2.0 + 1.0,
            );
            self.push(
                Shape::LocalSlab {
                    frame: v.frame,
                    centre_uv: (0.02 * v.body.depth_mm, 0.0),
                    radii_uv: (v.body.depth_mm / 2.0 + 0.8, v.body.width_mm / 2.0 + 0.8),
                    w_range,
                },
                Shelled::solid(disc),
            );
            let (ru, rv, cu) = v.canal;
            self.push(
                Shape::LocalSlab {
                    frame: v.frame,
                    centre_uv: (cu, 0.0),
                    radii_uv: (ru, rv),
                    w_range,
                },
                Shelled::solid(12.0),
            );
            if v.level <= VertebraLevel::Lumbar(1) {
                self.push(
                    Shape::LocalSlab {
                        frame: v.frame,
                        centre_uv: (cu, 0.0),
                        radii_uv: (ru * 0.55, rv * 0.55),
                        w_range,
                    },
                    Shelled::solid(35.0),
                );
            }
        }
        self.draw_context_soft();
        let posterior_bone = Shelled {
            shell: cortical * 0.85,
            core: trab + 120.0,
            shell_mm: 1.2,
        };
        for v in vs {
            let hp = v.body.nominal_height_mm;
            let (ru, rv, cu) = v.canal;
            let f = v.frame;
            let arch_w = (-0.38 * hp, 0.44 * hp);
            self.push(
                Shape::LocalRing {
                    frame: f,
                    centre_uv: (cu, 0.0),
                    inner_uv: (ru, rv),
                    thickness_mm: 4.5 * self.body_scale,
                    w_range: arch_w,
                    max_u: v.body.posterior_wall_u,
                },
                posterior_bone,
            );
            // Spinous process: long and caudally angled in the thorax, square in the lumbar spine.
            let back = cu - ru - 3.0;
            let (len, drop, radius) = if v.level.is_thoracic() {
                (32.0, 22.0, 3.5)
            } else {
                (28.0, 6.0, 4.5)
            };
            let a = f.world(Vec3::new(back, 0.0, 0.1 * hp));
            let b = f.world(Vec3::new(
                back - len * self.body_scale,
                0.0,
                0.1 * hp - drop * self.body_scale,
            ));
            self.push(
                Shape::Capsule {
                    a,
                    b,
                    radius: radius * self.body_scale,
                },
                posterior_bone,
            );
            if !v.level.is_thoracic() {
                let a2 = f.world(Vec3::new(back, 0.0, -0.2 * hp));
                let b2 = f.world(Vec3::new(
                    back - len * self.body_scale,
                    0.0,
                    -0.2 * hp - drop * self.body_scale,
                ));
                self.push(
                    Shape::Capsule {
                        a: a2,
                        b: b2,
                        radius: radius * self.body_scale,
                    },
                    posterior_bone,
                );
            }
            // Transverse processes.
            let (tp_len, tp_back) = if v.level.is_thoracic() {
                (v.body.width_mm / 2.0 + 14.0, 10.0)
            } else {
                (v.body.width_mm / 2.0 + 20.0, 2.0)
            };
            for side in [-1.0, 1.0] {
                let a = f.world(Vec3::new(cu, side * (rv + 2.0), 0.1 * hp));
                let b = f.world(Vec3::new(
                    cu - tp_back,
                    side * tp_len * self.body_scale,
                    0.15 * hp,
                ));
                self.push(
                    Shape::Capsule {
                        a,
                        b,
                        radius: 4.0 * self.body_scale,
                    },
                    posterior_bone,
                );
            }
        }
        for (i, v) in vs.iter().enumerate() {
            self.push(
                Shape::Body {
                    frame: v.frame,
                    shape: Box::new(v.body.clone()),
                    texture_hu: self.edge_texture_hu,
                    texture_seed: self.spec.seed ^ (i as u64).wrapping_mul(0x9E37_79B9),
                },
                Shelled {
                    shell: cortical,
                    core: trab,
                    shell_mm: 1.5,
                },
            );
            if self
                .spec
                .distractors
                .iter()
                .any(|d| d.level == v.level && d.kind == DistractorKind::Osteophyte)
            {
                let spur = Shelled::solid(cortical * 0.8);
                let d = v.body.depth_mm;
                for sign in [-1.0, 1.0] {
                    let h = v.body.height_at(0.48 * d, 0.0) / 2.0;
                    for lat in [-0.25, 0.0, 0.25] {
                        let w = v.body.width_mm * lat;
                        let a = v.frame.world(Vec3::new(0.46 * d, w, sign * (h - 0.5)));
                        let b = v.frame.world(Vec3::new(0.5 * d + 4.5, w, sign * (h + 2.5)));
                        self.push(Shape::Capsule { a, b, radius: 1.8 }, spur);
                    }
                }
            }
        }
    }

    /// Discs and canal of the context vertebrae (drawn before any bone).
    fn draw_context_soft(&mut self) {
        for c in self.context {
            let hp = c.body.nominal_height_mm;
            let (ru, rv, cu) = c.canal;
            let w_range = (-(hp / 2.0 + c.disc_below_mm / 2.0 + 1.0), hp / 2.0 + 3.0);
            if !c.sacral {
                self.push(
                    Shape::LocalSlab {
                        frame: c.frame,
                        centre_uv: (0.02 * c.body.depth_mm, 0.0),
                        radii_uv: (c.body.depth_mm / 2.0 + 0.8, c.body.width_mm / 2.0 + 0.8),
                        w_range,
                    },
                    Shelled::solid(self.disc_hu),
                );
            }
            self.push(
                Shape::LocalSlab {
                    frame: c.frame,
                    centre_uv: (cu, 0.0),
                    radii_uv: (ru, rv),
                    w_range,
                },
                Shelled::solid(12.0),
            );
        }
    }

    /// Bodies, arches and sacral alae of the context vertebrae.
    fn draw_context_bone(&mut self) {
        let body_bone = Shelled {
            shell: self.cortical_hu,
            core: self.trabecular_hu,
            shell_mm: 1.5,
        };
        let posterior_bone = Shelled {
            shell: self.cortical_hu * 0.85,
            core: self.trabecular_hu + 120.0,
            shell_mm: 1.2,
        };
        for (i, c) in self.context.iter().enumerate() {
            let f = c.frame;
            let hp = c.body.nominal_height_mm;
            let (ru, rv, cu) = c.canal;
            self.push(
                Shape::LocalRing {
                    frame: f,
                    centre_uv: (cu, 0.0),
                    inner_uv: (ru, rv),
                    thickness_mm: if c.sacral { 6.0 } else { 4.0 } * self.body_scale,
                    w_range: if c.sacral {
                        (-hp / 2.0 - 0.5, hp / 2.0 + 0.5)
                    } else {
                        (-0.38 * hp, 0.44 * hp)
                    },
                    max_u: c.body.posterior_wall_u,
                },
                posterior_bone,
            );
            let back = cu - ru - 3.0;
            let len = if c.name == "C7" {
                30.0
            } else if c.sacral {
                8.0
            } else {
                18.0
            };
            let a = f.world(Vec3::new(back, 0.0, 0.0));
            let b = f.world(Vec3::new(
                back - len * self.body_scale,
                0.0,
                -0.3 * len * self.body_scale,
            ));
            self.push(
                Shape::Capsule {
                    a,
                    b,
                    radius: 3.5 * self.body_scale,
                },
                posterior_bone,
            );
            self.push(
                Shape::Body {
                    frame: f,
                    shape: Box::new(c.body.clone()),
                    texture_hu: self.edge_texture_hu,
                    texture_seed: self.spec.seed ^ (100 + i as u64).wrapping_mul(0x9E37_79B9),
                },
                body_bone,
            );
            if c.name == "S1" {
                // The alae: wings of bone from S1 out to the sacroiliac joints.
                for side in [-1.0, 1.0] {
                    let a = f.world(Vec3::new(
                        -0.1 * c.body.depth_mm,
                        side * c.body.width_mm * 0.4,
                        0.1 * hp,
                    ));
                    let b = f.world(Vec3::new(
                        -0.25 * c.body.depth_mm,
                        side * (c.body.width_mm / 2.0 + 35.0 * self.body_scale),
                        -0.2 * hp,
                    ));
                    self.push(
                        Shape::Capsule {
                            a,
                            b,
                            radius: 13.0 * self.body_scale,
                        },
                        body_bone,
                    );
                }
            }
        }
    }

    fn draw_ribs(&mut self, rng: &mut Pcg64Mcg) {
        let rib = Shelled {
            shell: self.cortical_hu * 0.7,
            core: self.trabecular_hu + 60.0,
            shell_mm: 1.0,
        };
        let cartilage = Shelled::solid(if self.spec.age_years > 60 {
            160.0
        } else {
            110.0
        });
        let vs = self.vertebrae;
        let mut sternum = Vec::new();
        for (i, v) in vs.iter().enumerate().take(12) {
            let n = i + 1;
            let f = v.frame;
            let hp = v.body.nominal_height_mm;
            let (_, _, cu) = v.canal;
            let z_tip = f.origin.z + 0.15 * hp;
            let e = {
                // Inner thorax ellipse at this level.
                let idx = i as f64;
                let (rx, ry) = torso_radii(idx);
                (
                    rx * self.habitus - self.fat_mm - 14.0,
                    ry * self.habitus - self.fat_mm * 0.8 - 12.0,
                )
            };
            let back = f.origin.y
                + v.body.depth_mm / 2.0
                + 2.0 * v.canal.0
                + 48.0 * self.body_scale
                + self.fat_mm;
            let cy = back - (e.1 + self.fat_mm * 0.8 + 12.0);
            let phi_end = match n {
                1 => 0.78,
                2..=7 => 0.84,
                8..=10 => 0.72,
                11 => 0.5,
                _ => 0.38,
            } * std::f64::consts::PI;
            let drop = (28.0 + 3.5 * n as f64) * self.body_scale;
            let radius = if n == 1 { 3.2 } else { 4.0 } * self.body_scale;
            for side in [-1.0, 1.0] {
                let mut pts = vec![f.world(Vec3::new(
                    -0.2 * v.body.depth_mm,
                    side * (v.body.width_mm / 2.0 + 2.0),
                    0.25 * hp,
                ))];
                let tip = f.world(Vec3::new(
                    cu - 8.0,
                    side * (v.body.width_mm / 2.0 + 13.0) * self.body_scale,
                    0.15 * hp,
                ));
                pts.push(tip);
                // The rib runs from the transverse process round the thorax: its angle
                // (most posterior point) lies just behind the process, in front of the
                // paraspinal muscles, and it ends anteriorly at the thorax's inner wall.
                let y_front = cy - e.1;
                let y_back = tip.y + 12.0 * self.body_scale;
                let (ry, yc) = ((y_back - y_front) / 2.0, (y_back + y_front) / 2.0);
                let phi0 = ((tip.x.abs() / e.0).clamp(0.0, 0.95)).asin();
                let segments = 14;
                for k in 0..=segments {
                    let phi = phi0 + (phi_end - phi0) * k as f64 / segments as f64;
                    let frac = (phi - phi0) / std::f64::consts::PI;
                    let z = z_tip - drop * frac.powf(0.9);
                    pts.push(Vec3::new(side * e.0 * phi.sin(), yc + ry * phi.cos(), z));
                }
                for pair in pts.windows(2) {
                    self.push(
                        Shape::Capsule {
                            a: pair[0],
                            b: pair[1],
                            radius,
                        },
                        rib,
                    );
                }
                if n <= 7 {
                    let end = *pts.last().expect("rib has points");
                    let st = Vec3::new(
                        side * 14.0,
                        cy - e.1 + 6.0,
                        end.z - 8.0 - rng.random_range(0.0..4.0),
                    );
                    self.push(
                        Shape::Capsule {
                            a: end,
                            b: st,
                            radius: radius * 1.05,
                        },
                        cartilage,
                    );
                    if side > 0.0 {
                        sternum.push(Vec3::new(0.0, st.y + 2.0, st.z));
                    }
                }
            }
        }
        let sternal = Shelled {
            shell: self.cortical_hu * 0.6,
            core: self.trabecular_hu + 40.0,
            shell_mm: 1.0,
        };
        for pair in sternum.windows(2).skip(1) {
            self.push(
                Shape::Capsule {
                    a: pair[0],
                    b: pair[1],
                    radius: 7.0 * self.body_scale,
                },
                sternal,
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const HEIGHT_TOL_MM: f64 = 1e-9; // closed-form solutions, f64 round-off only

    #[test]
    fn fractures_reach_their_grade() {
        let mut spec = SynthSpec::new(3);
        spec.fractures = vec![
            "T8:1:wedge".parse().unwrap(),
            "T12:2:biconcave".parse().unwrap(),
            "L1:3:crush".parse().unwrap(),
            "L3:2:wedge".parse().unwrap(),
        ];
        let ph = build(&spec);
        for f in &spec.fractures {
            let v = &ph.vertebrae[f.level.index()];
            let h = measured_heights(&v.body);
            assert!((h.anterior - v.truth.heights_mm.anterior).abs() < HEIGHT_TOL_MM);
            let loss = f.morphology.height_loss(h, v.truth.reference_height_mm);
            assert_eq!(
                GenantGrade::from_height_loss(loss),
                f.grade,
                "{f}: loss {loss}"
            );
            assert_eq!(v.truth.grade, f.grade);
        }
        // Normal levels stay grade 0.
        for v in &ph.vertebrae {
            if !spec.fractures.iter().any(|f| f.level == v.level) {
                assert_eq!(
                    GenantGrade::from_height_loss(v.truth.height_loss),
                    GenantGrade::Normal,
                    "{}",
                    v.level
                );
            }
        }
    }

    #[test]
    fn spine_descends_and_grows() {
        let ph = build(&SynthSpec::new(1));
        let z: Vec<f64> = ph.vertebrae.iter().map(|v| v.frame.origin.z).collect();
        assert!(
            z.windows(2).all(|w| w[1] < w[0]),
            "levels must descend: {z:?}"
        );
        let t1 = &ph.vertebrae[0].truth;
        let l5 = &ph.vertebrae[16].truth;
        assert!(l5.heights_mm.posterior > t1.heights_mm.posterior);
        assert!(l5.width_mm > t1.width_mm && l5.depth_mm > t1.depth_mm);
        // Frames are orthonormal and the anterior axis points to -y.
        for v in &ph.vertebrae {
            let f = v.frame;
            assert!(
                (f.u.norm() - 1.0).abs() < 1e-9
                    && f.u.dot(f.w).abs() < 1e-9
                    && f.v.dot(f.w).abs() < 1e-9
            );
            assert!(f.u.y < -0.5, "{}: {:?}", v.level, f.u);
        }
    }
}
