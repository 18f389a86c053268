//! dcmtk `storescu` pushes a small synthetic CT series: every instance lands in the
//! spool with its data set byte for byte, the sink records each once (with its
//! PatientID, redacted in `Debug`), and pushing the series again is answered with
//! success, recorded as duplicates, and adds no file.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{AE, Server, data_set_bytes, dcmtk, run_peer, synth_series};
use dicom_dictionary_std::tags;
use spinewatch_ingest::Recorded;

const SLICES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storescu_pushes_a_series_that_is_stored_once() {
    let Some(bin) = dcmtk("storescu") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let files = synth_series(data.path(), SLICES);
    let series_dir = files[0].parent().unwrap().to_owned();
    let server = Server::start().await;

    let push = || {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.env("TCP_NODELAY", "1")
            .args(["-aet", "PACS", "-aec", AE])
            .args(["-to", "5", "-ta", "5", "-td", "10"])
            // One presentation context per SOP class and file transfer syntax.
            .args(["-R", "+sd"])
            .arg("127.0.0.1")
            .arg(server.port())
            .arg(&series_dir);
        cmd
    };
    let out = run_peer(&mut push()).await;
    assert!(out.status.success(), "storescu failed");

    // The originals, by SOP Instance UID.
    let originals: HashMap<String, PathBuf> = files
        .iter()
        .map(|f| {
            let obj = dicom_object::open_file(f).unwrap();
            let uid = obj.meta().media_storage_sop_instance_uid();
            (uid.trim_end_matches('\0').to_owned(), f.clone())
        })
        .collect();

    let stored = server.instance_files();
    assert_eq!(stored.len(), SLICES, "instances in the spool");
    assert!(
        server.partial_files().is_empty(),
        "partial files left in tmp/"
    );
    let answers = server.sink.answers();
    assert_eq!(answers.len(), SLICES, "sink calls");
    assert!(answers.iter().all(|(_, r)| *r == Recorded::New));

    let seen = server.sink.seen.lock().unwrap().clone();
    for (instance, _) in &seen {
        let uid = instance.sop_instance_uid.to_string();
        let original = originals.get(&uid).expect("an instance we did not send");
        // The data set arrived byte for byte (storescu sends the file's own syntax).
        assert_eq!(
            data_set_bytes(&instance.path),
            data_set_bytes(original),
            "data set of {uid} differs"
        );
        let back = dicom_object::open_file(&instance.path).unwrap();
        let orig = dicom_object::open_file(original).unwrap();
        assert_eq!(back.meta().transfer_syntax(), orig.meta().transfer_syntax());
        assert_eq!(
            back.meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0'),
            uid
        );
        assert_eq!(
            back.meta().source_application_entity_title().map(str::trim),
            Some("PACS")
        );
        let text = |tag| orig.element(tag).unwrap().to_str().unwrap().to_string();
        assert_eq!(
            instance.study_instance_uid.as_str(),
            text(tags::STUDY_INSTANCE_UID)
        );
        assert_eq!(
            instance.series_instance_uid.as_str(),
            text(tags::SERIES_INSTANCE_UID)
        );
        assert_eq!(instance.modality.as_deref(), Some("CT"));
        // The PatientID comes with the header pass, and never shows in `Debug`.
        let patient_id = instance.patient_id.as_ref().expect("a PatientID");
        assert_eq!(patient_id.as_str(), text(tags::PATIENT_ID).trim());
        assert!(!format!("{instance:?}").contains(patient_id.as_str()));
        assert_eq!(instance.calling_ae_title, "PACS");
        assert_eq!(instance.transfer_syntax_uid.as_str(), "1.2.840.10008.1.2.1");
        assert_eq!(
            instance.size_bytes,
            std::fs::metadata(&instance.path).unwrap().len()
        );
        assert!(stored.contains(&instance.path));
    }

    // The same series again: success, duplicates, no new file.
    let out = run_peer(&mut push()).await;
    assert!(out.status.success(), "second storescu failed");
    let answers = server.sink.answers();
    assert_eq!(answers.len(), 2 * SLICES);
    assert!(
        answers[SLICES..]
            .iter()
            .all(|(_, r)| *r == Recorded::Duplicate)
    );
    assert_eq!(
        server.instance_files(),
        stored,
        "second push changed the spool"
    );
    assert!(server.partial_files().is_empty());
    server.stop().await;
}
