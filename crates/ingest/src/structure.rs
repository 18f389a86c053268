//! Checks that a spooled data set is complete: every element, sequence, item and pixel
//! data fragment ends inside the file, and the file ends on an element boundary.
//!
//! A peer may end a data set early (a bug, a crash between fragments marked "last").
//! Parsing the header stops before the pixel data, so a data set cut inside its pixel
//! data would pass; this walk catches it without holding any value in memory (values
//! are skipped, never read), whatever the instance size. It follows the element
//! encoding of PS3.5 section 7: explicit or implicit VR, little or big endian, undefined
//! lengths, items, delimiters, encapsulated pixel data (section A.4), and UN of
//! undefined length, whose content is implicit VR little endian (section 6.2.2).

use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::Path;

/// Sequences nested deeper than this are refused (real data sets nest a few levels).
const MAX_DEPTH: u32 = 64;
/// Length meaning "undefined".
const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_DELIMITER: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_DELIMITER: (u16, u16) = (0xFFFE, 0xE0DD);
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);

/// Why a data set is not complete.
#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    /// The data ends inside an element, item or sequence.
    #[error("data set truncated")]
    Truncated,
    /// The encoding is broken.
    #[error("malformed data set: {0}")]
    Malformed(&'static str),
    /// The file could not be read.
    #[error("could not read the spooled data set")]
    Io(#[source] std::io::Error),
}

/// How the data set's elements are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Implicit VR Little Endian.
    ImplicitLe,
    /// Explicit VR Little Endian (also inside a deflated stream).
    ExplicitLe,
    /// Explicit VR Big Endian.
    ExplicitBe,
}

impl Encoding {
    /// The element encoding of a transfer syntax, and whether the data set is
    /// deflated. Every encapsulated syntax is explicit VR little endian.
    pub fn of(transfer_syntax_uid: &str) -> (Self, bool) {
        match transfer_syntax_uid {
            "1.2.840.10008.1.2" => (Self::ImplicitLe, false),
            "1.2.840.10008.1.2.2" => (Self::ExplicitBe, false),
            "1.2.840.10008.1.2.1.99" => (Self::ExplicitLe, true),
            _ => (Self::ExplicitLe, false),
        }
    }
}

/// Checks the data set that starts at byte `offset` of the file at `path`. Blocking.
pub fn check_file(
    path: &Path,
    offset: u64,
    transfer_syntax_uid: &str,
) -> Result<(), StructureError> {
    let mut file = std::fs::File::open(path).map_err(StructureError::Io)?;
    file.seek(SeekFrom::Start(offset))
        .map_err(StructureError::Io)?;
    check_data_set(
        BufReader::with_capacity(64 << 10, file),
        transfer_syntax_uid,
    )
}

/// Checks the data set read from `reader` (from its first byte, after the file meta
/// group), encoded in `transfer_syntax_uid`. Blocking when `reader` is.
pub fn check_data_set(reader: impl Read, transfer_syntax_uid: &str) -> Result<(), StructureError> {
    let (encoding, deflated) = Encoding::of(transfer_syntax_uid);
    if deflated {
        // PS3.5 A.5: the data set is a raw deflate stream (no zlib header).
        check(flate2::read::DeflateDecoder::new(reader), encoding)
    } else {
        check(reader, encoding)
    }
}

/// Checks a whole data set read from `reader`.
pub fn check(reader: impl Read, encoding: Encoding) -> Result<(), StructureError> {
    Walker { r: reader }.data_set(encoding, End::Eof, 0)
}

/// Where a data set ends.
#[derive(Debug, Clone, Copy)]
enum End {
    /// At the end of the stream (top level).
    Eof,
    /// At an item delimitation item (undefined-length item).
    ItemDelimiter,
}

struct Walker<R> {
    r: R,
}

impl<R: Read> Walker<R> {
    fn data_set(&mut self, enc: Encoding, end: End, depth: u32) -> Result<(), StructureError> {
        loop {
            let Some(tag) = self.tag(enc, matches!(end, End::Eof))? else {
                return Ok(());
            };
            if tag == ITEM_DELIMITER {
                return match end {
                    End::ItemDelimiter => self.u32(enc).map(drop),
                    End::Eof => Err(StructureError::Malformed("item delimiter at top level")),
                };
            }
            if tag.0 == 0xFFFE {
                return Err(StructureError::Malformed(
                    "item or delimiter outside a sequence",
                ));
            }
            let (is_un, len) = self.header(enc)?;
            if len != UNDEFINED {
                self.skip(len)?;
            } else if tag == PIXEL_DATA {
                self.fragments(enc)?;
            } else {
                // An undefined-length SQ, or UN holding an implicit VR LE sequence.
                let inner = if is_un { Encoding::ImplicitLe } else { enc };
                self.sequence(inner, depth + 1)?;
            }
        }
    }

    /// Reads an element's VR (explicit syntaxes) and length; whether the VR is UN.
    fn header(&mut self, enc: Encoding) -> Result<(bool, u32), StructureError> {
        if enc == Encoding::ImplicitLe {
            return Ok((false, self.u32(enc)?));
        }
        let mut vr = [0_u8; 2];
        self.exact(&mut vr)?;
        // PS3.5 table 7.1-1: these VRs have 2 reserved bytes and a 32-bit length.
        let long = matches!(
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
        );
        if long {
            let mut reserved = [0_u8; 2];
            self.exact(&mut reserved)?;
            Ok((&vr == b"UN", self.u32(enc)?))
        } else if vr.iter().all(u8::is_ascii_uppercase) {
            Ok((false, u32::from(self.u16(enc)?)))
        } else {
            Err(StructureError::Malformed("invalid VR"))
        }
    }

    fn sequence(&mut self, enc: Encoding, depth: u32) -> Result<(), StructureError> {
        if depth > MAX_DEPTH {
            return Err(StructureError::Malformed("sequences nested too deep"));
        }
        loop {
            let tag = self.tag(enc, false)?.ok_or(StructureError::Truncated)?;
            let len = self.u32(enc)?;
            match tag {
                SEQUENCE_DELIMITER => return Ok(()),
                ITEM if len == UNDEFINED => self.data_set(enc, End::ItemDelimiter, depth)?,
                ITEM => self.skip(len)?,
                _ => return Err(StructureError::Malformed("sequence holds a non-item")),
            }
        }
    }

    /// Encapsulated pixel data: items of defined length, then a sequence delimiter.
    fn fragments(&mut self, enc: Encoding) -> Result<(), StructureError> {
        loop {
            let tag = self.tag(enc, false)?.ok_or(StructureError::Truncated)?;
            let len = self.u32(enc)?;
            match tag {
                SEQUENCE_DELIMITER => return Ok(()),
                ITEM if len != UNDEFINED => self.skip(len)?,
                _ => return Err(StructureError::Malformed("bad pixel data fragment")),
            }
        }
    }

    /// Reads a tag; `None` at a clean end of stream when `eof_ok`.
    fn tag(&mut self, enc: Encoding, eof_ok: bool) -> Result<Option<(u16, u16)>, StructureError> {
        let mut b = [0_u8; 4];
        let mut got = 0;
        while got < b.len() {
            match self.r.read(&mut b[got..]) {
                Ok(0) if got == 0 && eof_ok => return Ok(None),
                Ok(0) => return Err(StructureError::Truncated),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(e)),
            }
        }
        let [g0, g1, e0, e1] = b;
        Ok(Some(match enc {
            Encoding::ExplicitBe => (u16::from_be_bytes([g0, g1]), u16::from_be_bytes([e0, e1])),
            _ => (u16::from_le_bytes([g0, g1]), u16::from_le_bytes([e0, e1])),
        }))
    }

    fn u16(&mut self, enc: Encoding) -> Result<u16, StructureError> {
        let mut b = [0_u8; 2];
        self.exact(&mut b)?;
        Ok(match enc {
            Encoding::ExplicitBe => u16::from_be_bytes(b),
            _ => u16::from_le_bytes(b),
        })
    }

    fn u32(&mut self, enc: Encoding) -> Result<u32, StructureError> {
        let mut b = [0_u8; 4];
        self.exact(&mut b)?;
        Ok(match enc {
            Encoding::ExplicitBe => u32::from_be_bytes(b),
            _ => u32::from_le_bytes(b),
        })
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), StructureError> {
        self.r.read_exact(buf).map_err(read_error)
    }

    /// Skips `len` bytes of value without keeping them.
    fn skip(&mut self, len: u32) -> Result<(), StructureError> {
        let want = u64::from(len);
        let skipped = std::io::copy(&mut (&mut self.r).take(want), &mut std::io::sink())
            .map_err(read_error)?;
        if skipped == want {
            Ok(())
        } else {
            Err(StructureError::Truncated)
        }
    }
}

fn read_error(e: std::io::Error) -> StructureError {
    if e.kind() == ErrorKind::UnexpectedEof {
        StructureError::Truncated
    } else {
        StructureError::Io(e)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    /// Explicit VR LE: (0008,0060) CS "CT", an undefined-length SQ with one
    /// undefined-length item holding (0008,0100) SH "AB", then encapsulated pixel data
    /// with an empty offset table and one 4-byte fragment.
    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&[0x08, 0x00, 0x60, 0x00, b'C', b'S', 2, 0, b'C', b'T']);
        v.extend_from_slice(&[
            0x08, 0x00, 0x32, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        v.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        v.extend_from_slice(&[0x08, 0x00, 0x00, 0x01, b'S', b'H', 2, 0, b'A', b'B']);
        v.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        v.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        v.extend_from_slice(&[
            0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        v.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        v.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 1, 2, 3, 4]);
        v.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn complete_data_set_passes() {
        check(&sample()[..], Encoding::ExplicitLe).unwrap();
        check(&[][..], Encoding::ExplicitLe).unwrap();
    }

    #[test]
    fn every_truncation_is_caught() {
        let full = sample();
        // Cutting at an element boundary at top level leaves a complete (shorter)
        // data set; everywhere else the cut must be seen.
        let boundaries = [10, 56, full.len()];
        for cut in 1..full.len() {
            let r = check(&full[..cut], Encoding::ExplicitLe);
            if boundaries.contains(&cut) {
                assert!(r.is_ok(), "cut at {cut}: {r:?}");
            } else {
                assert!(r.is_err(), "cut at {cut} not detected");
            }
        }
    }

    #[test]
    fn implicit_and_big_endian() {
        // Implicit VR LE: (0010,0010) length 4.
        let implicit = [0x10, 0x00, 0x10, 0x00, 4, 0, 0, 0, b'A', b'^', b'B', b' '];
        check(&implicit[..], Encoding::ImplicitLe).unwrap();
        assert!(check(&implicit[..11], Encoding::ImplicitLe).is_err());
        // Explicit VR BE: (0028,0010) US 2 bytes.
        let be = [0x00, 0x28, 0x00, 0x10, b'U', b'S', 0, 2, 0x02, 0x00];
        check(&be[..], Encoding::ExplicitBe).unwrap();
        assert!(check(&be[..9], Encoding::ExplicitBe).is_err());
    }

    #[test]
    fn garbage_is_malformed() {
        let garbage = [0x08, 0x00, 0x60, 0x00, 0x01, 0x02, 0x03, 0x04];
        assert!(matches!(
            check(&garbage[..], Encoding::ExplicitLe),
            Err(StructureError::Malformed(_))
        ));
    }
}
