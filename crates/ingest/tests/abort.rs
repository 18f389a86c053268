//! A peer that stops in the middle of an instance (A-ABORT, or the connection simply
//! dropped) leaves no partial file in `tmp/` or `instances/`, the sink sees nothing,
//! and the listener keeps serving. So does a shutdown in the middle of an instance, and
//! a panicking association task does not take the listener down.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::sync::atomic::Ordering;

use common::{
    Server, WAIT, explicit_le_instance, rust_scu, rust_store, send_pdv, store_rq, synth_series,
    wait_until,
};
use dicom_ul::Pdu;
use dicom_ul::association::client::AsyncClientAssociation;
use dicom_ul::pdu::PDataValueType;
use spinewatch_ingest::spool::PART_BUFFER_BYTES;
use tokio::net::TcpStream;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

#[derive(Debug, Clone, Copy)]
enum Stop {
    /// The peer sends an A-ABORT.
    Abort,
    /// The peer closes the TCP connection without a word.
    Drop,
}

/// Sends `head` as data set fragments, then filler until the listener has more than
/// [`PART_BUFFER_BYTES`] of the data set, so that some of it was written out to its
/// `.part` file (smaller instances stay in memory until their last fragment).
async fn send_past_the_buffer(assoc: &mut AsyncClientAssociation<TcpStream>, head: &[u8]) {
    send_pdv(assoc, PDataValueType::Data, false, head).await;
    let filler = vec![0_u8; 32 << 10];
    let mut sent = head.len();
    while sent <= PART_BUFFER_BYTES {
        send_pdv(assoc, PDataValueType::Data, false, &filler).await;
        sent += filler.len();
    }
}

async fn stop_mid_instance(stop: Stop) {
    let data = tempfile::tempdir().unwrap();
    let files = synth_series(data.path(), 2);
    let (class, uid, bytes) = explicit_le_instance(&files[0]);
    let server = Server::start().await;

    let mut assoc = rust_scu(server.addr, &class, EXPLICIT_LE).await;
    send_pdv(
        &mut assoc,
        PDataValueType::Command,
        true,
        &store_rq(1, &class, &uid),
    )
    .await;
    send_past_the_buffer(&mut assoc, &bytes[..bytes.len() / 2]).await;
    // The instance is being spooled...
    wait_until("a .part file is written", || {
        server.partial_files().len() == 1
    })
    .await;
    match stop {
        Stop::Abort => assoc.abort().await.unwrap(),
        Stop::Drop => drop(assoc),
    }
    // ...and is gone once the peer has stopped.
    wait_until("the partial instance is removed", || {
        server.partial_files().is_empty()
    })
    .await;
    server.assert_spool_empty();
    assert!(
        server.sink.answers().is_empty(),
        "sink saw a partial instance"
    );

    // The listener still serves: the other instance goes through on a new association.
    let (class, uid, bytes) = explicit_le_instance(&files[1]);
    let mut assoc = rust_scu(server.addr, &class, EXPLICIT_LE).await;
    assert_eq!(
        rust_store(&mut assoc, 1, (&class, &uid), &bytes).await,
        0x0000
    );
    assoc.release().await.unwrap();
    assert_eq!(server.instance_files().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_abort_mid_instance_leaves_nothing() {
    stop_mid_instance(Stop::Abort).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_mid_instance_leaves_nothing() {
    stop_mid_instance(Stop::Drop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_instance_aborts_and_leaves_nothing() {
    let data = tempfile::tempdir().unwrap();
    let files = synth_series(data.path(), 2);
    let (class, uid, bytes) = explicit_le_instance(&files[0]);
    let server = Server::start().await;

    let mut assoc = rust_scu(server.addr, &class, EXPLICIT_LE).await;
    send_pdv(
        &mut assoc,
        PDataValueType::Command,
        true,
        &store_rq(1, &class, &uid),
    )
    .await;
    send_past_the_buffer(&mut assoc, &bytes[..bytes.len() / 2]).await;
    wait_until("a .part file is written", || {
        server.partial_files().len() == 1
    })
    .await;

    // Stops in time although an association is open and mid-instance.
    let dir = server.stop().await;
    // Empty parts created ahead of need may outlive the listener for a moment (a
    // refill under way when it stopped); the next start removes them.
    let partial = std::fs::read_dir(dir.path().join("spool/tmp"))
        .unwrap()
        .filter(|f| f.as_ref().unwrap().metadata().unwrap().len() > 0)
        .count();
    assert_eq!(partial, 0, "partial instance left after shutdown");
    // The peer is told: an A-ABORT (or, at worst, the connection closes).
    let end = tokio::time::timeout(WAIT, assoc.receive()).await.unwrap();
    assert!(
        matches!(end, Ok(Pdu::AbortRQ { .. }) | Err(_)),
        "association still alive after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_association_does_not_stop_the_listener() {
    let data = tempfile::tempdir().unwrap();
    let files = synth_series(data.path(), 2);
    let server = Server::start().await;

    server.sink.panic_in_record.store(true, Ordering::SeqCst);
    let (class, uid, bytes) = explicit_le_instance(&files[0]);
    let mut assoc = rust_scu(server.addr, &class, EXPLICIT_LE).await;
    send_pdv(
        &mut assoc,
        PDataValueType::Command,
        true,
        &store_rq(1, &class, &uid),
    )
    .await;
    send_pdv(&mut assoc, PDataValueType::Data, true, &bytes).await;
    // No answer: the task died and its connection closed.
    let end = tokio::time::timeout(WAIT, assoc.receive()).await.unwrap();
    assert!(end.is_err(), "answered although the sink panicked");
    server.sink.panic_in_record.store(false, Ordering::SeqCst);

    let (class, uid, bytes) = explicit_le_instance(&files[1]);
    let mut assoc = rust_scu(server.addr, &class, EXPLICIT_LE).await;
    assert_eq!(
        rust_store(&mut assoc, 1, (&class, &uid), &bytes).await,
        0x0000
    );
    assoc.release().await.unwrap();
    server.stop().await;
}
