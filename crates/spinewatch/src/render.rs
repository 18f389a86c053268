//! Pictures for people: the sagittal reformat as a PNG, in a named display window, with
//! each located vertebra marked and labelled.

use std::io::BufWriter;
use std::path::Path;

use anyhow::Context;
use spinewatch_volume::reformat::SagittalReformat;
use spinewatch_volume::spine::Spine;

/// Bone window (centre, width), HU: -500 to 1300, so that cortex, trabecular bone and
/// endplates stay apart, where the vertebral body heights a fracture changes are read.
pub const BONE_WINDOW_HU: (f64, f64) = (400.0, 1800.0);
/// Soft-tissue window (centre, width), HU: -160 to 240, so that fat, muscle and fluid stay
/// apart (bone is white): a paraspinal haematoma or a soft-tissue mass beside a collapsed
/// body, which tells an osteoporotic fracture from a traumatic or malignant one.
pub const SOFT_TISSUE_WINDOW_HU: (f64, f64) = (40.0, 400.0);
/// Each reformat pixel is drawn as this many screen pixels.
const ZOOM: usize = 2;

/// Colour of a located vertebra's cross and label.
const MARK: [u8; 3] = [255, 200, 0];
/// Colour of a flagged vertebra: its cross, its label and a box around the body.
const FLAG: [u8; 3] = [255, 60, 60];

/// A display window: the HU range spread from black to white. Each key image is written
/// once per window the case page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Centre 400, width 1800 HU: bone ([`BONE_WINDOW_HU`]).
    Bone,
    /// Centre 40, width 400 HU: soft tissue ([`SOFT_TISSUE_WINDOW_HU`]).
    SoftTissue,
}

impl Window {
    /// Every window, the default (bone) first.
    pub const ALL: [Window; 2] = [Window::Bone, Window::SoftTissue];

    /// Centre and width, HU.
    pub const fn centre_width_hu(self) -> (f64, f64) {
        match self {
            Window::Bone => BONE_WINDOW_HU,
            Window::SoftTissue => SOFT_TISSUE_WINDOW_HU,
        }
    }

    /// The grey level of `hu`: 0 at or below the window, 255 at or above it, linear
    /// between.
    pub fn grey(self, hu: f64) -> u8 {
        let (c, w) = self.centre_width_hu();
        (((hu - (c - w / 2.0)) / w).clamp(0.0, 1.0) * 255.0) as u8
    }
}

/// An RGB picture, 8 bits a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// Width, pixels.
    pub width: usize,
    /// Height, pixels.
    pub height: usize,
    /// Pixels as `[row (top first), column (left first), channel (R, G, B)]`, row-major.
    pub rgb: Vec<u8>,
}

/// Writes `reformat` in `window` as an RGB PNG at `path`: [`sagittal_picture`].
pub fn sagittal_png(
    reformat: &SagittalReformat,
    spine: &Spine,
    flagged: &[bool],
    window: Window,
    path: &Path,
) -> anyhow::Result<()> {
    write_png(&sagittal_picture(reformat, spine, flagged, window), path)
}

/// Draws `reformat` in `window`, each reformat pixel as [`ZOOM`] x [`ZOOM`] pixels, with a
/// cross on each vertebral body centre and its label (or `?`) beside it. Vertebrae whose
/// entry in `flagged` (same order as `spine.vertebrae`; missing entries are not flagged)
/// is true are drawn in red, boxed, their label followed by `*`. The marks are the same
/// in every window.
pub fn sagittal_picture(
    reformat: &SagittalReformat,
    spine: &Spine,
    flagged: &[bool],
    window: Window,
) -> Picture {
    let (rows, cols) = reformat.hu.dim();
    let (w, h) = (cols * ZOOM, rows * ZOOM);
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let g = window.grey(f64::from(reformat.hu[[y / ZOOM, x / ZOOM]]));
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
    Picture {
        width: w,
        height: h,
        rgb,
    }
}

/// Writes `picture` as an 8-bit RGB PNG at `path`.
pub fn write_png(picture: &Picture, path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    let mut enc = png::Encoder::new(
        BufWriter::new(file),
        picture.width as u32,
        picture.height as u32,
    );
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .with_context(|| format!("could not write {}", path.display()))?;
    writer
        .write_image_data(&picture.rgb)
        .with_context(|| format!("could not write {}", path.display()))?;
    writer
        .finish()
        .with_context(|| format!("could not finish {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use ndarray::Array2;
    use spinewatch_core::{Vec3, VertebraLevel};
    use spinewatch_volume::reformat::ReformatManifest;
    use spinewatch_volume::spine::{Labelling, LocatedVertebra};

    use super::*;

    /// HU of the reformat's column bands, left to right: air, fat, muscle, bone.
    const BANDS_HU: [f32; 4] = [-1000.0, -100.0, 40.0, 700.0];
    /// Columns per band.
    const BAND_COLS: usize = 12;
    const ROWS: usize = 60;

    /// A reformat of vertical bands ([`BANDS_HU`]), 1 mm pixels, and a spine with one
    /// vertebra (L1, 20 mm high, 16 mm deep) half way down.
    fn phantom() -> (SagittalReformat, Spine) {
        let cols = BANDS_HU.len() * BAND_COLS;
        let hu = Array2::from_shape_fn((ROWS, cols), |(_, c)| BANDS_HU[c / BAND_COLS]);
        let manifest = ReformatManifest::default();
        let reformat = SagittalReformat {
            hu,
            s_mm: (0..ROWS).map(|i| (ROWS - 1 - i) as f64).collect(),
            offset_mm: (0..cols).map(|j| (cols / 2) as f64 - j as f64).collect(),
            manifest,
        };
        let spine = Spine {
            centreline: Vec::new(),
            body_offset_mm: Vec::new(),
            vertebrae: vec![LocatedVertebra {
                label: Some(VertebraLevel::Lumbar(1)),
                centre_mm: Vec3::new(0.0, 0.0, 0.0),
                superior_axis: Vec3::new(0.0, 0.0, 1.0),
                anterior_axis: Vec3::new(0.0, -1.0, 0.0),
                s_mm: (ROWS / 2) as f64,
                height_mm: 20.0,
                depth_mm: 16.0,
                has_ribs: false,
            }],
            labelling: Labelling::ThoracolumbarTransition,
            length_mm: (ROWS - 1) as f64,
        };
        (reformat, spine)
    }

    /// The pixel at (`x`, `y`).
    fn at(p: &Picture, x: usize, y: usize) -> [u8; 3] {
        let i = (y * p.width + x) * 3;
        [p.rgb[i], p.rgb[i + 1], p.rgb[i + 2]]
    }

    #[test]
    fn windows_map_their_hu_range_from_black_to_white() {
        for w in Window::ALL {
            let (c, width) = w.centre_width_hu();
            assert_eq!(w.grey(c - width / 2.0), 0, "{w:?}");
            assert_eq!(w.grey(c - width / 2.0 - 1000.0), 0, "{w:?}");
            assert_eq!(w.grey(c + width / 2.0), 255, "{w:?}");
            assert_eq!(w.grey(c + width / 2.0 + 1000.0), 255, "{w:?}");
            assert_eq!(w.grey(c), 127, "{w:?}");
        }
        assert_eq!(Window::Bone.centre_width_hu(), (400.0, 1800.0));
        assert_eq!(Window::SoftTissue.centre_width_hu(), (40.0, 400.0));
        assert_eq!(
            Window::ALL[0],
            Window::Bone,
            "bone is the default key image"
        );
    }

    #[test]
    fn soft_tissue_window_separates_what_the_bone_window_greys_together() {
        let (reformat, spine) = phantom();
        let bone = sagittal_picture(&reformat, &spine, &[true], Window::Bone);
        let soft = sagittal_picture(&reformat, &spine, &[true], Window::SoftTissue);
        assert_eq!((bone.width, bone.height), (soft.width, soft.height));
        assert_eq!(
            (bone.width, bone.height),
            (BANDS_HU.len() * BAND_COLS * ZOOM, ROWS * ZOOM)
        );
        // A row clear of the marks (the top one), at the middle of each band.
        let grey = |p: &Picture, band: usize| at(p, (band * BAND_COLS + BAND_COLS / 2) * ZOOM, 0);
        // (hu - low) / width x 255, truncated.
        let expected_bone = [0, 56, 76, 170];
        let expected_soft = [0, 38, 127, 255];
        for band in 0..BANDS_HU.len() {
            let (b, s) = (expected_bone[band], expected_soft[band]);
            assert_eq!(grey(&bone, band), [b, b, b], "bone, {} HU", BANDS_HU[band]);
            assert_eq!(grey(&soft, band), [s, s, s], "soft, {} HU", BANDS_HU[band]);
        }
        // Fat and muscle: 20 grey levels apart in the bone window, 89 in the soft one.
        assert!(
            grey(&soft, 2)[0] - grey(&soft, 1)[0] > 4 * (grey(&bone, 2)[0] - grey(&bone, 1)[0])
        );
    }

    #[test]
    fn flagged_vertebra_is_boxed_in_red_in_every_window() {
        let (reformat, spine) = phantom();
        let red = |p: &Picture| p.rgb.chunks(3).filter(|c| *c == FLAG).count();
        let pictures: Vec<Picture> = Window::ALL
            .iter()
            .map(|&w| sagittal_picture(&reformat, &spine, &[true], w))
            .collect();
        let boxed = red(&pictures[0]);
        // Two-pixel box sides around 16 x 20 mm (x2 zoom, +3 px margin): > 200 pixels.
        assert!(boxed > 200, "{boxed} red pixels");
        assert_eq!(red(&pictures[1]), boxed);
        let unflagged = sagittal_picture(&reformat, &spine, &[false], Window::SoftTissue);
        assert_eq!(red(&unflagged), 0);
    }

    #[test]
    fn png_written_decodes_to_the_picture() {
        let (reformat, spine) = phantom();
        let dir = tempfile::tempdir().unwrap();
        for w in Window::ALL {
            let path = dir.path().join(format!("{w:?}.png"));
            sagittal_png(&reformat, &spine, &[true], w, &path).unwrap();
            let decoder =
                png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
            let mut reader = decoder.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!(info.color_type, png::ColorType::Rgb);
            let picture = sagittal_picture(&reformat, &spine, &[true], w);
            assert_eq!(
                (info.width as usize, info.height as usize),
                (picture.width, picture.height)
            );
            assert_eq!(&buf[..info.buffer_size()], picture.rgb.as_slice(), "{w:?}");
        }
    }
}
