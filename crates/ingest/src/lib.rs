//! spinewatch-ingest: the DICOM listener where studies enter spinewatch. The hospital
//! PACS pushes CT studies with C-STORE; every instance is made durable in a spool and
//! recorded through an [`InstanceSink`] before the PACS is told it succeeded.
//!
//! ```text
//! PACS --A-ASSOCIATE--> server (AE checks, association limit)
//!      --C-ECHO-------> association (answered)
//!      --C-STORE------> association --P-DATA--> buffer (4 MiB), spilling to tmp/<random>.part
//!                         (created ahead, its name synced, taken once the previous
//!                         C-STORE is answered)
//!                         --one blocking call: structure and header check, seal,
//!                           write, fdatasync, rename--> instances/<shard>/<uid>.dcm
//!                           then InstanceSink::record_blocking--> the database
//!                         --> C-STORE-RSP 0x0000
//! ```
//!
//! - [`config`]: [`IngestConfig`], the `[ingest]` section.
//! - [`server`]: [`Listener`] and [`serve`]: accept, negotiate, bound, shut down.
//! - `association` (private): one association's P-DATA state machine.
//! - [`spool`]: the durable spool (tmp, seal, fdatasync, atomic rename), one file per
//!   SOP Instance UID.
//! - [`structure`]: the completeness check of a spooled data set (truncation).
//! - [`sink`]: [`InstanceSink`], [`StoredInstance`], [`PatientId`], [`Recorded`],
//!   [`SinkError`].
//! - [`dimse`]: DIMSE command sets and the statuses we answer with.
//! - [`syntax`]: accepted abstract and transfer syntaxes.
//! - [`metrics`]: every metric this crate emits.
//!
//! Failures answer a status and keep the association: 0xA700 (out of resources) when
//! free disk is under the watermark or the sink reports backpressure, 0xC000 when the
//! data set cannot be understood, 0xA900 when it does not match the command. No patient
//! identifier is ever logged: UIDs appear at DEBUG level only.
//!
//! ```no_run
//! use std::sync::Arc;
//! use spinewatch_ingest::{IngestConfig, InstanceSink, Listener, Recorded, SinkError,
//!     StoredInstance};
//! use tokio_util::sync::CancellationToken;
//!
//! struct Log;
//! impl InstanceSink for Log {
//!     async fn record(&self, i: &StoredInstance) -> Result<Recorded, SinkError> {
//!         println!("{}", i.path.display());
//!         Ok(Recorded::New)
//!     }
//! }
//!
//! # async fn run() -> spinewatch_ingest::Result<()> {
//! let config = IngestConfig {
//!     bind: "127.0.0.1:0".parse().unwrap(),
//!     spool_dir: "/tmp/spool".into(),
//!     ..IngestConfig::default()
//! };
//! let listener = Listener::bind(config).await?;
//! println!("listening on {}", listener.local_addr()?);
//! listener.run(Arc::new(Log), CancellationToken::new()).await
//! # }
//! ```

mod association;
pub mod config;
pub mod dimse;
pub mod error;
pub mod metrics;
pub mod server;
pub mod sink;
pub mod spool;
pub mod structure;
pub mod syntax;

pub use association::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
pub use config::{AllowedPeer, IngestConfig};
pub use dimse::Status;
pub use error::{Error, Result};
pub use server::{Listener, serve};
pub use sink::{InstanceSink, PatientId, Recorded, SinkError, StoredInstance};
