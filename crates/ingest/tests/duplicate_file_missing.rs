//! Issue 5, "the same SOP Instance UID twice is stored once": the dedupe never answers
//! success for an instance whose file is missing. The sink already knows the instance
//! (its row survived) but its spooled file is gone; the PACS sends it again: the
//! listener puts the new copy in place, durable, before the sink's `Duplicate` is
//! answered with 0x0000. Meanwhile, the next instance's `.part` file is created ahead
//! of it, and deleted when the association is released.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{
    Server, data_set_bytes, explicit_le_instance, rust_scu, rust_store, synth_series, wait_until,
};
use spinewatch_ingest::Recorded;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_answered_only_with_its_file_in_place() {
    let data = tempfile::tempdir().unwrap();
    let files = synth_series(data.path(), 2);
    let (class, uid, bytes) = explicit_le_instance(&files[0]);
    let server = Server::start().await;
    let mut assoc = rust_scu(server.addr, &class, EXPLICIT_LE).await;

    assert_eq!(rust_store(&mut assoc, 1, (&class, &uid), &bytes).await, 0);
    // Answered: the next instance's file is being created ahead of it.
    wait_until("a spare file is created", || !server.tmp_files().is_empty()).await;
    let spooled = server.instance_files();
    assert_eq!(spooled.len(), 1);
    std::fs::remove_file(&spooled[0]).unwrap();

    assert_eq!(rust_store(&mut assoc, 2, (&class, &uid), &bytes).await, 0);
    assoc.release().await.unwrap();
    assert_eq!(
        server.sink.answers(),
        vec![(uid.clone(), Recorded::New), (uid, Recorded::Duplicate)]
    );
    assert_eq!(
        server.instance_files(),
        spooled,
        "the file is back in place"
    );
    assert_eq!(data_set_bytes(&spooled[0]), bytes);
    assert!(server.partial_files().is_empty(), "no partial file left");
    server.stop().await;
}
