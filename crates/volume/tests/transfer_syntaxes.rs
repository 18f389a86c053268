//! Issue 3, transfer syntaxes: every real CT file decodes, bit-exact where lossless
//! (<https://example.invalid/spinewatch/issues/3>).
//!
//! Our stored values ([`decode_stored_frame`], before rescale) are compared with
//! pydicom's reading of the same file (`crates/testkit/py/decode_reference.py`, with
//! pylibjpeg and pyjpegls as its codecs), frame by frame:
//!
//! - lossless transfer syntaxes, and JPEG-LS near-lossless (its decoding is exact
//!   integer arithmetic, ISO/IEC 14495-1, so two conforming decoders agree bit for
//!   bit), must match exactly;
//! - JPEG DCT and JPEG 2000 irreversible within the named tolerances below, which are
//!   what conforming decoders may legitimately differ by, not what this data happens
//!   to need.
//!
//! Real data come from `../shared/data` (or `SPINEWATCH_REAL_DATA`); where it is absent
//! the tests skip with a message. pydicom and the files of the PyPI package
//! `pydicom-data` come from the project venv (`scripts/setup --tests`): missing, they
//! skip, except under `CI=true` where they fail.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Command;

use spinewatch_testkit::peers;
use spinewatch_volume::header::{self, CT_IMAGE_STORAGE, ENHANCED_CT_IMAGE_STORAGE};
use spinewatch_volume::hu::{HuVolume, StoredFrame, decode_stored_frame};
use spinewatch_volume::{Error, SortedSeries, series};

/// Largest |ours - reference| for a greyscale JPEG DCT frame (baseline, extended,
/// progressive). ISO/IEC 10918-2 (compliance testing) accepts a decoder whose
/// reconstructed samples are within 1 of the reference decoder's: the IDCT is not
/// specified bit for bit. Ours (jpeg-decoder's integer IDCT for 8-bit, an exact f64
/// IDCT for 12-bit) and libjpeg's are each within that, so they may differ by 2.
const JPEG_DCT_ATOL: i32 = 2;
/// Largest mean |ours - reference| for a greyscale JPEG DCT frame: IDCT rounding
/// differences are sparse (samples near a .5 tie), so most samples agree; a mean above
/// a quarter of a grey level means a systematic error (level shift, precision, tables).
const JPEG_DCT_MEAN_ATOL: f64 = 0.25;
/// Largest |ours - reference| for a colour (YCbCr-coded, not subsampled) JPEG DCT frame,
/// per RGB sample: Y, Cb and Cr may each differ by the IDCT's 2, and the YCbCr->RGB
/// matrix (ITU-T T.871) scales Cb by up to 1.772 into B, and each decoder rounds once:
/// 2 + 1.772 * 2 + 2 * 0.5 = 6.5.
const JPEG_DCT_COLOUR_ATOL: i32 = 6;
/// Largest |ours - reference| for a colour JPEG DCT frame with subsampled chroma
/// (YBR_FULL_422): T.81 leaves chroma upsampling to the application (replication, or
/// libjpeg's triangular "fancy" filter), which places an edge pixel's Cb a quarter of
/// the neighbouring chroma step (at most 255 / 4) apart; scaled by 1.772 into B, on top
/// of the non-subsampled bound: 6 + 1.772 * 63.75 = 119. Two reference decoders,
/// libjpeg (pylibjpeg) and libjpeg-turbo (Pillow), differ by 12 on the cornerstone test
/// pattern, as we do. Greyscale CT never has chroma.
const JPEG_DCT_SUBSAMPLED_COLOUR_ATOL: i32 = 119;
/// Largest mean |ours - reference| for a colour JPEG DCT frame: the differences above
/// sit on colour edges and rounding ties, so most samples agree.
const JPEG_DCT_COLOUR_MEAN_ATOL: f64 = 1.0;
/// Largest |ours - reference| for JPEG 2000 irreversible (9/7 wavelet): its inverse DWT
/// and inverse ICT run in floating point, which ISO/IEC 15444-1 does not fix bit for
/// bit (15444-4 conformance bounds the peak error instead), so a decoder that orders
/// the arithmetic differently may round a sample landing near .5 the other way: 1.
/// openjp2 is a translation of OpenJPEG, the reference's codec (pylibjpeg-openjpeg),
/// and agrees bit for bit today; the bound keeps a codec update that reorders
/// arithmetic from failing, while anything larger is a real error.
const J2K_IRREVERSIBLE_ATOL: i32 = 1;
/// Largest mean |ours - reference| for JPEG 2000 irreversible (see above): only the
/// samples that round differently differ.
const J2K_IRREVERSIBLE_MEAN_ATOL: f64 = 0.05;

/// Python modules the reference needs: pydicom and its codecs.
const REFERENCE_MODULES: &[&str] = &[
    "pydicom",
    "numpy",
    "pylibjpeg",
    "libjpeg",
    "openjpeg",
    "jpeg_ls",
];

/// How a transfer syntax's decoded values may differ from the reference's.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tolerance {
    /// Bit-exact.
    Exact,
    /// Largest absolute and mean absolute difference.
    Within { max: i32, mean: f64 },
}

/// The tolerance for `transfer_syntax_uid` with `samples` per pixel, chroma subsampled
/// or not (as the data set's PhotometricInterpretation says).
fn tolerance(transfer_syntax_uid: &str, samples: u16, subsampled: bool) -> Tolerance {
    match transfer_syntax_uid {
        // JPEG Baseline, Extended, Spectral Selection, Full Progression.
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.53"
        | "1.2.840.10008.1.2.4.55" => {
            let (max, mean) = match (samples, subsampled) {
                (1, _) => (JPEG_DCT_ATOL, JPEG_DCT_MEAN_ATOL),
                (_, false) => (JPEG_DCT_COLOUR_ATOL, JPEG_DCT_COLOUR_MEAN_ATOL),
                (_, true) => (JPEG_DCT_SUBSAMPLED_COLOUR_ATOL, JPEG_DCT_COLOUR_MEAN_ATOL),
            };
            Tolerance::Within { max, mean }
        }
        // JPEG 2000 (irreversible allowed), Part 2, HTJ2K.
        "1.2.840.10008.1.2.4.91" | "1.2.840.10008.1.2.4.93" | "1.2.840.10008.1.2.4.203" => {
            Tolerance::Within {
                max: J2K_IRREVERSIBLE_ATOL,
                mean: J2K_IRREVERSIBLE_MEAN_ATOL,
            }
        }
        // Everything else, JPEG-LS near-lossless included, is decoded exactly.
        _ => Tolerance::Exact,
    }
}

/// pydicom's reading of one file.
#[derive(Debug)]
struct Reference {
    transfer_syntax_uid: Option<String>,
    decoder: Option<String>,
    rows: u32,
    cols: u32,
    samples: u16,
    frames: u32,
    /// PhotometricInterpretation of the data set (before any colour conversion).
    photometric_interpretation: String,
    /// `[frame, row, column, sample]`.
    values: Vec<i32>,
    error: Option<String>,
}

/// Runs the reference decoder on `files`; `None` when pydicom is missing (and not CI).
fn reference(files: &[PathBuf]) -> Option<Vec<Reference>> {
    let python = peers::require(
        "pydicom with pylibjpeg and pyjpegls",
        peers::python_with(REFERENCE_MODULES),
    )?;
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(python)
        .arg(peers::script("decode_reference.py"))
        .arg("--values-dir")
        .arg(dir.path())
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "decode_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refs: Vec<Reference> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let u = |k: &str| v[k].as_u64().unwrap_or(0);
            let values = v["values_file"].as_str().map_or_else(Vec::new, |f| {
                std::fs::read(f)
                    .unwrap()
                    .chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            });
            Reference {
                transfer_syntax_uid: v["transfer_syntax_uid"].as_str().map(str::to_owned),
                decoder: v["decoder"].as_str().map(str::to_owned),
                rows: u("rows") as u32,
                cols: u("cols") as u32,
                samples: u("samples_per_pixel") as u16,
                frames: u("frames") as u32,
                photometric_interpretation: v["photometric_interpretation"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                values,
                error: v["error"].as_str().map(str::to_owned),
            }
        })
        .collect();
    assert_eq!(refs.len(), files.len(), "one reference line per file");
    Some(refs)
}

/// Max and mean absolute difference.
fn diff(ours: &[i32], theirs: &[i32]) -> (i32, f64) {
    let (max, sum) = ours
        .iter()
        .zip(theirs)
        .fold((0i32, 0u64), |(m, s), (a, b)| {
            let d = (a - b).abs();
            (m.max(d), s + d as u64)
        });
    (max, sum as f64 / ours.len().max(1) as f64)
}

/// What happened to one file.
#[derive(Debug)]
enum Outcome {
    /// Decoded and matched within its tolerance (max and mean abs diff, tolerance).
    Matched {
        max: i32,
        mean: f64,
        tolerance: Tolerance,
    },
    /// Decoded, but differs more than its tolerance allows.
    Mismatch(String),
    /// Our decoder refused it with this typed error.
    Refused(String),
    /// Our decoder panicked.
    Panicked(String),
}

/// Decodes every frame of `path` and compares it with `reference`.
fn check(path: &Path, reference: &Reference) -> Outcome {
    let frames = reference.frames.max(1);
    let mut worst = (0, 0.0);
    let mut tol = Tolerance::Exact;
    for f in 0..frames {
        let ours = match catch_unwind(AssertUnwindSafe(|| decode_stored_frame(path, f))) {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return Outcome::Refused(chain(&e)),
            Err(p) => return Outcome::Panicked(panic_message(p)),
        };
        if reference.error.is_some() {
            // Nothing to compare with; the caller reports this.
            return Outcome::Matched {
                max: 0,
                mean: 0.0,
                tolerance: Tolerance::Exact,
            };
        }
        let StoredFrame {
            rows,
            cols,
            samples_per_pixel,
            ref values,
            ref transfer_syntax_uid,
            ..
        } = ours;
        if (rows, cols, samples_per_pixel) != (reference.rows, reference.cols, reference.samples) {
            return Outcome::Mismatch(format!(
                "shape {rows}x{cols}x{samples_per_pixel}, reference {}x{}x{}",
                reference.rows, reference.cols, reference.samples
            ));
        }
        let n = values.len();
        let theirs = &reference.values[f as usize * n..(f as usize + 1) * n];
        let subsampled = ["_422", "_420", "_411"]
            .iter()
            .any(|s| reference.photometric_interpretation.ends_with(s));
        tol = tolerance(transfer_syntax_uid, samples_per_pixel, subsampled);
        let (max, mean) = diff(values, theirs);
        worst = (worst.0.max(max), f64::max(worst.1, mean));
        let ok = match tol {
            Tolerance::Exact => max == 0,
            Tolerance::Within { max: m, mean: a } => max <= m && mean <= a,
        };
        if !ok {
            return Outcome::Mismatch(format!(
                "frame {f}: max |diff| {max}, mean |diff| {mean:.4}, allowed {tol:?}"
            ));
        }
    }
    Outcome::Matched {
        max: worst.0,
        mean: worst.1,
        tolerance: tol,
    }
}

/// An error with its sources, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        write!(s, ": {c}").unwrap();
        src = c.source();
    }
    s
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned())
}

/// Files we are known not to decode, by file name, with why; anything else must match.
type Expected = BTreeMap<&'static str, (fn(&Error) -> bool, &'static str)>;

/// Runs [`check`] on every file, prints a table, and fails on anything unexpected.
fn run(files: &[PathBuf], refused_ok: &Expected) {
    let Some(refs) = reference(files) else {
        return;
    };
    let mut report = String::new();
    let mut failures = Vec::new();
    for (path, r) in files.iter().zip(&refs) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ts = r.transfer_syntax_uid.as_deref().unwrap_or("?");
        let outcome = check(path, r);
        let line = match (&outcome, &r.error) {
            (Outcome::Matched { .. }, Some(e)) => {
                failures.push(format!(
                    "{name}: we decode it but the reference cannot ({e})"
                ));
                format!("decoded, no reference: {e}")
            }
            (
                Outcome::Matched {
                    max,
                    mean,
                    tolerance,
                },
                None,
            ) => match tolerance {
                Tolerance::Exact => format!("bit-exact ({})", r.decoder.as_deref().unwrap_or("")),
                Tolerance::Within { .. } => format!(
                    "max |diff| {max}, mean |diff| {mean:.4} ({}, allowed {tolerance:?})",
                    r.decoder.as_deref().unwrap_or("")
                ),
            },
            (Outcome::Refused(e), _) => {
                match refused_ok.get(name.as_str()) {
                    None => failures.push(format!("{name}: refused: {e}")),
                    Some((typed, _)) => {
                        let err = decode_stored_frame(path, 0).unwrap_err();
                        if !typed(&err) {
                            failures.push(format!("{name}: refused with another error: {e}"));
                        }
                    }
                }
                format!("refused: {e}")
            }
            (Outcome::Mismatch(m), _) => {
                failures.push(format!("{name}: {m}"));
                format!("MISMATCH: {m}")
            }
            (Outcome::Panicked(m), _) => {
                failures.push(format!("{name}: panicked: {m}"));
                format!("PANIC: {m}")
            }
        };
        writeln!(report, "{name:<58} {ts:<24} {line}").unwrap();
    }
    for (name, (_, why)) in refused_ok {
        let refused = report
            .lines()
            .any(|l| l.starts_with(name) && l.contains("refused:"));
        if !refused {
            failures.push(format!(
                "{name}: expected a typed refusal ({why}), but it decoded"
            ));
        }
    }
    eprintln!("{report}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    header::list_files(&[dir.to_owned()]).unwrap()
}

#[test]
fn issue_3_cornerstone_ct_every_transfer_syntax() {
    let Some(data) = peers::real_data() else {
        return;
    };
    let dir = data.join("transfer-syntaxes/cornerstone-ct");
    let files = sorted_files(&dir);
    assert!(files.len() >= 16, "cornerstone-ct holds the 16 CT slices");
    let mut expected: Expected = BTreeMap::new();
    expected.insert(
        "no-pixel-data.dcm",
        (
            |e| matches!(e, Error::Decode { .. }),
            "a Basic Text SR: no Pixel Data to decode",
        ),
    );
    run(&files, &expected);
}

/// The CT files (CT Image Storage, Enhanced CT) of the PyPI package pydicom-data.
fn pydicom_data_ct_files() -> Option<Vec<PathBuf>> {
    let python = peers::require("pydicom-data", peers::python_with(&["data_store"]))?;
    let out = Command::new(python)
        .args([
            "-c",
            "import data_store, os; print(os.path.join(os.path.dirname(data_store.__file__), 'data'))",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let files: Vec<PathBuf> = sorted_files(&dir)
        .into_iter()
        .filter(|f| header::is_part10(f))
        .filter(|f| {
            header::read(f).is_ok_and(|h| {
                h.sop_class_uid == CT_IMAGE_STORAGE || h.sop_class_uid == ENHANCED_CT_IMAGE_STORAGE
            })
        })
        .collect();
    assert!(
        files.len() >= 6,
        "pydicom-data 1.0.0 holds 6 CT files, found {files:?}"
    );
    Some(files)
}

#[test]
fn issue_3_pydicom_data_ct_files() {
    let Some(files) = pydicom_data_ct_files() else {
        return;
    };
    run(&files, &Expected::new());
}

#[test]
fn issue_3_totalseg_jpeg2000_with_empty_uids() {
    let Some(data) = peers::real_data() else {
        return;
    };
    let dir = data.join("ct/totalseg-example-dicom");
    let files: Vec<PathBuf> = sorted_files(&dir)
        .into_iter()
        .filter(|f| header::is_part10(f))
        .collect();
    assert_eq!(files.len(), 20);
    run(&files, &Expected::new());
}

/// Decodes every series of `dir` through the `HuVolume` path, returning one line per
/// series; errors must be typed, never a panic.
fn decode_all_series(dir: &Path) -> Vec<String> {
    let scan = header::scan(&[dir.to_owned()]).unwrap();
    let mut lines: Vec<String> = scan
        .unreadable
        .iter()
        .map(|e| format!("unreadable: {}", chain(e)))
        .collect();
    for s in series::group(scan.headers) {
        let label = s.label();
        let result = catch_unwind(AssertUnwindSafe(|| -> Result<HuVolume, Error> {
            let sorted = SortedSeries::new(&s)?;
            HuVolume::decode(&sorted)
        }));
        lines.push(match result {
            Ok(Ok(v)) => format!("{label}: {:?} voxels", v.data.dim()),
            Ok(Err(e)) => format!("{label}: typed error: {}", chain(&e)),
            Err(p) => panic!(
                "{label} in {} panicked: {}",
                dir.display(),
                panic_message(p)
            ),
        });
    }
    lines
}

#[test]
fn issue_3_every_real_series_decodes_or_gives_a_typed_error() {
    let Some(data) = peers::real_data() else {
        return;
    };
    let mut dirs: Vec<PathBuf> = ["ct", "robustness", "transfer-syntaxes"]
        .iter()
        .flat_map(|d| std::fs::read_dir(data.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        for line in decode_all_series(&dir) {
            eprintln!("{}: {line}", dir.file_name().unwrap().to_string_lossy());
        }
    }
}
