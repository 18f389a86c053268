//! A JPEG DCT decoder (ITU-T T.81, Huffman coding) for the greyscale codestreams that
//! jpeg-decoder 0.3 refuses: 12-bit sample precision (JPEG Extended, Process 2 & 4,
//! the usual lossy codec of 12-bit CT) and the retired progressive syntaxes (Spectral
//! Selection, Process 6 & 8; Full Progression, Process 10 & 12).
//!
//! Sequential and progressive scans (T.81 Annex F and G) of one component, 8- or 12-bit,
//! with restart intervals. Coefficients are collected over all scans, then dequantised
//! and inverse transformed with an exact (f64) IDCT, rounded to nearest: within the
//! ISO/IEC 10918-2 accuracy bound by construction. Arithmetic coding, hierarchical
//! mode, lossless processes and more than one component are refused with
//! [`JpegError::Unsupported`]; 8-bit baseline and colour stay with jpeg-decoder.

/// Why a codestream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    /// The codestream ends before the image does.
    #[error("JPEG codestream truncated ({0})")]
    Truncated(&'static str),
    /// The codestream breaks T.81.
    #[error("invalid JPEG codestream: {0}")]
    Invalid(String),
    /// A valid codestream using a feature this decoder does not implement.
    #[error("unsupported JPEG feature: {0}")]
    Unsupported(String),
}

type Result<T, E = JpegError> = std::result::Result<T, E>;

/// What the frame header (SOFn) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The SOF marker's second byte (0xC0 baseline, 0xC1 extended, 0xC2 progressive, ...).
    pub sof: u8,
    /// Sample precision P, bits.
    pub precision: u8,
    /// Number of lines Y.
    pub height: u16,
    /// Samples per line X.
    pub width: u16,
    /// Number of components Nf.
    pub components: u8,
}

/// A decoded greyscale image.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The frame header.
    pub header: FrameHeader,
    /// Samples as `[row, column]`, in `0..2^precision`.
    pub samples: Vec<u16>,
}

/// Zig-zag index to natural (row-major) index (T.81 Figure A.6).
#[rustfmt::skip]
const ZIGZAG: [usize; 64] = [
     0,  1,  8, 16,  9,  2,  3, 10,
    17, 24, 32, 25, 18, 11,  4,  5,
    12, 19, 26, 33, 40, 48, 41, 34,
    27, 20, 13,  6,  7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36,
    29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46,
    53, 60, 61, 54, 47, 55, 62, 63,
];

fn be16(data: &[u8], pos: usize) -> Result<u16> {
    data.get(pos..pos + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(JpegError::Truncated("marker segment"))
}

/// The body of the marker segment starting at `pos` (just after the marker).
fn segment(data: &[u8], pos: usize) -> Result<&[u8]> {
    let len = usize::from(be16(data, pos)?);
    if len < 2 {
        return Err(JpegError::Invalid(format!("marker segment length {len}")));
    }
    data.get(pos + 2..pos + len)
        .ok_or(JpegError::Truncated("marker segment"))
}

/// Parses the first frame header (SOFn) of `data`.
pub fn frame_header(data: &[u8]) -> Result<FrameHeader> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(JpegError::Invalid("no SOI marker".to_owned()));
    }
    let mut pos = 2;
    loop {
        let (marker, next) = next_marker(data, pos)?;
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return parse_sof(marker, segment(data, next)?);
            }
            0xD9 | 0xDA => return Err(JpegError::Invalid("no frame header".to_owned())),
            _ => pos = next + usize::from(be16(data, next)?),
        }
    }
}

/// The marker at or after `pos`, and the position after it: fill bytes (`FF FF`) and
/// stuffed zeros (`FF 00`, entropy-coded data) are skipped.
fn next_marker(data: &[u8], mut pos: usize) -> Result<(u8, usize)> {
    loop {
        while data.get(pos) != Some(&0xFF) {
            pos += 1;
            if pos >= data.len() {
                return Err(JpegError::Truncated("looking for a marker"));
            }
        }
        while data.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        match data.get(pos) {
            None => return Err(JpegError::Truncated("marker")),
            Some(0x00) => pos += 1,
            Some(&m) => return Ok((m, pos + 1)),
        }
    }
}

fn parse_sof(sof: u8, s: &[u8]) -> Result<FrameHeader> {
    if s.len() < 6 {
        return Err(JpegError::Truncated("frame header"));
    }
    Ok(FrameHeader {
        sof,
        precision: s[0],
        height: u16::from_be_bytes([s[1], s[2]]),
        width: u16::from_be_bytes([s[3], s[4]]),
        components: s[5],
    })
}

/// A Huffman table (T.81 Annex C, decoding per F.2.2.3).
#[derive(Debug, Clone)]
struct Huffman {
    /// Largest code of each length 1..=16 (index = length), -1 when none.
    maxcode: [i32; 17],
    /// Index into `values` of the first code of each length, minus that code.
    valoffset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8], values: &[u8]) -> Result<Self> {
        let mut maxcode = [-1i32; 17];
        let mut valoffset = [0i32; 17];
        let (mut code, mut k) = (0i32, 0i32);
        for len in 1..=16 {
            let n = i32::from(counts[len - 1]);
            if n > 0 {
                valoffset[len] = k - code;
                code += n;
                k += n;
                maxcode[len] = code - 1;
            }
            if code > 1 << len {
                return Err(JpegError::Invalid("Huffman table overfull".to_owned()));
            }
            code <<= 1;
        }
        if k as usize != values.len() {
            return Err(JpegError::Invalid("Huffman table length".to_owned()));
        }
        Ok(Self {
            maxcode,
            valoffset,
            values: values.to_vec(),
        })
    }
}

/// The entropy-coded segment reader (T.81 F.2.2.5): removes stuffed zero bytes and
/// stops at a marker, feeding zeros after it.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    count: u32,
    at_marker: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos,
            acc: 0,
            count: 0,
            at_marker: false,
        }
    }

    fn fill(&mut self) {
        while self.count <= 56 {
            let mut byte = 0u8;
            if !self.at_marker {
                match self.data.get(self.pos..) {
                    Some([0xFF, 0x00, ..]) => {
                        byte = 0xFF;
                        self.pos += 2;
                    }
                    Some([0xFF, 0xFF, ..]) => {
                        // Fill byte before a marker.
                        self.pos += 1;
                        continue;
                    }
                    Some([0xFF, ..]) | Some([]) | None => self.at_marker = true,
                    Some([b, ..]) => {
                        byte = *b;
                        self.pos += 1;
                    }
                }
            }
            self.acc |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
    }

    fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.count < n {
            self.fill();
        }
        let v = (self.acc >> (64 - n)) as u32;
        self.acc <<= n;
        self.count -= n;
        v
    }

    fn bit(&mut self) -> bool {
        self.bits(1) == 1
    }

    fn decode(&mut self, table: &Huffman) -> Result<u8> {
        if self.count < 16 {
            self.fill();
        }
        let peek = (self.acc >> 48) as i32;
        for len in 1..=16 {
            let code = peek >> (16 - len);
            if code <= table.maxcode[len] {
                self.acc <<= len;
                self.count -= len as u32;
                let i = (code + table.valoffset[len]) as usize;
                return table
                    .values
                    .get(i)
                    .copied()
                    .ok_or_else(|| JpegError::Invalid("Huffman code".to_owned()));
            }
        }
        Err(JpegError::Invalid("bad Huffman code".to_owned()))
    }

    /// RECEIVE and EXTEND (T.81 F.2.2.1) of a magnitude category `s` (at most 15 for
    /// 12-bit DCT coefficients, T.81 Table F.2).
    fn receive_extend(&mut self, s: u8) -> Result<i32> {
        if s == 0 {
            return Ok(0);
        }
        if s > 15 {
            return Err(JpegError::Invalid(format!("magnitude category {s}")));
        }
        let v = self.bits(u32::from(s)) as i32;
        Ok(if v < 1 << (s - 1) {
            v - (1 << s) + 1
        } else {
            v
        })
    }

    /// Skips to after the next RSTn marker and resets the bit buffer.
    fn restart(&mut self) -> Result<()> {
        self.acc = 0;
        self.count = 0;
        self.at_marker = false;
        let (marker, next) = next_marker(self.data, self.pos)?;
        if !(0xD0..=0xD7).contains(&marker) {
            return Err(JpegError::Invalid(format!(
                "expected RSTn, found FF{marker:02X}"
            )));
        }
        self.pos = next;
        Ok(())
    }
}

/// One scan's parameters (T.81 B.2.3).
struct Scan {
    dc: usize,
    ac: usize,
    ss: usize,
    se: usize,
    ah: u8,
    al: u8,
}

/// Decodes a one-component Huffman DCT codestream (SOF0, SOF1 or SOF2).
pub fn decode(data: &[u8]) -> Result<Image> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err(JpegError::Invalid("no SOI marker".to_owned()));
    }
    let mut quant: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dc_tables: [Option<Huffman>; 4] = Default::default();
    let mut ac_tables: [Option<Huffman>; 4] = Default::default();
    let mut header: Option<(FrameHeader, u8, usize)> = None; // (header, component id, Tq)
    let mut restart_interval = 0usize;
    let mut coefs: Vec<i32> = Vec::new();
    let (mut blocks_w, mut blocks_h) = (0usize, 0usize);
    let mut qtable: Option<[u16; 64]> = None;
    let mut pos = 2;
    loop {
        let (marker, next) = next_marker(data, pos)?;
        match marker {
            0xD9 => break,
            0xDB => {
                let s = segment(data, next)?;
                let mut i = 0;
                while i < s.len() {
                    let (pq, tq) = (s[i] >> 4, usize::from(s[i] & 15));
                    let size = if pq == 0 { 64 } else { 128 };
                    let body = s
                        .get(i + 1..i + 1 + size)
                        .ok_or(JpegError::Truncated("quantisation table"))?;
                    let mut t = [0u16; 64];
                    for (k, q) in t.iter_mut().enumerate() {
                        *q = if pq == 0 {
                            u16::from(body[k])
                        } else {
                            u16::from_be_bytes([body[2 * k], body[2 * k + 1]])
                        };
                    }
                    *quant
                        .get_mut(tq)
                        .ok_or_else(|| JpegError::Invalid(format!("quantisation table {tq}")))? =
                        Some(t);
                    i += 1 + size;
                }
                pos = next + s.len() + 2;
            }
            0xC4 => {
                let s = segment(data, next)?;
                let mut i = 0;
                while i < s.len() {
                    let (tc, th) = (s[i] >> 4, usize::from(s[i] & 15));
                    let counts = s.get(i + 1..i + 17).ok_or(JpegError::Truncated("DHT"))?;
                    let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let values = s
                        .get(i + 17..i + 17 + n)
                        .ok_or(JpegError::Truncated("DHT"))?;
                    let table = Huffman::new(counts, values)?;
                    let slot = match tc {
                        0 => dc_tables.get_mut(th),
                        _ => ac_tables.get_mut(th),
                    }
                    .ok_or_else(|| JpegError::Invalid(format!("Huffman table {th}")))?;
                    *slot = Some(table);
                    i += 17 + n;
                }
                pos = next + s.len() + 2;
            }
            0xDD => {
                restart_interval = usize::from(be16(data, next + 2)?);
                pos = next + 4;
            }
            0xC0..=0xC2 => {
                let s = segment(data, next)?;
                let h = parse_sof(marker, s)?;
                if h.components != 1 {
                    return Err(JpegError::Unsupported(format!(
                        "{} components",
                        h.components
                    )));
                }
                if h.precision != 8 && h.precision != 12 {
                    return Err(JpegError::Unsupported(format!("precision {}", h.precision)));
                }
                if h.height == 0 || h.width == 0 {
                    return Err(JpegError::Unsupported("DNL-defined height".to_owned()));
                }
                let c = s.get(6..9).ok_or(JpegError::Truncated("frame header"))?;
                header = Some((h, c[0], usize::from(c[2] & 3)));
                blocks_w = usize::from(h.width).div_ceil(8);
                blocks_h = usize::from(h.height).div_ceil(8);
                coefs = vec![0; blocks_w * blocks_h * 64];
                pos = next + s.len() + 2;
            }
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(JpegError::Unsupported(format!(
                    "SOF{} (lossless, hierarchical or arithmetic coding)",
                    marker - 0xC0
                )));
            }
            0xDA => {
                let (h, id, tq) = header
                    .ok_or_else(|| JpegError::Invalid("scan before frame header".to_owned()))?;
                let s = segment(data, next)?;
                if s.first() != Some(&1) || s.len() < 6 || s[1] != id {
                    return Err(JpegError::Invalid("scan header".to_owned()));
                }
                let scan = Scan {
                    dc: usize::from(s[2] >> 4),
                    ac: usize::from(s[2] & 15),
                    ss: usize::from(s[3]),
                    se: usize::from(s[4]),
                    ah: s[5] >> 4,
                    al: s[5] & 15,
                };
                if qtable.is_none() {
                    // Latched at the component's first scan, as libjpeg does.
                    qtable = quant[tq];
                }
                let mut bits = Bits::new(data, next + s.len() + 2);
                decode_scan(
                    &mut bits,
                    &scan,
                    h.sof == 0xC2,
                    &dc_tables,
                    &ac_tables,
                    restart_interval,
                    &mut coefs,
                    blocks_w * blocks_h,
                )?;
                pos = bits.pos;
            }
            0xD0..=0xD7 | 0x01 => pos = next,
            _ => pos = next + usize::from(be16(data, next)?),
        }
    }
    let (h, _, _) = header.ok_or_else(|| JpegError::Invalid("no frame header".to_owned()))?;
    let q = qtable.ok_or_else(|| JpegError::Invalid("no scan".to_owned()))?;
    Ok(Image {
        header: h,
        samples: reconstruct(&h, &coefs, &q, blocks_w),
    })
}

/// Decodes one scan's entropy-coded data into `coefs` (natural order per block).
#[allow(clippy::too_many_arguments)]
fn decode_scan(
    bits: &mut Bits<'_>,
    scan: &Scan,
    progressive: bool,
    dc_tables: &[Option<Huffman>; 4],
    ac_tables: &[Option<Huffman>; 4],
    restart_interval: usize,
    coefs: &mut [i32],
    blocks: usize,
) -> Result<()> {
    fn table(tables: &[Option<Huffman>; 4], i: usize) -> Result<&Huffman> {
        tables
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| JpegError::Invalid(format!("missing Huffman table {i}")))
    }
    let needs_dc = scan.ss == 0 && scan.ah == 0;
    let dc = if needs_dc {
        Some(table(dc_tables, scan.dc)?)
    } else {
        None
    };
    let ac = if scan.se > 0 {
        Some(table(ac_tables, scan.ac)?)
    } else {
        None
    };
    if !progressive && (scan.ss != 0 || scan.se != 63 || scan.ah != 0 || scan.al != 0) {
        return Err(JpegError::Invalid(
            "sequential scan with spectral selection".to_owned(),
        ));
    }
    if scan.se > 63 || scan.ss > scan.se || (scan.ss == 0 && scan.se != 0 && progressive) {
        return Err(JpegError::Invalid("spectral selection".to_owned()));
    }
    let (mut pred, mut eobrun) = (0i32, 0u32);
    for b in 0..blocks {
        if restart_interval > 0 && b > 0 && b % restart_interval == 0 {
            bits.restart()?;
            pred = 0;
            eobrun = 0;
        }
        let block = &mut coefs[b * 64..(b + 1) * 64];
        if !progressive {
            let t = bits.decode(dc.expect("sequential scans have DC"))?;
            pred = pred.wrapping_add(bits.receive_extend(t)?);
            block[0] = pred;
            decode_ac_first(
                bits,
                ac.expect("sequential scans have AC"),
                block,
                1,
                63,
                0,
                &mut eobrun,
            )?;
        } else if scan.ss == 0 {
            if scan.ah == 0 {
                let t = bits.decode(dc.expect("DC first scans have a DC table"))?;
                pred = pred.wrapping_add(bits.receive_extend(t)?);
                block[0] = pred.wrapping_shl(u32::from(scan.al));
            } else if bits.bit() {
                block[0] |= 1 << scan.al;
            }
        } else if scan.ah == 0 {
            let ac = ac.expect("AC scans have an AC table");
            decode_ac_first(bits, ac, block, scan.ss, scan.se, scan.al, &mut eobrun)?;
        } else {
            let ac = ac.expect("AC scans have an AC table");
            decode_ac_refine(bits, ac, block, scan.ss, scan.se, scan.al, &mut eobrun)?;
        }
    }
    Ok(())
}

/// AC coefficients of a sequential block, or of a progressive first AC scan (G.1.2.2).
fn decode_ac_first(
    bits: &mut Bits<'_>,
    ac: &Huffman,
    block: &mut [i32],
    ss: usize,
    se: usize,
    al: u8,
    eobrun: &mut u32,
) -> Result<()> {
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    let mut k = ss;
    while k <= se {
        let rs = bits.decode(ac)?;
        let (r, s) = (usize::from(rs >> 4), rs & 15);
        if s == 0 {
            if r < 15 {
                *eobrun = (1u32 << r) - 1 + bits.bits(r as u32);
                break;
            }
            k += 16;
            continue;
        }
        k += r;
        let z = *ZIGZAG
            .get(k)
            .ok_or_else(|| JpegError::Invalid("AC run past the block".to_owned()))?;
        block[z] = bits.receive_extend(s)? * (1 << al);
        k += 1;
    }
    Ok(())
}

/// A progressive AC refinement scan of one block (G.1.2.3), as libjpeg's
/// `decode_mcu_AC_refine`.
fn decode_ac_refine(
    bits: &mut Bits<'_>,
    ac: &Huffman,
    block: &mut [i32],
    ss: usize,
    se: usize,
    al: u8,
    eobrun: &mut u32,
) -> Result<()> {
    let (p1, m1) = (1i32 << al, -1i32 << al);
    let refine = |bits: &mut Bits<'_>, c: &mut i32| {
        if bits.bit() && *c & p1 == 0 {
            *c += if *c >= 0 { p1 } else { m1 };
        }
    };
    let mut k = ss;
    if *eobrun == 0 {
        while k <= se {
            let rs = bits.decode(ac)?;
            let (mut r, s) = (i32::from(rs >> 4), rs & 15);
            let mut value = 0;
            if s != 0 {
                value = if bits.bit() { p1 } else { m1 };
            } else if r != 15 {
                *eobrun = (1u32 << r) + bits.bits(r as u32);
                break;
            }
            while k <= se {
                let c = &mut block[ZIGZAG[k]];
                if *c != 0 {
                    refine(bits, c);
                } else {
                    r -= 1;
                    if r < 0 {
                        break;
                    }
                }
                k += 1;
            }
            if value != 0 {
                let z = *ZIGZAG
                    .get(k)
                    .ok_or_else(|| JpegError::Invalid("AC run past the block".to_owned()))?;
                block[z] = value;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        while k <= se {
            let c = &mut block[ZIGZAG[k]];
            if *c != 0 {
                refine(bits, c);
            }
            k += 1;
        }
        *eobrun -= 1;
    }
    Ok(())
}

/// Dequantises and inverse transforms every block (T.81 A.3.3), level shifts by
/// 2^(P-1) and clamps to `0..2^P`.
fn reconstruct(h: &FrameHeader, coefs: &[i32], q: &[u16; 64], blocks_w: usize) -> Vec<u16> {
    // cos_table[x][u] = C(u)/2 * cos((2x+1) u pi / 16)
    let mut cos_table = [[0f64; 8]; 8];
    for (x, row) in cos_table.iter_mut().enumerate() {
        for (u, c) in row.iter_mut().enumerate() {
            let cu = if u == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            };
            *c = cu / 2.0 * (((2 * x + 1) * u) as f64 * std::f64::consts::PI / 16.0).cos();
        }
    }
    // Quantisation tables are stored in zig-zag order.
    let mut qn = [0f64; 64];
    for (k, &z) in ZIGZAG.iter().enumerate() {
        qn[z] = f64::from(q[k]);
    }
    let (w, hgt) = (usize::from(h.width), usize::from(h.height));
    let max = (1i32 << h.precision) - 1;
    let shift = f64::from(1 << (h.precision - 1));
    let mut out = vec![0u16; w * hgt];
    for (b, block) in coefs.chunks_exact(64).enumerate() {
        let (by, bx) = (b / blocks_w, b % blocks_w);
        let mut f = [0f64; 64];
        for ((f, &c), &q) in f.iter_mut().zip(block).zip(&qn) {
            *f = f64::from(c) * q;
        }
        // Along rows: tmp[v][x] = sum over u of C(u)/2 cos((2x+1)u pi/16) F[v][u].
        let mut tmp = [0f64; 64];
        for (tmp_row, f_row) in tmp.chunks_exact_mut(8).zip(f.chunks_exact(8)) {
            for (t, cos_x) in tmp_row.iter_mut().zip(&cos_table) {
                *t = cos_x.iter().zip(f_row).map(|(c, f)| c * f).sum();
            }
        }
        // Along columns, then level shift, round and clamp.
        for (y, cos_y) in cos_table.iter().enumerate() {
            let py = by * 8 + y;
            if py >= hgt {
                break;
            }
            for x in 0..8.min(w - bx * 8) {
                let s: f64 = cos_y
                    .iter()
                    .enumerate()
                    .map(|(v, c)| c * tmp[v * 8 + x])
                    .sum();
                out[py * w + bx * 8 + x] = ((s + shift).round() as i32).clamp(0, max) as u16;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame header segment (SOFn) for a one-component image.
    fn sof(marker: u8, precision: u8, h: u16, w: u16) -> Vec<u8> {
        let mut out = vec![0xFF, marker, 0, 11, precision];
        out.extend(h.to_be_bytes());
        out.extend(w.to_be_bytes());
        out.extend([1, 1, 0x11, 0]);
        out
    }

    #[test]
    fn issue_3_jpeg_frame_header_is_read() {
        let mut data = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0];
        data.extend(sof(0xC1, 12, 512, 256));
        let h = frame_header(&data).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                sof: 0xC1,
                precision: 12,
                height: 512,
                width: 256,
                components: 1
            }
        );
    }

    #[test]
    fn issue_3_jpeg_unsupported_and_malformed_codestreams_are_typed_errors() {
        let with = |segments: &[Vec<u8>]| {
            let mut d = vec![0xFF, 0xD8];
            for s in segments {
                d.extend(s);
            }
            d
        };
        assert!(matches!(decode(b""), Err(JpegError::Invalid(_))));
        assert!(matches!(
            decode(&[0xFF, 0xD8]),
            Err(JpegError::Truncated(_))
        ));
        assert!(matches!(
            decode(&with(&[sof(0xC3, 16, 8, 8)])),
            Err(JpegError::Unsupported(_))
        ));
        assert!(matches!(
            decode(&with(&[sof(0xC9, 12, 8, 8)])),
            Err(JpegError::Unsupported(_))
        ));
        assert!(matches!(
            decode(&with(&[sof(0xC1, 16, 8, 8)])),
            Err(JpegError::Unsupported(_))
        ));
        assert!(matches!(
            decode(&with(&[sof(0xC1, 12, 0, 8)])),
            Err(JpegError::Unsupported(_))
        ));
        // A scan before any Huffman table.
        let sos = vec![0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0];
        assert!(matches!(
            decode(&with(&[sof(0xC1, 12, 8, 8), sos, vec![0, 0, 0xFF, 0xD9]])),
            Err(JpegError::Invalid(_))
        ));
    }

    #[test]
    fn issue_3_jpeg_decoder_never_panics_on_garbage() {
        // Deterministic pseudo-random bytes after a valid frame header and tables.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        };
        let mut dht = vec![0xFF, 0xC4, 0, 2 + 17 + 2, 0x00];
        dht.extend([0, 2]); // two 2-bit codes
        dht.extend([0; 14]);
        dht.extend([0, 1]);
        let mut ac = vec![0xFF, 0xC4, 0, 2 + 17 + 2, 0x10];
        ac.extend([0, 2]);
        ac.extend([0; 14]);
        ac.extend([0x00, 0x01]);
        let dqt = {
            let mut d = vec![0xFF, 0xDB, 0, 67, 0];
            d.extend([1u8; 64]);
            d
        };
        for progressive in [false, true] {
            for _ in 0..200 {
                let mut data = vec![0xFF, 0xD8];
                data.extend(&dqt);
                data.extend(&dht);
                data.extend(&ac);
                data.extend(sof(if progressive { 0xC2 } else { 0xC1 }, 12, 16, 16));
                let (ss, se, ah_al) = if progressive {
                    (next() % 64, next() % 64, next())
                } else {
                    (0, 63, 0)
                };
                data.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, ss, se, ah_al]);
                let n = usize::from(next());
                data.extend((0..n).map(|_| next()));
                // Must return, with an image or an error; a panic fails the test.
                if let Ok(image) = decode(&data) {
                    assert_eq!(image.samples.len(), 16 * 16);
                }
            }
        }
    }
}
