//! Opening DICOM files, leniently where archives need it (issue 3).
//!
//! Every file is first opened the normal way, with [`OpenFileOptions`]. Only when
//! dicom-object refuses the *file meta group* (group 0002, PS3.10 section 7.1) does
//! [`open`] fall back to [`parse_meta_lenient`]: it walks the group itself, keeps what
//! decoding needs (Transfer Syntax UID, Media Storage SOP Class and Instance UIDs,
//! Implementation Class UID), drops optional elements that are malformed, and hands
//! dicom-object a rebuilt meta group followed by the untouched data set bytes.
//!
//! Archives hold such files: 12 of the cornerstone3D CT test slices carry a Source
//! Application Entity Title (0002,0016) of 18 bytes ending in a control byte, which
//! dicom-object 0.10.1 refuses ("Could not parse meta group data set") while pydicom,
//! dcmtk and GDCM read them. A meta group is not part of the data set proper: dropping
//! an optional AE title there changes no attribute of the image.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::header::Header;
use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::file::ReadPreamble;
use dicom_object::mem::InMemElement;
use dicom_object::{DefaultDicomObject, FileMetaTable, FileMetaTableBuilder, OpenFileOptions};
use tracing::debug;

use crate::{Error, Result};

/// Most bytes read from the start of a file to find its meta group on the lenient path.
/// A conforming meta group holds a few UIDs and short strings (under 1 KiB in every
/// file we have seen); 256 KiB leaves room for a large Private Information (0002,0102).
pub const MAX_META_PREFIX_BYTES: usize = 256 * 1024;

/// JPEG Extended (Process 2 & 4): explicit VR little endian, encapsulated pixel data.
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// Retired JPEG DCT transfer syntaxes that dicom-rs does not know, whose data sets are
/// encoded as JPEG Extended's are (PS3.5 A.4.1): JPEG Spectral Selection,
/// Non-Hierarchical (Process 6 & 8) and JPEG Full Progression, Non-Hierarchical
/// (Process 10 & 12). [`crate::hu`] decodes their Huffman-coded codestreams.
pub const RETIRED_JPEG_DCT: [&str; 2] = ["1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.55"];

/// Explicit VR Big Endian (retired, still found in archives).
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// Length of the Part 10 preamble that precedes the `DICM` prefix (PS3.10 section 7.1).
const PREAMBLE_LEN: usize = 128;

/// Most characters of an AE or SH value (PS3.5 section 6.2).
const MAX_SHORT_TEXT_LEN: usize = 16;

/// Why the file meta group could not be read even leniently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// Neither offset 128 nor offset 0 holds the `DICM` prefix.
    #[error("no DICM prefix at offset 128 or 0")]
    NoPrefix,
    /// An element runs past the end of the bytes read.
    #[error("file meta element {tag} runs past the end of the data read")]
    Truncated {
        /// The element.
        tag: Tag,
    },
    /// An element has undefined length, which the meta group never allows.
    #[error("file meta element {tag} has undefined length")]
    UndefinedLength {
        /// The element.
        tag: Tag,
    },
    /// Transfer Syntax UID (0002,0010) is absent or not a UID.
    #[error("file meta group has no usable Transfer Syntax UID (found `{found}`)")]
    TransferSyntax {
        /// The value as read, control characters escaped.
        found: String,
    },
    /// dicom-object refused the rebuilt table.
    #[error("could not rebuild the file meta group: {reason}")]
    Rebuild {
        /// dicom-object's message.
        reason: String,
    },
}

/// The file meta group as [`parse_meta_lenient`] recovered it.
#[derive(Debug, Clone, PartialEq)]
pub struct LenientMeta {
    /// The kept elements, ready for dicom-object.
    pub table: FileMetaTable,
    /// Byte offset of the data set (the first element after group 0002) in the input.
    pub dataset_offset: usize,
    /// Elements present in the file but left out: malformed, or not needed to decode.
    pub dropped: Vec<Tag>,
}

/// Opens `path` with dicom-object, reading until (not including) `read_until` when given
/// (`Some(tags::PIXEL_DATA)` for a header-only read).
///
/// When the normal open fails on the file meta group, the group is parsed leniently
/// ([`parse_meta_lenient`]) and the data set read with the transfer syntax found there;
/// that fallback is logged at DEBUG. Files in a [`RETIRED_JPEG_DCT`] transfer syntax,
/// which dicom-object refuses to read, are read the same way with the data set encoding
/// of JPEG Extended. Elements written with VR UN get their dictionary VR back
/// ([`restore_un_vrs`]).
pub fn open(path: &Path, read_until: Option<Tag>) -> Result<DefaultDicomObject> {
    let options = || {
        let o = OpenFileOptions::new();
        match read_until {
            Some(tag) => o.read_until(tag),
            None => o,
        }
    };
    let lenient = || options().read_preamble(ReadPreamble::Never);
    let mut obj = match options().open_file(path) {
        Ok(obj) => obj,
        Err(e @ dicom_object::ReadError::ParseMetaDataSet { .. }) => {
            open_lenient(path, lenient(), e)?
        }
        Err(e) => {
            let retired_jpeg = matches!(
                &e,
                dicom_object::ReadError::ReadUnrecognizedTransferSyntax { uid, .. }
                    if RETIRED_JPEG_DCT.contains(&uid.trim_end_matches(['\0', ' ']))
            );
            if !retired_jpeg {
                return Err(open_error(path, e));
            }
            open_lenient(path, lenient(), e)?
        }
    };
    let restored = restore_un_vrs(&mut obj);
    if restored > 0 {
        debug!(
            elements = restored,
            "Elements read as UN given their dictionary VR."
        );
    }
    Ok(obj)
}

/// Gives top-level elements that were written with VR UN the VR of the standard
/// dictionary, reparsing their bytes, as pydicom does by default; returns how many.
///
/// Explicit VR files written by a tool that did not know an attribute carry it as UN
/// (PS3.5 section 6.2.2); read as UN, an ImagePositionPatient or RescaleIntercept is
/// a byte string, and its numbers are lost. Text VRs are split on `\\` and trimmed;
/// 16-, 32- and 64-bit binary VRs are read little-endian. UN is only ever written with
/// a little-endian transfer syntax in practice; big-endian files are left alone.
pub fn restore_un_vrs(obj: &mut DefaultDicomObject) -> usize {
    if obj.meta().transfer_syntax() == EXPLICIT_VR_BIG_ENDIAN {
        return 0;
    }
    let restored: Vec<InMemElement> = obj
        .iter()
        .filter(|e| e.vr() == VR::UN)
        .filter_map(|e| {
            let vr = StandardDataDictionary.by_tag(e.tag())?.vr().exact()?;
            let bytes = e.value().primitive()?.to_bytes();
            let value = reparse(vr, &bytes)?;
            Some(InMemElement::new(e.tag(), vr, value))
        })
        .collect();
    let n = restored.len();
    for e in restored {
        obj.put(e);
    }
    n
}

/// The value of `bytes` read as `vr`, for the text and numeric VRs; `None` for others
/// (and for a length that is not a multiple of the binary VR's size).
fn reparse(vr: VR, bytes: &[u8]) -> Option<PrimitiveValue> {
    use dicom_core::value::C;
    fn le<const N: usize, T>(bytes: &[u8], f: fn([u8; N]) -> T) -> Option<C<T>> {
        (bytes.len() % N == 0).then(|| {
            bytes
                .chunks_exact(N)
                .map(|c| f(c.try_into().expect("chunks_exact gives N bytes")))
                .collect()
        })
    }
    // ISO-IR 100 (Latin-1) maps each byte to the code point of the same value, and is
    // a superset of the default repertoire: no byte is lost.
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    let single = |s: &str| C::from_elem(s.trim_end_matches([' ', '\0']).to_owned(), 1);
    Some(match vr {
        VR::LT | VR::ST | VR::UT | VR::UR => PrimitiveValue::Strs(single(&text)),
        VR::AE
        | VR::AS
        | VR::CS
        | VR::DA
        | VR::DS
        | VR::DT
        | VR::IS
        | VR::LO
        | VR::PN
        | VR::SH
        | VR::TM
        | VR::UC
        | VR::UI => PrimitiveValue::Strs(
            text.trim_end_matches([' ', '\0'])
                .split('\\')
                .map(|v| v.trim_matches([' ', '\0']).to_owned())
                .collect(),
        ),
        VR::US => PrimitiveValue::U16(le(bytes, u16::from_le_bytes)?),
        VR::SS => PrimitiveValue::I16(le(bytes, i16::from_le_bytes)?),
        VR::UL => PrimitiveValue::U32(le(bytes, u32::from_le_bytes)?),
        VR::SL => PrimitiveValue::I32(le(bytes, i32::from_le_bytes)?),
        VR::FL => PrimitiveValue::F32(le(bytes, f32::from_le_bytes)?),
        VR::FD => PrimitiveValue::F64(le(bytes, f64::from_le_bytes)?),
        _ => return None,
    })
}

/// Maps a dicom-object read error to ours: a transfer syntax dicom-rs cannot read is
/// [`Error::UnsupportedTransferSyntax`], anything else [`Error::Open`].
fn open_error(path: &Path, e: dicom_object::ReadError) -> Error {
    use dicom_object::ReadError as R;
    match e {
        R::ReadUnrecognizedTransferSyntax { uid, .. } => Error::UnsupportedTransferSyntax {
            path: path.to_owned(),
            name: "not known to dicom-rs".to_owned(),
            uid,
        },
        R::ReadUnsupportedTransferSyntax { uid, name, .. }
        | R::ReadUnsupportedTransferSyntaxWithSuggestion { uid, name, .. } => {
            Error::UnsupportedTransferSyntax {
                path: path.to_owned(),
                uid: uid.to_owned(),
                name: name.to_owned(),
            }
        }
        source => Error::Open {
            path: path.to_owned(),
            source: Box::new(source),
        },
    }
}

/// The lenient path of [`open`]; `strict_error` is returned when the meta group cannot
/// be recovered either, since it names what dicom-object disliked first. A data set in
/// a [`RETIRED_JPEG_DCT`] transfer syntax is read with [`JPEG_EXTENDED`]'s encoding,
/// and the file's own transfer syntax put back in the meta table afterwards.
fn open_lenient(
    path: &Path,
    options: OpenFileOptions,
    strict_error: dicom_object::ReadError,
) -> Result<DefaultDicomObject> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut prefix = Vec::new();
    (&mut file)
        .take(MAX_META_PREFIX_BYTES as u64)
        .read_to_end(&mut prefix)
        .map_err(io)?;
    let mut meta = match parse_meta_lenient(&prefix) {
        Ok(meta) => meta,
        Err(reason) => {
            debug!(error = %reason, "File meta group unreadable, even leniently.");
            return Err(open_error(path, strict_error));
        }
    };
    let file_ts = meta.table.transfer_syntax().to_owned();
    let read_as = RETIRED_JPEG_DCT
        .contains(&file_ts.as_str())
        .then_some(JPEG_EXTENDED);
    if let Some(ts) = read_as {
        meta.table.transfer_syntax = ts.to_owned();
        meta.table.update_information_group_length();
    }
    debug!(
        error = %strict_error,
        dropped = ?meta.dropped,
        transfer_syntax = %file_ts,
        read_as = read_as.unwrap_or("itself"),
        "File meta group or transfer syntax refused by dicom-object; read leniently."
    );
    let mut rebuilt = b"DICM".to_vec();
    meta.table
        .write(&mut rebuilt)
        .map_err(|e| Error::MalformedMeta {
            path: path.to_owned(),
            source: MetaError::Rebuild {
                reason: e.to_string(),
            },
        })?;
    file.seek(SeekFrom::Start(meta.dataset_offset as u64))
        .map_err(io)?;
    let mut obj = options
        .from_reader(Cursor::new(rebuilt).chain(file))
        .map_err(|e| open_error(path, e))?;
    obj.update_meta(|m| m.transfer_syntax = file_ts);
    Ok(obj)
}

/// Value representations whose explicit-VR header has a 4-byte length (PS3.5 7.1.2).
fn has_long_length(vr: [u8; 2]) -> bool {
    matches!(
        &vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    )
}

/// Text of a string value with trailing padding (space, NUL) removed.
fn trimmed(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .trim_end_matches([' ', '\0'])
        .to_owned()
}

/// A UID value (PS3.5 section 9.1): digits and dots, at most 64 characters.
fn uid(value: &[u8]) -> Option<String> {
    let s = trimmed(value);
    let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    ok.then_some(s)
}

/// An AE or SH value: printable ASCII without control characters, at most 16
/// characters after trimming (PS3.5 section 6.2).
fn short_text(value: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(value)
        .trim_matches([' ', '\0'])
        .to_owned();
    let ok = s.len() <= MAX_SHORT_TEXT_LEN && s.bytes().all(|b| (0x20..0x7f).contains(&b));
    ok.then_some(s)
}

/// Parses the file meta group of a Part 10 file from its first bytes (with or without
/// the 128-byte preamble), tolerating what dicom-object 0.10.1 refuses:
///
/// - optional text elements (Implementation Version Name, the AE titles, Private
///   Information Creator UID) that are too long or hold control characters are dropped
///   and listed in [`LenientMeta::dropped`];
/// - a File Meta Information Group Length (0002,0000) that is wrong or absent: the
///   group ends at the first element outside group 0002, as in pydicom;
/// - a meta group written in implicit VR (seen in old archives).
///
/// Transfer Syntax UID is required; a Media Storage SOP Class or Instance UID that is
/// absent or malformed is left empty (dicom-object fills it from the data set).
pub fn parse_meta_lenient(bytes: &[u8]) -> Result<LenientMeta, MetaError> {
    let start = if bytes.get(PREAMBLE_LEN..PREAMBLE_LEN + 4) == Some(b"DICM") {
        PREAMBLE_LEN + 4
    } else if bytes.get(..4) == Some(b"DICM") {
        4
    } else {
        return Err(MetaError::NoPrefix);
    };
    let u16_at = |p: usize| {
        bytes
            .get(p..p + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |p: usize| {
        bytes
            .get(p..p + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };

    let vr_like = |p: usize| {
        bytes
            .get(p + 4..p + 6)
            .is_some_and(|vr| vr.iter().all(u8::is_ascii_uppercase))
    };
    // Explicit VR unless the first element's VR bytes are not two upper-case letters.
    let explicit = vr_like(start);
    let mut builder = FileMetaTableBuilder::new();
    let mut dropped = Vec::new();
    let mut transfer_syntax: Option<String> = None;
    let mut group_end: Option<usize> = None;
    let mut pos = start;
    while let (Some(group), Some(element)) = (u16_at(pos), u16_at(pos + 2)) {
        // The group ends at the first element of another group (as in pydicom). Where
        // the declared group length ends, a deflated data set might happen to start
        // with `02 00`: only an element that looks like one (explicit VR) goes on.
        if group != 0x0002 || (group_end == Some(pos) && explicit && !vr_like(pos)) {
            break;
        }
        let tag = Tag(group, element);
        let (header_len, len) = if explicit {
            let vr = bytes
                .get(pos + 4..pos + 6)
                .map(|v| [v[0], v[1]])
                .ok_or(MetaError::Truncated { tag })?;
            if has_long_length(vr) {
                (12, u32_at(pos + 8))
            } else {
                (8, u16_at(pos + 6).map(u32::from))
            }
        } else {
            (8, u32_at(pos + 4))
        };
        let len = len.ok_or(MetaError::Truncated { tag })?;
        if len == u32::MAX {
            return Err(MetaError::UndefinedLength { tag });
        }
        let value_start = pos + header_len;
        let value = bytes
            .get(value_start..value_start + len as usize)
            .ok_or(MetaError::Truncated { tag })?;
        let mut drop_it = || dropped.push(tag);
        match element {
            0x0000 => {
                group_end = u32_at(value_start).map(|n| value_start + len as usize + n as usize);
            }
            0x0001 => match value {
                [a, b] => builder = builder.information_version([*a, *b]),
                _ => drop_it(),
            },
            0x0002 => match uid(value) {
                Some(u) => builder = builder.media_storage_sop_class_uid(u),
                None => drop_it(),
            },
            0x0003 => match uid(value) {
                Some(u) => builder = builder.media_storage_sop_instance_uid(u),
                None => drop_it(),
            },
            0x0010 => {
                transfer_syntax = Some(uid(value).ok_or_else(|| MetaError::TransferSyntax {
                    found: trimmed(value).escape_default().to_string(),
                })?);
            }
            0x0012 => match uid(value) {
                Some(u) => builder = builder.implementation_class_uid(u),
                None => drop_it(),
            },
            0x0013 => match short_text(value) {
                Some(s) if !s.is_empty() => builder = builder.implementation_version_name(s),
                Some(_) => {}
                None => drop_it(),
            },
            0x0016..=0x0018 => match short_text(value) {
                Some(s) if s.is_empty() => {}
                Some(s) if element == 0x0016 => {
                    builder = builder.source_application_entity_title(s)
                }
                Some(s) if element == 0x0017 => {
                    builder = builder.sending_application_entity_title(s);
                }
                Some(s) => builder = builder.receiving_application_entity_title(s),
                None => drop_it(),
            },
            0x0100 => match uid(value) {
                Some(u) => builder = builder.private_information_creator_uid(u),
                None => drop_it(),
            },
            0x0102 => builder = builder.private_information(value.to_vec()),
            // Source Presentation Context, signatures and the like: not needed to
            // decode, and dicom-object skips them itself.
            _ => drop_it(),
        }
        pos = value_start + len as usize;
    }
    let transfer_syntax = transfer_syntax.ok_or(MetaError::TransferSyntax {
        found: String::new(),
    })?;
    let table = builder
        .transfer_syntax(transfer_syntax)
        .build()
        .map_err(|e| MetaError::Rebuild {
            reason: e.to_string(),
        })?;
    Ok(LenientMeta {
        table,
        dataset_offset: pos,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One explicit VR little-endian element.
    fn element(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(group.to_le_bytes());
        out.extend(elem.to_le_bytes());
        out.extend(vr);
        if has_long_length(*vr) {
            out.extend([0, 0]);
            out.extend((value.len() as u32).to_le_bytes());
        } else {
            out.extend((value.len() as u16).to_le_bytes());
        }
        out.extend(value);
        out
    }

    const SOP_CLASS: &[u8] = b"1.2.840.10008.5.1.4.1.1.2\0";
    const SOP_INSTANCE: &[u8] = b"1.2.3.4.5.6.7.8";
    const EXPLICIT_LE: &[u8] = b"1.2.840.10008.1.2.1\0";

    /// A meta group whose Source AE Title has the value `ae`, with a correct group
    /// length unless `group_length` overrides it.
    fn meta_group(ae: &[u8], group_length: Option<u32>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(element(2, 0x0001, b"OB", &[0, 1]));
        body.extend(element(2, 0x0002, b"UI", SOP_CLASS));
        body.extend(element(2, 0x0003, b"UI", SOP_INSTANCE));
        body.extend(element(2, 0x0010, b"UI", EXPLICIT_LE));
        body.extend(element(2, 0x0012, b"UI", b"1.2.276.0.7230010.3.0.3.6.1\0"));
        body.extend(element(2, 0x0013, b"SH", b"OFFIS_DCMTK_361 "));
        body.extend(element(2, 0x0016, b"AE", ae));
        let len = group_length.unwrap_or(body.len() as u32);
        let mut out = vec![0u8; PREAMBLE_LEN];
        out.extend(b"DICM");
        out.extend(element(2, 0x0000, b"UL", &len.to_le_bytes()));
        out.extend(body);
        out
    }

    /// A 2x2 signed CT data set; ImagePositionPatient and RescaleIntercept written as
    /// UN, as a tool that did not know them would.
    fn data_set() -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(element(8, 0x0016, b"UI", SOP_CLASS));
        out.extend(element(8, 0x0018, b"UI", SOP_INSTANCE));
        out.extend(element(8, 0x0060, b"CS", b"CT"));
        out.extend(element(0x20, 0x0032, b"UN", b"1\\-2.5\\3 "));
        out.extend(element(0x28, 0x0002, b"US", &1u16.to_le_bytes()));
        out.extend(element(0x28, 0x0004, b"CS", b"MONOCHROME2 "));
        out.extend(element(0x28, 0x0010, b"US", &2u16.to_le_bytes()));
        out.extend(element(0x28, 0x0011, b"US", &2u16.to_le_bytes()));
        out.extend(element(0x28, 0x0100, b"US", &16u16.to_le_bytes()));
        out.extend(element(0x28, 0x0101, b"US", &12u16.to_le_bytes()));
        out.extend(element(0x28, 0x0102, b"US", &11u16.to_le_bytes()));
        out.extend(element(0x28, 0x0103, b"US", &1u16.to_le_bytes()));
        out.extend(element(0x28, 0x1052, b"UN", b"-1024 "));
        out.extend(element(0x28, 0x1053, b"DS", b"1 "));
        // -1, 0, 2047 and -2048 in 12 bits, with junk in the 4 unused high bits.
        let pixels: Vec<u8> = [0xFFFFu16, 0xA000, 0x07FF, 0x5800]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        out.extend(element(0x7FE0, 0x0010, b"OW", &pixels));
        out
    }

    /// The cornerstone3D quirk: an 18-byte AE title ending in a control byte.
    const CORNERSTONE_AE: &[u8] = b"                \x13 ";

    #[test]
    fn issue_3_lenient_meta_drops_a_malformed_source_ae_title() {
        for ae in [CORNERSTONE_AE, b"\x13".as_slice()] {
            let meta = meta_group(ae, None);
            let mut bytes = meta.clone();
            bytes.extend(data_set());
            let parsed = parse_meta_lenient(&bytes).unwrap();
            assert_eq!(parsed.table.transfer_syntax(), "1.2.840.10008.1.2.1");
            assert_eq!(
                parsed.table.media_storage_sop_class_uid(),
                "1.2.840.10008.5.1.4.1.1.2"
            );
            assert_eq!(
                parsed.table.media_storage_sop_instance_uid(),
                "1.2.3.4.5.6.7.8"
            );
            assert_eq!(
                parsed.table.implementation_version_name(),
                Some("OFFIS_DCMTK_361")
            );
            assert_eq!(parsed.table.source_application_entity_title(), None);
            assert_eq!(parsed.dropped, vec![Tag(0x0002, 0x0016)]);
            assert_eq!(parsed.dataset_offset, meta.len());
        }
    }

    #[test]
    fn issue_3_lenient_meta_keeps_a_valid_ae_title_and_survives_a_wrong_group_length() {
        for wrong in [Some(4), Some(100_000), Some(0)] {
            let meta = meta_group(b"STORESCU", wrong);
            let mut bytes = meta.clone();
            bytes.extend(data_set());
            let parsed = parse_meta_lenient(&bytes).unwrap();
            assert_eq!(
                parsed.table.source_application_entity_title(),
                Some("STORESCU")
            );
            assert!(parsed.dropped.is_empty());
            assert_eq!(parsed.dataset_offset, meta.len(), "group length {wrong:?}");
        }
    }

    #[test]
    fn issue_3_lenient_meta_reads_an_implicit_vr_meta_group_without_preamble() {
        let mut bytes = b"DICM".to_vec();
        for (elem, value) in [
            (0x0002u16, SOP_CLASS),
            (0x0003, SOP_INSTANCE),
            (0x0010, EXPLICIT_LE),
        ] {
            bytes.extend(2u16.to_le_bytes());
            bytes.extend(elem.to_le_bytes());
            bytes.extend((value.len() as u32).to_le_bytes());
            bytes.extend(value);
        }
        let offset = bytes.len();
        bytes.extend(data_set());
        let parsed = parse_meta_lenient(&bytes).unwrap();
        assert_eq!(parsed.table.transfer_syntax(), "1.2.840.10008.1.2.1");
        assert_eq!(parsed.dataset_offset, offset);
    }

    #[test]
    fn issue_3_lenient_meta_errors_are_typed() {
        assert_eq!(parse_meta_lenient(b"not dicom"), Err(MetaError::NoPrefix));
        let meta = meta_group(b"AE", None);
        let cut = &meta[..meta.len() - 1];
        assert_eq!(
            parse_meta_lenient(cut),
            Err(MetaError::Truncated {
                tag: Tag(0x0002, 0x0016)
            })
        );
        let mut no_ts = vec![0u8; PREAMBLE_LEN];
        no_ts.extend(b"DICM");
        no_ts.extend(element(2, 0x0002, b"UI", SOP_CLASS));
        assert!(matches!(
            parse_meta_lenient(&no_ts),
            Err(MetaError::TransferSyntax { .. })
        ));
        let mut bad_ts = vec![0u8; PREAMBLE_LEN];
        bad_ts.extend(b"DICM");
        bad_ts.extend(element(2, 0x0010, b"UI", b"1.2.\x13"));
        assert!(matches!(
            parse_meta_lenient(&bad_ts),
            Err(MetaError::TransferSyntax { .. })
        ));
    }

    #[test]
    fn issue_3_open_falls_back_to_the_lenient_meta_and_restores_un_vrs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("malformed-meta.dcm");
        let mut bytes = meta_group(CORNERSTONE_AE, None);
        bytes.extend(data_set());
        std::fs::write(&path, &bytes).unwrap();

        let obj = open(&path, None).unwrap();
        assert_eq!(obj.meta().transfer_syntax(), "1.2.840.10008.1.2.1");

        let h = crate::header::read(&path).unwrap();
        assert_eq!(h.sop_instance_uid.as_deref(), Some("1.2.3.4.5.6.7.8"));
        assert_eq!(h.modality.as_deref(), Some("CT"));
        let p = h.position.unwrap();
        assert_eq!((p.x, p.y, p.z), (1.0, -2.5, 3.0));

        let f = crate::hu::decode_stored(&path).unwrap();
        assert_eq!(f.values, vec![-1, 0, 2047, -2048]);
        assert_eq!((f.rescale_slope, f.rescale_intercept), (1.0, -1024.0));
    }
}
