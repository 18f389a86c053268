//! Out of resources is answered 0xA700 so the PACS retries later, and costs no disk:
//! free space under the watermark (seen by dcmtk `storescu`), a sink that is not
//! accepting, and a sink reporting backpressure when recording (the file it was about
//! to get is removed again).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::atomic::Ordering;

use common::{
    AE, Server, dcmtk, explicit_le_instance, run_peer, rust_scu, rust_store, synth_series,
};

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_watermark_refuses_with_a700() {
    let Some(bin) = dcmtk("storescu") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let files = synth_series(data.path(), 3);
    let server = Server::start_with(|c| c.min_free_disk_bytes = u64::MAX).await;
    let out = run_peer(
        tokio::process::Command::new(&bin)
            .env("TCP_NODELAY", "1")
            .args(["-v", "-nh", "-aet", "PACS", "-aec", AE])
            .args(["-to", "5", "-ta", "5", "-td", "10", "-R"])
            .arg("127.0.0.1")
            .arg(server.port())
            .args(&files),
    )
    .await;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let refusals = text.matches("Refused: OutOfResources").count();
    assert_eq!(
        refusals,
        files.len(),
        "storescu did not report 0xA7xx for every file"
    );
    server.assert_spool_empty();
    assert!(server.sink.answers().is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_backpressure_refuses_with_a700() {
    let data = tempfile::tempdir().unwrap();
    let files = synth_series(data.path(), 2);
    let (class, uid, bytes) = explicit_le_instance(&files[0]);
    let server = Server::start().await;
    let mut assoc = rust_scu(server.addr, &class, EXPLICIT_LE).await;

    // Not accepting: refused before anything is written.
    server.sink.refuse_before.store(true, Ordering::SeqCst);
    assert_eq!(
        rust_store(&mut assoc, 1, (&class, &uid), &bytes).await,
        0xA700
    );
    server.assert_spool_empty();
    server.sink.refuse_before.store(false, Ordering::SeqCst);

    // Backpressure when recording: the durable file is removed again.
    server.sink.refuse_record.store(true, Ordering::SeqCst);
    assert_eq!(
        rust_store(&mut assoc, 2, (&class, &uid), &bytes).await,
        0xA700
    );
    server.assert_spool_empty();
    assert!(server.sink.answers().is_empty());

    // The PACS retries later: stored.
    server.sink.refuse_record.store(false, Ordering::SeqCst);
    assert_eq!(
        rust_store(&mut assoc, 3, (&class, &uid), &bytes).await,
        0x0000
    );
    assoc.release().await.unwrap();
    assert_eq!(server.instance_files().len(), 1);
    assert_eq!(server.sink.answers().len(), 1);
    server.stop().await;
}
