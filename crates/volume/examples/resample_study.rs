//! Reads one study, resamples it to isotropic voxels, locates the spine and makes the
//! sagittal reformat, timing each step: the spinewatch side of
//! `benches/e2e/volume_vs_simpleitk.sh` (issue 3).
//!
//! ```text
//! cargo run --release -p spinewatch-volume --example resample_study -- \
//!     [--common-only] DIR [SPACING_MM]
//! ```
//!
//! Steps: header scan of every file under `DIR`, series grouping and choice, slice sort,
//! pixel decode + HU rescale (`HuVolume::decode`), trilinear resample (default 1 mm):
//! the *common part*, which SimpleITK's `ImageSeriesReader` + `ResampleImageFilter` also
//! do. Then, unless `--common-only`, spinewatch's own steps, which SimpleITK has no
//! counterpart for: spine localisation (`spine::locate`) and the curved sagittal
//! reformat (`reformat::sagittal` with the default manifest). Both read the HU volume
//! (trilinear sampling at patient coordinates), as the pipeline does; the resampled
//! volume stays allocated until the end, so the peak memory counts it.
//!
//! Prints one line per step and a final `RESULT` line of `key=value` pairs, including
//! the peak resident set size at the end of the common part and at the end (`VmHWM`
//! from `/proc/self/status`, `nan` where there is none).

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use spinewatch_volume::reformat::{ReformatManifest, sagittal};
use spinewatch_volume::resample::{DEFAULT_SPACING_MM, resample};
use spinewatch_volume::select::{SelectRules, choose};
use spinewatch_volume::{HuVolume, header, series, spine};

/// The command line.
const USAGE: &str = "usage: resample_study [--common-only] DIR [SPACING_MM]";

/// Peak resident set size of this process so far, MB (10^6 bytes): `VmHWM` of
/// `/proc/self/status`, NaN where it cannot be read (not Linux).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024.0 / 1e6)
        })
        .unwrap_or(f64::NAN)
}

fn run() -> Result<(), Box<dyn Error>> {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let common_only = match args.iter().position(|a| a == "--common-only") {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let mut args = args.into_iter();
    let dir = PathBuf::from(args.next().ok_or(USAGE)?);
    let spacing_mm: f64 = match args.next() {
        Some(s) => s.to_str().ok_or("spacing is not UTF-8")?.parse()?,
        None => DEFAULT_SPACING_MM,
    };
    if args.next().is_some() {
        return Err(USAGE.into());
    }

    let t0 = Instant::now();
    let scan = header::scan(std::slice::from_ref(&dir))?;
    let t_scan = t0.elapsed().as_secs_f64();
    let t = Instant::now();
    let choice = choose(&series::group(scan.headers), &SelectRules::default());
    let (_, sorted) = choice
        .chosen
        .ok_or_else(|| format!("no series of {} can be reconstructed", dir.display()))?;
    let t_sort = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let volume = HuVolume::decode(&sorted)?;
    let t_decode = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let out = resample(&volume, spacing_mm).map_err(spinewatch_volume::Error::from)?;
    let t_resample = t.elapsed().as_secs_f64();
    let common = t0.elapsed().as_secs_f64();
    let common_rss_mb = peak_rss_mb();

    let (nz, ny, nx) = volume.data.dim();
    let [ox, oy, oz] = out.size_xyz();
    println!("threads         {}", rayon::current_num_threads());
    println!(
        "input           {nx} x {ny} x {nz} voxels, {:?} mm",
        sorted.spacing_mm
    );
    println!("output          {ox} x {oy} x {oz} voxels, {spacing_mm} mm");
    println!("scan headers    {t_scan:.3} s");
    println!("group+sort      {t_sort:.3} s");
    println!("decode+HU       {t_decode:.3} s");
    println!("resample        {t_resample:.3} s");
    println!("common part     {common:.3} s, peak RSS {common_rss_mb:.0} MB");
    let mut result = format!(
        "RESULT scan_s={t_scan:.3} sort_s={t_sort:.3} decode_s={t_decode:.3} \
         resample_s={t_resample:.3} common_s={common:.3} common_rss_mb={common_rss_mb:.0} \
         input={nx}x{ny}x{nz} output={ox}x{oy}x{oz}"
    );

    if !common_only {
        let t = Instant::now();
        let spine = spine::locate(&volume).map_err(|e| format!("no spine: {e}"))?;
        let t_locate = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let reformat = sagittal(&volume, &spine, &ReformatManifest::default());
        let t_reformat = t.elapsed().as_secs_f64();
        let total = t0.elapsed().as_secs_f64();
        let rss_mb = peak_rss_mb();
        let (rows, cols) = reformat.hu.dim();
        println!(
            "spine locate    {t_locate:.3} s ({} vertebrae, {:.0} mm)",
            spine.vertebrae.len(),
            spine.length_mm
        );
        println!("reformat        {t_reformat:.3} s ({rows} x {cols} pixels)");
        println!("total           {total:.3} s, peak RSS {rss_mb:.0} MB");
        result.push_str(&format!(
            " locate_s={t_locate:.3} reformat_s={t_reformat:.3} total_s={total:.3} \
             rss_mb={rss_mb:.0} vertebrae={} reformat={rows}x{cols}",
            spine.vertebrae.len()
        ));
    }
    // The resampled volume is held to the end, as a pipeline that hands it on would.
    drop(out);
    println!("{result}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
