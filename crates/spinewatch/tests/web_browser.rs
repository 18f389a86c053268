//! Issue 6 acceptance: a nurse's whole round in a real headless Chromium (Debian
//! `chromium`), driven by playwright-core (`tests/browser/nurse_flow.mjs`, plain node).
//!
//! `spinewatch serve` runs on loopback with a nurse created by `spinewatch user add`; dcmtk
//! `storescu` pushes a synthetic 72-year-old with an L1 grade 2 wedge. Once the case is
//! queued (read from the database), the browser signs in, opens the worklist and the case,
//! checks the key image (a PNG that decodes, of the size the pipeline wrote, in the bone and
//! the soft-tissue window), confirms L1 as grade 2, reads the audit entry, signs out, and is
//! refused the case signed out and without cookies. The database must then agree with what
//! the browser saw. Screenshots of the worklist and the case page go to
//! `target/web-screenshots/` (not committed); their paths are printed.
//!
//! Needs ONNX Runtime, dcmtk, Node.js, Debian chromium and the pinned playwright-core
//! (`scripts/setup --tests` installs them all); without one the test skips, saying which,
//! except under `CI=true`, where that is a failure.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod serve_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serve_support::{
    BIN, SMALL, Server, dcmtk, ort_dylib, outcome_deadline, run_peer, run_with_input, storescu,
    synth, wait_until, write_config,
};
use spinewatch_core::{GenantGrade, VertebraLevel};
use spinewatch_testkit::peers;
use spinewatch_triage::{CaseDetail, CaseStatus, Store};

/// The nurse the test signs in as.
const NURSE: &str = "nurse.jones";
/// Her password (long enough for any sensible password rule).
const PASSWORD: &str = "tall-heron-grades-spines-42";
/// Debian's Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest the browser flow may take: a cold Chromium start plus a dozen pages, each wait
/// in the script bounded at 15 s.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest `spinewatch user add` may take (it hashes the password on purpose slowly).
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The folder of the browser script and its `node_modules`.
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `node` with playwright-core installed beside the script and Debian's Chromium, or `None`
/// (skip) outside CI.
fn browser_tools() -> Option<PathBuf> {
    let node = peers::require("Node.js (node)", peers::which("node"))?;
    let chromium = Path::new(CHROMIUM);
    peers::require(
        "Debian chromium (/usr/bin/chromium)",
        chromium.is_file().then(|| chromium.to_owned()),
    )?;
    let playwright = browser_dir().join("node_modules/playwright-core/package.json");
    peers::require(
        "playwright-core (npm ci in crates/spinewatch/tests/browser)",
        playwright.is_file().then_some(playwright),
    )?;
    Some(node)
}

/// The case of `study` once it is queued, open, with L1 flagged.
fn queued_case(store: &Store, study: &str) -> Result<CaseDetail, String> {
    let case = store
        .case(study)
        .map_err(|e| format!("{e:#}"))?
        .ok_or_else(|| "no case yet".to_owned())?;
    let l1 = Some(VertebraLevel::Lumbar(1));
    if case.summary.status != CaseStatus::Open {
        Err(format!("status {:?}", case.summary.status))
    } else if !case.summary.flagged.iter().any(|v| v.level == l1) {
        Err(format!("L1 not flagged: {:?}", case.summary.flagged))
    } else {
        Ok(case)
    }
}

/// Width and height of the PNG at `path`.
fn png_size(path: &Path) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
    let info = reader.info();
    (info.width, info.height)
}

#[test]
fn issue_6_nurse_confirms_a_fracture_in_headless_chromium() {
    let Some(ort) = ort_dylib() else { return };
    let Some(store_scu) = dcmtk("storescu") else {
        return;
    };
    let Some(node) = browser_tools() else { return };

    let tmp = tempfile::tempdir().unwrap();
    let args = ["--seed", "11", "--age", "72", "--fracture", "L1:2:wedge"];
    let study = synth(&tmp.path().join("fractured"), &[&args[..], SMALL].concat());
    let config = write_config(tmp.path(), &ort, "", "");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();

    let added = run_with_input(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["user", "add", NURSE, "--role", "nurse", "--data-dir"])
            .arg(&data),
        Some(&format!("{PASSWORD}\n")),
        CLI_TIMEOUT,
    );
    assert!(added.status.success(), "spinewatch user add failed");

    let server = Server::start(&config, &data);
    assert!(storescu(&store_scu, &server, &study.dir).status.success());
    let pushed = Instant::now();
    let store = Store::open(server.database()).unwrap();
    let case = wait_until(
        "the fractured study is an open case with L1 flagged",
        pushed + outcome_deadline(),
        || queued_case(&store, &study.study_instance_uid),
    );
    let bone = case
        .findings
        .key_images
        .first()
        .map(|p| data.join(p))
        .unwrap_or_else(|| panic!("the case has no key image: {:?}", case.findings));
    let (width, height) = png_size(&bone);

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("web-screenshots");
    for old in ["worklist.png", "case.png", "failure.png"] {
        std::fs::remove_file(shots.join(old)).ok();
    }
    let out = run_peer(
        Command::new(&node)
            .current_dir(browser_dir())
            .arg("nurse_flow.mjs")
            .arg(format!("http://{}", server.http))
            .args([NURSE, PASSWORD])
            .arg(&shots)
            .env(
                "SPINEWATCH_CASE_NUMBER",
                case.summary.case_number.to_string(),
            )
            .env("SPINEWATCH_PATIENT_KEY", &case.summary.patient_key)
            .env("SPINEWATCH_KEY_IMAGE_SIZE", format!("{width}x{height}"))
            .env("CHROMIUM", CHROMIUM),
        BROWSER_TIMEOUT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the nurse flow failed in Chromium:\n{stdout}\n{stderr}"
    );

    // The screenshots are real pictures of the 1280 px wide viewport.
    for name in ["worklist.png", "case.png"] {
        let path = shots.join(name);
        let (w, h) = png_size(&path);
        assert!(w == 1280 && h >= 800, "{}: {w}x{h}", path.display());
        eprintln!("screenshot: {}", path.display());
    }

    // The database agrees with what the browser saw.
    let after = store.case(&study.study_instance_uid).unwrap().unwrap();
    assert_eq!(after.summary.status, CaseStatus::Confirmed);
    let last = after.decisions.last().expect("no decision recorded");
    assert_eq!(last.user, NURSE);
    assert_eq!(last.level, Some(VertebraLevel::Lumbar(1)));
    assert_eq!(last.grade, Some(GenantGrade::Moderate));
    assert_eq!(last.previous_status, CaseStatus::Open);
    assert_eq!(last.new_status, CaseStatus::Confirmed);
    server.stop();
}
