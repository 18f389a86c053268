//! Spine localisation: the vertebral column's centreline in 3D, each vertebral body's
//! centre and, where the anatomy allows, its label (T1..L5).
//!
//! The method is classical image analysis, no learned model, in five steps:
//!
//! 1. **Rough column** per slice: on a ~2 mm grid, the box (36 mm wide, 50 mm deep) with
//!    the most bone (HU above [`BONE_BOX_FLOOR_HU`]) near the body's midline and in its
//!    posterior part: the vertebral body with its neural arch. A Viterbi track joins the
//!    slices; it cannot jump further than the column can bend, so contrast in the aortic
//!    arch or the heart beside a faint osteoporotic column does not capture it.
//! 2. **Centreline**: outliers against a running median removed, the longest continuous
//!    run kept (shorter than [`MIN_COLUMN_MM`]: no spine), smoothed, resampled every
//!    [`STEP_MM`] along its arc length with a frame (cranial tangent, patient-left
//!    lateral, anterior).
//! 3. **Straightened block**: HU sampled on planes normal to the centreline.
//! 4. **Bodies**: on the mid-sagittal band, the spinal canal is the run of columns that
//!    is never bone, the posterior wall the bright column in front of it and the anterior
//!    wall the last bright column before prevertebral soft tissue; their middle is the
//!    line the discs are sought on. The discs (dark lines between two endplates) are
//!    chosen together as the most regular chain (module `discs`); the bodies lie between
//!    them, centred in depth on their endplates. Where the scan goes on well beyond the
//!    outermost body and the centreline has slid off the bodies' line there, steps 3-4
//!    look again along the straight continuation of the bodies' line.
//! 5. **Labels**: ribs (bone 55-75 mm lateral of the column, level with the body's
//!    middle) mark thoracic vertebrae; the lowest rib-bearing vertebra above a rib-less one
//!    is T12. Without that transition in view the vertebrae stay unlabelled.
//!
//! Every position is in the patient frame (LPS, mm, f64).

use rayon::prelude::*;
use serde::Serialize;
use spinewatch_core::{Vec3, VertebraLevel};

use crate::HuVolume;

mod discs;

/// Pixels above this HU count as bone when scoring the rough column (1.): the clamp
/// keeps soft tissue and contrast-free organs at zero.
pub const BONE_BOX_FLOOR_HU: f64 = 150.0;
/// Bone mass is capped at this HU above the floor, so metal and contrast spikes cannot
/// dominate a box.
const BONE_BOX_CAP_HU: f64 = 700.0;
/// Cortical bone threshold for walls, endplates and ribs, HU.
pub const CORTEX_HU: f64 = 250.0;
/// Shortest continuous column accepted as a spine, mm (one vertebra and its discs).
pub const MIN_COLUMN_MM: f64 = 30.0;
/// Arc-length step of the centreline and of the straightened block, mm.
pub const STEP_MM: f64 = 0.5;
/// Half-width of the AP range sampled around the rough column, mm.
const AP_HALF_RANGE_MM: f64 = 55.0;
/// Half-width of the mid-sagittal band, mm.
const BAND_HALF_MM: f64 = 6.0;
/// How far the centreline is extended beyond the detected column at both ends, mm.
const EXTEND_MM: f64 = 20.0;
/// Within this distance of the column's ends a body without a visible canal is taken
/// from its bright hump, mm.
const END_FALLBACK_MM: f64 = 40.0;
/// Fewest bodies that make a spine.
const MIN_BODIES: usize = 2;
/// A column shorter than this cannot show two bodies with the disc between them, mm
/// (two lower thoracic pitches): one body bounded by a clear disc is then enough.
const SHORT_COLUMN_MM: f64 = 60.0;
/// Shortest and longest body accepted between two discs, mm.
const BODY_MM: (f64, f64) = (8.0, 45.0);
/// An end body whose endplates are too faint to see (osteopenic bone, a soft kernel) is
/// kept when its AP profile correlates this well with its neighbour's.
const END_PROFILE_MIN_CORRELATION: f64 = 0.8;

/// Why no spine was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NoSpine {
    /// No slice shows a bony column near the midline.
    NoSpineInFieldOfView,
    /// A column was found but it is too short to hold vertebrae.
    ColumnTooShort {
        /// Its length, mm.
        length_mm: f64,
    },
    /// A column was found but fewer than two vertebral bodies could be delimited on it.
    NoVertebraDelimited,
}

impl std::fmt::Display for NoSpine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSpineInFieldOfView => f.write_str("no spine in the field of view"),
            Self::ColumnTooShort { length_mm } => {
                write!(f, "the bony column in view is only {length_mm:.0} mm long")
            }
            Self::NoVertebraDelimited => f.write_str("no vertebral body could be delimited"),
        }
    }
}

/// One point of the centreline with its local frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CentrePoint {
    /// Arc length from the caudal end, mm.
    pub s_mm: f64,
    /// Position of the rough column (body and arch), LPS mm.
    pub position: Vec3,
    /// Unit tangent, pointing cranially.
    pub tangent: Vec3,
    /// Unit vector to the patient's left, normal to the tangent.
    pub lateral: Vec3,
    /// Unit vector pointing anteriorly, normal to both.
    pub anterior: Vec3,
}

impl CentrePoint {
    /// Patient point at offsets `lateral_mm`, `anterior_mm` in this point's plane.
    pub fn at(&self, lateral_mm: f64, anterior_mm: f64) -> Vec3 {
        self.position + self.lateral * lateral_mm + self.anterior * anterior_mm
    }
}

/// A located vertebral body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocatedVertebra {
    /// T1..L5, when the anatomy in view identifies it.
    pub label: Option<VertebraLevel>,
    /// Centre of the body, LPS mm.
    pub centre_mm: Vec3,
    /// Unit vector along the column, cranial.
    pub superior_axis: Vec3,
    /// Unit vector anterior, in the body's mid-sagittal plane.
    pub anterior_axis: Vec3,
    /// Arc length of the centre along the centreline, mm.
    pub s_mm: f64,
    /// Distance between the discs above and below, along the column, mm.
    pub height_mm: f64,
    /// Distance between the anterior and posterior walls, mm.
    pub depth_mm: f64,
    /// Whether ribs articulate at this level.
    pub has_ribs: bool,
}

/// How the labels were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Labelling {
    /// From the last rib-bearing vertebra (T12) above the first lumbar one.
    ThoracolumbarTransition,
    /// No transition in view: vertebrae are located but unlabelled.
    Unlabelled,
}

/// The spine of one volume.
#[derive(Debug, Clone, Serialize)]
pub struct Spine {
    /// Centreline, caudal to cranial, every [`STEP_MM`].
    #[serde(skip)]
    pub centreline: Vec<CentrePoint>,
    /// Offset of the vertebral bodies' centre line from the centreline, along its
    /// anterior axis, per centreline point, mm.
    #[serde(skip)]
    pub body_offset_mm: Vec<f64>,
    /// Vertebral bodies, cranial first.
    pub vertebrae: Vec<LocatedVertebra>,
    /// How labels were assigned.
    pub labelling: Labelling,
    /// Length of the centreline, mm.
    pub length_mm: f64,
}

impl Spine {
    /// The centreline point nearest to arc length `s`.
    pub fn point_at(&self, s_mm: f64) -> &CentrePoint {
        let i = ((s_mm / STEP_MM).round().max(0.0) as usize).min(self.centreline.len() - 1);
        &self.centreline[i]
    }

    /// The vertebral bodies' centre line at arc length `s` (centreline plus offset).
    pub fn body_line_at(&self, s_mm: f64) -> Vec3 {
        let i = ((s_mm / STEP_MM).round().max(0.0) as usize).min(self.centreline.len() - 1);
        self.centreline[i].at(0.0, self.body_offset_mm[i])
    }
}

/// Finds the spine in `volume`.
pub fn locate(volume: &HuVolume) -> Result<Spine, NoSpine> {
    let rough = rough_column(volume);
    let mut centreline = centreline(volume, &rough)?;
    // The column seen, without the extensions beyond the scan.
    let seen_mm = centreline.last().map_or(0.0, |p| p.s_mm) - 2.0 * EXTEND_MM;
    let short = seen_mm < SHORT_COLUMN_MM;
    let (mut vertebrae, mut offsets) = bodies_along(volume, &centreline, short);
    // A lone "body" is not evidence of a spine (the skull base makes one in a head
    // CT); a column shows at least two bodies with their disc, where the scan is long
    // enough to hold them.
    if vertebrae.len() < if short { 1 } else { MIN_BODIES } {
        return Err(NoSpine::NoVertebraDelimited);
    }
    // Where the scan goes on beyond the outermost body, the rough column may have slid
    // onto the arch as the bodies fade (the track cannot tell), bending the centreline
    // so that the next body's discs cross the band obliquely: look again along the line
    // of the bodies found. The second look adds the bodies it finds beyond the first's
    // at a straightened end, provided it found every one of the first's again.
    if let Some(second) = straighten_ends(&centreline, &vertebrae) {
        let (again, again_offsets) = bodies_along(volume, &second.line, short);
        let keeps_all = vertebrae.iter().all(|v| {
            again
                .iter()
                .any(|w| (w.centre_mm - v.centre_mm).norm() <= SECOND_LOOK_MATCH_MM)
        });
        let (lowest, highest) = (vertebrae[0].s_mm, vertebrae[vertebrae.len() - 1].s_mm);
        let beyond: Vec<LocatedVertebra> = again
            .into_iter()
            .filter(|w| {
                (second.caudal && w.s_mm < lowest - BODY_MM.0)
                    || (second.cranial && w.s_mm > highest + BODY_MM.0)
            })
            .collect();
        if keeps_all && !beyond.is_empty() {
            vertebrae.extend(beyond);
            vertebrae.sort_by(|a, b| a.s_mm.total_cmp(&b.s_mm));
            offsets = again_offsets;
            centreline = second.line;
        }
    }
    for v in &mut vertebrae {
        refine_lateral(volume, v);
        v.has_ribs = has_ribs(volume, &centreline, v);
    }
    // Cranial first.
    vertebrae.reverse();
    let labelling = label(&mut vertebrae);
    // Once the labels show it, the bodies beyond T1 and L5 (C7, the sacrum, which the
    // second look above can reach) are out of scope: spinewatch assesses the thoracic
    // and lumbar spine, and its model has seen no other vertebra.
    if labelling == Labelling::ThoracolumbarTransition {
        vertebrae.retain(|v| v.label.is_some());
    }
    let length_mm = centreline.last().map_or(0.0, |p| p.s_mm);
    Ok(Spine {
        centreline,
        body_offset_mm: offsets,
        vertebrae,
        labelling,
        length_mm,
    })
}

/// Steps 3 and 4 along one centreline: the bodies, caudal first, and the bodies' offset
/// from the centreline per centreline point.
fn bodies_along(
    volume: &HuVolume,
    centreline: &[CentrePoint],
    short: bool,
) -> (Vec<LocatedVertebra>, Vec<f64>) {
    let block = Block::sample(volume, centreline);
    let walls = continuous(walls(&block));
    let offsets = smooth_offsets(&walls, centreline.len(), |w| {
        (w.posterior_mm + w.anterior_mm) / 2.0
    });
    let vertebrae = bodies(&block, centreline, &walls, &offsets, short);
    (vertebrae, offsets)
}

/// A second look is tried where the column seen beyond the outermost body's disc is
/// longer than this, mm: most of another lower thoracic body could lie there.
const UNFILLED_END_MM: f64 = 15.0;
/// A body of the second look is the same as one of the first within this distance, mm
/// (a third of the shortest body: the same discs, found along a slightly different
/// line).
const SECOND_LOOK_MATCH_MM: f64 = 4.0;

/// The centreline of a second look, and which of its ends were straightened.
struct SecondLook {
    line: Vec<CentrePoint>,
    caudal: bool,
    cranial: bool,
}

/// Within the scan, the centreline must leave the straight continuation of the bodies'
/// line by more than this for an end to be looked at again, mm: more than the rough
/// column's wobble after smoothing (1-2 mm), less than a slide from body to arch.
const SLIDE_MIN_MM: f64 = 6.0;

/// The centreline with each end that holds no body (see [`UNFILLED_END_MM`]) and has
/// slid off the bodies' line (see [`SLIDE_MIN_MM`]) replaced, from the outermost body's
/// level on, by the straight continuation of the line through the two outermost bodies'
/// centres; `None` when neither end qualifies. `vertebrae` are caudal first.
fn straighten_ends(line: &[CentrePoint], vertebrae: &[LocatedVertebra]) -> Option<SecondLook> {
    let n = vertebrae.len();
    let total = line.last()?.s_mm;
    if n < 2 {
        return None;
    }
    let index = |s: f64| ((s / STEP_MM).round().max(0.0) as usize).min(line.len() - 1);
    // The straight continuation from point `i0` along `direction` over `range`, if the
    // centreline slid off it inside the scan.
    let straight = |range: std::ops::Range<usize>, i0: usize, direction: Vec3| {
        let replaced: Vec<Vec3> = range
            .clone()
            .map(|i| line[i0].position + direction * (line[i].s_mm - line[i0].s_mm).abs())
            .collect();
        let slide = range
            .zip(&replaced)
            .filter(|(i, _)| (EXTEND_MM..=total - EXTEND_MM).contains(&line[*i].s_mm))
            .map(|(i, p)| (*p - line[i].position).norm())
            .fold(0.0, f64::max);
        (slide > SLIDE_MIN_MM).then_some(replaced)
    };
    let mut points: Vec<Vec3> = line.iter().map(|p| p.position).collect();
    // Caudal end: the scan's column below the lowest body's lower disc.
    let (v0, v1) = (&vertebrae[0], &vertebrae[1]);
    let caudal = (v0.s_mm - v0.height_mm / 2.0 - EXTEND_MM > UNFILLED_END_MM)
        .then(|| {
            straight(
                0..index(v0.s_mm),
                index(v0.s_mm),
                (v0.centre_mm - v1.centre_mm).normalized(),
            )
        })
        .flatten();
    if let Some(replaced) = &caudal {
        points[..replaced.len()].copy_from_slice(replaced);
    }
    // Cranial end: above the highest body's upper disc.
    let (va, vb) = (&vertebrae[n - 1], &vertebrae[n - 2]);
    let i0 = index(va.s_mm);
    let cranial = (total - EXTEND_MM - (va.s_mm + va.height_mm / 2.0) > UNFILLED_END_MM)
        .then(|| {
            straight(
                i0 + 1..line.len(),
                i0,
                (va.centre_mm - vb.centre_mm).normalized(),
            )
        })
        .flatten();
    if let Some(replaced) = &cranial {
        points[i0 + 1..].copy_from_slice(replaced);
    }
    (caudal.is_some() || cranial.is_some()).then(|| SecondLook {
        line: frames(&points),
        caudal: caudal.is_some(),
        cranial: cranial.is_some(),
    })
}

/// Step 1: per slice, the most bony boxes near the midline, in the posterior body;
/// then the smoothest high-scoring path through them.
fn rough_column(volume: &HuVolume) -> Vec<Option<Vec3>> {
    let (nz, ny, nx) = volume.data.dim();
    let a = volume.affine;
    let (px, py) = (a.col_step.norm(), a.row_step.norm());
    let fx = ((2.0 / px).round() as usize).max(1);
    let fy = ((2.0 / py).round() as usize).max(1);
    let (cx, cy) = (nx / fx, ny / fy);
    let candidates: Vec<Vec<(f64, Vec3)>> = (0..nz)
        .into_par_iter()
        .map(|k| {
            let plane = volume.data.index_axis(ndarray::Axis(0), k);
            // Coarse means and patient coordinates of every coarse pixel.
            let mut hu = vec![0.0f64; cx * cy];
            for j in 0..cy {
                for i in 0..cx {
                    let mut s = 0.0;
                    for jj in 0..fy {
                        for ii in 0..fx {
                            s += f64::from(plane[[j * fy + jj, i * fx + ii]]);
                        }
                    }
                    hu[j * cx + i] = s / (fx * fy) as f64;
                }
            }
            let pos = |i: usize, j: usize| {
                a.to_patient(
                    (i * fx) as f64 + (fx as f64 - 1.0) / 2.0,
                    (j * fy) as f64 + (fy as f64 - 1.0) / 2.0,
                    k as f64,
                )
            };
            // The body: soft tissue and denser, its lateral midline and AP extent.
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for j in 0..cy {
                for i in 0..cx {
                    if hu[j * cx + i] > -400.0 {
                        let p = pos(i, j);
                        xs.push(p.x);
                        ys.push(p.y);
                    }
                }
            }
            if xs.len() < 200 {
                return Vec::new();
            }
            let mid_x = percentile(&mut xs, 0.5);
            let y_lo = percentile(&mut ys, 0.02);
            let y_hi = percentile(&mut ys, 0.98);
            let y_mid = (y_lo + y_hi) / 2.0;
            // Integral image of capped bone mass.
            let mut integral = vec![0.0f64; (cx + 1) * (cy + 1)];
            for j in 0..cy {
                let mut row = 0.0;
                for i in 0..cx {
                    row += (hu[j * cx + i] - BONE_BOX_FLOOR_HU).clamp(0.0, BONE_BOX_CAP_HU);
                    integral[(j + 1) * (cx + 1) + i + 1] = integral[j * (cx + 1) + i + 1] + row;
                }
            }
            let box_sum = |i0: usize, j0: usize, i1: usize, j1: usize| {
                let w = cx + 1;
                integral[j1 * w + i1] - integral[j0 * w + i1] - integral[j1 * w + i0]
                    + integral[j0 * w + i0]
            };
            // Box half-sizes in coarse pixels along the image axes (lateral 18 mm, AP 25 mm:
            // body, canal and arch at once, so osteoporotic bodies do not lose the box to
            // their spinous processes; for an axial image, the rough column needs no more).
            let hx = (18.0 / (px * fx as f64)).round() as usize;
            let hy = (25.0 / (py * fy as f64)).round() as usize;
            let area = ((2 * hx + 1) * (2 * hy + 1)) as f64;
            let mut all: Vec<(f64, Vec3, usize, usize)> = Vec::new();
            for j in hy..cy.saturating_sub(hy) {
                for i in hx..cx.saturating_sub(hx) {
                    let p = pos(i, j);
                    if (p.x - mid_x).abs() > 50.0
                        || p.y < y_mid - 0.1 * (y_hi - y_lo)
                        || p.y > y_hi - 5.0
                    {
                        continue;
                    }
                    let mean = box_sum(i - hx, j - hy, i + hx + 1, j + hy + 1) / area;
                    // Midline prior: 1 HU of bone mass per mm off the midline. A vertebra
                    // with its arch averages well above the floor over the box.
                    let score = mean - (p.x - mid_x).abs();
                    if score > 25.0 {
                        all.push((score, p, i, j));
                    }
                }
            }
            // The best boxes, at least 12 mm apart: the body, its arch, a neighbour, or
            // contrast in the aorta or the stomach...
            all.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut picked: Vec<(f64, Vec3, usize, usize)> = Vec::new();
            for (score, p, i, j) in all {
                if picked.iter().all(|q| (q.1 - p).norm() > 12.0) {
                    picked.push((score, p, i, j));
                    if picked.len() == 3 * CANDIDATES_PER_SLICE {
                        break;
                    }
                }
            }
            // ...of which only a vertebra holds a canal: soft tissue enclosed by bone.
            let at = |i: i64, j: i64| -> Option<f64> {
                (i >= 0 && j >= 0 && (i as usize) < cx && (j as usize) < cy)
                    .then(|| hu[j as usize * cx + i as usize])
            };
            let ray_px = ((16.0 / (px * fx as f64)).round() as i64).max(2);
            let enclosed = |i: i64, j: i64| -> bool {
                let dirs = [
                    (1, 0),
                    (1, 1),
                    (0, 1),
                    (-1, 1),
                    (-1, 0),
                    (-1, -1),
                    (0, -1),
                    (1, -1),
                ];
                let hits = dirs
                    .iter()
                    .filter(|(di, dj)| {
                        (1..=ray_px)
                            .any(|t| at(i + di * t, j + dj * t).is_some_and(|v| v > CANAL_WALL_HU))
                    })
                    .count();
                hits >= 7
            };
            let mut ranked: Vec<(f64, Vec3)> = picked
                .into_iter()
                .map(|(score, p, i, j)| {
                    let (i, j) = (i as i64, j as i64);
                    let has_canal = (-(hx as i64)..=hx as i64).any(|di| {
                        (-(hy as i64)..=hy as i64).any(|dj| {
                            at(i + di, j + dj).is_some_and(|v| (-100.0..=120.0).contains(&v))
                                && enclosed(i + di, j + dj)
                        })
                    });
                    (
                        if has_canal {
                            score + CANAL_BONUS
                        } else {
                            score
                        },
                        p,
                    )
                })
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
            ranked.truncate(CANDIDATES_PER_SLICE);
            ranked
        })
        .collect();
    track(&candidates, volume.affine.slice_step.norm().max(1e-3))
}

/// Bone around a canal must be this dense: cortex, not contrast-enhanced blood (the
/// aorta and heart reach 200-400 HU in venous and arterial phases).
const CANAL_WALL_HU: f64 = 450.0;
/// Score added to a box that holds a canal (box-mean HU): it outranks contrast.
const CANAL_BONUS: f64 = 200.0;
/// Candidates kept per slice for the tracking.
const CANDIDATES_PER_SLICE: usize = 8;
/// Cost of moving the column between slices, in box-mean HU per mm moved per mm of
/// slice distance: the column is smooth, an osteoporotic body and its own spinous
/// process score alike.
const TRACK_JUMP_COST: f64 = 8.0;

/// Viterbi path through the candidates of the slices, maximising the summed score less
/// the cost of jumps; the path may skip up to [`TRACK_MAX_SKIP_MM`] (at a cost)
/// rather than jump to something else where the column scores poorly.
fn track(candidates: &[Vec<(f64, Vec3)>], dz_mm: f64) -> Vec<Option<Vec3>> {
    let n = candidates.len();
    // best[k][c]: best path score ending at candidate c of slice k; from[k][c]: its
    // predecessor (slice, candidate), if any.
    let mut best: Vec<Vec<f64>> = Vec::with_capacity(n);
    let mut from: Vec<Vec<Option<(usize, usize)>>> = Vec::with_capacity(n);
    for k in 0..n {
        let mut row = Vec::with_capacity(candidates[k].len());
        let mut back = Vec::with_capacity(candidates[k].len());
        for c in &candidates[k] {
            let mut value = c.0;
            let mut pred = None;
            let max_gap = ((TRACK_MAX_SKIP_MM / dz_mm).round() as usize).max(1) + 1;
            for gap in 1..=max_gap.min(k) {
                let kp = k - gap;
                for (pi, pc) in candidates[kp].iter().enumerate() {
                    let jump = (c.1.x - pc.1.x).hypot(c.1.y - pc.1.y);
                    if jump > TRACK_MAX_JUMP_MM + TRACK_MAX_SLOPE * dz_mm * gap as f64 {
                        continue;
                    }
                    let v = best[kp][pi] + c.0
                        - TRACK_JUMP_COST * jump / (dz_mm * gap as f64)
                        - TRACK_SKIP_COST_PER_MM * dz_mm * (gap - 1) as f64;
                    if v > value {
                        value = v;
                        pred = Some((kp, pi));
                    }
                }
            }
            row.push(value);
            back.push(pred);
        }
        best.push(row);
        from.push(back);
    }
    let mut out = vec![None; n];
    // Follow back from the best end.
    let end = (0..n)
        .flat_map(|k| (0..candidates[k].len()).map(move |c| (k, c)))
        .max_by(|a, b| best[a.0][a.1].total_cmp(&best[b.0][b.1]));
    let mut cur = end;
    while let Some((k, c)) = cur {
        out[k] = Some(candidates[k][c].1);
        cur = from[k][c];
    }
    out
}

/// The column moves at most this far between neighbouring slices beyond what its
/// slope allows, mm: from the body to its arch, not to the aortic arch or the heart.
const TRACK_MAX_JUMP_MM: f64 = 8.0;
/// Steepest course of the column across slices (mm moved per mm along the slice
/// normal): the sacral promontory's 45 degrees.
const TRACK_MAX_SLOPE: f64 = 1.0;
/// Longest stretch the track may skip between two candidates, mm (a disc and the
/// thin end of a body where no box scores).
const TRACK_MAX_SKIP_MM: f64 = 20.0;
/// Cost of each mm skipped (box-mean HU per mm): less than a jump through the body,
/// more than a weak stretch of the column.
const TRACK_SKIP_COST_PER_MM: f64 = 40.0;

/// Intercept `c0` of the weighted quadratic fit from the moments `m[e] = sum w t^e`
/// (e = 0..4) and `rhs[e] = sum w t^e p`, by Cramer's rule; `None` when singular.
fn solve_quadratic_fit(m: &[f64; 5], rhs: &[Vec3; 3]) -> Option<Vec3> {
    let a = [[m[0], m[1], m[2]], [m[1], m[2], m[3]], [m[2], m[3], m[4]]];
    let det3 = |a: [[f64; 3]; 3]| {
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    };
    let det = det3(a);
    if det.abs() < 1e-9 * m[0].powi(3).max(1e-30) {
        return None;
    }
    let component = |f: fn(Vec3) -> f64| {
        let mut b = a;
        for (row, r) in b.iter_mut().zip(rhs) {
            row[0] = f(*r);
        }
        det3(b) / det
    };
    Some(Vec3::new(
        component(|v| v.x),
        component(|v| v.y),
        component(|v| v.z),
    ))
}

/// Intercept `c0` of the weighted straight-line fit from the same moments as
/// [`solve_quadratic_fit`]; `None` when singular.
fn solve_linear_fit(m: &[f64; 5], rhs: &[Vec3; 3]) -> Option<Vec3> {
    let det = m[0] * m[2] - m[1] * m[1];
    if det.abs() < 1e-9 * m[0].powi(2).max(1e-30) {
        return None;
    }
    Some((rhs[0] * m[2] - rhs[1] * m[1]) / det)
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    *v.select_nth_unstable_by(i, f64::total_cmp).1
}

/// Below this extent of the rough column the centreline is fitted with local lines,
/// not parabolas, mm: the curvature needs several vertebrae to be told from the rough
/// box's wobble with the vertebral period.
const QUADRATIC_MIN_COLUMN_MM: f64 = 100.0;

/// Step 2: robust smoothing of the per-slice positions into an arc-length centreline.
fn centreline(volume: &HuVolume, rough: &[Option<Vec3>]) -> Result<Vec<CentrePoint>, NoSpine> {
    let dz = volume.affine.slice_step.norm().max(1e-3);
    let half = ((15.0 / dz).round() as usize).max(2);
    // Reject points far from the running median of their neighbours.
    let kept: Vec<Option<Vec3>> = (0..rough.len())
        .map(|k| {
            let p = rough[k]?;
            let lo = k.saturating_sub(half);
            let hi = (k + half + 1).min(rough.len());
            let mut xs: Vec<f64> = rough[lo..hi].iter().flatten().map(|q| q.x).collect();
            let mut ys: Vec<f64> = rough[lo..hi].iter().flatten().map(|q| q.y).collect();
            if xs.len() < 3 {
                return None;
            }
            let (mx, my) = (percentile(&mut xs, 0.5), percentile(&mut ys, 0.5));
            ((p.x - mx).hypot(p.y - my) <= 12.0).then_some(p)
        })
        .collect();
    // Longest run of kept slices, allowing gaps up to 20 mm.
    let max_gap = ((20.0 / dz).round() as usize).max(1);
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for (k, p) in kept.iter().enumerate() {
        if p.is_none() {
            continue;
        }
        current = match current {
            Some((s, last)) if k - last <= max_gap => Some((s, k)),
            Some(run) => {
                runs.push(run);
                Some((k, k))
            }
            None => Some((k, k)),
        };
    }
    runs.extend(current);
    let best = runs
        .into_iter()
        .max_by_key(|(a, b)| b - a)
        .ok_or(NoSpine::NoSpineInFieldOfView)?;
    let (k0, k1) = best;
    let points: Vec<(usize, Vec3)> = (k0..=k1).filter_map(|k| kept[k].map(|p| (k, p))).collect();
    if points.is_empty() {
        return Err(NoSpine::NoSpineInFieldOfView);
    }
    let extent = (points[points.len() - 1].1 - points[0].1).norm();
    if extent < MIN_COLUMN_MM {
        return Err(NoSpine::ColumnTooShort { length_mm: extent });
    }
    // Local quadratic regression (Gaussian weights, sigma 20 mm) along the slice axis: a
    // weighted mean or line would pull the line inwards where the column curves at its
    // ends (the lordotic L4, L5 turning back at the lumbosacral angle).
    // Sigma spans a vertebra: the rough box drifts with the vertebral period (arch at body
    // levels, none at discs) and that wobble must not reach the wall search.
    let sigma = 20.0 / dz;
    // Over a short stretch the curvature term is not determined by the points (over
    // 40 mm the column's sagitta is about 1 mm) and fits their wobble instead: a line.
    let quadratic = extent >= QUADRATIC_MIN_COLUMN_MM;
    let smooth: Vec<Vec3> = (k0..=k1)
        .map(|k| {
            // Weighted quadratic fit p(t) = c0 + c1 t + c2 t^2; the value is c0.
            let mut m = [0.0f64; 5];
            let mut rhs = [Vec3::ZERO; 3];
            for (kk, p) in &points {
                let t = *kk as f64 - k as f64;
                let d = t / sigma;
                if d.abs() < 3.0 {
                    let w = (-0.5 * d * d).exp();
                    let mut tp = w;
                    for (e, mk) in m.iter_mut().enumerate() {
                        *mk += tp;
                        if e < 3 {
                            rhs[e] += *p * tp;
                        }
                        tp *= t;
                    }
                }
            }
            if quadratic {
                solve_quadratic_fit(&m, &rhs)
            } else {
                solve_linear_fit(&m, &rhs)
            }
            .unwrap_or_else(|| rhs[0] / m[0])
        })
        .collect();
    // Order caudal to cranial, then resample by arc length.
    let mut line = smooth;
    if line[0].z > line[line.len() - 1].z {
        line.reverse();
    }
    // Extend 20 mm beyond both ends along the end directions, so that the first and
    // last bodies can be bounded by what lies beyond them.
    if line.len() >= 2 {
        let n = line.len();
        let head = (line[n - 1] - line[n.saturating_sub(6)]).normalized();
        let tail = (line[0] - line[5.min(n - 1)]).normalized();
        let (first, last) = (line[0], line[n - 1]);
        line.insert(0, first + tail * EXTEND_MM);
        line.push(last + head * EXTEND_MM);
    }
    Ok(frames(&line))
}

/// A polyline, caudal to cranial, resampled every [`STEP_MM`] of arc length with each
/// point's frame.
fn frames(line: &[Vec3]) -> Vec<CentrePoint> {
    let mut cum = vec![0.0];
    for w in line.windows(2) {
        cum.push(cum[cum.len() - 1] + (w[1] - w[0]).norm());
    }
    let total = cum[cum.len() - 1];
    let n = (total / STEP_MM).floor() as usize + 1;
    let mut pts = Vec::with_capacity(n);
    let mut seg = 0;
    for i in 0..n {
        let s = i as f64 * STEP_MM;
        while seg + 2 < cum.len() && cum[seg + 1] < s {
            seg += 1;
        }
        let t = if cum[seg + 1] > cum[seg] {
            ((s - cum[seg]) / (cum[seg + 1] - cum[seg])).clamp(0.0, 1.0)
        } else {
            0.0
        };
        pts.push(line[seg] + (line[seg + 1] - line[seg]) * t);
    }
    let h = (6.0 / STEP_MM) as usize;
    (0..n)
        .map(|i| {
            let a = pts[i.saturating_sub(h)];
            let b = pts[(i + h).min(n - 1)];
            let mut tangent = (b - a).normalized();
            if tangent.norm() == 0.0 {
                tangent = Vec3::Z;
            }
            let lateral = (Vec3::X - tangent * Vec3::X.dot(tangent)).normalized();
            let anterior = lateral.cross(tangent);
            CentrePoint {
                s_mm: i as f64 * STEP_MM,
                position: pts[i],
                tangent,
                lateral,
                anterior,
            }
        })
        .collect()
}

/// Step 3: HU on planes normal to the centreline: `[s][lateral][anterior]`.
struct Block {
    /// Lateral offsets sampled, mm.
    lateral: Vec<f64>,
    /// Anterior offsets sampled, mm.
    anterior: Vec<f64>,
    /// Values, NaN outside the volume.
    data: Vec<f32>,
    /// Rows (centreline points).
    rows: usize,
}

impl Block {
    fn sample(volume: &HuVolume, line: &[CentrePoint]) -> Self {
        let lateral: Vec<f64> = (-6..=6)
            .map(|l| f64::from(l) * (BAND_HALF_MM / 6.0))
            .collect();
        let na = (2.0 * AP_HALF_RANGE_MM / STEP_MM) as usize + 1;
        let anterior: Vec<f64> = (0..na)
            .map(|i| -AP_HALF_RANGE_MM + i as f64 * STEP_MM)
            .collect();
        let per_row = lateral.len() * anterior.len();
        let mut data = vec![f32::NAN; line.len() * per_row];
        data.par_chunks_mut(per_row)
            .zip(line.par_iter())
            .for_each(|(row, p)| {
                for (li, l) in lateral.iter().enumerate() {
                    for (ai, a) in anterior.iter().enumerate() {
                        if let Some(v) = volume.sample(p.at(*l, *a)) {
                            row[li * anterior.len() + ai] = v as f32;
                        }
                    }
                }
            });
        Self {
            lateral,
            anterior,
            data,
            rows: line.len(),
        }
    }

    fn get(&self, s: usize, l: usize, a: usize) -> f32 {
        self.data[(s * self.lateral.len() + l) * self.anterior.len() + a]
    }

    /// Mid-sagittal value: mean over the central lateral band.
    fn mid(&self, s: usize, a: usize) -> f32 {
        let c = self.lateral.len() / 2;
        let v: Vec<f32> = (c - 2..=c + 2)
            .map(|l| self.get(s, l, a))
            .filter(|v| !v.is_nan())
            .collect();
        if v.is_empty() {
            f32::NAN
        } else {
            v.iter().sum::<f32>() / v.len() as f32
        }
    }
}

/// Posterior and anterior wall offsets (mm along the anterior axis) at one row.
#[derive(Debug, Clone, Copy)]
struct Walls {
    row: usize,
    posterior_mm: f64,
    anterior_mm: f64,
}

/// Step 4a: walls every 5 mm, from two profiles across the column over a ±15 mm window
/// of rows: the fraction of bright (cortex) samples and the mean HU of each column.
fn walls(block: &Block) -> Vec<Walls> {
    let win = (15.0 / STEP_MM) as usize;
    let every = (5.0 / STEP_MM) as usize;
    let na = block.anterior.len();
    (0..block.rows)
        .step_by(every)
        .filter_map(|r| {
            let lo = r.saturating_sub(win);
            let hi = (r + win + 1).min(block.rows);
            let (frac, mean): (Vec<f64>, Vec<f64>) = (0..na)
                .map(|a| {
                    let vals: Vec<f64> = (lo..hi)
                        .map(|s| f64::from(block.mid(s, a)))
                        .filter(|v| !v.is_nan())
                        .collect();
                    if vals.is_empty() {
                        return (f64::NAN, f64::NAN);
                    }
                    let n = vals.len() as f64;
                    (
                        vals.iter().filter(|v| **v > CORTEX_HU).count() as f64 / n,
                        vals.iter().sum::<f64>() / n,
                    )
                })
                .unzip();
            let profile = Profile {
                bright: smooth_columns(&frac),
                mean_hu: smooth_columns(&mean),
            };
            let near_end =
                (r as f64 * STEP_MM).min((block.rows - r) as f64 * STEP_MM) < END_FALLBACK_MM;
            find_walls(&profile, &block.anterior, near_end).map(|(p, a)| Walls {
                row: r,
                posterior_mm: p,
                anterior_mm: a,
            })
        })
        .collect()
}

/// A column profile smoothed over 1.5 mm (three columns), NaN kept out of the mean.
fn smooth_columns(v: &[f64]) -> Vec<f64> {
    let n = v.len();
    (0..n)
        .map(|a| {
            let w: Vec<f64> = (a.saturating_sub(1)..(a + 2).min(n))
                .map(|i| v[i])
                .filter(|x| !x.is_nan())
                .collect();
            if w.is_empty() {
                f64::NAN
            } else {
                w.iter().sum::<f64>() / w.len() as f64
            }
        })
        .collect()
}

/// Profiles across the column (one value per anterior offset) for the wall search.
struct Profile {
    /// Fraction of samples above [`CORTEX_HU`].
    bright: Vec<f64>,
    /// Mean HU.
    mean_hu: Vec<f64>,
}

/// Mean HU below which a never-bright column is soft tissue (the canal's CSF and cord,
/// prevertebral fat and muscle), not the grey interior of an osteoporotic body: real
/// and synthetic bodies average 100 HU or more over a window that includes their
/// endplates.
const SOFT_TISSUE_MAX_HU: f64 = 90.0;

/// Mean HU of a column that bounds the canal when it is not bright in places: well above
/// soft tissue and a body's grey interior.
const CANAL_BOUNDARY_MIN_HU: f64 = 160.0;

/// Canal = the most posterior run of never-bright soft-tissue columns (5-30 mm) with
/// bone on both sides;
/// posterior wall = brightest column just in front of it; anterior wall = last bright
/// column before the prevertebral soft tissue.
fn find_walls(profile: &Profile, offsets: &[f64], allow_hump: bool) -> Option<(f64, f64)> {
    const DARK: f64 = 0.04;
    const BRIGHT: f64 = 0.25;
    let frac = &profile.bright;
    let n = frac.len();
    let dark =
        |i: usize| frac[i].is_nan() || (frac[i] < DARK && profile.mean_hu[i] < SOFT_TISSUE_MAX_HU);
    // Bone beside the canal: bright in places (cortex), or dense on average (the thin
    // posterior wall of an osteoporotic body, blurred by thick slices).
    let bony = |i: usize| frac[i] > BRIGHT || profile.mean_hu[i] >= CANAL_BOUNDARY_MIN_HU;
    let mut best: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < n {
        if !dark(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i < n && dark(i) {
            i += 1;
        }
        let (a, b) = (start, i); // [a, b)
        let len_mm = (b - a) as f64 * STEP_MM;
        if a == 0 || b == n || !(5.0..=30.0).contains(&len_mm) {
            continue;
        }
        let reach = (4.0 / STEP_MM) as usize;
        let before = (a.saturating_sub(reach)..a).any(bony);
        let after = (b..(b + reach).min(n)).any(bony);
        if !(before && after) {
            continue;
        }
        // The canal is the most posterior such run: in front of it an osteoporotic
        // body's interior (never above the cortex threshold) is bounded by its walls,
        // and so is the fat before a calcified aorta; behind the arch nothing is.
        let centre = (offsets[a] + offsets[b - 1]) / 2.0;
        if best.is_none_or(|(ba, bb)| centre < (offsets[ba] + offsets[bb - 1]) / 2.0) {
            best = Some((a, b));
        }
    }
    let Some((_, canal_end)) = best else {
        return if allow_hump {
            body_hump(frac, offsets)
        } else {
            None
        };
    };
    // Posterior wall: the brightest column within 4 mm in front of the canal.
    let reach = (4.0 / STEP_MM) as usize;
    let pw =
        (canal_end..(canal_end + reach).min(n)).max_by(|x, y| frac[*x].total_cmp(&frac[*y]))?;
    // Anterior wall: scanning forward through the body (its interior may be anything
    // from bright young bone to osteoporotic grey), the last bright column before 5 mm
    // of never-bone prevertebral soft tissue.
    let gap = (5.0 / STEP_MM) as usize;
    let mut last_bright = pw;
    let mut dark_run = 0;
    let mut i = pw;
    while i < n {
        if frac[i] > BRIGHT {
            last_bright = i;
        }
        dark_run = if dark(i) { dark_run + 1 } else { 0 };
        if dark_run >= gap {
            break;
        }
        i += 1;
    }
    // Outer edges on both sides: the first bright column after the canal and the last
    // bright one before soft tissue, so that their midpoint is unbiased.
    let pw_edge = (canal_end..=pw).find(|i| frac[*i] > BRIGHT).unwrap_or(pw);
    let depth = (last_bright - pw_edge) as f64 * STEP_MM;
    if (8.0..=BODY_DEPTH_MAX_MM).contains(&depth) {
        return Some((offsets[pw_edge], offsets[last_bright]));
    }
    // No soft tissue in front of the body within a body's depth: contrast-filled blood
    // (the aorta, its arch, the heart in an arterial phase) abuts it. The anterior wall
    // is then the cortex's line: the most anterior column within a body's depth whose
    // mean stands out over the blood in front of it and the body's interior behind it.
    anterior_cortex(&profile.mean_hu, pw_edge).map(|aw| (offsets[pw_edge], offsets[aw]))
}

/// Deepest vertebral body (AP), mm, with its cortex and partial volume.
const BODY_DEPTH_MAX_MM: f64 = 55.0;
/// How far the anterior cortex's mean stands above the blood in front of it and the
/// body's interior behind it, HU: cortex is 700-1000 HU, arterial blood 250-400, so even
/// blurred and averaged with the discs' rows the line stands out.
const CORTEX_PROMINENCE_HU: f64 = 60.0;

/// The anterior cortex behind contrast-filled blood (see [`find_walls`]): the most
/// anterior local maximum of the mean HU, 8 mm to [`BODY_DEPTH_MAX_MM`] in front of the
/// posterior wall, more than [`CORTEX_PROMINENCE_HU`] above the mean 3-8 mm in front of
/// it and the mean 4-10 mm behind it.
fn anterior_cortex(mean: &[f64], pw: usize) -> Option<usize> {
    let col = |mm: f64| (mm / STEP_MM).round() as usize;
    let n = mean.len();
    let avg = |a: usize, b: usize| {
        let v: Vec<f64> = (a..b.min(n))
            .map(|i| mean[i])
            .filter(|x| !x.is_nan())
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    (pw + col(8.0)..(pw + col(BODY_DEPTH_MAX_MM)).min(n.saturating_sub(1)))
        .rev()
        .find(|&i| {
            let m = mean[i];
            if m.is_nan() || !(mean[i - 1] <= m && m >= mean[i + 1]) {
                return false;
            }
            let front = avg(i + col(3.0), i + col(8.0) + 1);
            let back = avg(i.saturating_sub(col(10.0)), i.saturating_sub(col(4.0)) + 1);
            matches!((front, back), (Some(f), Some(b)) if m - f > CORTEX_PROMINENCE_HU && m - b > CORTEX_PROMINENCE_HU)
        })
}

/// Fallback when no canal shows (a body cut obliquely at the lumbosacral angle, the
/// column's last vertebra): the bright run, bridging gaps up to 3 mm, nearest to the
/// rough column, if it has a vertebral body's depth.
fn body_hump(frac: &[f64], offsets: &[f64]) -> Option<(f64, f64)> {
    const BRIGHT: f64 = 0.25;
    let bridge = (3.0 / STEP_MM) as usize;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, f) in frac.iter().enumerate() {
        if *f > BRIGHT {
            match runs.last_mut() {
                Some(r) if i - r.1 <= bridge => r.1 = i,
                _ => runs.push((i, i)),
            }
        }
    }
    runs.into_iter()
        .filter(|(a, b)| (8.0..=55.0).contains(&((b - a) as f64 * STEP_MM)))
        .min_by(|x, y| {
            let d = |r: &(usize, usize)| ((offsets[r.0] + offsets[r.1]) / 2.0).abs();
            d(x).total_cmp(&d(y))
        })
        .map(|(a, b)| (offsets[a], offsets[b]))
}

/// The body's centre moves at most this much between wall rows 5 mm apart, mm.
const WALLS_MAX_STEP_MM: f64 = 6.0;

/// The walls that follow one body line: from the row nearest the column's median
/// centre, outwards both ways, a row is kept only near the last kept one. Where the
/// column leaves the straightened block (a cervical lordosis bending away from the
/// extrapolated centreline) the walls found belong to something else.
fn continuous(walls: Vec<Walls>) -> Vec<Walls> {
    if walls.len() < 3 {
        return walls;
    }
    let centre = |w: &Walls| (w.posterior_mm + w.anterior_mm) / 2.0;
    let mut all: Vec<f64> = walls.iter().map(centre).collect();
    let median = percentile(&mut all, 0.5);
    // Seed: in the middle half of the rows, the row nearest the median.
    let n = walls.len();
    let seed = (n / 4..n - n / 4)
        .min_by(|a, b| {
            (centre(&walls[*a]) - median)
                .abs()
                .total_cmp(&(centre(&walls[*b]) - median).abs())
        })
        .unwrap_or(n / 2);
    let mut keep = vec![false; n];
    keep[seed] = true;
    for range in [
        Box::new(seed + 1..n) as Box<dyn Iterator<Item = usize>>,
        Box::new((0..seed).rev()),
    ] {
        let mut last = &walls[seed];
        for i in range {
            let gap_rows = walls[i].row.abs_diff(last.row) as f64 * STEP_MM / 5.0;
            if (centre(&walls[i]) - centre(last)).abs() <= WALLS_MAX_STEP_MM * gap_rows.max(1.0) {
                keep[i] = true;
                last = &walls[i];
            }
        }
    }
    walls
        .into_iter()
        .zip(keep)
        .filter_map(|(w, k)| k.then_some(w))
        .collect()
}

/// One value of the walls (the centre offset, a wall's offset) per centreline row,
/// median-filtered over neighbouring wall rows and interpolated between them.
fn smooth_offsets(walls: &[Walls], rows: usize, value: impl Fn(&Walls) -> f64) -> Vec<f64> {
    if walls.is_empty() {
        return vec![0.0; rows];
    }
    let mids: Vec<(usize, f64)> = walls.iter().map(|w| (w.row, value(w))).collect();
    let med: Vec<(usize, f64)> = (0..mids.len())
        .map(|i| {
            let mut v: Vec<f64> = mids[i.saturating_sub(2)..(i + 3).min(mids.len())]
                .iter()
                .map(|m| m.1)
                .collect();
            (mids[i].0, percentile(&mut v, 0.5))
        })
        .collect();
    (0..rows)
        .map(|r| interpolate_rows(&med, r).unwrap_or(0.0))
        .collect()
}

/// The value at row `r` of values known at some rows (`anchors`, sorted by row):
/// linear between the anchors around it, the nearest one's beyond them, `None` with
/// no anchor at all.
fn interpolate_rows(anchors: &[(usize, f64)], r: usize) -> Option<f64> {
    let j = anchors.partition_point(|a| a.0 <= r);
    match (j.checked_sub(1).map(|i| anchors[i]), anchors.get(j)) {
        (Some(a), Some(b)) => Some(a.1 + (b.1 - a.1) * (r - a.0) as f64 / (b.0 - a.0) as f64),
        (Some(a), None) => Some(a.1),
        (None, Some(b)) => Some(b.1),
        (None, None) => None,
    }
}

/// Step 4b: the discs, and the bodies between them (see [`discs`]).
fn bodies(
    block: &Block,
    line: &[CentrePoint],
    walls: &[Walls],
    offsets: &[f64],
    short: bool,
) -> Vec<LocatedVertebra> {
    if walls.is_empty() {
        return Vec::new();
    }
    let post = smooth_offsets(walls, block.rows, |w| w.posterior_mm);
    let ant = smooth_offsets(walls, block.rows, |w| w.anterior_mm);
    let band = discs::band(block);
    let period = discs::local_period(&band);
    let found = discs::find(&band, offsets, &period, short);
    let spans: Vec<_> = discs::bodies(&found, &band, offsets, &period)
        .into_iter()
        .filter(|b| (BODY_MM.0..=BODY_MM.1).contains(&b.height_mm()))
        .collect();
    let outermost = |i: usize| i == 0 || i + 1 == spans.len();
    spans
        .iter()
        .enumerate()
        .filter_map(|(k, &b)| {
            let c = b.centre_row();
            let i = (c.round().max(0.0) as usize).min(line.len() - 1);
            // Between centreline rows, interpolate the point and the body's offset.
            let j = (i + 1).min(line.len() - 1);
            let t = (c - i as f64).clamp(0.0, 1.0);
            let (p, q) = (line[i], line[j]);
            let mut offset = offsets[i] + (offsets[j] - offsets[i]) * t;
            let mut depth = ant[i] - post[i];
            match discs::endplate_extent(&band, &b, offset, CORTEX_HU as f32) {
                Some((c, d)) => (offset, depth) = (c, d),
                // A body between two discs stands on their evidence; one at either end
                // of the column needs its endplates seen as well (the column may have
                // bent away from the centreline there: a cervical lordosis, the sacrum),
                // or, where its endplates are too faint for that (osteopenic bone, a
                // soft kernel), its AP profile must follow its neighbour's. A short
                // scan's lone body has no other evidence to weigh: its disc and walls
                // place it.
                None if (b.at_end || outermost(k)) && !short => {
                    let neighbour = if k == 0 {
                        spans.get(1)
                    } else {
                        spans.get(k - 1)
                    };
                    let follows = neighbour
                        .and_then(|n| discs::profile_match(&band, &b, n, offset))
                        .is_some_and(|r| r >= END_PROFILE_MIN_CORRELATION);
                    if !follows {
                        return None;
                    }
                }
                None => {}
            }
            let centre = p.at(0.0, offset) + (q.at(0.0, offset) - p.at(0.0, offset)) * t;
            Some(LocatedVertebra {
                label: None,
                centre_mm: centre,
                superior_axis: p.tangent,
                anterior_axis: p.anterior,
                s_mm: c * STEP_MM,
                height_mm: b.height_mm(),
                depth_mm: depth,
                has_ribs: false,
            })
        })
        .collect()
}

/// The body's lateral walls are sought above this HU: cortex, not contrast-filled blood
/// (the aorta lies against the left side of the thoracic bodies and reaches 250-400 HU
/// in an arterial phase).
const LATERAL_CORTEX_HU: f64 = CANAL_WALL_HU;

/// Step 4c: centre the body laterally between its outermost lateral cortex, on lines
/// through the middle half of its height, at and just in front of its AP centre (away
/// from the rib heads, which articulate further back).
fn refine_lateral(volume: &HuVolume, v: &mut LocatedVertebra) {
    let lateral = v.superior_axis.cross(v.anterior_axis);
    let mut mids = Vec::new();
    let mut ds = -0.25 * v.height_mm;
    while ds <= 0.25 * v.height_mm {
        for da in [0.0, 2.0, 4.0] {
            let base = v.centre_mm + v.superior_axis * ds + v.anterior_axis * da;
            let bright = |l: f64| {
                volume
                    .sample(base + lateral * l)
                    .is_some_and(|hu| hu > LATERAL_CORTEX_HU)
            };
            let steps: Vec<f64> = (0..=160).map(|i| -40.0 + f64::from(i) * 0.5).collect();
            let left = steps.iter().copied().find(|l| bright(*l));
            let right = steps.iter().rev().copied().find(|l| bright(*l));
            if let (Some(a), Some(b)) = (left, right)
                && (12.0..=70.0).contains(&(b - a))
            {
                mids.push((a + b) / 2.0);
            }
        }
        ds += 1.0;
    }
    if mids.len() >= 3 {
        let shift = percentile(&mut mids, 0.5);
        // A large shift means the lines met something else than the body's walls.
        if shift.abs() <= 10.0 {
            v.centre_mm += lateral * shift;
        }
    }
}

/// Step 5a: a rib: bone 55-75 mm to either side of the column (beyond the lumbar
/// transverse processes, whose tips reach about 50 mm), level with the body's middle
/// (a rib leaves its vertebra at the transverse process and descends as it runs out, so
/// the rib of the vertebra above passes higher and a floating rib does not reach the
/// body below), between 45 mm behind and 30 mm in front of the posterior wall (the
/// first rib turns forward early).
fn has_ribs(volume: &HuVolume, line: &[CentrePoint], v: &LocatedVertebra) -> bool {
    let s0 = v.s_mm - 0.35 * v.height_mm;
    let s1 = v.s_mm + 0.25 * v.height_mm;
    let mut sides = [0usize; 2];
    let mut s = s0;
    while s <= s1 {
        let i = ((s / STEP_MM).round().max(0.0) as usize).min(line.len() - 1);
        let p = line[i];
        // Depth of the posterior wall relative to the centreline point.
        let centre = (v.centre_mm - p.position).dot(p.anterior);
        let wall = centre - v.depth_mm / 2.0;
        for (side, sign) in [(0, -1.0), (1, 1.0)] {
            let mut l = 55.0;
            while l <= 75.0 {
                let mut a = wall - 45.0;
                while a <= wall + 30.0 {
                    if volume
                        .sample(p.at(sign * l, a))
                        .is_some_and(|hu| hu > CORTEX_HU)
                    {
                        sides[side] += 1;
                    }
                    a += 1.0;
                }
                l += 1.0;
            }
        }
        s += 1.0;
    }
    // A rib crossing the sampled slab lights up tens of 1 mm samples.
    sides[0] >= RIB_MIN_SAMPLES || sides[1] >= RIB_MIN_SAMPLES
}

/// Bright samples on one side that make a rib (a 4 mm rib crossing the 20 mm slab lights
/// up well over a hundred; noise and vessels none).
const RIB_MIN_SAMPLES: usize = 20;

/// Fraction of the judged vertebrae whose ribs must agree with a labelling (a missed
/// first or floating rib, a rib-like transverse process are tolerated).
const LABEL_MIN_AGREEMENT: f64 = 0.85;

/// Step 5b: labels from the thoracolumbar transition. `vertebrae` are cranial first.
///
/// Counting allows for vertebrae the segmentation missed: a gap between two located
/// centres of more than 1.5 times the local spacing counts as the vertebrae it can hold.
fn label(vertebrae: &mut [LocatedVertebra]) -> Labelling {
    let n = vertebrae.len();
    if n < 2 {
        return Labelling::Unlabelled;
    }
    // Ordinal position of each vertebra, with room for missed ones.
    let gaps: Vec<f64> = vertebrae
        .windows(2)
        .map(|w| (w[0].s_mm - w[1].s_mm).abs())
        .collect();
    let mut ordinal = vec![0i64; n];
    for i in 1..n {
        let lo = (i - 1).saturating_sub(2);
        let hi = (i + 2).min(gaps.len());
        let mut local: Vec<f64> = gaps[lo..hi].to_vec();
        let typical = percentile(&mut local, 0.5).max(1.0);
        let steps = if gaps[i - 1] > 1.5 * typical {
            (gaps[i - 1] / typical).round().max(1.0) as i64
        } else {
            1
        };
        ordinal[i] = ordinal[i - 1] + steps;
    }
    // Hypothesis: vertebra `t` is T12. Then the twelve vertebrae from T1 down to `t`
    // bear ribs and the cervical ones above and the five lumbar ones below do not; below
    // L5 the sacrum's alae reach as far out as ribs, so sacral levels are not judged.
    let mut best: Option<(usize, f64)> = None;
    for t in 0..n - 1 {
        let judged: Vec<usize> = (0..n).filter(|i| ordinal[*i] <= ordinal[t] + 5).collect();
        let agree = judged
            .iter()
            .filter(|i| {
                let thoracic = ordinal[**i] <= ordinal[t] && ordinal[t] - ordinal[**i] <= 11;
                vertebrae[**i].has_ribs == thoracic
            })
            .count();
        let fraction = agree as f64 / judged.len() as f64;
        if best.is_none_or(|(_, f)| fraction > f) {
            best = Some((t, fraction));
        }
    }
    let Some((t, fraction)) = best else {
        return Labelling::Unlabelled;
    };
    // Needs a rib-bearing T12 and a rib-less L1 at least, and the rest mostly consistent.
    let consistent =
        vertebrae[t].has_ribs && !vertebrae[t + 1].has_ribs && fraction >= LABEL_MIN_AGREEMENT;
    if !consistent {
        return Labelling::Unlabelled;
    }
    for i in 0..n {
        let index = 11 + ordinal[i] - ordinal[t];
        vertebrae[i].label = usize::try_from(index)
            .ok()
            .and_then(VertebraLevel::from_index);
    }
    Labelling::ThoracolumbarTransition
}
