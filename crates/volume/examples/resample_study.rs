//! Reads one study and resamples it to isotropic voxels, timing each step: the spinewatch
//! side of `benches/e2e/volume_vs_simpleitk.sh` (issue 3).
//!
//! ```text
//! cargo run --release -p spinewatch-volume --example resample_study -- DIR [SPACING_MM]
//! ```
//!
//! Steps: header scan of every file under `DIR`, series grouping and choice, slice sort,
//! pixel decode + HU rescale (`HuVolume::decode`), trilinear resample (default 1 mm).
//! Prints one line per step and a final `RESULT` line of `key=value` pairs.

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use spinewatch_volume::resample::{DEFAULT_SPACING_MM, resample};
use spinewatch_volume::select::{SelectRules, choose};
use spinewatch_volume::{HuVolume, header, series};

fn run() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: resample_study DIR [SPACING_MM]")?,
    );
    let spacing_mm: f64 = match args.next() {
        Some(s) => s.to_str().ok_or("spacing is not UTF-8")?.parse()?,
        None => DEFAULT_SPACING_MM,
    };
    let t0 = Instant::now();
    let scan = header::scan(std::slice::from_ref(&dir))?;
    let t_scan = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let choice = choose(&series::group(scan.headers), &SelectRules::default());
    let (_, sorted) = choice
        .chosen
        .ok_or_else(|| format!("no series of {} can be reconstructed", dir.display()))?;
    let t_sort = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let volume = HuVolume::decode(&sorted)?;
    let t_decode = t2.elapsed().as_secs_f64();
    let t3 = Instant::now();
    let out = resample(&volume, spacing_mm)?;
    let t_resample = t3.elapsed().as_secs_f64();
    let total = t0.elapsed().as_secs_f64();

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
    println!("total           {total:.3} s");
    println!(
        "RESULT scan_s={t_scan:.3} sort_s={t_sort:.3} decode_s={t_decode:.3} \
         resample_s={t_resample:.3} total_s={total:.3} input={nx}x{ny}x{nz} \
         output={ox}x{oy}x{oz}"
    );
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
