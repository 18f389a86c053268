//! The size of a PNG image, from its IHDR chunk (PNG specification, 11.2.2:
//! <https://www.w3.org/TR/png-3/#11IHDR>), so that the page can give the `<img>` its width
//! and height without decoding it.

/// The 8-byte PNG signature.
const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// `(width, height)` in pixels of the PNG in `bytes`, or `None` when it does not start
/// with the signature and an IHDR chunk.
pub(crate) fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let rest = bytes.strip_prefix(&SIGNATURE)?;
    // IHDR is first: length (4 bytes, 13), type "IHDR", width, height (big-endian).
    let (length, rest) = rest.split_first_chunk::<4>()?;
    let (kind, rest) = rest.split_first_chunk::<4>()?;
    if u32::from_be_bytes(*length) != 13 || kind != b"IHDR" {
        return None;
    }
    let (width, rest) = rest.split_first_chunk::<4>()?;
    let (height, _) = rest.split_first_chunk::<4>()?;
    let (w, h) = (u32::from_be_bytes(*width), u32::from_be_bytes(*height));
    (w > 0 && h > 0).then_some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ihdr_and_refuses_other_files() {
        let mut png = SIGNATURE.to_vec();
        png.extend(13u32.to_be_bytes());
        png.extend(b"IHDR");
        png.extend(300u32.to_be_bytes());
        png.extend(512u32.to_be_bytes());
        png.extend([8, 0, 0, 0, 0]);
        assert_eq!(dimensions(&png), Some((300, 512)));
        assert_eq!(dimensions(&png[..20]), None);
        assert_eq!(dimensions(b"GIF89a........................"), None);
        png[12..16].copy_from_slice(b"IDAT");
        assert_eq!(dimensions(&png), None);
    }
}
