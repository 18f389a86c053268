//! The HU path of [`decode_slice`] against the general one it replaced: stored values
//! from [`decode_stored`], then the `f64` Modality LUT and padding per value.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_object::meta::FileMetaTableBuilder;

use super::*;

const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

/// A 256x256 slice holds every 16-bit word once.
const SIDE: u16 = 256;

/// Every 16-bit word, in an order that puts neighbours far apart.
fn every_word() -> Vec<u16> {
    (0..=u16::MAX).map(|i| i.wrapping_mul(40_503)).collect()
}

/// One synthetic CT slice to write.
struct Slice {
    transfer_syntax: &'static str,
    signed: bool,
    bits_stored: u16,
    slope: &'static str,
    intercept: &'static str,
    /// PixelPaddingValue as (VR, raw 16-bit word), and PixelPaddingRangeLimit likewise.
    padding: Option<(VR, u16)>,
    padding_limit: Option<(VR, u16)>,
    words: Vec<u16>,
}

impl Slice {
    fn new(signed: bool, bits_stored: u16) -> Self {
        Self {
            transfer_syntax: EXPLICIT_VR_LE,
            signed,
            bits_stored,
            slope: "1",
            intercept: "-1024",
            padding: None,
            padding_limit: None,
            words: every_word(),
        }
    }

    fn write(&self, path: &Path) {
        let us = |v: u16| PrimitiveValue::from(v);
        let word = |(vr, w): (VR, u16)| match vr {
            VR::SS => PrimitiveValue::from(w as i16),
            _ => PrimitiveValue::from(w),
        };
        let mut obj = InMemDicomObject::new_empty();
        let mut put = |tag, vr, value| obj.put(DataElement::new(tag, vr, value));
        put(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE.into());
        put(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5".into());
        put(tags::MODALITY, VR::CS, "CT".into());
        put(tags::SAMPLES_PER_PIXEL, VR::US, us(1));
        put(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2".into(),
        );
        put(tags::ROWS, VR::US, us(SIDE));
        put(tags::COLUMNS, VR::US, us(SIDE));
        put(tags::BITS_ALLOCATED, VR::US, us(16));
        put(tags::BITS_STORED, VR::US, us(self.bits_stored));
        put(tags::HIGH_BIT, VR::US, us(self.bits_stored - 1));
        put(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            us(u16::from(self.signed)),
        );
        put(tags::RESCALE_INTERCEPT, VR::DS, self.intercept.into());
        put(tags::RESCALE_SLOPE, VR::DS, self.slope.into());
        if let Some(p) = self.padding {
            put(tags::PIXEL_PADDING_VALUE, p.0, word(p));
        }
        if let Some(p) = self.padding_limit {
            put(tags::PIXEL_PADDING_RANGE_LIMIT, p.0, word(p));
        }
        put(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(self.words.iter().copied().collect()),
        );
        obj.with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(CT_IMAGE_STORAGE)
                .transfer_syntax(self.transfer_syntax),
        )
        .unwrap()
        .write_to_file(path)
        .unwrap();
    }
}

/// The general path as it was before the integer one: [`decode_stored`], then per
/// stored value the padding check and `round(stored x slope + intercept)` in `f64`.
fn reference_slice(path: &Path) -> (Vec<i16>, usize) {
    let frame = decode_stored(path).unwrap();
    let mut padded = 0;
    let hu = frame
        .values
        .iter()
        .map(|&s| {
            if frame.padding.is_some_and(|(lo, hi)| (lo..=hi).contains(&s)) {
                padded += 1;
                PADDING_HU
            } else {
                (f64::from(s) * frame.rescale_slope + frame.rescale_intercept)
                    .round()
                    .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
            }
        })
        .collect();
    (hu, padded)
}

/// Writes `slice`, decodes it both ways and checks that they agree voxel for voxel;
/// returns the HU and the padded count.
fn both_paths_agree(slice: &Slice) -> (Vec<i16>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slice.dcm");
    slice.write(&path);
    let side = usize::from(SIDE);
    let mut hu = vec![0i16; side * side];
    let padded = decode_slice(&path, side, side, &mut hu).unwrap();
    let (expected, expected_padded) = reference_slice(&path);
    let differing = hu.iter().zip(&expected).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "voxels that differ from the general path");
    assert_eq!(padded, expected_padded);
    (hu, padded)
}

/// HU of the voxel that holds stored word `w`.
fn hu_of(hu: &[i16], words: &[u16], w: u16) -> i16 {
    hu[words.iter().position(|&x| x == w).unwrap()]
}

#[test]
fn issue_3_signed_slice_with_padding_written_as_us() {
    let mut slice = Slice::new(true, 16);
    // -2000 written as US 63536, the way many scanners write it for signed data.
    slice.padding = Some((VR::US, -2000i16 as u16));
    let (hu, padded) = both_paths_agree(&slice);
    assert_eq!(padded, 1);
    let words = &slice.words;
    assert_eq!(hu_of(&hu, words, -2000i16 as u16), PADDING_HU);
    assert_eq!(hu_of(&hu, words, -1999i16 as u16), -3023);
    assert_eq!(hu_of(&hu, words, 0), -1024);
    assert_eq!(hu_of(&hu, words, 32767), 31743);
    assert_eq!(hu_of(&hu, words, 0x8000), i16::MIN);
}

#[test]
fn issue_3_signed_slice_with_padding_range_and_junk_high_bits() {
    let mut slice = Slice::new(true, 12);
    slice.padding = Some((VR::SS, -2000i16 as u16));
    slice.padding_limit = Some((VR::US, -1500i16 as u16));
    let (hu, padded) = both_paths_agree(&slice);
    // 501 stored values x 16 patterns of the 4 unused high bits.
    assert_eq!(padded, 501 * 16);
    // 0xF800 in 12 bits is -2048, whatever the high nibble.
    assert_eq!(hu_of(&hu, &slice.words, 0x0800), -2048 - 1024);
    assert_eq!(hu_of(&hu, &slice.words, 0xA7FF), 2047 - 1024);
}

#[test]
fn issue_3_unsigned_slice_with_padding_range() {
    let mut slice = Slice::new(false, 16);
    slice.padding = Some((VR::US, 0));
    slice.padding_limit = Some((VR::US, 10));
    let (hu, padded) = both_paths_agree(&slice);
    assert_eq!(padded, 11);
    assert_eq!(hu_of(&hu, &slice.words, 11), 11 - 1024);
    // 65535 - 1024 saturates.
    assert_eq!(hu_of(&hu, &slice.words, u16::MAX), i16::MAX);
}

#[test]
fn issue_3_implicit_vr_padding_read_in_the_pixel_sign() {
    // Implicit VR: PixelPaddingValue's VR comes from the dictionary (US or SS).
    let mut slice = Slice::new(true, 16);
    slice.transfer_syntax = IMPLICIT_VR_LE;
    slice.padding = Some((VR::US, -1024i16 as u16));
    slice.intercept = "0";
    let (hu, padded) = both_paths_agree(&slice);
    assert_eq!(padded, 1);
    assert_eq!(hu_of(&hu, &slice.words, -1023i16 as u16), -1023);
}

#[test]
fn issue_3_non_integer_rescale_takes_the_f64_path() {
    for (slope, intercept) in [("1", "-1024.5"), ("0.5", "-1024"), ("2", "-1000")] {
        let mut slice = Slice::new(true, 16);
        slice.slope = slope;
        slice.intercept = intercept;
        slice.padding = Some((VR::US, -2000i16 as u16));
        both_paths_agree(&slice);
    }
}

#[test]
fn issue_3_integer_and_f64_rescale_agree_on_every_stored_value() {
    let words = every_word();
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let intercepts = [
        -1024.0, 0.0, -0.0, 1.0, -32768.0, 32767.0, 70_000.0, -70_000.0, 1e7, -3e9, 1e300,
    ];
    for signed in [false, true] {
        for bits_stored in [8u16, 12, 16] {
            let format = SampleFormat {
                bytes_per_sample: 2,
                unused_bits: 32 - u32::from(bits_stored),
                signed,
            };
            for padding in [NO_PADDING, (-1024, -1000), (0, 0)] {
                for intercept in intercepts {
                    let integer = IntegerRescale::new(1.0, intercept).unwrap();
                    let linear = LinearRescale {
                        slope: 1.0,
                        intercept,
                    };
                    let mut a = vec![0i16; words.len()];
                    let mut b = vec![0i16; words.len()];
                    let pa = rescale_any(format, &bytes, padding, integer, &mut a);
                    let pb = rescale_any(format, &bytes, padding, linear, &mut b);
                    assert_eq!(pa, pb);
                    assert!(
                        a == b,
                        "signed {signed}, {bits_stored} bits, intercept {intercept}"
                    );
                }
            }
        }
    }
}

#[test]
fn integer_rescale_only_for_slope_1_and_integral_intercept() {
    assert!(IntegerRescale::new(1.0, -1024.0).is_some());
    assert!(IntegerRescale::new(1.0, -1024.5).is_none());
    assert!(IntegerRescale::new(0.5, -1024.0).is_none());
    assert!(IntegerRescale::new(1.0, f64::NAN).is_none());
    assert!(IntegerRescale::new(1.0, f64::INFINITY).is_none());
}

#[test]
fn sample_value_masks_and_sign_extends() {
    let signed12 = SampleFormat {
        bytes_per_sample: 2,
        unused_bits: 20,
        signed: true,
    };
    assert_eq!(signed12.value(0xFFFF), -1);
    assert_eq!(signed12.value(0xA000), 0);
    assert_eq!(signed12.value(0x07FF), 2047);
    assert_eq!(signed12.value(0x5800), -2048);
    let unsigned12 = SampleFormat {
        signed: false,
        ..signed12
    };
    assert_eq!(unsigned12.value(0xFFFF), 4095);
    let signed32 = SampleFormat {
        bytes_per_sample: 4,
        unused_bits: 0,
        signed: true,
    };
    assert_eq!(signed32.value(u32::MAX), -1);
}
