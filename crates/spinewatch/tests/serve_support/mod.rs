//! Shared by the `spinewatch serve` integration tests: the binary started as a child
//! process on 127.0.0.1 with ephemeral ports and a temporary data directory, a user and an
//! API token made through the CLI (`spinewatch user add`, `spinewatch token create`) as an
//! operator would, a small HTTP/1.1 client for its API (with the token) and metrics, real
//! peers run with a time limit, synthetic studies, and waits bounded in time.
//!
//! Every child process is held by a guard that kills it when dropped, so a failing test
//! leaves no server or peer behind; a server that was running when its test failed
//! prints the tail of its log.

#![allow(dead_code)] // each test file uses a part of this module
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use spinewatch_testkit::peers;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_spinewatch");
/// Our AE title.
pub const AE: &str = "SPINEWATCH";
/// The calling AE title the tests' PACS uses.
pub const PACS: &str = "PACS";
/// Quiet period of every test server, seconds.
pub const QUIET_PERIOD_SECS: u64 = 2;
/// Longest a server may take to print its ready line (it loads and checks the model).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a server may take to stop after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a real peer (or `spinewatch synth`) may run.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(120);
/// Connect, read and write timeout of one HTTP request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(250);

/// Longest from a study's last instance to its outcome on a small synthetic study: the
/// quiet period plus 15 s (the issue's acceptance).
pub fn outcome_deadline() -> Duration {
    Duration::from_secs(QUIET_PERIOD_SECS + 15)
}

/// Arguments of `spinewatch synth` for a small study (T12-L2, 256 x 256 at 1.5 mm,
/// 2 mm slices: about 70 instances, 9 MB), quick to push and to analyse.
pub const SMALL: &[&str] = &[
    "--coverage",
    "T12-L2",
    "--matrix",
    "256",
    "--pixel-spacing",
    "1.5",
    "--thickness",
    "2",
];

/// A child process, killed (and reaped) when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Already exited is fine: kill then fails and wait returns at once.
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

impl ChildGuard {
    /// Waits for the process to exit, at most `timeout`; panics (and kills it) after.
    pub fn wait_timeout(&mut self, what: &str, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not exit within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sends each line of `stdout` into a channel, from a thread, until it closes.
pub fn lines_of(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Nobody listens any more; keep draining so that the child never blocks
                // (or dies of a broken pipe) on a full pipe.
                continue;
            }
        }
    });
    rx
}

/// ONNX Runtime's library, or `None` (skip) when it is absent outside CI.
///
/// # Panics
/// When it is absent under `CI=true`.
pub fn ort_dylib() -> Option<PathBuf> {
    match spinewatch_infer::runtime::locate(Default::default()) {
        Ok(found) => Some(found.path),
        Err(e) => {
            assert!(
                !peers::in_ci(),
                "ONNX Runtime is required under CI=true: {e}"
            );
            eprintln!("skipping: ONNX Runtime not found (scripts/setup-ort): {e}");
            None
        }
    }
}

/// The dcmtk tool `name`, or `None` (skip) outside CI.
pub fn dcmtk(name: &str) -> Option<PathBuf> {
    peers::require(&format!("dcmtk {name}"), peers::which(name))
}

/// The venv Python if it imports every module in `modules`, or `None` (skip) outside
/// CI; `what` names the PyPI packages in the skip message.
pub fn python(what: &str, modules: &[&str]) -> Option<PathBuf> {
    peers::require(what, peers::python_with(modules))
}

/// A real study of the shared data folder (`ct/lidc-idri-0003`), or `None`, saying so,
/// where it is absent (a user's clone): read in place, never copied.
pub fn real_study(rel: &str) -> Option<PathBuf> {
    peers::real_study(rel)
}

/// Writes a config for a test server: the committed model by absolute path (tests run in
/// the crate's folder), ONNX Runtime by path, no free-disk watermark (a test machine's
/// disk may be fuller than a server's), then `dicom` and `study` lines (TOML) in their
/// sections.
pub fn write_config(dir: &Path, ort: &Path, dicom: &str, study: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let manifest = peers::workspace_root().join("models/vertebra-fracture/manifest.toml");
    let text = format!(
        "[runtime]\nort_dylib = {ort:?}\n\n\
         [model]\nmanifest = {manifest:?}\n\n\
         [dicom]\nmin_free_disk_bytes = 0\nassociation_timeout_secs = 10\n\
         read_timeout_secs = 30\n{dicom}\n\n\
         [study]\n{study}\n",
        ort = ort.display().to_string(),
        manifest = manifest.display().to_string(),
    );
    let path = dir.join(format!(
        "spinewatch-{}.toml",
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// The password of the API user each test server gets.
pub const API_USER_PASSWORD: &str = "serve test password";

/// Makes user `name` (role nurse) and an API token of theirs with the CLI, in the
/// database of `config` and `data_dir` (as `serve` will open it); returns the token.
pub fn api_token(config: &Path, data_dir: &Path, name: &str) -> String {
    let cli = |args: &[&str], stdin: &str| -> Output {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "spinewatch {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    cli(
        &["user", "add", name, "--role", "nurse"],
        &format!("{API_USER_PASSWORD}\n"),
    );
    let out = cli(
        &["token", "create", "--user", name, "--label", "serve tests"],
        "",
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("swt_"), "not a token: {token}");
    token
}

/// A running `spinewatch serve`.
#[derive(Debug)]
pub struct Server {
    child: ChildGuard,
    /// The API token its requests send (`Authorization: Bearer`).
    pub token: String,
    /// The DICOM listener.
    pub dicom: SocketAddr,
    /// The HTTP server.
    pub http: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its stderr (the log).
    pub log: PathBuf,
}

impl Server {
    /// Starts `spinewatch serve` with `config` on `data_dir`, on ephemeral loopback
    /// ports, and waits (at most [`START_TIMEOUT`]) for its ready line.
    pub fn start(config: &Path, data_dir: &Path) -> Server {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let log = data_dir.with_file_name(format!("serve-{n}.log"));
        // A user per start: a restarted server keeps its database, and its users.
        let token = api_token(config, data_dir, &format!("serve.test.{n}"));
        let stderr = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--dicom-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .args(["--quiet-period-secs", &QUIET_PERIOD_SECS.to_string()])
            // The log is shown when a test fails; SPINEWATCH_LOG=debug gives more.
            .env(
                "SPINEWATCH_LOG",
                std::env::var("SPINEWATCH_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut server = Server {
            child: ChildGuard(child),
            token,
            dicom: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
            log,
        };
        let lines = lines_of(server.child.0.stdout.take().unwrap());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(line) = lines.recv_timeout(POLL) {
                if let Some((dicom, http)) = parse_ready(&line) {
                    assert!(
                        dicom.ip().is_loopback() && http.ip().is_loopback(),
                        "{line}"
                    );
                    (server.dicom, server.http) = (dicom, http);
                    return server;
                }
                eprintln!("serve stdout: {line}");
            }
            if let Some(status) = server.child.0.try_wait().unwrap() {
                panic!("spinewatch serve exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "spinewatch serve not ready within {START_TIMEOUT:?}"
            );
        }
    }

    /// The DICOM port, for command lines.
    pub fn port(&self) -> String {
        self.dicom.port().to_string()
    }

    /// `GET path` with the server's API token: the status code and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let auth = format!("Bearer {}", self.token);
        http_request(
            self.http,
            "GET",
            path,
            &[("Authorization", &auth)],
            &[],
            HTTP_TIMEOUT,
        )
    }

    /// `GET path` without credentials: the status code and the body.
    pub fn get_anonymous(&self, path: &str) -> (u16, String) {
        http_get(self.http, path)
    }

    /// `GET path`, which must answer 200 with JSON.
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The open cases (`/api/cases?status=open`).
    pub fn open_cases(&self) -> Vec<Value> {
        match self.get_json("/api/cases?status=open") {
            Value::Array(cases) => cases,
            other => panic!("/api/cases is not an array: {other}"),
        }
    }

    /// `/metrics`.
    pub fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "GET /metrics: {body}");
        Metrics(body)
    }

    /// The spool's partial files: those in `<data>/spool/tmp` holding bytes (not the
    /// empty parts the spool creates ahead of need).
    pub fn spool_tmp_files(&self) -> Vec<PathBuf> {
        let mut files = files_in(&self.data_dir.join("spool/tmp"));
        files.retain(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0));
        files
    }

    /// The spool's durable instances, by SOP Instance UID
    /// (`<data>/spool/instances/<shard>/<uid>.dcm`).
    pub fn spooled_instances(&self) -> HashMap<String, PathBuf> {
        spooled_instances(&self.data_dir)
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.data_dir.join("spinewatch.sqlite")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Panics when the server has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.0.try_wait().unwrap() {
            panic!("spinewatch serve exited early ({status})");
        }
    }

    /// Kills the server with SIGKILL, as a power cut would, and reaps it.
    pub fn kill9(&mut self) {
        self.child.0.kill().unwrap();
        self.child.0.wait().unwrap();
    }

    /// Stops the server with SIGTERM; it must exit successfully within [`STOP_TIMEOUT`].
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let status = self.child.wait_timeout("spinewatch serve", STOP_TIMEOUT);
        assert!(status.success(), "spinewatch serve exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "--- last lines of {}:\n{}",
                self.log.display(),
                tail.join("\n")
            );
        }
    }
}

/// Parses `spinewatch serve: DICOM AE on HOST:PORT, HTTP on http://HOST:PORT, data in DIR`.
fn parse_ready(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.strip_prefix("spinewatch serve: DICOM ")?;
    let (_, rest) = rest.split_once(" on ")?;
    let (dicom, rest) = rest.split_once(", HTTP on http://")?;
    let (http, _) = rest.split_once(", data in ")?;
    Some((dicom.parse().ok()?, http.parse().ok()?))
}

/// The durable instances under `<data_dir>/spool/instances`, by SOP Instance UID.
pub fn spooled_instances(data_dir: &Path) -> HashMap<String, PathBuf> {
    let mut all = HashMap::new();
    for shard in files_in(&data_dir.join("spool/instances")) {
        for file in files_in(&shard) {
            let uid = file
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_suffix(".dcm")
                .unwrap_or_else(|| panic!("not an instance: {}", file.display()))
                .to_owned();
            all.insert(uid, file);
        }
    }
    all
}

/// The entries of `dir`, sorted; none when it does not exist.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// A `/metrics` page (Prometheus text format).
#[derive(Debug, Clone)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of one series, written as the exporter writes it
    /// (`spinewatch_exclusions_total{reason="age"}`), or `None` when absent.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(value.trim().parse().unwrap())
        })
    }

    /// The value of one series, 0 when absent (a counter not incremented yet).
    pub fn count(&self, series: &str) -> f64 {
        self.get(series).unwrap_or(0.0)
    }

    /// `spinewatch_studies_total{outcome=...}`.
    pub fn studies(&self, outcome: &str) -> f64 {
        self.count(&format!(
            "spinewatch_studies_total{{outcome=\"{outcome}\"}}"
        ))
    }

    /// Studies with any outcome.
    pub fn studies_with_outcome(&self) -> f64 {
        ["positive", "negative", "excluded", "not_analysable"]
            .iter()
            .map(|o| self.studies(o))
            .sum()
    }

    /// `spinewatch_exclusions_total{reason=...}`.
    pub fn exclusions(&self, reason: &str) -> f64 {
        self.count(&format!(
            "spinewatch_exclusions_total{{reason=\"{reason}\"}}"
        ))
    }

    /// `spinewatch_instances_received_total`.
    pub fn instances_received(&self) -> f64 {
        self.count("spinewatch_instances_received_total")
    }

    /// Every `spinewatch_not_analysable_total` series with its value.
    pub fn not_analysable(&self) -> Vec<(String, f64)> {
        self.0
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("spinewatch_not_analysable_total{reason=\"")?;
                let (reason, value) = rest.split_once("\"} ")?;
                Some((reason.to_owned(), value.trim().parse().unwrap()))
            })
            .collect()
    }
}

/// `GET path` over HTTP/1.1 on a fresh connection: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path, &[], &[], HTTP_TIMEOUT)
}

/// `POST path` with `body` (`application/octet-stream`) over HTTP/1.1 on a fresh
/// connection: the status code and the body. The answer may take as long as a peer may
/// run ([`PEER_TIMEOUT`]): a peer's REST API may answer only once the work is done.
pub fn http_post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    http_request(addr, "POST", path, &[], body, PEER_TIMEOUT)
}

/// One request with `Connection: close` and `headers`; `read_timeout` bounds the wait for
/// the answer.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    read_timeout: Duration,
) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" {
        request.push_str(&format!(
            "Content-Type: application/octet-stream\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header end in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// The body of a chunked transfer coding (RFC 9112 7.1).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// Waits until `check` returns `Ok`, polling until `deadline`; on timeout panics with
/// `what` and the last `Err` (what was seen instead).
pub fn wait_until<T>(
    what: &str,
    deadline: Instant,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    loop {
        match check() {
            Ok(v) => return v,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}; last seen: {seen}"
            ),
        }
        thread::sleep(POLL);
    }
}

/// Runs a peer (or any helper command) with its output captured, killed after
/// `timeout`; prints its output for the test log.
pub fn run_peer(cmd: &mut Command, timeout: Duration) -> Output {
    run_with_input(cmd, None, timeout)
}

/// [`run_peer`] with `input` written to the command's standard input (then closed).
pub fn run_with_input(cmd: &mut Command, input: Option<&str>, timeout: Duration) -> Output {
    let what = format!("{:?}", cmd.get_program());
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = ChildGuard(
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what}: {e}")),
    );
    if let (Some(input), Some(mut pipe)) = (input, child.0.stdin.take()) {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    let read_all = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).ok();
            v
        })
    };
    let stdout = read_all(Box::new(child.0.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.0.stderr.take().unwrap()));
    let status = child.wait_timeout(&what, timeout);
    let out = Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b).into_owned();
        s[s.len().saturating_sub(2000)..].to_owned()
    };
    eprintln!(
        "{what} exited {:?}\n--- stdout (tail)\n{}\n--- stderr (tail)\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    out
}

/// `echoscu` calling `calling` on the server, with dcmtk's timeouts set.
pub fn echoscu(bin: &Path, server: &Server, calling: &str) -> Output {
    run_peer(
        Command::new(bin)
            .args(["-aet", calling, "-aec", AE])
            .args(["-to", "10", "-ta", "10", "-td", "10"])
            .arg("127.0.0.1")
            .arg(server.port()),
        PEER_TIMEOUT,
    )
}

/// dcmtk `storescu` pushing `path` (a file, or every `*.dcm` below a folder) as PACS.
pub fn storescu(bin: &Path, server: &Server, path: &Path) -> Output {
    run_peer(
        Command::new(bin)
            // dcmtk reads it: without it, Nagle and delayed ACKs cost 40 ms a PDU.
            .env("TCP_NODELAY", "1")
            .args(["-aet", PACS, "-aec", AE])
            .args(["-to", "10", "-ta", "10", "-td", "30"])
            .args(["+sd", "+r", "+sp", "*.dcm"])
            .arg("127.0.0.1")
            .arg(server.port())
            .arg(path),
        PEER_TIMEOUT,
    )
}

/// A study written by `spinewatch synth`.
#[derive(Debug, Clone)]
pub struct Study {
    /// The folder (DICOM series below it, `ground_truth.json` in it).
    pub dir: PathBuf,
    /// Its Study Instance UID.
    pub study_instance_uid: String,
    /// Its DICOM files, sorted.
    pub files: Vec<PathBuf>,
}

/// Runs `spinewatch synth --out dir ARGS`.
pub fn synth(dir: &Path, args: &[&str]) -> Study {
    let out = run_peer(
        Command::new(BIN)
            .args(["synth", "--out"])
            .arg(dir)
            .args(args),
        PEER_TIMEOUT,
    );
    assert!(out.status.success(), "spinewatch synth failed");
    let truth: Value =
        serde_json::from_slice(&std::fs::read(dir.join("ground_truth.json")).unwrap()).unwrap();
    let study_instance_uid = truth["study_instance_uid"].as_str().unwrap().to_owned();
    let mut files = Vec::new();
    for series in files_in(dir).into_iter().filter(|p| p.is_dir()) {
        files.extend(
            files_in(&series)
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "dcm")),
        );
    }
    assert!(!files.is_empty(), "synth wrote no DICOM file");
    Study {
        dir: dir.to_owned(),
        study_instance_uid,
        files,
    }
}

/// Parses a helper's JSON-lines output.
pub fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
