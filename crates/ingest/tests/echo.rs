//! `echoscu` (dcmtk) gets a C-ECHO answered, on a connection with TCP_NODELAY set.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{AE, Server, dcmtk, echoscu};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoscu_succeeds() {
    let Some(bin) = dcmtk("echoscu") else {
        return;
    };
    let server = Server::start().await;
    let out = echoscu(&bin, &server, "ECHOSCU", AE).await;
    assert!(out.status.success(), "echoscu failed");
    // Twice: the first association ended cleanly and the listener still serves.
    let out = echoscu(&bin, &server, "ECHOSCU", AE).await;
    assert!(out.status.success(), "second echoscu failed");
    server.stop().await;
}
