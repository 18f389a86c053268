//! Locates the spine of a study and, for a synthetic one, compares every vertebra with
//! its ground truth: `cargo run --release -p spinewatch-volume --example locate_study -- DIR`.
#![allow(clippy::unwrap_used, missing_docs)]
use spinewatch_volume::select::{SelectRules, choose};
use spinewatch_volume::{HuVolume, header, series, spine};
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let scan = header::scan(std::slice::from_ref(&dir)).unwrap();
    let (_, sorted) = choose(&series::group(scan.headers), &SelectRules::default())
        .chosen
        .unwrap();
    let vol = HuVolume::decode(&sorted).unwrap();
    let t = std::time::Instant::now();
    let sp = spine::locate(&vol);
    println!("locate {:.2} s", t.elapsed().as_secs_f64());
    let sp = match sp {
        Ok(s) => s,
        Err(e) => {
            println!("no spine: {e}");
            return;
        }
    };
    println!(
        "length {:.0} mm, {:?}, {} vertebrae",
        sp.length_mm,
        sp.labelling,
        sp.vertebrae.len()
    );
    let truth: Option<serde_json::Value> = std::fs::read(dir.join("ground_truth.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    for v in &sp.vertebrae {
        let c = v.centre_mm;
        let mut near = String::new();
        if let Some(t) = &truth {
            let best = t["vertebrae"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    let gc: Vec<f64> = g["centre_mm"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect();
                    let d = ((gc[0] - c.x).powi(2) + (gc[1] - c.y).powi(2) + (gc[2] - c.z).powi(2))
                        .sqrt();
                    (d, g["label"].as_str().unwrap().to_owned(), gc)
                })
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap();
            near = format!(
                "nearest {} at {:.1} mm (d {:.1} {:.1} {:.1})",
                best.1,
                best.0,
                c.x - best.2[0],
                c.y - best.2[1],
                c.z - best.2[2]
            );
        }
        println!(
            "{:>5} ribs {:<5} h {:4.1} d {:4.1} c [{:6.1} {:6.1} {:6.1}] {near}",
            v.label.map(|l| l.to_string()).unwrap_or("-".into()),
            v.has_ribs,
            v.height_mm,
            v.depth_mm,
            c.x,
            c.y,
            c.z
        );
    }
}
