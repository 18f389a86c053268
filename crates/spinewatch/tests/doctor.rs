//! `spinewatch doctor` end to end: with the pinned ONNX Runtime, without any, with a library
//! that is not ONNX Runtime, and with a data dir that cannot be written.
//!
//! The runtime is found by normal discovery (the project's `.venv`, made by
//! `scripts/setup-ort`). Where it is missing the first test skips with the fix, except with
//! `CI=true`, where a missing runtime fails the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_spinewatch");

/// `spinewatch` at `bin` with no ONNX Runtime hints from the test runner's environment.
fn isolated(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    for name in [
        "ORT_DYLIB_PATH",
        "SPINEWATCH_HOME",
        "SPINEWATCH_PYTHON",
        "SPINEWATCH_LOG",
    ] {
        command.env_remove(name);
    }
    command
}

fn text(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}):\n{}", text(output)))
}

/// Neither a panic nor a signal: a clean exit with status 1.
fn assert_clean_failure(output: &Output) {
    assert_eq!(output.status.code(), Some(1), "{}", text(output));
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("panicked"),
        "{}",
        text(output)
    );
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

#[test]
fn reports_the_installed_runtime() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = Command::new(BIN)
        .args(["doctor", "--json", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("run spinewatch");
    let report = json(&output);
    if report["onnxruntime"]["ok"] != true {
        let error = &report["onnxruntime"]["error"];
        assert!(!in_ci(), "ONNX Runtime is required with CI=true: {error}");
        eprintln!("skipping: no usable ONNX Runtime ({error}); run `scripts/setup-ort` first");
        return;
    }
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(report["ok"], true);
    assert_eq!(report["spinewatch_version"], env!("CARGO_PKG_VERSION"));
    let version = report["onnxruntime"]["version"].as_str().expect("version");
    assert!(version.starts_with("1.31."), "{version}");
    let dylib = report["onnxruntime"]["dylib"].as_str().expect("dylib");
    assert!(Path::new(dylib).is_file(), "{dylib}");
    assert!(report["onnxruntime"]["source"].is_string());
    let providers = report["onnxruntime"]["providers"]
        .as_array()
        .expect("providers");
    assert!(
        providers.iter().any(|p| p == "CPUExecutionProvider"),
        "{providers:?}"
    );
    assert_eq!(report["execution_provider"]["configured"], "cpu");
    assert_eq!(report["execution_provider"]["available"], true);
    assert_eq!(report["paths"]["data_dir"]["writable"], true);
    assert_eq!(report["paths"]["spool_dir"]["writable"], true);
    assert_eq!(report["paths"]["database"]["writable"], true);
    assert!(
        data.path().join("spool").is_dir(),
        "doctor creates the spool dir"
    );
    assert_eq!(report["problems"], Value::Array(Vec::new()));

    // The same, as lines.
    let output = Command::new(BIN)
        .args(["doctor", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("run spinewatch");
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("{version} at {dylib}")),
        "{stdout}"
    );
    // Every check passes; the spool's file system may only warn (this machine's disk may
    // be ext4 without a journal), which does not fail doctor.
    let spool_fs = "spool file system:";
    assert!(
        stdout
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with(spool_fs))
            .all(|l| l.contains(" ok ")),
        "{stdout}"
    );
    let fs_line = stdout.lines().find(|l| l.starts_with(spool_fs));
    let safe = report["spool_file_system"]["safe"].as_bool().unwrap();
    let word = if safe { " ok " } else { " WARNING " };
    assert!(fs_line.is_some_and(|l| l.contains(word)), "{stdout}");
}

#[test]
fn configured_provider_missing_fails_unless_fallback_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("spinewatch.toml");
    // No ONNX Runtime from PyPI's CPU wheel has TensorRT.
    std::fs::write(&config, "[runtime]\nexecution_provider = \"tensorrt\"\n").expect("write");
    let run = || {
        Command::new(BIN)
            .args(["doctor", "--json", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .expect("run spinewatch")
    };
    let output = run();
    let report = json(&output);
    if report["onnxruntime"]["ok"] != true {
        assert!(
            !in_ci(),
            "ONNX Runtime is required with CI=true: {}",
            text(&output)
        );
        eprintln!("skipping: no usable ONNX Runtime; run `scripts/setup-ort` first");
        return;
    }
    let providers = report["onnxruntime"]["providers"]
        .as_array()
        .expect("providers");
    if providers.iter().any(|p| p == "TensorrtExecutionProvider") {
        eprintln!("skipping: this ONNX Runtime has TensorRT");
        return;
    }
    assert_clean_failure(&output);
    assert_eq!(report["execution_provider"]["available"], false);
    let problems = report["problems"].to_string();
    assert!(problems.contains("TensorrtExecutionProvider"), "{problems}");

    std::fs::write(
        &config,
        "[runtime]\nexecution_provider = \"tensorrt\"\nallow_cpu_fallback = true\n",
    )
    .expect("write");
    let output = run();
    assert!(output.status.success(), "{}", text(&output));
}

/// A copy of the binary, run from an empty directory, with every source of a library gone.
#[test]
fn library_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin/spinewatch");
    let cwd = dir.path().join("work");
    std::fs::create_dir_all(bin.parent().expect("bin dir")).expect("mkdir");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    std::fs::copy(BIN, &bin).expect("copy binary");
    let run = |json: bool| {
        let mut command = isolated(&bin);
        command
            .current_dir(&cwd)
            .env("SPINEWATCH_PYTHON", "/nonexistent/python3")
            .arg("doctor");
        if json {
            command.arg("--json");
        }
        command
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .expect("run copy")
    };

    let output = run(false);
    assert_clean_failure(&output);
    let all = text(&output);
    assert!(all.contains("scripts/setup-ort"), "{all}");
    assert!(
        all.contains("onnxruntime: ") && all.contains("FAILED"),
        "{all}"
    );
    assert!(all.contains("doctor found 1 problem: onnxruntime"), "{all}");

    let output = run(true);
    assert_clean_failure(&output);
    let report = json(&output);
    assert_eq!(report["ok"], false);
    assert_eq!(report["onnxruntime"]["ok"], false);
    let error = report["onnxruntime"]["error"].as_str().expect("error");
    assert!(
        error.contains("not found") && error.contains("scripts/setup-ort"),
        "{error}"
    );
    assert!(error.contains("/nonexistent/python3"), "{error}");
    assert_eq!(report["execution_provider"]["available"], Value::Null);
    assert_eq!(report["paths"]["data_dir"]["writable"], true);
    assert_eq!(
        report["problems"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
}

fn some_shared_library() -> Option<PathBuf> {
    [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib/aarch64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
        "/usr/lib/libc.so.6",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|path| path.is_file())
}

#[test]
fn not_an_onnx_runtime_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text_file = dir.path().join("libonnxruntime.so.1.31.1");
    std::fs::write(&text_file, "not a shared library\n").expect("write");
    let mut cases = vec![(text_file, "could not load")];
    match some_shared_library() {
        Some(libc) => cases.push((libc, "is not an ONNX Runtime library")),
        None => eprintln!("no libc.so.6 found: checking a non-library file only"),
    }
    for (library, expected) in cases {
        let output = isolated(Path::new(BIN))
            .env("ORT_DYLIB_PATH", &library)
            .args(["doctor", "--json", "--data-dir"])
            .arg(dir.path().join("data"))
            .output()
            .expect("run spinewatch");
        assert_clean_failure(&output);
        let report = json(&output);
        let error = report["onnxruntime"]["error"].as_str().expect("error");
        assert!(error.contains(expected), "{error}");
        assert!(error.contains(&library.display().to_string()), "{error}");
        assert!(
            error.contains("ORT_DYLIB_PATH") && error.contains("scripts/setup-ort"),
            "{error}"
        );
    }
}

#[test]
fn explicit_path_that_does_not_exist_is_not_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("libonnxruntime.so.1.31.1");
    let output = Command::new(BIN)
        .arg("--ort-dylib")
        .arg(&missing)
        .args(["doctor", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("run spinewatch");
    assert_clean_failure(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "{} (from --ort-dylib) does not exist",
            missing.display()
        )),
        "{stdout}"
    );
}

#[test]
fn unwritable_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").expect("write");
    // A directory cannot be made under a regular file, whoever runs the test (root too).
    let data = file.join("data");
    let output = Command::new(BIN)
        .args(["doctor", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run spinewatch");
    assert_clean_failure(&output);
    let report = json(&output);
    assert_eq!(report["ok"], false);
    assert_eq!(report["paths"]["data_dir"]["writable"], false);
    assert_eq!(
        report["paths"]["data_dir"]["path"],
        data.display().to_string()
    );
    let problems = report["problems"].to_string();
    assert!(
        problems.contains(&format!("data dir: {} is not writable", data.display())),
        "{problems}"
    );

    let output = Command::new(BIN)
        .args(["doctor", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run spinewatch");
    assert_clean_failure(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&data.display().to_string()), "{stdout}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("data dir"),
        "{}",
        text(&output)
    );
}
