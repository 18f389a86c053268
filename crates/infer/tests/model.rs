//! Issue 4: the committed reference model, loaded through its manifest, gives the same
//! outputs from Rust as from Python's onnxruntime (parity within 1e-5), and a model
//! that does not match its manifest is refused.
//!
//! Needs ONNX Runtime (`scripts/setup`, found as the README says) and the project
//! venv's Python with onnxruntime and numpy: under `CI=true` a missing one is a failure.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array4};
use rand::{Rng, SeedableRng};
use spinewatch_infer::runtime::{DylibRequest, Runtime};
use spinewatch_infer::{Error, Model, ModelManifest, SessionOptions};
use spinewatch_testkit::peers;

/// Largest difference allowed between the Rust and the Python outputs (issue 4).
const PARITY_TOL: f32 = 1e-5;

fn manifest_path() -> PathBuf {
    peers::workspace_root().join("models/vertebra-fracture/manifest.toml")
}

fn runtime() -> Option<&'static Runtime> {
    match Runtime::load(DylibRequest::default()) {
        Ok(r) => Some(r),
        Err(e) if peers::in_ci() => panic!("ONNX Runtime is required under CI=true: {e}"),
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

/// Patches the model can read: smooth random blobs in 0..1, seeded.
fn input(n: usize, rows: usize, cols: usize) -> Array4<f32> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(20261121);
    Array4::from_shape_fn((n, 1, rows, cols), |(_, _, r, c)| {
        let base = ((r as f32 / 7.0).sin() * (c as f32 / 11.0).cos() + 1.0) / 2.0;
        (base * 0.8 + rng.random_range(0.0..0.2f32)).clamp(0.0, 1.0)
    })
}

#[test]
fn issue_4_rust_and_python_onnxruntime_agree() {
    let Some(rt) = runtime() else { return };
    let Some(py) = peers::require(
        "python with onnxruntime",
        peers::python_with(&["onnxruntime", "numpy"]),
    ) else {
        return;
    };
    let manifest = ModelManifest::read(&manifest_path()).unwrap();
    let [rows, cols] = manifest.input.reformat.patch_size;
    let x = input(13, rows, cols);
    for batch_size in [1, 4, 16] {
        let mut model = Model::load(
            rt,
            &manifest_path(),
            SessionOptions {
                batch_size,
                ..SessionOptions::default()
            },
        )
        .unwrap();
        let ours = model.predict(x.view()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let input_path = dir.path().join("input.npy");
        ndarray_npy::write_npy(&input_path, &x).unwrap();
        let out = std::process::Command::new(&py)
            .arg(peers::script("ort_reference.py"))
            .arg(&model.path)
            .arg(&input_path)
            .arg(&manifest.input.name)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let p: Array2<f32> =
            ndarray_npy::read_npy(dir.path().join(format!("{}.npy", manifest.outputs[0].name)))
                .unwrap();
        let g: Array2<f32> =
            ndarray_npy::read_npy(dir.path().join(format!("{}.npy", manifest.outputs[1].name)))
                .unwrap();
        let mut worst = 0.0f32;
        for (a, b) in ours.probability.iter().zip(p.iter()) {
            worst = worst.max((a - b).abs());
        }
        for (a, b) in ours.grades.iter().zip(g.iter()) {
            worst = worst.max((a - b).abs());
        }
        assert_eq!(ours.probability.len(), p.len());
        assert_eq!(ours.grades.len(), g.len());
        eprintln!("batch {batch_size}: largest difference {worst:e}");
        assert!(worst <= PARITY_TOL, "batch {batch_size}: {worst:e}");
        // The outputs are probabilities.
        for row in ours.grades.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-4);
        }
    }
}

/// Copies the model folder so its manifest or file can be altered.
fn copy_model(to: &Path) -> PathBuf {
    let from = manifest_path();
    let dir = from.parent().unwrap();
    for f in ["manifest.toml", "model.onnx"] {
        std::fs::copy(dir.join(f), to.join(f)).unwrap();
    }
    to.join("manifest.toml")
}

#[test]
fn issue_4_a_model_that_differs_from_its_manifest_is_refused() {
    let Some(rt) = runtime() else { return };
    let dir = tempfile::tempdir().unwrap();
    let manifest = copy_model(dir.path());
    let text = std::fs::read_to_string(&manifest).unwrap();

    // Another file than the one described: the checksum differs.
    let mut onnx = std::fs::read(dir.path().join("model.onnx")).unwrap();
    onnx.push(0);
    std::fs::write(dir.path().join("model.onnx"), &onnx).unwrap();
    let e = Model::load(rt, &manifest, SessionOptions::default())
        .err()
        .unwrap();
    assert!(matches!(e, Error::ModelMismatch { .. }), "{e}");
    assert!(e.to_string().contains("SHA-256"), "{e}");
    onnx.pop();
    std::fs::write(dir.path().join("model.onnx"), &onnx).unwrap();
    Model::load(rt, &manifest, SessionOptions::default()).unwrap();

    // A manifest naming another input: the graph is checked.
    std::fs::write(
        &manifest,
        text.replace("name = \"patches\"", "name = \"image\""),
    )
    .unwrap();
    let e = Model::load(rt, &manifest, SessionOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("input patches"), "{e}");

    // A patch size the input shape does not have: the manifest itself is refused.
    std::fs::write(
        &manifest,
        text.replace("patch_size = [64, 64]", "patch_size = [48, 48]"),
    )
    .unwrap();
    let e = ModelManifest::read(&manifest).err().unwrap();
    assert!(matches!(e, Error::ModelManifest { .. }), "{e}");
}
