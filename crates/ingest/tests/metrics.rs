//! The listener's metrics, seen through a recorder installed for this test binary:
//! names and labels as documented in `spinewatch_ingest::metrics`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{
    Server, echo_rq, explicit_le_instance, read_status, rust_scu, rust_store, send_pdv,
    synth_series,
};
use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::PDataValueType;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Counters by `name{label=value,...}`.
#[derive(Debug, Clone, Default)]
struct Counters(Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>);

impl Counters {
    fn get(&self, key: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
}

impl Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<_> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = if labels.is_empty() {
            key.name().to_owned()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        let counter = self.0.lock().unwrap().entry(name).or_default().clone();
        Counter::from_arc(counter)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_associations_instances_failures_and_echoes() {
    let counters = Counters::default();
    metrics::set_global_recorder(counters.clone()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let files = synth_series(data.path(), 2);
    let (class, uid, bytes) = explicit_le_instance(&files[0]);
    let server = Server::start().await;

    // One association: a C-ECHO, a refused instance, a stored one, then a release.
    let mut assoc = rust_scu(server.addr, &class, EXPLICIT_LE).await;
    let garbage = vec![0xAB_u8; 100];
    assert_eq!(
        rust_store(&mut assoc, 1, (&class, &uid), &garbage).await,
        0xC000
    );
    assert_eq!(
        rust_store(&mut assoc, 2, (&class, &uid), &bytes).await,
        0x0000
    );
    assoc.release().await.unwrap();
    let mut echo = rust_scu(
        server.addr,
        spinewatch_ingest::syntax::VERIFICATION,
        EXPLICIT_LE,
    )
    .await;
    send_pdv(&mut echo, PDataValueType::Command, true, &echo_rq(1)).await;
    assert_eq!(read_status(&mut echo).await, 0x0000);
    echo.abort().await.unwrap();
    // A wrong called AE.
    let refused = ClientAssociationOptions::new()
        .calling_ae_title("RUST-SCU")
        .called_ae_title("NOT-US")
        .with_abstract_syntax(spinewatch_ingest::syntax::VERIFICATION)
        .establish_async(server.addr)
        .await;
    assert!(refused.is_err());
    server.stop().await;

    assert_eq!(
        counters.get("spinewatch_associations_total{outcome=accepted}"),
        2
    );
    assert_eq!(
        counters.get("spinewatch_associations_total{outcome=released}"),
        1
    );
    assert_eq!(
        counters.get("spinewatch_associations_total{outcome=aborted}"),
        1
    );
    assert_eq!(
        counters.get("spinewatch_associations_total{outcome=rejected_called_ae}"),
        1
    );
    assert_eq!(counters.get("spinewatch_instances_received_total"), 1);
    assert!(counters.get("spinewatch_bytes_received_total") > bytes.len() as u64);
    assert_eq!(
        counters.get("spinewatch_store_failures_total{status=c000}"),
        1
    );
    assert_eq!(counters.get("spinewatch_echo_total"), 1);
}
