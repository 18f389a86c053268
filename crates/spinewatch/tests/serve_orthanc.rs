//! Orthanc pushes a whole study to `spinewatch serve` (house style §6, "Orthanc pushing a
//! whole study").
//!
//! A real Orthanc (Debian `orthanc`) runs on loopback with its own configuration, storage and
//! index in a temp dir, and knows spinewatch as the DICOM modality `spinewatch`. The synthetic
//! fractured study is uploaded to Orthanc over its REST API (`POST /instances`), then Orthanc
//! is asked to C-STORE it to spinewatch (`POST /modalities/spinewatch/store`). This proves that
//! a PACS's storage SCU (dcmtk inside Orthanc, with its own association negotiation) delivers
//! every instance to our SCP, that the study completes after the quiet period, and that it is
//! analysed into an open case with L1 flagged, within the quiet period plus 15 s.
//!
//! Needs Orthanc (`scripts/setup --tests`) and ONNX Runtime (`scripts/setup-ort`); without
//! them the test skips, except under `CI=true`, where it fails.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod serve_support;

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_support::{
    ChildGuard, HTTP_TIMEOUT, QUIET_PERIOD_SECS, START_TIMEOUT, Server, http_get, http_post,
    ort_dylib, outcome_deadline, synth, wait_until, write_config,
};
use spinewatch_testkit::peers;

/// Where Debian installs Orthanc; `/usr/sbin` is not on every user's `PATH`.
const DEBIAN_ORTHANC: &str = "/usr/sbin/Orthanc";

/// A running Orthanc, killed (and reaped) on drop; a running one whose test failed prints
/// the tail of its log.
struct Orthanc {
    child: ChildGuard,
    /// Its REST API.
    http: SocketAddr,
    /// Its standard output and error.
    log: PathBuf,
}

impl Orthanc {
    /// The last lines of its log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- Orthanc log ({}) ---\n{tail}", self.log.display())
    }

    /// Panics with the log when the process has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.0.try_wait().unwrap() {
            panic!("Orthanc exited early ({status})\n{}", self.log_tail());
        }
    }

    /// `GET path`, which must answer 200 with JSON.
    fn get_json(&self, path: &str) -> Value {
        let (status, body) = http_get(self.http, path);
        assert_eq!(status, 200, "GET {path}: {body}");
        json_of(&body)
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// `body` as JSON, panicking with it when it is not.
fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// A port that was free a moment ago (Orthanc cannot be given port 0).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn orthanc() -> Option<PathBuf> {
    let found = peers::which("Orthanc").or_else(|| {
        let p = PathBuf::from(DEBIAN_ORTHANC);
        p.is_file().then_some(p)
    });
    peers::require("Orthanc (Debian orthanc)", found)
}

/// Starts Orthanc with everything in `dir` (no plugins, no Lua, nothing from `/etc/orthanc`),
/// knowing spinewatch's SCP as the modality `spinewatch`.
fn start_orthanc(bin: &Path, dir: &Path, spinewatch_dicom_port: u16) -> Orthanc {
    // The ports are free when chosen; should another process take one first, Orthanc exits
    // and is started again on new ones.
    for attempt in 1..=3 {
        let (http_port, dicom_port) = (free_port(), free_port());
        let storage = dir.join("storage");
        let config = json!({
            "Name": "spinewatch-test",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "Plugins": [],
            "LuaScripts": [],
            "HttpServerEnabled": true,
            "HttpPort": http_port,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "OrthancExplorerEnabled": false,
            "WebDavEnabled": false,
            "DicomServerEnabled": true,
            "DicomAet": "ORTHANC",
            "DicomPort": dicom_port,
            "SaveJobs": false,
            "DicomModalities": {
                "spinewatch": ["SPINEWATCH", "127.0.0.1", spinewatch_dicom_port]
            }
        });
        let config_path = dir.join("orthanc.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = dir.join(format!("orthanc-{attempt}.log"));
        let out = File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg(&config_path)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut orthanc = Orthanc {
            child: ChildGuard(child),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let up = wait_until("Orthanc's REST API answers", deadline, || {
            if let Some(status) = orthanc.child.0.try_wait().unwrap() {
                return Ok(Err(status));
            }
            // Not listening yet: poll again.
            if TcpStream::connect_timeout(&orthanc.http, HTTP_TIMEOUT).is_err() {
                return Err("not listening".to_owned());
            }
            match http_get(orthanc.http, "/system") {
                (200, _) => Ok(Ok(())),
                (status, body) => Err(format!("GET /system: {status} {body}")),
            }
        });
        match up {
            Ok(()) => return orthanc,
            Err(status) => eprintln!(
                "Orthanc exited at start ({status}, attempt {attempt})\n{}",
                orthanc.log_tail()
            ),
        }
    }
    panic!("Orthanc did not start in 3 attempts");
}

#[test]
fn orthanc_pushes_a_fractured_study_that_is_analysed_and_queued() {
    let Some(orthanc_bin) = orthanc() else {
        return;
    };
    let Some(ort) = ort_dylib() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let study = synth(
        &tmp.path().join("study"),
        &[
            "--seed",
            "7",
            "--age",
            "72",
            "--fracture",
            "L1:2:wedge",
            "--coverage",
            "T10-L3",
        ],
    );
    let (files, study_uid) = (&study.files, &study.study_instance_uid);

    let sw_dir = tmp.path().join("spinewatch");
    std::fs::create_dir_all(&sw_dir).unwrap();
    let config = write_config(&sw_dir, &ort, "", "");
    let mut spinewatch = Server::start(&config, &sw_dir.join("data"));
    let orthanc_dir = tmp.path().join("orthanc");
    std::fs::create_dir_all(&orthanc_dir).unwrap();
    let mut orthanc = start_orthanc(&orthanc_bin, &orthanc_dir, spinewatch.dicom.port());

    // Upload: Orthanc parses every file and files it under one study.
    let mut orthanc_study = None;
    for file in files {
        let (status, body) = http_post(orthanc.http, "/instances", &std::fs::read(file).unwrap());
        assert_eq!(status, 200, "{}: {body}", file.display());
        let v = json_of(&body);
        assert_eq!(v["Status"], "Success", "{}: {v}", file.display());
        let parent = v["ParentStudy"].as_str().unwrap().to_owned();
        assert_eq!(orthanc_study.get_or_insert(parent.clone()), &parent);
    }
    let orthanc_study = orthanc_study.unwrap();
    let study = orthanc.get_json(&format!("/studies/{orthanc_study}"));
    assert_eq!(
        study["MainDicomTags"]["StudyInstanceUID"],
        study_uid.as_str()
    );

    // Push: Orthanc opens an association to spinewatch and C-STOREs every instance; the call
    // returns once the job is done.
    let (status, body) = http_post(
        orthanc.http,
        "/modalities/spinewatch/store",
        orthanc_study.as_bytes(),
    );
    let pushed = Instant::now();
    assert_eq!(status, 200, "store failed: {body}");
    let v = json_of(&body);
    assert_eq!(v["RemoteAet"], "SPINEWATCH", "{v}");
    assert_eq!(v["FailedInstancesCount"], 0, "{v}");
    assert_eq!(v["InstancesCount"], files.len(), "{v}");
    orthanc.assert_running();

    // Every instance was received (and made durable: success is only answered after that).
    let metrics = spinewatch.metrics();
    assert_eq!(
        metrics.get("spinewatch_instances_received_total"),
        Some(files.len() as f64),
        "{}",
        metrics.0
    );
    let bytes: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    let received = metrics.get("spinewatch_bytes_received_total").unwrap();
    assert!(received > 0.9 * bytes as f64, "{received} of {bytes} bytes");

    // The study completes after the quiet period and is analysed into an open case.
    let budget = outcome_deadline();
    let case = wait_until(
        &format!("an open case for {study_uid} within {budget:?} of the push"),
        pushed + budget,
        || {
            spinewatch.assert_running();
            let cases = spinewatch.open_cases();
            match cases
                .iter()
                .find(|c| c["study_instance_uid"] == study_uid.as_str())
            {
                Some(case) => Ok(case.clone()),
                None => Err(format!(
                    "cases: {cases:?}\nmetrics:\n{}",
                    spinewatch.metrics().0
                )),
            }
        },
    );
    eprintln!(
        "case queued {:.1} s after the push (quiet period {QUIET_PERIOD_SECS} s): {case}",
        pushed.elapsed().as_secs_f64()
    );
    assert_eq!(case["status"], "open", "{case}");
    let l1 = case["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["level"] == "L1")
        .unwrap_or_else(|| panic!("L1 not flagged: {case}"));
    assert!((1..=3).contains(&l1["grade"].as_u64().unwrap()), "{l1}");
    let p = l1["probability"].as_f64().unwrap();
    assert!(p > 0.0 && p <= 1.0, "{l1}");
    // The outcome counter is incremented once the journal has committed the outcome, so
    // a scrape may come between the case showing in the API and the count.
    wait_until(
        "the positive outcome is counted",
        Instant::now() + Duration::from_secs(10),
        || {
            let metrics = spinewatch.metrics();
            match metrics.get("spinewatch_studies_total{outcome=\"positive\"}") {
                Some(1.0) => Ok(()),
                _ => Err(metrics.0),
            }
        },
    );
}
