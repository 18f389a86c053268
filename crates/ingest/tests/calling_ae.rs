//! Association checks: an unknown calling AE, a calling AE from the wrong host and a
//! wrong called AE are rejected at association (A-ASSOCIATE-RJ, permanent), and the
//! listener keeps serving allowed peers.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{AE, Server, dcmtk, echoscu};
use spinewatch_ingest::AllowedPeer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_calling_ae_is_rejected_and_the_listener_keeps_serving() {
    let Some(bin) = dcmtk("echoscu") else {
        return;
    };
    let server = Server::start_with(|c| {
        c.allowed_calling_aes = vec![
            AllowedPeer {
                ae_title: "PACS".into(),
                host: Some("127.0.0.1".parse().unwrap()),
            },
            AllowedPeer {
                ae_title: "ELSEWHERE".into(),
                host: Some("10.1.2.3".parse().unwrap()),
            },
        ];
    })
    .await;

    let out = echoscu(&bin, &server, "WRONG", AE).await;
    assert!(!out.status.success(), "unknown calling AE was accepted");
    let text = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        text.contains("rejected") && text.contains("calling ae title not recognized"),
        "echoscu did not report a calling AE rejection"
    );

    let out = echoscu(&bin, &server, "ELSEWHERE", AE).await;
    assert!(
        !out.status.success(),
        "calling AE from another host was accepted"
    );

    let out = echoscu(&bin, &server, "PACS", "NOT-US").await;
    assert!(!out.status.success(), "wrong called AE was accepted");
    let text = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        text.contains("called ae title not recognized"),
        "echoscu did not report a called AE rejection"
    );

    let out = echoscu(&bin, &server, "PACS", AE).await;
    assert!(
        out.status.success(),
        "allowed peer refused after rejections"
    );
    server.stop().await;
}
