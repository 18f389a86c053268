//! Pixel decoding to Hounsfield units.
//!
//! [`decode_stored`] gives a file's stored values, whatever the transfer syntax:
//! native (implicit/explicit VR little endian, explicit big endian, deflate), RLE,
//! JPEG lossless and 8-bit DCT (jpeg-decoder), JPEG-LS (CharLS) and JPEG 2000 (openjp2)
//! through dicom-pixeldata; 12-bit JPEG Extended and the retired progressive JPEG
//! syntaxes through our own decoder ([`JpegError`] names its failures).
//! [`HuVolume::decode`] rescales them to HU slice by slice, straight from the decoded
//! bytes into the volume's plane: in `i32` arithmetic when RescaleSlope is 1 and the
//! intercept an integer (nearly every CT), which gives the same HU as the `f64` form used
//! otherwise, bit for bit.

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
    let (layout, bytes) = decode_frame(path, &obj, frame)?;
    let values = layout.values(path, &bytes)?;
    let (rescale_slope, rescale_intercept) = rescale(&obj, frame);
    Ok(StoredFrame {
        transfer_syntax_uid: obj.meta().transfer_syntax().to_owned(),
        rows: layout.rows,
        cols: layout.cols,
        samples_per_pixel: layout.samples,
        frames: number_of_frames(&obj),
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

/// NumberOfFrames of `obj`, 1 when absent or not a positive integer.
fn number_of_frames(obj: &DefaultDicomObject) -> u32 {
    obj.get(tags::NUMBER_OF_FRAMES)
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1)
        .max(1)
}

/// The layout and little-endian sample bytes of frame `frame` (from 0) of `obj`, from
/// whichever decoder [`decode_stored_frame`] documents; `bytes` holds exactly that
/// frame.
fn decode_frame(path: &Path, obj: &DefaultDicomObject, frame: u32) -> Result<(Layout, Vec<u8>)> {
    let frames = number_of_frames(obj);
    if let Some((mut layout, image)) = decode_jpeg_dct(path, obj, frame, frames)? {
        let bytes: Vec<u8> = if layout.bits_allocated == 8 && image.header.precision == 8 {
            image.samples.iter().map(|&v| v as u8).collect()
        } else {
            // Samples are at most 12 bits here: handed over as 16-bit words.
            layout.bits_allocated = 16;
            image.samples.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        return Ok((layout, bytes));
    }
    if let Some(native) = native_ybr_full_422(path, obj, frame)? {
        return Ok(native);
    }
    check_transfer_syntax(path, obj.meta().transfer_syntax())?;
    let decode_error = |source| Error::Decode {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let decoded = obj.decode_pixel_data_frame(frame).map_err(decode_error)?;
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
    // `frame_data` checks that the decoded buffer holds a whole frame; the buffer is then
    // taken over rather than copied (it is the frame's own copy already, one frame long
    // or longer), which saves a frame-sized allocation and copy per slice.
    let frame_len = decoded.frame_data(0).map_err(decode_error)?.len();
    let mut bytes = decoded.into_data();
    bytes.truncate(frame_len);
    Ok((layout, bytes))
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

    /// How to read this layout's samples out of one frame's little-endian `bytes`:
    /// [`Error::UnsupportedPixels`] for samples of other than 8, 16 or 32 bits, a
    /// BitsStored that does not fit them, or fewer bytes than the frame needs.
    fn format(&self, path: &Path, bytes: &[u8]) -> Result<SampleFormat> {
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
        Ok(SampleFormat {
            bytes_per_sample,
            unused_bits: 32 - u32::from(bits_stored),
            signed: self.signed,
        })
    }

    /// Sample values of one frame's little-endian `bytes`, interleaved.
    fn values(&self, path: &Path, bytes: &[u8]) -> Result<Vec<i32>> {
        let format = self.format(path, bytes)?;
        let n = self.rows as usize * self.cols as usize * usize::from(self.samples);
        Ok(if self.planar {
            let plane = self.rows as usize * self.cols as usize;
            let spp = usize::from(self.samples);
            (0..n)
                .map(|i| format.sample(bytes, (i % spp) * plane + i / spp))
                .collect()
        } else {
            (0..n).map(|i| format.sample(bytes, i)).collect()
        })
    }
}

/// How stored sample values are laid out in little-endian bytes, checked against the
/// data by [`Layout::format`].
#[derive(Debug, Clone, Copy)]
struct SampleFormat {
    /// 1, 2 or 4 (BitsAllocated / 8).
    bytes_per_sample: usize,
    /// Bits of the 32-bit word above BitsStored: 0..=31.
    unused_bits: u32,
    /// PixelRepresentation 1: two's complement.
    signed: bool,
}

impl SampleFormat {
    /// Sample `i` of `bytes`.
    fn sample(self, bytes: &[u8], i: usize) -> i32 {
        let n = self.bytes_per_sample;
        let mut word = [0u8; 4];
        word[..n].copy_from_slice(&bytes[n * i..n * (i + 1)]);
        self.value(u32::from_le_bytes(word))
    }

    /// The value of the sample word `raw`: bits above BitsStored may hold anything
    /// (PS3.5 8.1.1), so they are shifted out, and shifting back sign-extends a signed
    /// value (arithmetic shift) or zero-fills an unsigned one.
    fn value(self, raw: u32) -> i32 {
        if self.signed {
            stored_value::<true>(raw, self.unused_bits)
        } else {
            stored_value::<false>(raw, self.unused_bits)
        }
    }
}

/// [`SampleFormat::value`] with the sign known at compile time.
#[inline(always)]
fn stored_value<const SIGNED: bool>(raw: u32, unused_bits: u32) -> i32 {
    if SIGNED {
        ((raw << unused_bits) as i32) >> unused_bits
    } else {
        ((raw << unused_bits) >> unused_bits) as i32
    }
}

/// The Modality LUT of a CT slice: HU = round(stored x RescaleSlope + RescaleIntercept),
/// saturated to `i16` (PS3.3 C.11.1.1.2). Two implementations that give the same
/// result for every stored value they are used for (see the tests).
trait Rescale: Copy {
    /// HU of stored value `stored`.
    fn hu(self, stored: i32) -> i16;
}

/// Any slope and intercept, in `f64` as the standard states the transform.
#[derive(Debug, Clone, Copy)]
struct LinearRescale {
    slope: f64,
    intercept: f64,
}

impl Rescale for LinearRescale {
    #[inline(always)]
    fn hu(self, stored: i32) -> i16 {
        (f64::from(stored) * self.slope + self.intercept)
            .round()
            .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    }
}

/// Largest |intercept| that [`IntegerRescale`] adds as it is; beyond it the intercept is
/// clamped to this, which changes no result: with stored values of at most 16 bits
/// (|stored| <= 65535), stored + intercept is then beyond ±(2^20 - 2^16), far outside
/// the `i16` range, either way, and `i32` arithmetic cannot overflow.
const INTEGER_INTERCEPT_LIMIT: i32 = 1 << 20;

/// RescaleSlope 1 and an integral RescaleIntercept (nearly every CT) on samples of 8 or
/// 16 bits: an `i32` addition and clamp, which vectorises, where [`LinearRescale`] calls
/// libm's `round` per pixel. Exact: the `f64` sum of two integers this small is exact,
/// and rounding an integer is the identity.
#[derive(Debug, Clone, Copy)]
struct IntegerRescale {
    intercept: i32,
}

impl IntegerRescale {
    /// The integer form of `(slope, intercept)`, `None` unless slope is 1 and the
    /// intercept a finite integer.
    fn new(slope: f64, intercept: f64) -> Option<Self> {
        // `fract` of an infinity or NaN is NaN: those are refused here too.
        (slope == 1.0 && intercept.fract() == 0.0).then(|| {
            let limit = f64::from(INTEGER_INTERCEPT_LIMIT);
            Self {
                intercept: intercept.clamp(-limit, limit) as i32,
            }
        })
    }
}

impl Rescale for IntegerRescale {
    #[inline(always)]
    fn hu(self, stored: i32) -> i16 {
        (stored + self.intercept).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
    }
}

/// A padding range that matches no value (low above high).
const NO_PADDING: (i32, i32) = (i32::MAX, i32::MIN);

/// Writes the HU of the first `out.len()` samples of `bytes` into `out`, padding
/// (stored values in `padding`, inclusive) as [`PADDING_HU`]; returns how many were
/// padding. Slope 1 with an integral intercept on 8- or 16-bit samples (nearly every CT
/// slice) takes the integer path, everything else the `f64` one: both give the same HU.
fn stored_to_hu(
    format: SampleFormat,
    bytes: &[u8],
    padding: Option<(i32, i32)>,
    (slope, intercept): (f64, f64),
    out: &mut [i16],
) -> usize {
    let padding = padding.unwrap_or(NO_PADDING);
    match IntegerRescale::new(slope, intercept) {
        Some(integer) if format.bytes_per_sample <= 2 => {
            rescale_any(format, bytes, padding, integer, out)
        }
        _ => {
            let linear = LinearRescale { slope, intercept };
            rescale_any(format, bytes, padding, linear, out)
        }
    }
}

/// [`rescale_samples`] for `format`'s sample width and sign.
fn rescale_any<R: Rescale>(
    format: SampleFormat,
    bytes: &[u8],
    padding: (i32, i32),
    rescale: R,
    out: &mut [i16],
) -> usize {
    let u = format.unused_bits;
    match (format.bytes_per_sample, format.signed) {
        (1, false) => rescale_samples::<1, false, R>(u, bytes, padding, rescale, out),
        (1, true) => rescale_samples::<1, true, R>(u, bytes, padding, rescale, out),
        (2, false) => rescale_samples::<2, false, R>(u, bytes, padding, rescale, out),
        (2, true) => rescale_samples::<2, true, R>(u, bytes, padding, rescale, out),
        (_, false) => rescale_samples::<4, false, R>(u, bytes, padding, rescale, out),
        (_, true) => rescale_samples::<4, true, R>(u, bytes, padding, rescale, out),
    }
}

/// The per-pixel loop of [`stored_to_hu`], for samples of `N` bytes, signed or not, and
/// one [`Rescale`]: monomorphised and without branches (the padding test is a select),
/// so that the integer form vectorises.
fn rescale_samples<const N: usize, const SIGNED: bool, R: Rescale>(
    unused_bits: u32,
    bytes: &[u8],
    (low, high): (i32, i32),
    rescale: R,
    out: &mut [i16],
) -> usize {
    let mut padded = 0;
    // Counted per chunk in `u32`, the width of the lanes the loop runs in (a `usize`
    // count would halve them); a chunk cannot overflow it.
    for (out, bytes) in out
        .chunks_mut(COUNT_CHUNK_PIXELS)
        .zip(bytes.chunks(COUNT_CHUNK_PIXELS * N))
    {
        let mut chunk_padded = 0u32;
        for (o, b) in out.iter_mut().zip(bytes.chunks_exact(N)) {
            let mut word = [0u8; 4];
            word[..N].copy_from_slice(b);
            let stored = stored_value::<SIGNED>(u32::from_le_bytes(word), unused_bits);
            let pad = (low <= stored) & (stored <= high);
            chunk_padded += u32::from(pad);
            let hu = rescale.hu(stored);
            *o = if pad { PADDING_HU } else { hu };
        }
        padded += chunk_padded as usize;
    }
    padded
}

/// Pixels per chunk of [`rescale_samples`]' padding count: far below `u32::MAX`, far
/// above a loop's start-up cost.
const COUNT_CHUNK_PIXELS: usize = 1 << 16;

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
///
/// The stored values are those of [`decode_stored`], rescaled straight from the decoded
/// bytes into `out` by [`stored_to_hu`]: no per-slice buffer of values.
fn decode_slice(path: &Path, rows: usize, cols: usize, out: &mut [i16]) -> Result<usize> {
    let obj = crate::open::open(path, None)?;
    let (layout, bytes) = decode_frame(path, &obj, 0)?;
    let format = layout.format(path, &bytes)?;
    let unsupported = |what: String| Error::UnsupportedPixels {
        path: path.to_owned(),
        what,
    };
    if layout.samples != 1 {
        return Err(unsupported(format!("{} samples per pixel", layout.samples)));
    }
    if !layout.photometric_interpretation.starts_with("MONOCHROME") {
        return Err(unsupported(format!(
            "photometric interpretation {}",
            layout.photometric_interpretation
        )));
    }
    if layout.rows as usize != rows || layout.cols as usize != cols {
        return Err(unsupported(format!(
            "{}x{} pixels where the header said {rows}x{cols}",
            layout.rows, layout.cols
        )));
    }
    Ok(stored_to_hu(
        format,
        &bytes,
        padding_range(&obj, layout.signed),
        rescale(&obj, 0),
        out,
    ))
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

#[cfg(test)]
mod tests;
