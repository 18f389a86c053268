//! Shared by the listener's integration tests: a listener on 127.0.0.1 with a recording
//! sink and a temporary spool, real peers run with a time limit, a small dicom-ul SCU
//! for what the real peers cannot do (stop in the middle of an instance), and waits
//! bounded in time.

#![allow(dead_code)] // each test file uses a part of this module
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_ul::Pdu;
use dicom_ul::association::client::{AsyncClientAssociation, ClientAssociationOptions};
use dicom_ul::pdu::{PDataValue, PDataValueType};
use spinewatch_ingest::{
    IngestConfig, InstanceSink, Listener, Recorded, SinkError, StoredInstance,
};
use spinewatch_testkit::peers;
use spinewatch_testkit::synth::{SynthSpec, generate};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Our AE title in every test.
pub const AE: &str = "SPINEWATCH";
/// Longest a real peer may run.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a condition is waited for.
pub const WAIT: Duration = Duration::from_secs(10);

/// A sink that remembers every call; its answers can be switched to backpressure.
#[derive(Debug, Default)]
pub struct TestSink {
    /// Every recorded instance with the answer given.
    pub seen: Mutex<Vec<(StoredInstance, Recorded)>>,
    known: Mutex<HashSet<String>>,
    /// `accepting()` answers `false` while set.
    pub refuse_before: AtomicBool,
    /// `record()` answers `Backpressure` while set.
    pub refuse_record: AtomicBool,
    /// `record()` panics while set.
    pub panic_in_record: AtomicBool,
}

impl TestSink {
    /// The answers given so far, by SOP Instance UID.
    pub fn answers(&self) -> Vec<(String, Recorded)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(i, r)| (i.sop_instance_uid.to_string(), *r))
            .collect()
    }
}

impl InstanceSink for TestSink {
    async fn record(&self, instance: &StoredInstance) -> Result<Recorded, SinkError> {
        assert!(
            !self.panic_in_record.load(Ordering::SeqCst),
            "test sink told to panic"
        );
        if self.refuse_record.load(Ordering::SeqCst) {
            return Err(SinkError::Backpressure);
        }
        let new = self
            .known
            .lock()
            .unwrap()
            .insert(instance.sop_instance_uid.to_string());
        let r = if new {
            Recorded::New
        } else {
            Recorded::Duplicate
        };
        self.seen.lock().unwrap().push((instance.clone(), r));
        Ok(r)
    }

    fn accepting(&self) -> bool {
        !self.refuse_before.load(Ordering::SeqCst)
    }
}

/// A running listener.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its sink.
    pub sink: Arc<TestSink>,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<spinewatch_ingest::Result<()>>,
}

impl Server {
    /// Starts a listener with test defaults changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut IngestConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = IngestConfig {
            ae_title: AE.into(),
            bind: "127.0.0.1:0".parse().unwrap(),
            spool_dir: dir.path().join("spool"),
            min_free_disk_bytes: 0,
            association_timeout_secs: 5,
            read_timeout_secs: 10,
            ..IngestConfig::default()
        };
        tweak(&mut config);
        let listener = Listener::bind(config).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = Arc::new(TestSink::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(listener.run(sink.clone(), shutdown.clone()));
        Self {
            addr,
            sink,
            dir,
            shutdown,
            task,
        }
    }

    /// Starts a listener with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The port, for command lines.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// The spool root.
    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Files in `tmp/`: partial instances, and the empty parts the spool creates ahead
    /// of need.
    pub fn tmp_files(&self) -> Vec<PathBuf> {
        files_in(&self.spool().join("tmp"))
    }

    /// Files in `tmp/` holding bytes: partial instances (not the empty parts created
    /// ahead of need).
    pub fn partial_files(&self) -> Vec<PathBuf> {
        let mut files = self.tmp_files();
        files.retain(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0));
        files
    }

    /// Files under `instances/` (all shards).
    pub fn instance_files(&self) -> Vec<PathBuf> {
        let mut all = Vec::new();
        for shard in std::fs::read_dir(self.spool().join("instances")).unwrap() {
            all.extend(files_in(&shard.unwrap().path()));
        }
        all.sort();
        all
    }

    /// Asserts the spool holds nothing, neither partial nor durable.
    pub fn assert_spool_empty(&self) {
        assert_eq!(
            self.partial_files(),
            Vec::<PathBuf>::new(),
            "partial files in tmp/"
        );
        assert_eq!(
            self.instance_files(),
            Vec::<PathBuf>::new(),
            "instances/ not empty"
        );
    }

    /// Stops the listener; it must end cleanly and in time. Returns the folder holding
    /// the spool, for a look after the fact.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("listener did not stop in time")
            .unwrap()
            .unwrap();
        self.dir
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Waits until `cond` holds, at most [`WAIT`].
pub async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a real peer, killed after [`PEER_TIMEOUT`].
pub async fn run_peer(cmd: &mut tokio::process::Command) -> Output {
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(PEER_TIMEOUT, cmd.output())
        .await
        .expect("peer did not finish in time")
        .unwrap();
    eprintln!(
        "peer exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The dcmtk tool `name`, or `None` (skip) outside CI.
pub fn dcmtk(name: &str) -> Option<PathBuf> {
    peers::require(&format!("dcmtk {name}"), peers::which(name))
}

/// The venv Python with pynetdicom, or `None` (skip) outside CI.
pub fn pynetdicom() -> Option<PathBuf> {
    peers::require("pynetdicom", peers::python_with(&["pynetdicom", "pydicom"]))
}

/// `echoscu` from `calling` to `called` on the server, with dcmtk's timeouts set.
pub async fn echoscu(bin: &Path, server: &Server, calling: &str, called: &str) -> Output {
    run_peer(
        tokio::process::Command::new(bin)
            .args(["-aet", calling, "-aec", called])
            .args(["-to", "5", "-ta", "5", "-td", "5"])
            .arg("127.0.0.1")
            .arg(server.port()),
    )
    .await
}

/// Writes a small synthetic CT series (64x64 at 4 mm) and returns its files, sorted.
pub fn synth_series(dir: &Path, slices: usize) -> Vec<PathBuf> {
    let mut spec = SynthSpec::new(17);
    spec.matrix = 64;
    spec.pixel_spacing_mm = 4.0;
    spec.slices = Some(slices);
    spec.slice_thickness_mm = 2.5;
    spec.slice_spacing_mm = 2.5;
    generate(&spec, dir).unwrap();
    let series = dir.join("series-002-axial");
    let files: Vec<_> = files_in(&series)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    assert_eq!(files.len(), slices);
    files
}

/// The real data folder, if present (tests skip without it, outside CI).
pub fn real_data() -> Option<PathBuf> {
    let dir = peers::real_data();
    assert!(
        dir.is_some() || !peers::in_ci(),
        "the real data folder is required under CI=true"
    );
    dir
}

/// A file's data set bytes (after preamble and file meta group), as stored.
pub fn data_set_bytes(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[128..132], b"DICM", "{}", path.display());
    // (0002,0000) UL, explicit VR LE: tag 4, VR 2, length 2, value 4.
    let group_len = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    bytes[144 + group_len..].to_vec()
}

/// A dicom-ul SCU proposing one presentation context (id 1).
pub async fn rust_scu(
    addr: SocketAddr,
    abstract_syntax: &str,
    transfer_syntax: &str,
) -> AsyncClientAssociation<TcpStream> {
    ClientAssociationOptions::new()
        .calling_ae_title("RUST-SCU")
        .called_ae_title(AE)
        .with_presentation_context(abstract_syntax, vec![transfer_syntax])
        .establish_async(addr)
        .await
        .unwrap()
}

/// A C-STORE-RQ command set (Implicit VR LE).
pub fn store_rq(message_id: u16, sop_class: &str, sop_instance: &str) -> Vec<u8> {
    let obj = InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(sop_class),
        ),
        DataElement::new(
            tags::COMMAND_FIELD,
            VR::US,
            PrimitiveValue::from(0x0001_u16),
        ),
        DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(message_id)),
        DataElement::new(tags::PRIORITY, VR::US, PrimitiveValue::from(0_u16)),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            PrimitiveValue::from(0_u16),
        ),
        DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(sop_instance),
        ),
    ]);
    let mut out = Vec::new();
    obj.write_dataset_with_ts(
        &mut out,
        &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
    )
    .unwrap();
    out
}

/// A C-ECHO-RQ command set (Implicit VR LE).
pub fn echo_rq(message_id: u16) -> Vec<u8> {
    let obj = InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(spinewatch_ingest::syntax::VERIFICATION),
        ),
        DataElement::new(
            tags::COMMAND_FIELD,
            VR::US,
            PrimitiveValue::from(0x0030_u16),
        ),
        DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(message_id)),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            PrimitiveValue::from(0x0101_u16),
        ),
    ]);
    let mut out = Vec::new();
    obj.write_dataset_with_ts(
        &mut out,
        &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
    )
    .unwrap();
    out
}

/// Sends one presentation data value on context 1.
pub async fn send_pdv(
    assoc: &mut AsyncClientAssociation<TcpStream>,
    value_type: PDataValueType,
    is_last: bool,
    data: &[u8],
) {
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: 1,
                value_type,
                is_last,
                data: data.to_vec(),
            }],
        })
        .await
        .unwrap();
}

/// Sends a whole C-STORE (command, then the data set in 16 KiB fragments) and returns
/// the status the server answered.
pub async fn rust_store(
    assoc: &mut AsyncClientAssociation<TcpStream>,
    message_id: u16,
    command: (&str, &str),
    data_set: &[u8],
) -> u16 {
    send_pdv(
        assoc,
        PDataValueType::Command,
        true,
        &store_rq(message_id, command.0, command.1),
    )
    .await;
    let chunks: Vec<_> = data_set.chunks(16 << 10).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        send_pdv(assoc, PDataValueType::Data, i + 1 == chunks.len(), chunk).await;
    }
    read_status(assoc).await
}

/// Reads the next response and returns its (0000,0900) Status.
pub async fn read_status(assoc: &mut AsyncClientAssociation<TcpStream>) -> u16 {
    let pdu = tokio::time::timeout(WAIT, assoc.receive())
        .await
        .expect("no response in time")
        .unwrap();
    let Pdu::PData { data } = pdu else {
        panic!("expected P-DATA, got {}", pdu.short_description());
    };
    let bytes: Vec<u8> = data.into_iter().flat_map(|p| p.data).collect();
    let obj = InMemDicomObject::read_dataset_with_ts(
        &bytes[..],
        &dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
    )
    .unwrap();
    obj.get(tags::STATUS).unwrap().to_int::<u16>().unwrap()
}

/// SOP Class UID, SOP Instance UID and the Explicit VR LE data set bytes of a file
/// written by the testkit (which writes Explicit VR LE).
pub fn explicit_le_instance(path: &Path) -> (String, String, Vec<u8>) {
    let obj = dicom_object::open_file(path).unwrap();
    let class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0');
    let instance = obj
        .meta()
        .media_storage_sop_instance_uid()
        .trim_end_matches('\0');
    assert_eq!(
        obj.meta().transfer_syntax().trim_end_matches('\0'),
        "1.2.840.10008.1.2.1"
    );
    (class.to_owned(), instance.to_owned(), data_set_bytes(path))
}
