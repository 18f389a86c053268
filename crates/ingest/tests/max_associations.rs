//! With `max_associations = 1` and one association held open, another is rejected at
//! once (transient, local limit exceeded: the PACS retries later), not left hanging;
//! once the first is released, associations are served again.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::{AE, Server, dcmtk, echoscu, rust_scu};

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn association_over_the_limit_is_rejected_not_hung() {
    let Some(bin) = dcmtk("echoscu") else {
        return;
    };
    let server = Server::start_with(|c| c.max_associations = 1).await;
    let held = rust_scu(
        server.addr,
        spinewatch_ingest::syntax::VERIFICATION,
        EXPLICIT_LE,
    )
    .await;

    let start = Instant::now();
    let out = echoscu(&bin, &server, "ECHOSCU", AE).await;
    let took = start.elapsed();
    assert!(
        !out.status.success(),
        "second association accepted over the limit"
    );
    let text = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        text.contains("rejected transient") && text.contains("local limit exceeded"),
        "echoscu did not report a transient rejection"
    );
    // dcmtk's own ACSE timeout is 5 s: an answer well before it is not a hang.
    assert!(took < Duration::from_secs(3), "rejection took {took:?}");

    held.release().await.unwrap();
    // The permit returns when the association task ends, just after the release.
    let mut served = false;
    for _ in 0..20 {
        if echoscu(&bin, &server, "ECHOSCU", AE).await.status.success() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served,
        "no association served after the held one was released"
    );
    server.stop().await;
}
