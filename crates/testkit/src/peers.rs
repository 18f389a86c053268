//! Real interoperability peers for tests: where to find them, and what to do when one
//! is missing.
//!
//! Peers are found on `PATH` (Debian packages: dcmtk, dicom3tools) or in the project's
//! venv `.venv` (PyPI: pydicom, pynetdicom), both installed by `scripts/setup --tests`.
//! When a peer is missing a test skips with a message naming that install step, except
//! under `CI=true`, where a missing peer fails the run: a skipped interop test must
//! never look green in CI.

use std::path::{Path, PathBuf};

/// The command that installs every peer.
pub const INSTALL_HINT: &str = "scripts/setup --tests";

/// The repository root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Whether the tests run in CI (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Finds an executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The project venv's Python interpreter, if the venv exists.
pub fn venv_python() -> Option<PathBuf> {
    let p = workspace_root().join(".venv/bin/python");
    p.is_file().then_some(p)
}

/// The project venv's Python if it can import every module in `modules`.
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let py = venv_python()?;
    let code = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ok = std::process::Command::new(&py)
        .args(["-c", &code])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

/// Resolves a peer: `Some` when found; when missing, panics under CI and otherwise
/// prints why the test is skipped and returns `None`.
///
/// # Panics
/// When the peer is missing and `CI=true`.
pub fn require(what: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    match found {
        Some(p) => Some(p),
        None if in_ci() => {
            panic!("interop peer {what} is missing under CI=true; `{INSTALL_HINT}` installs it")
        }
        None => {
            eprintln!(
                "skipping: interop peer {what} is missing; run `{INSTALL_HINT}` to install it"
            );
            None
        }
    }
}

/// Python scripts shipped with the testkit (`crates/testkit/py/NAME`).
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(name)
}

/// The shared real-data folder (`$SPINEWATCH_REAL_DATA`, else `../shared/data` beside
/// the repository), or `None`, saying so, when it is absent: a user's clone has none,
/// and tests that read it then skip. The data is read in place, never copied.
pub fn real_data() -> Option<PathBuf> {
    let dir = std::env::var_os("SPINEWATCH_REAL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/data"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: real data folder {} is absent (set SPINEWATCH_REAL_DATA)",
            dir.display()
        );
        None
    }
}

/// A folder of the shared real data (`rel`, e.g. `ct/lidc-idri-0003`), or `None`, saying
/// so, where it is absent.
pub fn real_study(rel: &str) -> Option<PathBuf> {
    let p = real_data()?.join(rel);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipping: real data {} is absent (see ../shared/data/README.md)",
            p.display()
        );
        None
    }
}
