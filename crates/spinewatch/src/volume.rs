//! `spinewatch volume`: read the DICOM files of one study, choose the series to
//! reconstruct, and report why, its geometry and its HU content.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use spinewatch_volume::select::{self, SelectRules};
use spinewatch_volume::{HuVolume, header, series};

/// Arguments of `spinewatch volume`.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    /// DICOM files or folders of one study (folders are read recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Thicker slices than this are not reconstructed, mm.
    #[arg(long, default_value_t = 3.0, value_name = "MM")]
    pub max_slice_thickness: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `spinewatch volume`.
pub fn run(args: &VolumeArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let scan = header::scan(&args.paths).context("could not read the given paths")?;
    let studies: std::collections::BTreeSet<_> = scan
        .headers
        .iter()
        .filter_map(|h| h.study_instance_uid.clone())
        .collect();
    let study_uid = studies.iter().next().cloned();
    let grouped = series::group(scan.headers);
    let rules = SelectRules {
        max_slice_thickness_mm: args.max_slice_thickness,
        ..SelectRules::default()
    };
    let choice = select::choose(&grouped, &rules);
    let mut not_analysable = None;
    let mut hu_summary = None;
    if let Some((_, sorted)) = &choice.chosen {
        let hu = HuVolume::decode(sorted).context("could not decode the chosen series")?;
        let total = hu.data.len();
        let count = |lo: i16, hi: i16| {
            hu.data.iter().filter(|v| (lo..=hi).contains(*v)).count() as f64 / total as f64
        };
        hu_summary = Some(json!({
            "voxels": total,
            "padded_voxels": hu.padded_voxels,
            "fraction_air": count(i16::MIN, -500),
            "fraction_soft_tissue": count(-499, 199),
            "fraction_bone": count(200, i16::MAX),
        }));
    } else {
        not_analysable = Some(json!({ "reason": "no_suitable_series", "detail": choice.why }));
    }
    let elapsed = started.elapsed().as_secs_f64();

    let series_json = choice.chosen.as_ref().map(|(_, s)| {
        json!({
            "series_instance_uid": s.series_instance_uid,
            "slices": s.slices.len(),
            "rows": s.rows,
            "columns": s.cols,
            "spacing_mm": s.spacing_mm,
            "thickness_mm": s.thickness_mm,
            "shear_deg": s.shear_deg,
            "affine": s.affine,
            "z_range_mm": s.z_range_mm(),
            "why": choice.why,
        })
    });
    if args.json {
        let out = json!({
            "study_instance_uid": study_uid,
            "studies_found": studies.len(),
            "files": { "dicom": choice.verdicts.iter().map(|v| v.instances).sum::<usize>(), "not_dicom": scan.not_dicom, "unreadable": scan.unreadable.iter().map(|e| format!("{e:#}")).collect::<Vec<_>>() },
            "series": series_json,
            "considered": choice.verdicts,
            "hu": hu_summary,
            "not_analysable": not_analysable,
            "seconds": elapsed,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Study {}",
        study_uid.as_deref().unwrap_or("(no Study Instance UID)")
    );
    if studies.len() > 1 {
        println!(
            "  warning: the paths hold {} studies; only series are compared here",
            studies.len()
        );
    }
    println!(
        "  {} DICOM files, {} other files skipped, {} unreadable",
        choice.verdicts.iter().map(|v| v.instances).sum::<usize>(),
        scan.not_dicom,
        scan.unreadable.len()
    );
    for e in &scan.unreadable {
        println!("    unreadable: {e}");
    }
    println!("  series:");
    for (i, v) in choice.verdicts.iter().enumerate() {
        let mark = if choice.chosen.as_ref().is_some_and(|(c, _)| *c == i) {
            "CHOSEN"
        } else {
            ""
        };
        let verdict = match &v.rejection {
            None if mark.is_empty() => "candidate".to_owned(),
            None => mark.to_owned(),
            Some(r) => format!("set aside: {r}"),
        };
        println!(
            "    #{:<4} {:<28} {:>4} images  {:<28} {}",
            v.number.map(|n| n.to_string()).unwrap_or_default(),
            v.description.as_deref().unwrap_or(""),
            v.instances,
            v.image_type.join("\\"),
            verdict
        );
    }
    match &choice.chosen {
        Some((_, s)) => {
            let (z0, z1) = s.z_range_mm();
            println!("  chosen: {}", choice.why);
            println!(
                "    geometry: {} x {} x {} voxels, spacing [{:.3}, {:.3}, {:.3}] mm, shear {:.1} deg",
                s.cols,
                s.rows,
                s.slices.len(),
                s.spacing_mm[0],
                s.spacing_mm[1],
                s.spacing_mm[2],
                s.shear_deg
            );
            println!(
                "    z range: {z0:.1} .. {z1:.1} mm (LPS); origin {:?}",
                s.affine.origin.to_array()
            );
            if let Some(h) = &hu_summary {
                println!(
                    "    HU: {} voxels ({} padding), air {:.1}%, soft tissue {:.1}%, bone {:.1}%",
                    h["voxels"],
                    h["padded_voxels"],
                    h["fraction_air"].as_f64().unwrap_or(0.0) * 100.0,
                    h["fraction_soft_tissue"].as_f64().unwrap_or(0.0) * 100.0,
                    h["fraction_bone"].as_f64().unwrap_or(0.0) * 100.0
                );
            }
        }
        None => println!("  not analysable: {}", choice.why),
    }
    println!("  read in {elapsed:.1} s");
    Ok(ExitCode::SUCCESS)
}
