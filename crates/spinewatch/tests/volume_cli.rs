//! Issue 3: `spinewatch volume --json --png` on a synthetic study: the JSON contract
//! (`series.slices`, `series.spacing_mm`, `vertebrae[{label, centre_mm}]`,
//! `not_analysable`) and a real, decodable PNG of the reformat.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::process::Command;

use serde_json::Value;

fn spinewatch(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_spinewatch"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spinewatch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn issue_3_volume_json_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let study = dir.path().join("study");
    let png = dir.path().join("sagittal.png");
    let s = study.to_str().unwrap();
    spinewatch(&[
        "synth",
        "--out",
        s,
        "--seed",
        "21",
        "--age",
        "70",
        "--coverage",
        "T9-L3",
        "--fracture",
        "L1:2:wedge",
        "--extra-series",
        "all",
    ]);
    let out = spinewatch(&["volume", s, "--json", "--png", png.to_str().unwrap()]);
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j["not_analysable"].is_null(), "{}", j["not_analysable"]);
    assert!(j["series"]["slices"].as_u64().unwrap() > 100);
    assert_eq!(j["series"]["spacing_mm"].as_array().unwrap().len(), 3);
    let verts = j["vertebrae"].as_array().unwrap();
    assert!(verts.len() >= 6, "{} vertebrae", verts.len());
    let labels: Vec<&str> = verts.iter().filter_map(|v| v["label"].as_str()).collect();
    for l in ["T11", "T12", "L1", "L2"] {
        assert!(labels.contains(&l), "{l} not among {labels:?}");
    }
    assert!(
        verts
            .iter()
            .all(|v| v["centre_mm"].as_array().is_some_and(|c| c.len() == 3))
    );
    // The localizer, the thick series and the dose report were set aside.
    let considered = j["considered"].as_array().unwrap();
    assert_eq!(considered.len(), 4);
    // The PNG decodes, with one reformat row per mm of column (two screen pixels each).
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    let length = j["spine"]["length_mm"].as_f64().unwrap();
    assert_eq!(info.height as f64, 2.0 * ((length / 1.0).floor() + 1.0));
    assert!(info.width > 200);
}
