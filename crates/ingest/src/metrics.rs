//! Every metric the listener emits, through the `metrics` facade (the binary installs
//! the exporter). Labels come from closed sets, never UIDs, AE titles or paths.
//!
//! | name | labels | meaning |
//! |---|---|---|
//! | `spinewatch_associations_total` | `outcome` | see [`AssociationOutcome`] |
//! | `spinewatch_instances_received_total` | | instances acknowledged with 0x0000 |
//! | `spinewatch_bytes_received_total` | | spooled bytes of those instances |
//! | `spinewatch_store_failures_total` | `status` | C-STORE answered with a failure status |
//! | `spinewatch_echo_total` | | C-ECHO requests answered |
//! | `spinewatch_ingest_store_step_seconds` | `step` | time per step of storing an instance, see [`StoreStep`] |

use crate::dimse::Status;

/// Associations by outcome.
pub const ASSOCIATIONS_TOTAL: &str = "spinewatch_associations_total";
/// Instances stored (or found already stored) and acknowledged.
pub const INSTANCES_RECEIVED_TOTAL: &str = "spinewatch_instances_received_total";
/// Bytes of acknowledged instances.
pub const BYTES_RECEIVED_TOTAL: &str = "spinewatch_bytes_received_total";
/// C-STORE failures by status code (hex, lower case).
pub const STORE_FAILURES_TOTAL: &str = "spinewatch_store_failures_total";
/// C-ECHO requests answered.
pub const ECHO_TOTAL: &str = "spinewatch_echo_total";

/// Seconds each step of storing one instance took, by `step` (a histogram: the exporter
/// shows it as a summary unless given buckets; `_sum / _count` is the mean per instance).
pub const STORE_STEP_SECONDS: &str = "spinewatch_ingest_store_step_seconds";

/// A step of storing an instance once its last data-set PDV is in, in order. The
/// benchmark (`benches/e2e/ingest_vs_storescp_orthanc.sh`) prints their means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStep {
    /// Waiting for the shard's commit lock.
    Lock,
    /// Waiting for the `.part` file's creation, started with the instance, to end.
    Create,
    /// Waiting for a thread of tokio's blocking pool to start the spool's blocking call.
    Queue,
    /// Writing the bytes still in memory to the `.part` file.
    Write,
    /// `fdatasync` of the `.part` file.
    Sync,
    /// The completeness and header checks of the synced bytes.
    Verify,
    /// The rename into `instances/` and the fsync of its folder.
    Commit,
    /// The sink's record (the journal's transaction), its trip to the blocking pool
    /// included.
    Record,
    /// All of it: from the last data-set PDV to the response being ready to send.
    Total,
}

impl StoreStep {
    /// The `step` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Create => "create",
            Self::Queue => "queue",
            Self::Write => "write",
            Self::Sync => "sync",
            Self::Verify => "verify",
            Self::Commit => "commit",
            Self::Record => "record",
            Self::Total => "total",
        }
    }
}

/// Records how long a step of storing an instance took.
pub(crate) fn store_step(step: StoreStep, took: std::time::Duration) {
    metrics::histogram!(STORE_STEP_SECONDS, "step" => step.label()).record(took.as_secs_f64());
}

/// What became of an association (one count when established or refused, one more
/// when an accepted one ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssociationOutcome {
    /// Established.
    Accepted,
    /// Refused: calling AE (or its host) not allowed.
    RejectedCallingAe,
    /// Refused: called AE is not ours.
    RejectedCalledAe,
    /// Refused: `max_associations` reached.
    RejectedBusy,
    /// Refused for another reason (protocol version, application context, a malformed
    /// or missing A-ASSOCIATE-RQ).
    RejectedOther,
    /// Ended by an A-ABORT, a lost connection, a timeout or a protocol error.
    Aborted,
    /// Ended by an orderly A-RELEASE.
    Released,
}

impl AssociationOutcome {
    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::RejectedCallingAe => "rejected_calling_ae",
            Self::RejectedCalledAe => "rejected_called_ae",
            Self::RejectedBusy => "rejected_busy",
            Self::RejectedOther => "rejected_other",
            Self::Aborted => "aborted",
            Self::Released => "released",
        }
    }
}

/// Counts an association outcome.
pub(crate) fn association(outcome: AssociationOutcome) {
    metrics::counter!(ASSOCIATIONS_TOTAL, "outcome" => outcome.label()).increment(1);
}

/// Counts an acknowledged instance of `bytes` bytes.
pub(crate) fn instance_received(bytes: u64) {
    metrics::counter!(INSTANCES_RECEIVED_TOTAL).increment(1);
    metrics::counter!(BYTES_RECEIVED_TOTAL).increment(bytes);
}

/// Counts a C-STORE answered with a failure `status`.
pub(crate) fn store_failure(status: Status) {
    metrics::counter!(STORE_FAILURES_TOTAL, "status" => status.label()).increment(1);
}

/// Counts an answered C-ECHO.
pub(crate) fn echo() {
    metrics::counter!(ECHO_TOTAL).increment(1);
}
