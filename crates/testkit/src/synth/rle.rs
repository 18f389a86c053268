//! RLE Lossless encoding (PS3.5 Annex G), which dicom-rs 0.10 can decode but not encode.
//!
//! A frame of `bits_allocated / 8` byte planes becomes one segment per plane, most
//! significant byte first (G.2), each a PackBits stream encoded row by row so that no
//! run crosses a row boundary (G.3.1), after a 64-byte header of the segment count and
//! up to 15 offsets (G.5).

/// Most segments an RLE header can describe.
const MAX_SEGMENTS: usize = 15;

/// Encodes one frame of little-endian samples (`bytes_per_sample` bytes each, one
/// sample per pixel) of `cols` columns into an RLE Lossless fragment.
///
/// # Panics
/// If `bytes_per_sample` exceeds 15 or `data` is not a whole number of rows; both are
/// programming errors of the caller, not data errors.
pub fn encode_frame(data: &[u8], cols: usize, bytes_per_sample: usize) -> Vec<u8> {
    assert!(
        (1..=MAX_SEGMENTS).contains(&bytes_per_sample),
        "RLE allows 1 to 15 segments"
    );
    let row_bytes = cols * bytes_per_sample;
    assert!(
        row_bytes > 0 && data.len() % row_bytes == 0,
        "frame is not whole rows"
    );
    let mut segments = Vec::with_capacity(bytes_per_sample);
    // Segment 0 holds the most significant byte (the last byte of a little-endian sample).
    for plane in (0..bytes_per_sample).rev() {
        let mut seg = Vec::with_capacity(data.len() / bytes_per_sample / 2);
        let mut row = Vec::with_capacity(cols);
        for r in data.chunks_exact(row_bytes) {
            row.clear();
            row.extend(r.chunks_exact(bytes_per_sample).map(|s| s[plane]));
            pack_bits(&row, &mut seg);
        }
        if seg.len() % 2 == 1 {
            seg.push(0); // G.5: segments are padded to an even length.
        }
        segments.push(seg);
    }
    let mut out = Vec::with_capacity(64 + segments.iter().map(Vec::len).sum::<usize>());
    out.extend_from_slice(&(segments.len() as u32).to_le_bytes());
    let mut offset = 64u32;
    for i in 0..MAX_SEGMENTS {
        let value = segments.get(i).map_or(0, |s| {
            let o = offset;
            offset += s.len() as u32;
            o
        });
        out.extend_from_slice(&value.to_le_bytes());
    }
    for s in &segments {
        out.extend_from_slice(s);
    }
    out
}

/// Appends the PackBits encoding of `row` to `out`: literal runs `n-1, bytes...`
/// (`n` <= 128) and replicate runs `1-n, byte` (2 <= `n` <= 128).
fn pack_bits(row: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    let n = row.len();
    while i < n {
        // Length of the run of equal bytes starting at i.
        let mut run = 1;
        while i + run < n && run < 128 && row[i + run] == row[i] {
            run += 1;
        }
        if run >= 3 || (run == 2 && i + run == n) {
            out.push((1i16 - run as i16) as i8 as u8);
            out.push(row[i]);
            i += run;
            continue;
        }
        // Literal run: until a run of 3 equal bytes begins, or 128 bytes.
        let start = i;
        while i < n && i - start < 128 {
            if i + 2 < n && row[i] == row[i + 1] && row[i] == row[i + 2] {
                break;
            }
            i += 1;
        }
        out.push((i - start - 1) as u8);
        out.extend_from_slice(&row[start..i]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    /// PS3.5 G.3.2 decoder, to check the encoder independently.
    fn unpack(seg: &[u8], expected: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while out.len() < expected {
            let h = seg[i] as i8;
            i += 1;
            if h >= 0 {
                let n = h as usize + 1;
                out.extend_from_slice(&seg[i..i + n]);
                i += n;
            } else if h != -128 {
                let n = (1 - h as i16) as usize;
                out.extend(std::iter::repeat_n(seg[i], n));
                i += 1;
            }
        }
        out
    }

    #[test]
    fn round_trips_16_bit_frames() {
        let cols = 300; // over 128 to exercise run splitting
        let mut data = Vec::new();
        for r in 0..7u16 {
            for c in 0..cols as u16 {
                let v: i16 = if c < 140 {
                    -1000
                } else if c % 3 == 0 {
                    (r * 7 + c) as i16
                } else {
                    42
                };
                data.extend_from_slice(&v.to_le_bytes());
            }
        }
        let enc = encode_frame(&data, cols, 2);
        assert_eq!(u32::from_le_bytes(enc[0..4].try_into().unwrap()), 2);
        let o1 = u32::from_le_bytes(enc[4..8].try_into().unwrap()) as usize;
        let o2 = u32::from_le_bytes(enc[8..12].try_into().unwrap()) as usize;
        assert_eq!(o1, 64);
        let hi = unpack(&enc[o1..o2], data.len() / 2);
        let lo = unpack(&enc[o2..], data.len() / 2);
        let back: Vec<u8> = lo.iter().zip(&hi).flat_map(|(l, h)| [*l, *h]).collect();
        assert_eq!(back, data);
        assert_eq!(enc.len() % 2, 0);
    }
}
