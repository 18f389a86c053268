//! Instances that cannot be stored are answered with a failure status and the
//! association stays open: a data set cut short (0xC000), garbage (0xC000), a data set
//! whose SOP Instance UID differs from the command's (0xA900). Nothing of them stays
//! in the spool; a good instance on the same association is then stored.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{Server, explicit_le_instance, rust_scu, rust_store, synth_series};

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_instances_get_a_status_and_the_association_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let files = synth_series(data.path(), 2);
    let (class, uid, bytes) = explicit_le_instance(&files[0]);
    let server = Server::start().await;
    let mut assoc = rust_scu(server.addr, &class, EXPLICIT_LE).await;

    // Truncated inside the pixel data, yet sent as complete: the header alone would
    // parse, so only the structure check can tell.
    let cut = &bytes[..bytes.len() - 1000];
    assert_eq!(rust_store(&mut assoc, 1, (&class, &uid), cut).await, 0xC000);

    // Not a data set at all.
    let garbage = vec![0xAB_u8; 3000];
    assert_eq!(
        rust_store(&mut assoc, 2, (&class, &uid), &garbage).await,
        0xC000
    );

    // The command names another instance than the data set.
    let other = "1.2.826.0.1.3680043.2.1125.999";
    assert_eq!(
        rust_store(&mut assoc, 3, (&class, other), &bytes).await,
        0xA900
    );

    // The command names another SOP class than the presentation context.
    let mr = "1.2.840.10008.5.1.4.1.1.4";
    assert_eq!(rust_store(&mut assoc, 4, (mr, &uid), &bytes).await, 0x0122);

    server.assert_spool_empty();
    assert!(server.sink.answers().is_empty());

    // Same association, a good instance.
    assert_eq!(
        rust_store(&mut assoc, 5, (&class, &uid), &bytes).await,
        0x0000
    );
    assoc.release().await.unwrap();
    assert_eq!(server.instance_files().len(), 1);
    assert!(server.partial_files().is_empty());
    assert_eq!(server.sink.answers().len(), 1);
    server.stop().await;
}
