//! What radiology IT watches: every metric `serve` exports on `/metrics` (Prometheus text
//! format), beside those of the DICOM listener (`spinewatch_ingest::metrics`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `spinewatch_studies_total` | counter | `outcome`: positive, negative, excluded, not_analysable |
//! | `spinewatch_exclusions_total` | counter | `reason`: not_ct, age, age_unknown |
//! | `spinewatch_not_analysable_total` | counter | `reason`: no_suitable_series, series_too_thick, too_few_slices, corrupt_pixel_data, no_spine, unreadable |
//! | `spinewatch_analysis_failures_total` | counter | `kind`: journal, panic |
//! | `spinewatch_stage_seconds` | histogram | `stage`: read, volume, detect, total |
//! | `spinewatch_studies` | gauge | `state`: the journal's states |
//! | `spinewatch_backlog_studies` | gauge | |
//! | `spinewatch_accepting` | gauge | 1 while instances are accepted, 0 over the backlog ceiling |
//! | `spinewatch_execution_provider` | gauge | `provider`: 1 for the one running the model |
//! | `spinewatch_spool_pruned_studies_total`, `_instances_total`, `_bytes_total` | counter | spool retention's removals |
//! | `spinewatch_spool_free_bytes`, `spinewatch_spool_min_free_bytes` | gauge | free space on the spool's disk (at each scrape) and the watermark under which instances are refused |
//! | `spinewatch_instances_received_total`, `spinewatch_bytes_received_total`, `spinewatch_associations_total{outcome}`, ... | | from the listener |

use std::sync::Arc;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use spinewatch_infer::ExecutionProvider;

/// Studies by outcome.
pub const STUDIES_TOTAL: &str = "spinewatch_studies_total";
/// Exclusions by reason.
pub const EXCLUSIONS_TOTAL: &str = "spinewatch_exclusions_total";
/// Not analysable by reason.
pub const NOT_ANALYSABLE_TOTAL: &str = "spinewatch_not_analysable_total";
/// Analyses that failed to complete (the study is retried after a restart).
pub const ANALYSIS_FAILURES_TOTAL: &str = "spinewatch_analysis_failures_total";
/// Seconds per pipeline stage.
pub const STAGE_SECONDS: &str = "spinewatch_stage_seconds";
/// Studies by journal state.
pub const STUDIES: &str = "spinewatch_studies";
/// Studies received, complete or being analysed.
pub const BACKLOG: &str = "spinewatch_backlog_studies";
/// Whether instances are accepted.
pub const ACCEPTING: &str = "spinewatch_accepting";
/// The execution provider running the model.
pub const EXECUTION_PROVIDER: &str = "spinewatch_execution_provider";
/// Free bytes on the spool's file system, read at each scrape.
pub const SPOOL_FREE_BYTES: &str = "spinewatch_spool_free_bytes";
/// The disk watermark: under it, instances are refused (0xA700).
pub const SPOOL_MIN_FREE_BYTES: &str = "spinewatch_spool_min_free_bytes";
/// Studies whose instances spool retention removed.
pub const PRUNED_STUDIES_TOTAL: &str = "spinewatch_spool_pruned_studies_total";
/// Instance files spool retention removed.
pub const PRUNED_INSTANCES_TOTAL: &str = "spinewatch_spool_pruned_instances_total";
/// Bytes of the instance files spool retention removed.
pub const PRUNED_BYTES_TOTAL: &str = "spinewatch_spool_pruned_bytes_total";

/// Bucket bounds of [`STAGE_SECONDS`], s: a read of a few hundred slices takes about a
/// second, a whole study a few.
const STAGE_BUCKETS_S: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The installed recorder's handle.
#[derive(Clone)]
pub struct Metrics {
    handle: Arc<PrometheusHandle>,
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Installs the process-wide recorder, describes the metrics and sets the constant ones.
pub fn install(provider: ExecutionProvider) -> anyhow::Result<Metrics> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(STAGE_SECONDS.to_owned()), &STAGE_BUCKETS_S)
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("could not install the metrics recorder")?;
    metrics::describe_counter!(STUDIES_TOTAL, "Studies analysed or excluded, by outcome");
    metrics::describe_counter!(EXCLUSIONS_TOTAL, "Studies excluded, by reason");
    metrics::describe_counter!(NOT_ANALYSABLE_TOTAL, "Studies not analysable, by reason");
    metrics::describe_counter!(
        ANALYSIS_FAILURES_TOTAL,
        "Analyses that did not complete (retried after a restart)"
    );
    metrics::describe_histogram!(
        STAGE_SECONDS,
        metrics::Unit::Seconds,
        "Time per pipeline stage"
    );
    metrics::describe_counter!(
        PRUNED_STUDIES_TOTAL,
        "Studies whose instances spool retention removed"
    );
    metrics::describe_counter!(
        PRUNED_INSTANCES_TOTAL,
        "Instance files spool retention removed"
    );
    metrics::describe_counter!(
        PRUNED_BYTES_TOTAL,
        "Bytes of the instance files spool retention removed"
    );
    metrics::describe_gauge!(
        SPOOL_FREE_BYTES,
        "Free bytes on the spool's file system, read at each scrape"
    );
    metrics::describe_gauge!(
        SPOOL_MIN_FREE_BYTES,
        "Disk watermark: under it instances are refused with 0xA700"
    );
    metrics::describe_gauge!(STUDIES, "Studies by journal state");
    metrics::describe_gauge!(BACKLOG, "Studies received, complete or being analysed");
    metrics::describe_gauge!(ACCEPTING, "1 while instances are accepted");
    metrics::describe_gauge!(
        EXECUTION_PROVIDER,
        "The execution provider running the model"
    );
    for p in ExecutionProvider::ALL {
        let on = if p == provider { 1.0 } else { 0.0 };
        metrics::gauge!(EXECUTION_PROVIDER, "provider" => p.config_name()).set(on);
    }
    // Every outcome shows from the start (at zero), so dashboards and alerts need no
    // special case for a series that has not appeared yet.
    for outcome in ["positive", "negative", "excluded", "not_analysable"] {
        metrics::counter!(STUDIES_TOTAL, "outcome" => outcome).absolute(0);
    }
    metrics::gauge!(ACCEPTING).set(1.0);
    Ok(Metrics {
        handle: Arc::new(handle),
    })
}
