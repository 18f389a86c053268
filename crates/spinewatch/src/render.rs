//! Pictures for people: the sagittal reformat as a PNG with each located vertebra
//! marked and labelled.

use std::io::BufWriter;
use std::path::Path;

use anyhow::Context;
use spinewatch_volume::reformat::SagittalReformat;
use spinewatch_volume::spine::Spine;

/// Bone window used for the picture (centre, width), HU.
const BONE_WINDOW_HU: (f64, f64) = (400.0, 1800.0);
/// Each reformat pixel is drawn as this many screen pixels.
const ZOOM: usize = 2;

/// Colour of a located vertebra's cross and label.
const MARK: [u8; 3] = [255, 200, 0];
/// Colour of a flagged vertebra: its cross, its label and a box around the body.
const FLAG: [u8; 3] = [255, 60, 60];

/// Writes `reformat` as an RGB PNG at `path`, with a cross on each vertebral body centre
/// and its label (or `?`) beside it. Vertebrae whose entry in `flagged` (same order as
/// `spine.vertebrae`; missing entries are not flagged) is true are drawn in red, boxed,
/// their label followed by `*`.
pub fn sagittal_png(
    reformat: &SagittalReformat,
    spine: &Spine,
    flagged: &[bool],
    path: &Path,
) -> anyhow::Result<()> {
    let (rows, cols) = reformat.hu.dim();
    let (w, h) = (cols * ZOOM, rows * ZOOM);
    let (c, wd) = BONE_WINDOW_HU;
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let v = f64::from(reformat.hu[[y / ZOOM, x / ZOOM]]);
            let g = (((v - (c - wd / 2.0)) / wd).clamp(0.0, 1.0) * 255.0) as u8;
            rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[g, g, g]);
        }
    }
    let mut put = |x: i64, y: i64, colour: [u8; 3]| {
        if (0..w as i64).contains(&x) && (0..h as i64).contains(&y) {
            let i = (y as usize * w + x as usize) * 3;
            rgb[i..i + 3].copy_from_slice(&colour);
        }
    };
    for (i, v) in spine.vertebrae.iter().enumerate() {
        let is_flagged = flagged.get(i).copied().unwrap_or(false);
        let colour = if is_flagged { FLAG } else { MARK };
        let cy = (reformat.row_of(v.s_mm) * ZOOM) as i64;
        let cx = (reformat.col_of(0.0) * ZOOM) as i64;
        for d in -6..=6 {
            put(cx + d, cy, colour);
            put(cx, cy + d, colour);
        }
        if is_flagged {
            let px = |mm: f64| (mm / reformat.manifest.spacing_mm * ZOOM as f64).round() as i64;
            let (hw, hh) = (px(v.depth_mm / 2.0) + 3, px(v.height_mm / 2.0) + 3);
            for d in -hw..=hw {
                for t in 0..2 {
                    put(cx + d, cy - hh - t, colour);
                    put(cx + d, cy + hh + t, colour);
                }
            }
            for d in -hh..=hh {
                for t in 0..2 {
                    put(cx - hw - t, cy + d, colour);
                    put(cx + hw + t, cy + d, colour);
                }
            }
        }
        let mut text = v.label.map_or_else(|| "?".to_owned(), |l| l.to_string());
        if is_flagged {
            text.push('*');
        }
        let tx = cx + (v.depth_mm / reformat.manifest.spacing_mm) as i64 * ZOOM as i64 / 2 + 12;
        for (k, ch) in text.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(ch as usize)
                .copied()
                .unwrap_or([0; 8]);
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..8 {
                    if bits >> gx & 1 == 1 {
                        for (sx, sy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            put(
                                tx + (k as i64 * 8 + gx) * 2 + sx,
                                cy - 8 + gy as i64 * 2 + sy,
                                colour,
                            );
                        }
                    }
                }
            }
        }
    }
    let file = std::fs::File::create(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .with_context(|| format!("could not write {}", path.display()))?;
    writer
        .write_image_data(&rgb)
        .with_context(|| format!("could not write {}", path.display()))?;
    writer
        .finish()
        .with_context(|| format!("could not finish {}", path.display()))?;
    Ok(())
}
