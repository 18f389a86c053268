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

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spinewatch_testkit::peers;

const BIN: &str = env!("CARGO_BIN_EXE_spinewatch");
/// `--quiet-period-secs` of the server under test.
const QUIET_PERIOD_SECS: u64 = 2;
/// Time the analysis may take once the quiet period is over (the brief's bound).
const ANALYSIS_BUDGET: Duration = Duration::from_secs(15);
/// Time for either server to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Where Debian installs Orthanc; `/usr/sbin` is not on every user's `PATH`.
const DEBIAN_ORTHANC: &str = "/usr/sbin/Orthanc";

/// A server process, killed (and reaped) on drop so that a failing test leaves none behind.
struct Server {
    name: &'static str,
    child: Child,
    /// Its standard error, shown when the test fails.
    log: PathBuf,
}

impl Server {
    /// The last lines of the server's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("--- {} log ({}) ---\n{tail}", self.name, self.log.display())
    }

    /// Panics with the log when the process has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited early ({status})\n{}", self.name, self.log_tail());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already exited is fine; nothing else to report from a destructor.
        if self.child.kill().is_ok() {
            self.child.wait().ok();
        }
    }
}

/// A port that was free a moment ago (Orthanc cannot be given port 0).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 client over `std`: one request per connection (`Connection: close`).
mod http {
    use super::*;

    /// A response: status code and body (de-chunked).
    pub struct Response {
        pub status: u16,
        pub body: Vec<u8>,
    }

    impl Response {
        /// The body as JSON, panicking with the body when it is not.
        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!(
                    "not JSON ({e}), status {}: {}",
                    self.status,
                    String::from_utf8_lossy(&self.body)
                )
            })
        }

        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
    }

    pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
        request(addr, "GET", path, &[])
    }

    pub fn post(addr: SocketAddr, path: &str, body: &[u8]) -> std::io::Result<Response> {
        request(addr, "POST", path, body)
    }

    fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        // Orthanc answers a store only once every instance is sent: allow for that.
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        parse(&raw)
    }

    fn parse(raw: &[u8]) -> std::io::Result<Response> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| bad("no end of headers"))?;
        let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status line"))?;
        let chunked = lines.any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("transfer-encoding:") && l.contains("chunked")
        });
        let rest = &raw[end + 4..];
        let body = if chunked {
            dechunk(rest).ok_or_else(|| bad("bad chunked body"))?
        } else {
            rest.to_vec()
        };
        Ok(Response { status, body })
    }

    /// `Transfer-Encoding: chunked` ([RFC 9112 §7.1](https://www.rfc-editor.org/rfc/rfc9112#section-7.1)).
    fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n")?;
            let size = std::str::from_utf8(&rest[..eol]).ok()?;
            let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[eol + 2..];
            if size == 0 {
                return Some(body);
            }
            body.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
    }
}

fn ort_available() -> bool {
    let ok = spinewatch_infer::runtime::Runtime::load(Default::default()).is_ok();
    assert!(
        ok || !peers::in_ci(),
        "ONNX Runtime is required under CI=true"
    );
    if !ok {
        eprintln!("skipping: ONNX Runtime not found (scripts/setup-ort)");
    }
    ok
}

fn orthanc() -> Option<PathBuf> {
    let found = peers::which("Orthanc").or_else(|| {
        let p = PathBuf::from(DEBIAN_ORTHANC);
        p.is_file().then_some(p)
    });
    peers::require("Orthanc (Debian orthanc)", found)
}

/// Writes the synthetic fractured study; its `.dcm` files, sorted, and its Study Instance UID.
fn synth(out: &Path) -> (Vec<PathBuf>, String) {
    let status = Command::new(BIN)
        .args(["synth", "--out"])
        .arg(out)
        .args(["--seed", "7", "--age", "72", "--fracture", "L1:2:wedge"])
        .args(["--coverage", "T10-L3"])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "synth failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mut files = Vec::new();
    let mut dirs = vec![out.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "dcm") {
                files.push(path);
            }
        }
    }
    files.sort();
    let truth: Value =
        serde_json::from_slice(&std::fs::read(out.join("ground_truth.json")).unwrap()).unwrap();
    let uid = truth["study_instance_uid"].as_str().unwrap().to_owned();
    (files, uid)
}

/// Starts `spinewatch serve` on ephemeral loopback ports; the server, its DICOM port and its
/// HTTP address, read from the line it prints once ready.
fn start_spinewatch(dir: &Path) -> (Server, u16, SocketAddr) {
    let manifest = peers::workspace_root().join("models/vertebra-fracture/manifest.toml");
    let config = dir.join("spinewatch.toml");
    std::fs::write(
        &config,
        format!("[model]\nmanifest = {:?}\n", manifest.display().to_string()),
    )
    .unwrap();
    let log = dir.join("spinewatch.log");
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "serve",
            "--dicom-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--quiet-period-secs")
        .arg(QUIET_PERIOD_SECS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server {
        name: "spinewatch serve",
        child,
        log,
    };
    // Read stdout on a thread (to the end, so the server never blocks on a full pipe) and
    // hand the ready line over with a timeout.
    let stdout = server.child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("spinewatch serve:") {
                tx.send(line).ok();
            }
        }
    });
    let Ok(line) = rx.recv_timeout(START_TIMEOUT) else {
        server.assert_running();
        panic!(
            "spinewatch serve printed no ready line\n{}",
            server.log_tail()
        );
    };
    // `spinewatch serve: DICOM SPINEWATCH on 127.0.0.1:P, HTTP on http://127.0.0.1:Q, data in D`
    let addr_after = |marker: &str| -> SocketAddr {
        let start = line
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} in {line}"));
        let rest = &line[start + marker.len()..];
        let end = rest.find(',').unwrap_or(rest.len());
        rest[..end]
            .parse()
            .unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let dicom = addr_after(" on ");
    let http = addr_after("http://");
    (server, dicom.port(), http)
}

/// Starts Orthanc with everything in `dir` (no plugins, no Lua, nothing from `/etc/orthanc`),
/// knowing spinewatch's SCP as the modality `spinewatch`; the server and its REST address.
fn start_orthanc(bin: &Path, dir: &Path, spinewatch_dicom_port: u16) -> (Server, SocketAddr) {
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
        let mut server = Server {
            name: "Orthanc",
            child,
            log,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], http_port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if server.child.try_wait().unwrap().is_some() {
                eprintln!(
                    "Orthanc exited at start (attempt {attempt})\n{}",
                    server.log_tail()
                );
                break;
            }
            if http::get(addr, "/system").is_ok_and(|r| r.status == 200) {
                return (server, addr);
            }
            assert!(
                Instant::now() < deadline,
                "Orthanc's REST API did not answer within {START_TIMEOUT:?}\n{}",
                server.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("Orthanc did not start in 3 attempts");
}

/// The `spinewatch_*` sample `name` (with its labels, if any) from Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[test]
fn orthanc_pushes_a_fractured_study_that_is_analysed_and_queued() {
    let Some(orthanc_bin) = orthanc() else {
        return;
    };
    if !ort_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (files, study_uid) = synth(&tmp.path().join("study"));
    assert!(!files.is_empty());

    let sw_dir = tmp.path().join("spinewatch");
    std::fs::create_dir_all(&sw_dir).unwrap();
    let (mut spinewatch, dicom_port, sw_http) = start_spinewatch(&sw_dir);
    let orthanc_dir = tmp.path().join("orthanc");
    std::fs::create_dir_all(&orthanc_dir).unwrap();
    let (mut orthanc, orthanc_http) = start_orthanc(&orthanc_bin, &orthanc_dir, dicom_port);

    // Upload: Orthanc parses every file and files it under one study.
    let mut orthanc_study = None;
    for file in &files {
        let r = http::post(orthanc_http, "/instances", &std::fs::read(file).unwrap()).unwrap();
        assert_eq!(r.status, 200, "{}: {}", file.display(), r.text());
        let v = r.json();
        assert_eq!(v["Status"], "Success", "{}: {v}", file.display());
        let parent = v["ParentStudy"].as_str().unwrap().to_owned();
        assert_eq!(orthanc_study.get_or_insert(parent.clone()), &parent);
    }
    let orthanc_study = orthanc_study.unwrap();
    let study = http::get(orthanc_http, &format!("/studies/{orthanc_study}"))
        .unwrap()
        .json();
    assert_eq!(
        study["MainDicomTags"]["StudyInstanceUID"],
        study_uid.as_str()
    );

    // Push: Orthanc opens an association to spinewatch and C-STOREs every instance; the call
    // returns once the job is done.
    let r = http::post(
        orthanc_http,
        "/modalities/spinewatch/store",
        orthanc_study.as_bytes(),
    )
    .unwrap();
    let pushed = Instant::now();
    assert_eq!(
        r.status,
        200,
        "store failed: {}\n{}\n{}",
        r.text(),
        orthanc.log_tail(),
        spinewatch.log_tail()
    );
    let v = r.json();
    assert_eq!(v["RemoteAet"], "SPINEWATCH", "{v}");
    assert_eq!(v["FailedInstancesCount"], 0, "{v}");
    assert_eq!(v["InstancesCount"], files.len(), "{v}");
    orthanc.assert_running();

    // Every instance was received (and made durable: success is only answered after that).
    let metrics = http::get(sw_http, "/metrics").unwrap().text();
    assert_eq!(
        metric(&metrics, "spinewatch_instances_received_total"),
        Some(files.len() as f64),
        "{metrics}"
    );
    let bytes: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    let received = metric(&metrics, "spinewatch_bytes_received_total").unwrap();
    assert!(received > 0.9 * bytes as f64, "{received} of {bytes} bytes");

    // The study completes after the quiet period and is analysed into an open case.
    let deadline = pushed + Duration::from_secs(QUIET_PERIOD_SECS) + ANALYSIS_BUDGET;
    let case = loop {
        spinewatch.assert_running();
        let cases = http::get(sw_http, "/api/cases?status=open").unwrap();
        assert_eq!(cases.status, 200, "{}", cases.text());
        let cases = cases.json();
        if let Some(case) = cases
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["study_instance_uid"] == study_uid.as_str())
        {
            break case.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no open case for {study_uid} within {QUIET_PERIOD_SECS} s + {ANALYSIS_BUDGET:?} \
             of the push; cases: {cases}\nmetrics:\n{}\n{}",
            http::get(sw_http, "/metrics").unwrap().text(),
            spinewatch.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "case queued {:.1} s after the push: {case}",
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
    let metrics = http::get(sw_http, "/metrics").unwrap().text();
    assert_eq!(
        metric(&metrics, "spinewatch_studies_total{outcome=\"positive\"}"),
        Some(1.0),
        "{metrics}"
    );
}
