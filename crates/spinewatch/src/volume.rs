//! `spinewatch volume`: read the DICOM files of one study, choose the series to
//! reconstruct and say why, and report its geometry and its spine (or why it is not
//! analysable); optionally a PNG of the labelled sagittal reformat.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use spinewatch_volume::analyse::analyse;
use spinewatch_volume::reformat::{self, ReformatManifest};
use spinewatch_volume::select::SelectRules;

use crate::render;

/// Arguments of `spinewatch volume`.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    /// DICOM files or folders of one study (folders are read recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Thicker slices than this are not reconstructed, mm.
    #[arg(long, default_value_t = 3.0, value_name = "MM")]
    pub max_slice_thickness: f64,
    /// Write the sagittal reformat with each located vertebra marked to this PNG file.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `spinewatch volume`.
pub fn run(args: &VolumeArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let rules = SelectRules {
        max_slice_thickness_mm: args.max_slice_thickness,
        ..SelectRules::default()
    };
    let analysis = analyse(&args.paths, &rules).context("could not read the given paths")?;
    if let (Some(png), Some(volume), Some(spine)) = (&args.png, &analysis.volume, &analysis.spine) {
        let r = reformat::sagittal(volume, spine, &ReformatManifest::default());
        render::sagittal_png(&r, spine, &[], render::Window::Bone, png)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let choice = &analysis.choice;
    let series = analysis.series().map(|s| {
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
    let vertebrae: Vec<_> = analysis
        .spine
        .iter()
        .flat_map(|sp| &sp.vertebrae)
        .map(|v| {
            json!({
                "label": v.label.map(|l| l.to_string()),
                "centre_mm": v.centre_mm,
                "superior_axis": v.superior_axis,
                "anterior_axis": v.anterior_axis,
                "height_mm": v.height_mm,
                "depth_mm": v.depth_mm,
                "has_ribs": v.has_ribs,
            })
        })
        .collect();
    if args.json {
        let out = json!({
            "study_instance_uid": analysis.scan_summary.study_instance_uids.first(),
            "files": analysis.scan_summary,
            "series": series,
            "considered": choice.verdicts,
            "spine": analysis.spine.as_ref().map(|s| json!({ "labelling": s.labelling, "length_mm": s.length_mm })),
            "vertebrae": vertebrae,
            "not_analysable": analysis.not_analysable,
            "png": args.png.as_ref().filter(|_| analysis.spine.is_some()),
            "seconds": elapsed,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let summary = &analysis.scan_summary;
    println!(
        "Study {}",
        summary
            .study_instance_uids
            .first()
            .map_or("(no Study Instance UID)", String::as_str)
    );
    if summary.study_instance_uids.len() > 1 {
        println!(
            "  warning: the paths hold {} studies",
            summary.study_instance_uids.len()
        );
    }
    println!(
        "  {} DICOM files, {} other files skipped, {} unreadable",
        summary.dicom_files,
        summary.other_files,
        summary.unreadable.len()
    );
    for e in &summary.unreadable {
        println!("    unreadable: {e}");
    }
    println!("  series:");
    for (i, v) in choice.verdicts.iter().enumerate() {
        let chosen = choice.chosen.as_ref().is_some_and(|(c, _)| *c == i);
        let verdict = match &v.rejection {
            _ if chosen => "CHOSEN".to_owned(),
            None => "candidate".to_owned(),
            Some(r) => format!("set aside: {r}"),
        };
        println!(
            "    #{:<4} {:<28} {:>4} images  {:<30} {}",
            v.number.map(|n| n.to_string()).unwrap_or_default(),
            v.description.as_deref().unwrap_or(""),
            v.instances,
            v.image_type.join("\\"),
            verdict
        );
    }
    if let Some(s) = analysis.series() {
        let (z0, z1) = s.z_range_mm();
        println!("  chosen: {}", choice.why);
        println!(
            "    geometry: {} x {} x {} voxels, spacing [{:.3}, {:.3}, {:.3}] mm, shear {:.1} deg, z {z0:.1} .. {z1:.1} mm (LPS)",
            s.cols,
            s.rows,
            s.slices.len(),
            s.spacing_mm[0],
            s.spacing_mm[1],
            s.spacing_mm[2],
            s.shear_deg
        );
    }
    if let Some(sp) = &analysis.spine {
        println!(
            "  spine: {:.0} mm of column, {} vertebral bodies, labels: {:?}",
            sp.length_mm,
            sp.vertebrae.len(),
            sp.labelling
        );
        for v in &sp.vertebrae {
            let c = v.centre_mm;
            println!(
                "    {:<4} centre [{:7.1} {:7.1} {:7.1}] mm  height {:4.1} mm  depth {:4.1} mm{}",
                v.label.map_or_else(|| "?".to_owned(), |l| l.to_string()),
                c.x,
                c.y,
                c.z,
                v.height_mm,
                v.depth_mm,
                if v.has_ribs { "  ribs" } else { "" }
            );
        }
    }
    if let Some(na) = &analysis.not_analysable {
        println!("  NOT ANALYSABLE: {na}");
    }
    if let (Some(png), Some(_)) = (&args.png, &analysis.spine) {
        println!("  sagittal reformat: {}", png.display());
    }
    println!("  done in {elapsed:.1} s");
    Ok(ExitCode::SUCCESS)
}
