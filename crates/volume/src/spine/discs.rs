//! Step 4b of the spine search: the intervertebral discs along the straightened column,
//! and the vertebral bodies between them.
//!
//! A disc shows on the mid-sagittal band as a dark line bounded by two bright endplates,
//! across the body's whole depth. Each row of the band gets a *disc score*: the fraction
//! of the body's central columns where both neighbouring endplates stand above the row
//! and above the surrounding trabecular bone. Faint lines inside a body (the
//! basivertebral vein, the stair-steps of thick slices) have no endplates and score
//! low; so do the walls, the canal and contrast beside the column, which the central
//! columns leave out.
//!
//! The discs are then chosen together, not one by one: the column is periodic, so the
//! chain of discs that best explains the scores is found by dynamic programming with a
//! second-order prior on the pitch (disc to disc distance): neighbouring pitches agree
//! (vertebrae grow slowly down the column) and agree with the local period of the whole
//! band (its autocorrelation, dominated by the arches and spinous processes). A strong
//! line half a vertebra off the chain does not win over the weaker disc in the chain.
//!
//! Rows are centreline rows [`STEP_MM`] apart; the band is `[row][anterior]`.

// The dynamic programme and the column scans index several arrays by the same row or
// candidate; iterator chains would hide which index is which.
#![allow(clippy::needless_range_loop)]

use super::{AP_HALF_RANGE_MM, Block, STEP_MM, interpolate_rows};

/// Lateral half-width of the band averaged for the disc search, mm: the body's middle
/// third, clear of the uncovertebral and costovertebral joints at its sides.
const BAND_LATERAL_HALF_MM: f64 = 4.0;
/// Half the body's central AP range in which discs are scored, mm: clear of the canal
/// behind and of the anterior wall (and contrast in the aorta beside it) in front.
const DISC_AP_HALF_MM: f64 = 10.0;
/// Where the endplates lie from a disc's middle, mm: half the disc's thickness (thin
/// thoracic discs to 12 mm lumbar ones, blurred by slices up to 3 mm).
const ENDPLATE_MM: (f64, f64) = (1.5, 6.0);
/// An endplate stands at least this much above the disc between them, HU.
const ENDPLATE_OVER_DISC_HU: f32 = 40.0;
/// ...and this much above the median of the body around it (trabecular bone), HU.
const ENDPLATE_OVER_BONE_HU: f32 = 30.0;
/// Half-length of the stretch whose median is the surrounding bone, mm (half a body).
const BONE_MEDIAN_HALF_MM: f64 = 12.0;
/// A local maximum of the (smoothed) disc score this high is a candidate disc.
const CANDIDATE_MIN_SCORE: f64 = 0.15;
/// The discs at the ends of a chain must score this high.
const END_DISC_MIN_SCORE: f64 = 0.3;
/// With no second disc in view, a lone disc must score this high, unless the scan is too
/// short to show a second one: then any candidate, its body's endplates to be seen.
const LONE_DISC_MIN_SCORE: f64 = 0.5;
/// Disc-to-disc pitch, mm: from C7 (about 15 mm) to L4 (about 40 mm), less for a
/// crushed body, more for a disc missed under a fused or bridged level.
pub(super) const PITCH_MM: (f64, f64) = (12.0, 45.0);
/// Pitch assumed where neither neighbours nor the band's period tell it, mm: the lower
/// thoracic spine's.
const DEFAULT_PITCH_MM: f64 = 27.0;
/// Neighbouring pitches differ at most by this factor (a grade 3 crush between normal
/// bodies).
const PITCH_RATIO_MAX: f64 = 1.8;
/// Score a disc must exceed to be worth adding to a chain (its reward is score less this).
const DISC_REWARD_FLOOR: f64 = 0.1;
/// Cost of a chain step over a disc that did not show (in disc-score units: a missed
/// disc must be better explained than by a strong line half a vertebra off).
const MISSED_DISC_COST: f64 = 0.5;
/// Most pitches one chain step spans: two discs may fail to show together (both
/// endplates of a biconcave fracture, depressed into the body, bound no thin disc).
const MAX_STEP_PITCHES: usize = 3;
/// Weight of the squared log-ratio of neighbouring pitches.
const PITCH_RATIO_WEIGHT: f64 = 4.0;
/// Weight of the squared log-ratio of a pitch to the band's local period.
const PITCH_PRIOR_WEIGHT: f64 = 1.0;
/// Half-length of the window whose autocorrelation gives the local period, mm.
const PERIOD_WINDOW_HALF_MM: f64 = 30.0;
/// Autocorrelation needed to trust a period.
const PERIOD_MIN_CORRELATION: f64 = 0.3;
/// Fraction of the pitch taken by the body (the rest is disc).
const BODY_FRACTION_OF_PITCH: f64 = 0.8;
/// An end body (one disc in view, the scan edge on its other side) is kept when this
/// much of its expected height is in view.
const END_BODY_MIN_VISIBLE: f64 = 0.75;

/// A disc: its middle and its two endplates, as rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Disc {
    /// Row of the disc's middle.
    pub row: usize,
    /// Row of the caudal endplate (the top of the body below).
    pub lower_endplate: f64,
    /// Row of the cranial endplate (the bottom of the body above).
    pub upper_endplate: f64,
    /// Disc score, 0..1.
    pub score: f64,
}

/// A body found between discs (or a disc and the scan's edge), in rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct BodySpan {
    /// Row of its caudal endplate.
    pub lower: f64,
    /// Row of its cranial endplate.
    pub upper: f64,
    /// Bounded by the scan's edge on one side, its extent there taken from its
    /// expected height.
    pub at_end: bool,
}

impl BodySpan {
    pub fn centre_row(&self) -> f64 {
        (self.lower + self.upper) / 2.0
    }

    pub fn height_mm(&self) -> f64 {
        (self.upper - self.lower) * STEP_MM
    }
}

/// The mid-sagittal band, `[row][anterior]`, laterally averaged; NaN where unsampled.
pub(super) fn band(block: &Block) -> Vec<Vec<f32>> {
    let lat: Vec<usize> = (0..block.lateral.len())
        .filter(|l| block.lateral[*l].abs() <= BAND_LATERAL_HALF_MM + 1e-9)
        .collect();
    (0..block.rows)
        .map(|s| {
            (0..block.anterior.len())
                .map(|a| {
                    let (mut sum, mut n) = (0.0f32, 0u32);
                    for &l in &lat {
                        let v = block.get(s, l, a);
                        if !v.is_nan() {
                            sum += v;
                            n += 1;
                        }
                    }
                    if n == 0 { f32::NAN } else { sum / n as f32 }
                })
                .collect()
        })
        .collect()
}

fn rows(mm: f64) -> usize {
    (mm / STEP_MM).round() as usize
}

/// Column index of anterior offset `mm`.
fn column(mm: f64, columns: usize) -> usize {
    ((mm + AP_HALF_RANGE_MM) / STEP_MM)
        .round()
        .clamp(0.0, (columns - 1) as f64) as usize
}

/// Disc score per row (NaN where the band is not sampled), with the endplates' mean
/// offsets (rows below and above the row) where it is positive.
fn scores(band: &[Vec<f32>], body_centre_mm: &[f64]) -> Vec<(f64, f64, f64)> {
    let n = band.len();
    let columns = band.first().map_or(0, Vec::len);
    let (e0, e1) = (rows(ENDPLATE_MM.0), rows(ENDPLATE_MM.1));
    let w = rows(BONE_MEDIAN_HALF_MM);
    let mut out = vec![(f64::NAN, 0.0, 0.0); n];
    if columns == 0 {
        return out;
    }
    for s in w.max(e1)..n.saturating_sub(w.max(e1)) {
        let a0 = column(body_centre_mm[s] - DISC_AP_HALF_MM, columns);
        let a1 = column(body_centre_mm[s] + DISC_AP_HALF_MM, columns);
        let (mut hits, mut total) = (0u32, 0u32);
        let (mut below_sum, mut above_sum) = (0.0, 0.0);
        let mut column_values = Vec::with_capacity(2 * w + 1);
        for a in a0..=a1 {
            // The brightest row on each side within the endplate range.
            // (None where the range leaves the volume: its edge is not an endplate.)
            let peak = |range: &mut dyn Iterator<Item = usize>| {
                let values: Vec<(usize, f32)> = range.map(|r| (r, band[r][a])).collect();
                if values.iter().any(|(_, v)| v.is_nan()) {
                    return None;
                }
                values.into_iter().max_by(|x, y| x.1.total_cmp(&y.1))
            };
            let below = peak(&mut (s - e1..=s - e0));
            let above = peak(&mut (s + e0..=s + e1));
            let centre = (s - 1..=s + 1)
                .map(|r| band[r][a])
                .filter(|v| !v.is_nan())
                .fold(f32::INFINITY, f32::min);
            column_values.clear();
            column_values.extend((s - w..=s + w).map(|r| band[r][a]).filter(|v| !v.is_nan()));
            let (Some(below), Some(above)) = (below, above) else {
                continue;
            };
            if !centre.is_finite() || column_values.len() < w {
                continue;
            }
            let mid = column_values.len() / 2;
            let bone = *column_values.select_nth_unstable_by(mid, f32::total_cmp).1;
            total += 1;
            let weaker = below.1.min(above.1);
            if weaker - centre > ENDPLATE_OVER_DISC_HU && weaker - bone > ENDPLATE_OVER_BONE_HU {
                hits += 1;
                below_sum += (s - below.0) as f64;
                above_sum += (above.0 - s) as f64;
            }
        }
        // Where the scan's edge cuts the plane obliquely only a few columns are scored:
        // too few to tell a disc.
        if total as usize * 2 > a1 - a0 + 1 {
            let score = f64::from(hits) / f64::from(total);
            let (b, u) = if hits > 0 {
                (below_sum / f64::from(hits), above_sum / f64::from(hits))
            } else {
                (0.0, 0.0)
            };
            out[s] = (score, b, u);
        }
    }
    out
}

/// The band's local period (mm) per row, from the autocorrelation of a window around
/// it over the plausible pitches; `None` where no period stands out.
pub(super) fn local_period(band: &[Vec<f32>]) -> Vec<Option<f64>> {
    let n = band.len();
    let half = rows(PERIOD_WINDOW_HALF_MM);
    let (l0, l1) = (rows(PITCH_MM.0), rows(PITCH_MM.1));
    let every = rows(5.0).max(1);
    let mut anchors: Vec<(usize, f64)> = Vec::new();
    for c in (0..n).step_by(every) {
        let w0 = c.saturating_sub(half);
        let w1 = (c + half).min(n);
        let mut best: Option<(f64, usize)> = None;
        for lag in l0..=l1 {
            // Pair rows r and r + lag, r + lag inside the band, r in the window (shifted
            // back where the window's end leaves no room).
            let shift = (w1 + lag).saturating_sub(n);
            let (r0, r1) = (w0.saturating_sub(shift), w1 - shift.min(w1));
            if r1 <= r0 {
                continue;
            }
            let (mut sx, mut sy, mut sxx, mut syy, mut sxy, mut m) =
                (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64, 0u32);
            for r in r0..r1 {
                for (x, y) in band[r].iter().zip(&band[r + lag]) {
                    if x.is_nan() || y.is_nan() {
                        continue;
                    }
                    let (x, y) = (
                        f64::from(x.clamp(-200.0, 1000.0)),
                        f64::from(y.clamp(-200.0, 1000.0)),
                    );
                    sx += x;
                    sy += y;
                    sxx += x * x;
                    syy += y * y;
                    sxy += x * y;
                    m += 1;
                }
            }
            if (m as usize) < 20 * (r1 - r0) {
                continue;
            }
            let m = f64::from(m);
            let cov = sxy - sx * sy / m;
            let var = (sxx - sx * sx / m) * (syy - sy * sy / m);
            if var <= 0.0 {
                continue;
            }
            let r = cov / var.sqrt();
            if best.is_none_or(|(b, _)| r > b) {
                best = Some((r, lag));
            }
        }
        // A period is a peak of the correlation, not the end of the lags tried.
        if let Some((r, lag)) = best
            && r >= PERIOD_MIN_CORRELATION
            && lag > l0
            && lag < l1
        {
            anchors.push((c, lag as f64 * STEP_MM));
        }
    }
    (0..n).map(|r| interpolate_rows(&anchors, r)).collect()
}

/// The chain of discs that best explains the scores under the pitch prior. A step of
/// the chain may span up to [`MAX_STEP_PITCHES`] pitches (discs that did not show: a
/// bridged or fused level, a crushed endplate), at a cost per missed disc; the missed
/// discs are then placed evenly.
fn chain(candidates: &[Disc], period: &[Option<f64>], lone_min_score: f64) -> Vec<Disc> {
    let n = candidates.len();
    let pos = |i: usize| candidates[i].row as f64 * STEP_MM;
    let reward = |i: usize| candidates[i].score - DISC_REWARD_FLOOR;
    // Cost of the step i -> j spanning `m` pitches against the band's period.
    let prior = |i: usize, j: usize, m: usize| -> f64 {
        let mid = (candidates[i].row + candidates[j].row) / 2;
        period[mid].map_or(0.0, |p| {
            let r = ((pos(j) - pos(i)) / (m as f64 * p)).ln();
            PITCH_PRIOR_WEIGHT * r * r
        }) + (m - 1) as f64 * MISSED_DISC_COST
    };
    // The pitch of the step i -> j if it spans `m` pitches, when plausible.
    let pitch = |i: usize, j: usize, m: usize| {
        let p = (pos(j) - pos(i)) / m as f64;
        (PITCH_MM.0..=PITCH_MM.1).contains(&p).then_some(p)
    };
    // value[m - 1][i][j]: best chain whose last step is i -> j spanning m pitches;
    // from[..]: the step before it (disc h, its span).
    let mut value = vec![vec![vec![f64::NEG_INFINITY; n]; n]; MAX_STEP_PITCHES];
    let mut from = vec![vec![vec![None::<(usize, usize)>; n]; n]; MAX_STEP_PITCHES];
    for j in 0..n {
        for i in 0..j {
            for m in 1..=MAX_STEP_PITCHES {
                if pitch(i, j, m).is_some() {
                    value[m - 1][i][j] = reward(i) + reward(j) - prior(i, j, m);
                }
            }
        }
    }
    for j in 0..n {
        for i in 0..j {
            for m0 in 1..=MAX_STEP_PITCHES {
                let v = value[m0 - 1][i][j];
                if v == f64::NEG_INFINITY {
                    continue;
                }
                let Some(p0) = pitch(i, j, m0) else { continue };
                for k in j + 1..n {
                    if pos(k) - pos(j) > MAX_STEP_PITCHES as f64 * PITCH_MM.1 {
                        break;
                    }
                    for m in 1..=MAX_STEP_PITCHES {
                        let Some(p) = pitch(j, k, m) else { continue };
                        let ratio = (p / p0).ln();
                        if ratio.abs() > PITCH_RATIO_MAX.ln() {
                            continue;
                        }
                        let next =
                            v + reward(k) - PITCH_RATIO_WEIGHT * ratio * ratio - prior(j, k, m);
                        if next > value[m - 1][j][k] {
                            value[m - 1][j][k] = next;
                            from[m - 1][j][k] = Some((i, m0));
                        }
                    }
                }
            }
        }
    }
    let best = (0..MAX_STEP_PITCHES)
        .flat_map(|m| (0..n).flat_map(move |j| (0..j).map(move |i| (m + 1, i, j))))
        .filter(|(m, i, j)| value[m - 1][*i][*j] > f64::NEG_INFINITY)
        .max_by(|a, b| value[a.0 - 1][a.1][a.2].total_cmp(&value[b.0 - 1][b.1][b.2]));
    let Some((mut m, mut i, mut j)) = best else {
        // No pair in reach: a lone disc, if it is clear.
        return candidates
            .iter()
            .filter(|c| c.score >= lone_min_score)
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .copied()
            .into_iter()
            .collect();
    };
    // Steps, last first: (lower disc, upper disc, pitches spanned).
    let mut steps = vec![(i, j, m)];
    while let Some((h, mh)) = from[m - 1][i][j] {
        steps.push((h, i, mh));
        (i, j, m) = (h, i, mh);
    }
    steps.reverse();
    let mut out = vec![candidates[steps[0].0]];
    for (lo, hi, m) in steps {
        // Discs that did not show, evenly between the two that did.
        let (a, b) = (candidates[lo], candidates[hi]);
        let half = ((a.upper_endplate - a.row as f64) + (b.row as f64 - b.lower_endplate)) / 2.0;
        for k in 1..m {
            let row = a.row + (b.row - a.row) * k / m;
            out.push(Disc {
                row,
                lower_endplate: row as f64 - half,
                upper_endplate: row as f64 + half,
                score: 0.0,
            });
        }
        out.push(candidates[hi]);
    }
    out
}

/// The discs along the column, caudal first; `period` from [`local_period`]. `short`:
/// the scan covers too little of the column to show two discs.
pub(super) fn find(
    band: &[Vec<f32>],
    body_centre_mm: &[f64],
    period: &[Option<f64>],
    short: bool,
) -> Vec<Disc> {
    let sc = scores(band, body_centre_mm);
    let raw: Vec<f64> = sc
        .iter()
        .map(|s| if s.0.is_nan() { 0.0 } else { s.0 })
        .collect();
    // Smoothed over 1 mm ([1 2 1] over three rows) before picking maxima.
    let smooth: Vec<f64> = (0..raw.len())
        .map(|i| {
            let a = raw[i.saturating_sub(1)];
            let c = raw[(i + 1).min(raw.len() - 1)];
            (a + 2.0 * raw[i] + c) / 4.0
        })
        .collect();
    let candidates: Vec<Disc> = (1..smooth.len().saturating_sub(1))
        .filter(|&i| {
            smooth[i] >= smooth[i - 1]
                && smooth[i] > smooth[i + 1]
                && smooth[i] > CANDIDATE_MIN_SCORE
        })
        .map(|i| Disc {
            row: i,
            lower_endplate: i as f64 - sc[i].1,
            upper_endplate: i as f64 + sc[i].2,
            score: smooth[i],
        })
        .collect();
    let lone_min_score = if short {
        CANDIDATE_MIN_SCORE
    } else {
        LONE_DISC_MIN_SCORE
    };
    let mut discs = chain(&candidates, period, lone_min_score);
    // A chain's end disc has no neighbour beyond it to vouch for it: it must be clear.
    while discs.len() > 1 && discs.last().is_some_and(|d| d.score < END_DISC_MIN_SCORE) {
        discs.pop();
    }
    while discs.len() > 1 && discs[0].score < END_DISC_MIN_SCORE {
        discs.remove(0);
    }
    discs
}

/// Rows of the band where the body's central columns are sampled (inside the volume).
fn sampled(band: &[Vec<f32>], body_centre_mm: &[f64], s: usize) -> bool {
    let columns = band[s].len();
    let a = column(body_centre_mm[s], columns);
    !band[s][a].is_nan()
}

/// The bodies between consecutive discs, and at each end the body between the last
/// disc and the scan's edge when enough of it is in view (its centre then placed from
/// the expected height, not the visible part). Caudal first.
pub(super) fn bodies(
    discs: &[Disc],
    band: &[Vec<f32>],
    body_centre_mm: &[f64],
    period: &[Option<f64>],
) -> Vec<BodySpan> {
    let mut out: Vec<BodySpan> = discs
        .windows(2)
        .map(|w| BodySpan {
            lower: w[0].upper_endplate,
            upper: w[1].lower_endplate,
            at_end: false,
        })
        .collect();
    let (Some(first), Some(last)) = (discs.first(), discs.last()) else {
        return out;
    };
    let n = band.len();
    // Expected height of an end body: its neighbour's, else from the local period.
    let expected = |neighbour: Option<&BodySpan>, row: usize| -> f64 {
        neighbour.map_or_else(
            || period[row].unwrap_or(DEFAULT_PITCH_MM) * BODY_FRACTION_OF_PITCH / STEP_MM,
            |b| b.upper - b.lower,
        )
    };
    let cranial_h = expected(out.last(), last.row);
    let caudal_h = expected(out.first(), first.row);
    // Visible extent beyond each end disc.
    let top = (last.row..n)
        .take_while(|s| sampled(band, body_centre_mm, *s))
        .last()
        .unwrap_or(last.row) as f64;
    let bottom = (0..=first.row)
        .rev()
        .take_while(|s| sampled(band, body_centre_mm, *s))
        .last()
        .unwrap_or(first.row) as f64;
    if top - last.upper_endplate >= END_BODY_MIN_VISIBLE * cranial_h {
        out.push(BodySpan {
            lower: last.upper_endplate,
            upper: last.upper_endplate + cranial_h,
            at_end: true,
        });
    }
    if first.lower_endplate - bottom >= END_BODY_MIN_VISIBLE * caudal_h {
        out.insert(
            0,
            BodySpan {
                lower: first.lower_endplate - caudal_h,
                upper: first.lower_endplate,
                at_end: true,
            },
        );
    }
    out
}

/// Endplate runs shorter than this are not a body's, mm.
const ENDPLATE_RUN_MM: (f64, f64) = (15.0, 60.0);
/// Gaps bridged along an endplate line, mm (noise, a vascular channel).
const ENDPLATE_GAP_MM: f64 = 2.0;
/// The two endplates' runs of one body place its AP centre within this of each other,
/// mm (a wedge's endplates differ in depth by a millimetre or two, not more).
const ENDPLATE_MAX_DISAGREEMENT_MM: f64 = 3.0;
/// An endplate run is sought within this distance of the expected body centre, mm.
const ENDPLATE_SEARCH_MM: f64 = 12.0;

/// The body's AP centre and depth (mm, anterior offsets) from its endplates: on the rows
/// of its two endplates, the run of bright columns nearest `expected_mm`. The endplates
/// span the body's whole depth, so their runs place it even where its walls are faint.
pub(super) fn endplate_extent(
    band: &[Vec<f32>],
    span: &BodySpan,
    expected_mm: f64,
    bright_hu: f32,
) -> Option<(f64, f64)> {
    let mut found = Vec::new();
    for edge in [span.lower, span.upper] {
        let mut best: Option<(f64, f64)> = None;
        for r in [edge.floor(), edge.ceil()] {
            let r = r as isize;
            if r < 0 || r as usize >= band.len() {
                continue;
            }
            let row = &band[r as usize];
            let gap = rows(ENDPLATE_GAP_MM);
            let mut runs: Vec<(usize, usize)> = Vec::new();
            for (a, v) in row.iter().enumerate() {
                if *v > bright_hu {
                    match runs.last_mut() {
                        Some(run) if a - run.1 <= gap + 1 => run.1 = a,
                        _ => runs.push((a, a)),
                    }
                }
            }
            let offset = |a: usize| a as f64 * STEP_MM - AP_HALF_RANGE_MM;
            for (a, b) in runs {
                let len = (b - a) as f64 * STEP_MM;
                let mid = (offset(a) + offset(b)) / 2.0;
                if (ENDPLATE_RUN_MM.0..=ENDPLATE_RUN_MM.1).contains(&len)
                    && (mid - expected_mm).abs() <= ENDPLATE_SEARCH_MM
                    && best.is_none_or(|(m, _)| (mid - expected_mm).abs() < (m - expected_mm).abs())
                {
                    best = Some((mid, len));
                }
            }
        }
        found.extend(best);
    }
    match found.as_slice() {
        [] => None,
        [one] => Some(*one),
        // Two endplates that disagree: one run has merged with something beside the
        // body (a rib head, an osteophyte) or been cut short; the one nearer the
        // walls' centre is the body's.
        [a, b, ..] if (a.0 - b.0).abs() > ENDPLATE_MAX_DISAGREEMENT_MM => {
            Some(if (a.0 - expected_mm).abs() <= (b.0 - expected_mm).abs() {
                *a
            } else {
                *b
            })
        }
        [a, b, ..] => Some(((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0)),
    }
}

/// Half-width of the AP profile compared between an end body and its neighbour, mm:
/// the body's depth (about 30 mm) and a margin for the canal and the front soft tissue.
const PROFILE_HALF_MM: f64 = 25.0;
/// Share of a body's height at each end left out of its profile (the endplates and the
/// disc's partial volume).
const PROFILE_END_SHARE: f64 = 0.2;
/// Least share of the profile's columns sampled in both bodies for a comparison.
const PROFILE_MIN_SAMPLED: f64 = 0.7;

/// The body's mean AP profile (HU per band column, `expected_mm ± PROFILE_HALF_MM`) over
/// the middle of its height; NaN where unsampled.
fn profile(band: &[Vec<f32>], span: &BodySpan, expected_mm: f64) -> Vec<f64> {
    let h = span.upper - span.lower;
    let r0 = (span.lower + PROFILE_END_SHARE * h).ceil().max(0.0) as usize;
    let r1 = ((span.upper - PROFILE_END_SHARE * h).floor().max(0.0) as usize).min(band.len() - 1);
    let columns = band.first().map_or(0, Vec::len);
    let c0 = column(expected_mm - PROFILE_HALF_MM, columns);
    let c1 = column(expected_mm + PROFILE_HALF_MM, columns);
    (c0..=c1)
        .map(|a| {
            let (mut sum, mut n) = (0.0, 0usize);
            for row in band.iter().take(r1 + 1).skip(r0) {
                if !row[a].is_nan() {
                    sum += f64::from(row[a]);
                    n += 1;
                }
            }
            // Half the rows sampled, or the column is unsampled.
            if r1 >= r0 && 2 * n > r1 - r0 {
                sum / n as f64
            } else {
                f64::NAN
            }
        })
        .collect()
}

/// How closely an end body's AP profile follows its neighbour's (Pearson correlation
/// over the columns sampled in both), or `None` when too little of it is in view. A body
/// whose walls, canal and front soft tissue line up with the next body's continues the
/// column; where the column bends away (a cervical lordosis, the sacrum) the profiles
/// shift and part.
pub(super) fn profile_match(
    band: &[Vec<f32>],
    end: &BodySpan,
    neighbour: &BodySpan,
    expected_mm: f64,
) -> Option<f64> {
    let p = profile(band, end, expected_mm);
    let q = profile(band, neighbour, expected_mm);
    let both: Vec<(f64, f64)> = p
        .iter()
        .zip(&q)
        .filter(|(a, b)| !a.is_nan() && !b.is_nan())
        .map(|(a, b)| (*a, *b))
        .collect();
    if (both.len() as f64) < PROFILE_MIN_SAMPLED * p.len() as f64 || both.len() < 3 {
        return None;
    }
    let n = both.len() as f64;
    let (ma, mb) = (
        both.iter().map(|x| x.0).sum::<f64>() / n,
        both.iter().map(|x| x.1).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (a, b) in &both {
        sab += (a - ma) * (b - mb);
        saa += (a - ma) * (a - ma);
        sbb += (b - mb) * (b - mb);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}
