//! Pixel decoding to Hounsfield units.
//!
//! [`decode_stored`] gives a file's stored values, whatever the transfer syntax:
//! native (implicit/explicit VR little endian, explicit big endian, deflate), RLE,
//! JPEG lossless and 8-bit DCT (jpeg-decoder), JPEG-LS (CharLS) and JPEG 2000 (openjp2)
//! through dicom-pixeldata; 12-bit JPEG Extended and the retired progressive JPEG
//! syntaxes through our own decoder ([`JpegError`] names its failures).
//! [`HuVolume::decode`] rescales them to HU slice by slice.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::{PixelDecoder, PixelRepresentation, PlanarConfiguration};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use ndarray::{Array3, Axis};
use rayon::prelude::*;
use spinewatch_core::{Affine, Vec3};

use crate::series::SortedSeries;
use crate::{Error, Result};

mod jpeg_dct;
pub use jpeg_dct::JpegError;

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
fn padding_range(obj: &DefaultDicomObject, signed: bool) -> Option<(i32, i32)> {
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

/// The stored pixel values of one frame, as the file holds them before the Modality
/// LUT (rescale), decoded from whatever transfer syntax the file uses.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFrame {
    /// Transfer Syntax UID of the file.
    pub transfer_syntax_uid: String,
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// Samples per pixel (1 for CT).
    pub samples_per_pixel: u16,
    /// NumberOfFrames of the file (this is one of them).
    pub frames: u32,
    /// BitsAllocated.
    pub bits_allocated: u16,
    /// BitsStored: `values` are masked to this many bits and sign-extended.
    pub bits_stored: u16,
    /// Whether PixelRepresentation is signed (two's complement).
    pub signed: bool,
    /// Photometric interpretation of `values` (colour JPEG is RGB once decoded).
    pub photometric_interpretation: String,
    /// Samples as `[row, column, sample]`, row-major, interleaved whatever the
    /// PlanarConfiguration.
    pub values: Vec<i32>,
    /// RescaleSlope of this frame (1 when absent).
    pub rescale_slope: f64,
    /// RescaleIntercept of this frame (0 when absent).
    pub rescale_intercept: f64,
    /// Stored values that are padding: PixelPaddingValue ..= PixelPaddingRangeLimit.
    pub padding: Option<(i32, i32)>,
}

/// Stored values of the first frame of `path`: [`decode_stored_frame`] with frame 0.
pub fn decode_stored(path: &Path) -> Result<StoredFrame> {
    decode_stored_frame(path, 0)
}

/// Stored values of frame `frame` (from 0) of `path`.
///
/// The file is opened with [`crate::open::open`] (lenient about a malformed file meta
/// group). Pixels are decoded by dicom-pixeldata, except greyscale JPEG DCT
/// codestreams that jpeg-decoder refuses (12-bit JPEG Extended, the retired progressive
/// syntaxes), which our own decoder handles, and native YBR_FULL_422, whose chroma is
/// expanded here. A transfer syntax this build cannot decode gives
/// [`Error::UnsupportedTransferSyntax`]; a codec failure [`Error::Decode`] or
/// [`Error::DecodeJpeg`]; a sample layout other than 8, 16 or 32 bits allocated
/// [`Error::UnsupportedPixels`].
///
/// Accuracy (tests/transfer_syntaxes.rs, against pydicom with pylibjpeg and pyjpegls):
/// lossless syntaxes and JPEG-LS near-lossless are bit-exact; JPEG DCT is within 2
/// grey levels of libjpeg per sample (the IDCT is not specified bit for bit, ISO/IEC
/// 10918-2 allows 1 per decoder); JPEG 2000 irreversible within 1 (floating-point
/// rounding; bit-exact to OpenJPEG today).
pub fn decode_stored_frame(path: &Path, frame: u32) -> Result<StoredFrame> {
    let obj = crate::open::open(path, None)?;
    let transfer_syntax_uid = obj.meta().transfer_syntax().to_owned();
    let frames = obj
        .get(tags::NUMBER_OF_FRAMES)
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let (layout, bytes) =
        if let Some((mut layout, image)) = decode_jpeg_dct(path, &obj, frame, frames)? {
            let bytes: Vec<u8> = if layout.bits_allocated == 8 && image.header.precision == 8 {
                image.samples.iter().map(|&v| v as u8).collect()
            } else {
                // Samples are at most 12 bits here: handed over as 16-bit words.
                layout.bits_allocated = 16;
                image.samples.iter().flat_map(|v| v.to_le_bytes()).collect()
            };
            (layout, bytes)
        } else if let Some(native) = native_ybr_full_422(path, &obj, frame)? {
            native
        } else {
            check_transfer_syntax(path, &transfer_syntax_uid)?;
            let decoded = obj
                .decode_pixel_data_frame(frame)
                .map_err(|source| Error::Decode {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?;
            let layout = Layout {
                rows: decoded.rows(),
                cols: decoded.columns(),
                samples: decoded.samples_per_pixel(),
                bits_allocated: decoded.bits_allocated(),
                bits_stored: decoded.bits_stored(),
                signed: decoded.pixel_representation() == PixelRepresentation::Signed,
                planar: decoded.samples_per_pixel() > 1
                    && decoded.planar_configuration() == PlanarConfiguration::PixelFirst,
                photometric_interpretation: decoded.photometric_interpretation().to_string(),
            };
            let bytes = decoded
                .frame_data(0)
                .map_err(|source| Error::Decode {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?
                .to_vec();
            (layout, bytes)
        };
    let values = layout.values(path, &bytes)?;
    let (rescale_slope, rescale_intercept) = rescale(&obj, frame);
    Ok(StoredFrame {
        transfer_syntax_uid,
        rows: layout.rows,
        cols: layout.cols,
        samples_per_pixel: layout.samples,
        frames,
        bits_allocated: layout.bits_allocated,
        bits_stored: layout.bits_stored,
        signed: layout.signed,
        photometric_interpretation: layout.photometric_interpretation,
        values,
        rescale_slope,
        rescale_intercept,
        padding: padding_range(&obj, layout.signed),
    })
}

/// [`Error::UnsupportedTransferSyntax`] unless dicom-pixeldata can decode `uid`.
fn check_transfer_syntax(path: &Path, uid: &str) -> Result<()> {
    let unsupported = |name: String| Error::UnsupportedTransferSyntax {
        path: path.to_owned(),
        uid: uid.to_owned(),
        name,
    };
    match TransferSyntaxRegistry.get(uid) {
        None => Err(unsupported("not known to dicom-rs".to_owned())),
        Some(ts) if !ts.can_decode_all() => Err(unsupported(format!(
            "{}, no decoder in this build",
            ts.name()
        ))),
        Some(_) => Ok(()),
    }
}

/// The Image Pixel module attributes that say how to read sample bytes.
#[derive(Debug, Clone)]
struct Layout {
    rows: u32,
    cols: u32,
    samples: u16,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    /// PlanarConfiguration 1: all of sample 0, then all of sample 1, ...
    planar: bool,
    photometric_interpretation: String,
}

impl Layout {
    /// The layout as the data set declares it.
    fn of(path: &Path, obj: &DefaultDicomObject) -> Result<Self> {
        let int = |tag, attribute: &'static str| -> Result<u32> {
            obj.get(tag)
                .and_then(|e| e.to_int::<u32>().ok())
                .ok_or_else(|| Error::MissingAttribute {
                    path: path.to_owned(),
                    attribute,
                })
        };
        let samples = int(tags::SAMPLES_PER_PIXEL, "SamplesPerPixel").unwrap_or(1) as u16;
        let bits_allocated = int(tags::BITS_ALLOCATED, "BitsAllocated")? as u16;
        Ok(Self {
            rows: int(tags::ROWS, "Rows")?,
            cols: int(tags::COLUMNS, "Columns")?,
            samples,
            bits_allocated,
            bits_stored: int(tags::BITS_STORED, "BitsStored").map_or(bits_allocated, |b| b as u16),
            signed: int(tags::PIXEL_REPRESENTATION, "PixelRepresentation").is_ok_and(|p| p == 1),
            planar: samples > 1 && int(tags::PLANAR_CONFIGURATION, "").is_ok_and(|p| p == 1),
            photometric_interpretation: obj
                .get(tags::PHOTOMETRIC_INTERPRETATION)
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim_matches([' ', '\0']).to_owned())
                .unwrap_or_default(),
        })
    }

    /// Sample values of one frame's little-endian `bytes`, interleaved.
    fn values(&self, path: &Path, bytes: &[u8]) -> Result<Vec<i32>> {
        let unsupported = |what: String| Error::UnsupportedPixels {
            path: path.to_owned(),
            what,
        };
        let (bits_allocated, bits_stored) = (self.bits_allocated, self.bits_stored);
        let bytes_per_sample = match bits_allocated {
            8 => 1,
            16 => 2,
            32 => 4,
            b => return Err(unsupported(format!("{b} bits allocated"))),
        };
        if bits_stored == 0 || bits_stored > bits_allocated {
            return Err(unsupported(format!(
                "{bits_stored} bits stored in {bits_allocated} allocated"
            )));
        }
        let n = self.rows as usize * self.cols as usize * usize::from(self.samples);
        if bytes.len() < n * bytes_per_sample {
            return Err(unsupported(format!(
                "{} bytes of pixel data for {}x{}x{} samples of {bits_allocated} bits",
                bytes.len(),
                self.rows,
                self.cols,
                self.samples
            )));
        }
        let mask = if bits_stored >= 32 {
            u32::MAX
        } else {
            (1u32 << bits_stored) - 1
        };
        let signed = self.signed;
        // Bits above BitsStored may hold anything (PS3.5 8.1.1): mask, then sign-extend.
        let sample = |i: usize| -> i32 {
            let raw = match bytes_per_sample {
                1 => u32::from(bytes[i]),
                2 => u32::from(u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]])),
                _ => u32::from_le_bytes([
                    bytes[4 * i],
                    bytes[4 * i + 1],
                    bytes[4 * i + 2],
                    bytes[4 * i + 3],
                ]),
            };
            let v = raw & mask;
            if signed && bits_stored < 32 && (v >> (bits_stored - 1)) & 1 == 1 {
                (v | !mask) as i32
            } else {
                v as i32
            }
        };
        Ok(if self.planar {
            let plane = self.rows as usize * self.cols as usize;
            let spp = usize::from(self.samples);
            (0..n)
                .map(|i| sample((i % spp) * plane + i / spp))
                .collect()
        } else {
            (0..n).map(sample).collect()
        })
    }
}

/// JPEG Extended (Process 2 & 4).
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// Decodes frame `frame` with [`jpeg_dct`] when it is a JPEG DCT codestream that
/// jpeg-decoder refuses: 12-bit JPEG Extended, or a retired progressive syntax;
/// `None` for everything else.
fn decode_jpeg_dct(
    path: &Path,
    obj: &DefaultDicomObject,
    frame: u32,
    frames: u32,
) -> Result<Option<(Layout, jpeg_dct::Image)>> {
    let ts = obj.meta().transfer_syntax();
    let retired = crate::open::RETIRED_JPEG_DCT.contains(&ts);
    if ts != JPEG_EXTENDED && !retired {
        return Ok(None);
    }
    let jpeg_error = |source| Error::DecodeJpeg {
        path: path.to_owned(),
        frame,
        source,
    };
    let data = encapsulated_frame(path, obj, frame, frames)?;
    let header = jpeg_dct::frame_header(&data).map_err(jpeg_error)?;
    if !retired && header.precision == 8 {
        return Ok(None);
    }
    let layout = Layout::of(path, obj)?;
    let (h, w) = (u32::from(header.height), u32::from(header.width));
    // Checked before decoding: the codestream's size decides what is allocated.
    if (h, w, layout.samples) != (layout.rows, layout.cols, 1) {
        return Err(Error::UnsupportedPixels {
            path: path.to_owned(),
            what: format!(
                "a {w}x{h} JPEG codestream where the data set says {}x{}x{}",
                layout.cols, layout.rows, layout.samples
            ),
        });
    }
    let image = jpeg_dct::decode(&data).map_err(jpeg_error)?;
    if image.header != header {
        return Err(jpeg_error(JpegError::Invalid(
            "frame header changed within the codestream".to_owned(),
        )));
    }
    Ok(Some((layout, image)))
}

/// The codestream of frame `frame` of encapsulated Pixel Data (PS3.5 A.4): one
/// fragment per frame, or the Basic Offset Table, or else (a table may be empty) a new
/// frame at each fragment that starts with a JPEG SOI marker.
fn encapsulated_frame(
    path: &Path,
    obj: &DefaultDicomObject,
    frame: u32,
    frames: u32,
) -> Result<Vec<u8>> {
    let unsupported = |what: String| Error::UnsupportedPixels {
        path: path.to_owned(),
        what,
    };
    let pixel_data = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| Error::MissingAttribute {
            path: path.to_owned(),
            attribute: "PixelData",
        })?;
    let (Some(fragments), Some(table)) = (
        pixel_data.value().fragments(),
        pixel_data.value().offset_table(),
    ) else {
        return Err(unsupported(
            "native Pixel Data under a JPEG transfer syntax".to_owned(),
        ));
    };
    let frame_ix = frame as usize;
    let groups: Vec<&[Vec<u8>]> = if frames == 1 {
        vec![fragments]
    } else if fragments.len() == frames as usize {
        fragments.chunks(1).collect()
    } else if table.len() == frames as usize {
        // Offsets count from the first fragment's item header; each item has 8 bytes
        // of header (PS3.5 A.4, Table A.4-1).
        let mut starts = Vec::with_capacity(fragments.len());
        let mut offset = 0u64;
        for f in fragments {
            starts.push(offset);
            offset += 8 + f.len() as u64;
        }
        let mut groups = Vec::new();
        for (i, &lo) in table.iter().enumerate() {
            let hi = table.get(i + 1).map_or(u64::MAX, |&h| u64::from(h));
            let first = starts.iter().position(|&s| s >= u64::from(lo));
            let last = starts.iter().rposition(|&s| s < hi);
            match (first, last) {
                (Some(a), Some(b)) if a <= b => groups.push(&fragments[a..=b]),
                _ => return Err(unsupported(format!("Basic Offset Table entry {i}"))),
            }
        }
        groups
    } else {
        let mut groups = Vec::new();
        let mut start = 0;
        for (i, f) in fragments.iter().enumerate() {
            if i > start && f.starts_with(&[0xFF, 0xD8]) {
                groups.push(&fragments[start..i]);
                start = i;
            }
        }
        groups.push(&fragments[start..]);
        groups
    };
    let group = groups.get(frame_ix).ok_or_else(|| {
        unsupported(format!(
            "frame {frame} of {} found in the Pixel Data",
            groups.len()
        ))
    })?;
    Ok(group.concat())
}

/// Native (uncompressed) YBR_FULL_422 pixel data, with its horizontally subsampled
/// chroma expanded to one Cb and Cr per pixel (PS3.3 C.7.6.3.1.2: `Y1 Y2 Cb Cr` per
/// pair of pixels), as pydicom does; `None` for anything else. dicom-pixeldata would
/// read it as three full samples per pixel and run out of data.
fn native_ybr_full_422(
    path: &Path,
    obj: &DefaultDicomObject,
    frame: u32,
) -> Result<Option<(Layout, Vec<u8>)>> {
    let layout = match Layout::of(path, obj) {
        Ok(l) if l.photometric_interpretation == "YBR_FULL_422" && l.samples == 3 => l,
        _ => return Ok(None),
    };
    let Some(pixel_data) = obj.get(tags::PIXEL_DATA) else {
        return Ok(None);
    };
    let Some(raw) = pixel_data.value().primitive() else {
        return Ok(None);
    };
    let raw = raw.to_bytes();
    let unsupported = |what: String| Error::UnsupportedPixels {
        path: path.to_owned(),
        what,
    };
    if layout.bits_allocated != 8 || layout.cols % 2 != 0 {
        return Err(unsupported(format!(
            "native YBR_FULL_422 with {} bits allocated and {} columns",
            layout.bits_allocated, layout.cols
        )));
    }
    let frame_len = layout.rows as usize * layout.cols as usize * 2;
    let start = frame as usize * frame_len;
    let data = raw
        .get(start..start + frame_len)
        .ok_or_else(|| unsupported(format!("frame {frame} is past the end of the Pixel Data")))?;
    let expanded = data
        .chunks_exact(4)
        .flat_map(|c| [c[0], c[2], c[3], c[1], c[2], c[3]])
        .collect();
    Ok(Some((
        Layout {
            planar: false,
            photometric_interpretation: "YBR_FULL".to_owned(),
            ..layout
        },
        expanded,
    )))
}

/// RescaleSlope and RescaleIntercept of frame `frame`: top level, else the frame's
/// Pixel Value Transformation functional group, else the shared one (Enhanced CT,
/// PS3.3 C.7.6.16.2.9); (1, 0) when absent.
fn rescale(obj: &DefaultDicomObject, frame: u32) -> (f64, f64) {
    let pair = |o: &InMemDicomObject| -> Option<(f64, f64)> {
        let f = |tag| o.get(tag).and_then(|e| e.to_float64().ok());
        Some((f(tags::RESCALE_SLOPE)?, f(tags::RESCALE_INTERCEPT)?))
    };
    let group = |seq_tag, index: usize| -> Option<(f64, f64)> {
        let items = obj.get(seq_tag)?.items()?;
        let transform = items
            .get(index)?
            .get(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE)?;
        pair(transform.items()?.first()?)
    };
    pair(obj)
        .or_else(|| group(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frame as usize))
        .or_else(|| group(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0))
        .unwrap_or((1.0, 0.0))
}

/// Decodes one slice into `out` (row-major HU); returns the padded pixel count.
fn decode_slice(path: &Path, rows: usize, cols: usize, out: &mut [i16]) -> Result<usize> {
    let frame = decode_stored(path)?;
    let unsupported = |what: String| Error::UnsupportedPixels {
        path: path.to_owned(),
        what,
    };
    if frame.samples_per_pixel != 1 {
        return Err(unsupported(format!(
            "{} samples per pixel",
            frame.samples_per_pixel
        )));
    }
    if !frame.photometric_interpretation.starts_with("MONOCHROME") {
        return Err(unsupported(format!(
            "photometric interpretation {}",
            frame.photometric_interpretation
        )));
    }
    if frame.rows as usize != rows || frame.cols as usize != cols {
        return Err(unsupported(format!(
            "{}x{} pixels where the header said {rows}x{cols}",
            frame.rows, frame.cols
        )));
    }
    let (slope, intercept) = (frame.rescale_slope, frame.rescale_intercept);
    let mut padded = 0;
    for (o, &s) in out.iter_mut().zip(&frame.values) {
        if frame.padding.is_some_and(|(lo, hi)| (lo..=hi).contains(&s)) {
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
