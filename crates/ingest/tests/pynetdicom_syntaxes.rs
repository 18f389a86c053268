//! pynetdicom pushes one real CT slice in every transfer syntax the volume crate
//! decodes (JPEG 2000, RLE, JPEG-LS, JPEG, deflate, big endian...), each in its own
//! syntax: all are accepted and spooled in that syntax. Retired JPEG syntaxes are
//! refused at negotiation, and a real instance without Study/Series UIDs gets 0xC000.
//!
//! Reads `../shared/data` (skips without it, outside CI).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{AE, Server, pynetdicom, real_data, run_peer};
use dicom_dictionary_std::tags;
use serde_json::Value;
use spinewatch_ingest::syntax::TRANSFER_SYNTAXES;
use spinewatch_testkit::peers;

/// Files of `transfer-syntaxes/cornerstone-ct` named after the syntax they hold.
fn cornerstone_files(root: &std::path::Path) -> Vec<(String, PathBuf)> {
    let dir = root.join("transfer-syntaxes/cornerstone-ct");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let ts = name.strip_prefix("CTImage.dcm_")?.strip_suffix(".dcm")?;
            let uid = ts.rsplit_once('_')?.1.to_owned();
            Some((uid, p))
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_transfer_syntax_is_received_in_its_own_syntax() {
    let (Some(root), Some(py)) = (real_data(), pynetdicom()) else {
        return;
    };
    let files = cornerstone_files(&root);
    let accepted: Vec<_> = files
        .iter()
        .filter(|(ts, _)| TRANSFER_SYNTAXES.contains(&ts.as_str()))
        .collect();
    let refused: Vec<_> = files
        .iter()
        .filter(|(ts, _)| !TRANSFER_SYNTAXES.contains(&ts.as_str()))
        .collect();
    // Implicit LE, explicit LE and BE, deflate, JPEG x4, JPEG-LS x2, JPEG 2000 x2, RLE.
    assert_eq!(accepted.len(), 13, "{files:?}");
    assert!(
        !refused.is_empty(),
        "expected retired JPEG syntaxes in {files:?}"
    );
    let no_study_uid = root
        .join("ct/totalseg-example-dicom")
        .join("CT.1.3.12.2.1107.5.1.4.60064.30000022120808113428000016573");

    let server = Server::start().await;
    let out = run_peer(
        tokio::process::Command::new(py)
            .arg(peers::script("store_scu.py"))
            .args([
                "127.0.0.1",
                &server.port(),
                "--called",
                AE,
                "--calling",
                "PYNETDICOM",
            ])
            .args(["--new-uids", "--uid-from-meta"])
            .args(files.iter().map(|(_, p)| p))
            .arg(&no_study_uid),
    )
    .await;
    assert!(out.status.success(), "store_scu.py failed");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["association"], "accepted");
    let by_file: HashMap<String, &Value> = lines[1..]
        .iter()
        .map(|l| (l["file"].as_str().unwrap().to_owned(), l))
        .collect();

    let stored = server.sink.seen.lock().unwrap().clone();
    for (ts, path) in &accepted {
        let line = by_file[path.to_str().unwrap()];
        assert_eq!(line["status"], 0, "{ts}: {line}");
        let uid = line["sop_instance_uid"].as_str().unwrap();
        let (instance, _) = stored
            .iter()
            .find(|(i, _)| i.sop_instance_uid.as_str() == uid)
            .unwrap_or_else(|| panic!("{ts}: not recorded"));
        assert_eq!(instance.transfer_syntax_uid.as_str(), ts.as_str());
        assert_eq!(instance.modality.as_deref(), Some("CT"));
        // The spooled file reads back in the syntax it was sent in.
        let back = dicom_object::OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(&instance.path)
            .unwrap();
        assert_eq!(
            back.meta().transfer_syntax().trim_end_matches('\0'),
            ts.as_str()
        );
        let sop = back
            .element(tags::SOP_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(sop.trim_end_matches('\0'), uid);
    }
    for (ts, path) in &refused {
        let line = by_file[path.to_str().unwrap()];
        assert!(line["status"].is_null(), "{ts} was negotiated: {line}");
        assert_eq!(line["error"], "no accepted presentation context", "{ts}");
    }
    let line = by_file[no_study_uid.to_str().unwrap()];
    assert_eq!(line["status"], 0xC000, "instance without Study UID: {line}");

    assert_eq!(stored.len(), accepted.len());
    assert_eq!(server.instance_files().len(), accepted.len());
    assert!(server.partial_files().is_empty());
    server.stop().await;
}
