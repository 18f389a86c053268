//! One established association: P-DATA in, DIMSE responses out.
//!
//! The loop reads one PDU at a time (bounded by our maximum PDU length) and feeds its
//! presentation data values to a small state machine:
//!
//! ```text
//! Idle --command PDV--> Command (fragments, <= 64 KiB) --last--> C-ECHO: answer, Idle
//!                                                          \---> C-STORE: Data(target)
//! Data(Spool(part) | Discard(status)) --data PDVs: buffered (written out per 4 MiB)
//!                                        or dropped--> last: finish
//! finish: shard lock, then ONE blocking call (structure check, header parse and
//!         checks, seal, write the rest, fdatasync, rename, sink.record_blocking), then
//!         the C-STORE-RSP; any failure answers a status and keeps the association.
//! C-STORE-RSP sent: the next instance's `.part` file is taken (a spare).
//! ```
//!
//! Per instance, the only trips to tokio's blocking pool that the association waits on
//! are that call, one per 4 MiB of data set beyond the first, and a free-space reading a
//! few times a second; the `.part` file is created ahead of need, not awaited (see the
//! [`spool`](crate::spool) module for why they are counted). The time of each step, from
//! the last PDV to the response, goes to
//! [`STORE_STEP_SECONDS`](crate::metrics::STORE_STEP_SECONDS).
//!
//! The sink's record comes after the file is durable and in place (not beside its
//! fdatasync), so that a record never names a file that is not durable, even for a
//! moment: the pipeline reads files by their records, and a record is answered as a
//! duplicate without the file being looked at again. It runs in the same blocking call
//! as the spool's work ([`InstanceSink::record_blocking`]): its own trip to the pool cost
//! 0.1-0.2 ms per instance with four associations (2026-11-21).
//!
//! A failed instance never ends the association; a protocol violation, a timeout, an
//! A-ABORT, a lost connection or shutdown do, and the `.part` of an unfinished instance
//! is deleted when the state is dropped ([`PartFile`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use dicom_object::FileMetaTableBuilder;
use dicom_ul::Pdu;
use dicom_ul::association::{Association, AsyncServerAssociation};
use dicom_ul::pdu::{PDataValue, PDataValueType, PresentationContextResultReason};
use spinewatch_core::Uid;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use crate::dimse::{Command, MAX_COMMAND_BYTES, Status, command_field, response};
use crate::error::{Error, ErrorChain, Result};
use crate::metrics::{self, AssociationOutcome, StoreStep};
use crate::server::Shared;
use crate::sink::{InstanceSink, PatientId, Recorded, SinkError, StoredInstance};
use crate::spool::{Committed, FinishError, Header, PartData, PartFile, SparePart, parse_header};
use crate::structure::{self, StructureError};
use crate::syntax::{VERIFICATION, trim_uid};

/// Our Implementation Class UID, written in the file meta group of spooled files
/// (PS3.7 annex D.3.3.2); a UUID-derived UID (PS3.5 B.2).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.131852699650188443228312017979765723301";
/// Our Implementation Version Name (at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("SPINEWATCH_", env!("CARGO_PKG_VERSION"));

/// An accepted presentation context.
#[derive(Debug, Clone)]
struct Context {
    abstract_syntax: String,
    transfer_syntax: String,
}

/// A data set being received.
#[derive(Debug)]
enum Target {
    /// Written to the spool.
    Spool {
        // Boxed: the state machine moves its state per PDV.
        part: Box<PartFile>,
        uid: Uid,
        transfer_syntax: String,
    },
    /// Read and dropped; answered with `status`.
    Discard {
        status: Status,
        comment: &'static str,
    },
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    Command {
        pc_id: u8,
        bytes: Vec<u8>,
    },
    Data {
        pc_id: u8,
        command: Command,
        target: Target,
    },
}

/// A response to send: presentation context and encoded command set.
type Reply = (u8, Vec<u8>);

/// Serves an established association until it is released or aborted.
pub(crate) async fn run<S: InstanceSink>(
    shared: Arc<Shared<S>>,
    mut assoc: AsyncServerAssociation<TcpStream>,
    peer: SocketAddr,
) -> AssociationOutcome {
    let contexts = assoc
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .map(|pc| {
            let c = Context {
                abstract_syntax: trim_uid(&pc.abstract_syntax).to_owned(),
                transfer_syntax: trim_uid(&pc.transfer_syntax).to_owned(),
            };
            (pc.id, c)
        })
        .collect();
    let mut session = Session {
        shared: &shared,
        contexts,
        calling_ae: assoc.peer_ae_title().to_owned(),
        peer,
        state: State::Idle,
        spare: None,
        stored: false,
    };
    let read_timeout = shared.config.read_timeout();
    loop {
        let received = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => {
                info!("Shutting down: aborting the association.");
                abort(assoc).await;
                return AssociationOutcome::Aborted;
            }
            r = tokio::time::timeout(read_timeout, assoc.receive()) => r,
        };
        let pdu = match received {
            Err(_elapsed) => {
                warn!(
                    timeout_secs = shared.config.read_timeout_secs,
                    "Peer silent for too long: aborting the association."
                );
                abort(assoc).await;
                return AssociationOutcome::Aborted;
            }
            Ok(Err(e)) => {
                let e = Error::ul("receiving a PDU", &e);
                warn!(error = %ErrorChain(&e), "Association lost.");
                return AssociationOutcome::Aborted;
            }
            Ok(Ok(pdu)) => pdu,
        };
        match pdu {
            Pdu::PData { data } => {
                for pdv in data {
                    let reply = match session.on_pdv(pdv).await {
                        Ok(reply) => reply,
                        Err(e) => {
                            warn!(error = %ErrorChain(&e), "Aborting the association.");
                            abort(assoc).await;
                            return AssociationOutcome::Aborted;
                        }
                    };
                    if let Some(reply) = reply
                        && let Err(e) = send_reply(&mut assoc, reply).await
                    {
                        warn!(error = %ErrorChain(&e), "Association lost.");
                        return AssociationOutcome::Aborted;
                    }
                    session.prepare_next();
                }
            }
            Pdu::ReleaseRQ => {
                if session.in_message() {
                    warn!("Release requested in the middle of a message; its instance is dropped.");
                }
                // Before the A-RELEASE-RP: nothing of this association is left in the
                // spool once the PACS hears it ended.
                if let Some(spare) = session.spare.take() {
                    spare.discard().await;
                }
                drop(session);
                if let Err(e) = assoc.send(&Pdu::ReleaseRP).await {
                    let e = Error::ul("answering the release", &e);
                    debug!(error = %ErrorChain(&e), "Could not confirm the release.");
                }
                // The requestor closes the connection once it has the A-RELEASE-RP; a
                // failing shutdown only means it already did.
                if let Err(e) = assoc.inner_stream().shutdown().await {
                    debug!(error = %ErrorChain(&e), "Connection already closed.");
                }
                return AssociationOutcome::Released;
            }
            Pdu::AbortRQ { .. } => {
                if session.in_message() {
                    info!("Peer aborted the association in the middle of an instance.");
                } else {
                    info!("Peer aborted the association.");
                }
                return AssociationOutcome::Aborted;
            }
            other => {
                warn!(
                    pdu = crate::error::pdu_kind(&other),
                    "Unexpected PDU: aborting the association."
                );
                abort(assoc).await;
                return AssociationOutcome::Aborted;
            }
        }
    }
}

/// Sends a response command set in one PDV (responses are a few hundred bytes, under
/// any peer's maximum PDU length).
async fn send_reply(
    assoc: &mut AsyncServerAssociation<TcpStream>,
    (pc_id, bytes): Reply,
) -> Result<()> {
    let pdu = Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc_id,
            value_type: PDataValueType::Command,
            is_last: true,
            data: bytes,
        }],
    };
    assoc
        .send(&pdu)
        .await
        .map_err(|e| Error::ul("sending a response", &e))
}

/// Sends an A-ABORT and closes the connection; the peer may already be gone.
async fn abort(assoc: AsyncServerAssociation<TcpStream>) {
    if let Err(e) = assoc.abort().await {
        let e = Error::ul("aborting", &e);
        debug!(error = %ErrorChain(&e), "Could not send the A-ABORT.");
    }
}

struct Session<'a, S> {
    shared: &'a Shared<S>,
    contexts: HashMap<u8, Context>,
    calling_ae: String,
    peer: SocketAddr,
    state: State,
    /// The `.part` file for the next instance, created while the PACS prepares it.
    spare: Option<SparePart>,
    /// Whether a C-STORE data set was answered since the spare was last taken.
    stored: bool,
}

impl<S: InstanceSink> Session<'_, S> {
    /// Once a C-STORE is answered with success, starts creating the next instance's
    /// `.part` file (not awaited): the PACS sends the next one soon, and its data set
    /// arrives faster than a file is created on a busy disk. Started after the response
    /// is sent, so that it does not delay it. Deleted at release (awaited) or when the
    /// session is dropped.
    fn prepare_next(&mut self) {
        if std::mem::take(&mut self.stored) && self.spare.is_none() {
            self.spare = Some(self.shared.spool.spare());
        }
    }

    /// Whether a message is half received.
    fn in_message(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Handles one presentation data value; returns a response to send, if any.
    /// An error is a protocol violation: the association is aborted.
    async fn on_pdv(&mut self, pdv: PDataValue) -> Result<Option<Reply>> {
        let pc_id = pdv.presentation_context_id;
        // The state is taken out and put back unless the message is complete; on an
        // error it stays `Idle`, and a dropped `PartFile` deletes its file.
        match (pdv.value_type.clone(), std::mem::take(&mut self.state)) {
            (PDataValueType::Command, State::Idle) => {
                self.on_command_fragment(pc_id, Vec::new(), pdv).await
            }
            (PDataValueType::Command, State::Command { pc_id: p, bytes }) if p == pc_id => {
                self.on_command_fragment(pc_id, bytes, pdv).await
            }
            (PDataValueType::Command, State::Command { .. }) => Err(Error::Protocol(
                "command fragments on two presentation contexts".into(),
            )),
            (PDataValueType::Command, State::Data { .. }) => Err(Error::Protocol(
                "a command before the end of the previous data set".into(),
            )),
            (PDataValueType::Data, State::Data { pc_id: p, .. }) if p != pc_id => Err(
                Error::Protocol("data set fragment on another presentation context".into()),
            ),
            (
                PDataValueType::Data,
                State::Data {
                    command,
                    mut target,
                    ..
                },
            ) => {
                if let Target::Spool { part, .. } = &mut target
                    && let Err(e) = part.write(&pdv.data).await
                {
                    warn!(error = %ErrorChain(&e), "Could not spool an instance.");
                    // The rest of the data set is read and dropped; dropping the part
                    // deletes it.
                    target = Target::Discard {
                        status: status_for(&e),
                        comment: "could not write the instance",
                    };
                }
                if !pdv.is_last {
                    self.state = State::Data {
                        pc_id,
                        command,
                        target,
                    };
                    return Ok(None);
                }
                let (status, comment) = self.finish(&command, target).await;
                // After a failure the PACS may well stop or wait: no spare then.
                self.stored = status == Status::Success;
                if status != Status::Success {
                    metrics::store_failure(status);
                }
                Ok(Some((pc_id, response(&command, status, comment)?)))
            }
            (PDataValueType::Data, _) => {
                Err(Error::Protocol("a data set without a command".into()))
            }
        }
    }

    /// Adds a command fragment; the last one decodes and handles the command.
    async fn on_command_fragment(
        &mut self,
        pc_id: u8,
        mut bytes: Vec<u8>,
        pdv: PDataValue,
    ) -> Result<Option<Reply>> {
        if bytes.len() + pdv.data.len() > MAX_COMMAND_BYTES {
            return Err(Error::Protocol(format!(
                "command set longer than {MAX_COMMAND_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&pdv.data);
        if !pdv.is_last {
            self.state = State::Command { pc_id, bytes };
            return Ok(None);
        }
        let command = Command::decode(&bytes)?;
        self.on_command(pc_id, command).await
    }

    /// A complete command set arrived.
    async fn on_command(&mut self, pc_id: u8, command: Command) -> Result<Option<Reply>> {
        if !command.is_request() {
            return Err(Error::Protocol(format!(
                "unexpected response command 0x{:04X}",
                command.field
            )));
        }
        match command.field {
            command_field::C_ECHO_RQ if !command.has_data_set => {
                metrics::echo();
                debug!("C-ECHO answered.");
                Ok(Some((pc_id, response(&command, Status::Success, None)?)))
            }
            command_field::C_STORE_RQ if command.has_data_set => {
                let target = self.admit(pc_id, &command).await?;
                self.state = State::Data {
                    pc_id,
                    command,
                    target,
                };
                Ok(None)
            }
            command_field::C_CANCEL_RQ => Ok(None),
            _ if command.has_data_set => {
                // Read its data set, then answer "unrecognized operation".
                self.state = State::Data {
                    pc_id,
                    command,
                    target: Target::Discard {
                        status: Status::UnrecognizedOperation,
                        comment: "only C-ECHO and C-STORE are supported",
                    },
                };
                Ok(None)
            }
            _ => {
                let comment = Some("only C-ECHO and C-STORE are supported");
                let bytes = response(&command, Status::UnrecognizedOperation, comment)?;
                Ok(Some((pc_id, bytes)))
            }
        }
    }

    /// Decides where a C-STORE data set goes, before any of it arrives: the spool, or
    /// nowhere with a failure status (the data set must still be read).
    async fn admit(&mut self, pc_id: u8, command: &Command) -> Result<Target> {
        let discard = |status, comment| Ok(Target::Discard { status, comment });
        let Some(pc) = self.contexts.get(&pc_id) else {
            return Err(Error::Protocol(format!(
                "C-STORE on presentation context {pc_id}, which was not accepted"
            )));
        };
        if pc.abstract_syntax == VERIFICATION
            || pc.abstract_syntax != command.affected_sop_class_uid
        {
            return discard(
                Status::SopClassNotSupported,
                "SOP class differs from the presentation context",
            );
        }
        let Ok(uid) = Uid::new(&command.affected_sop_instance_uid) else {
            return discard(
                Status::CannotUnderstand,
                "invalid Affected SOP Instance UID",
            );
        };
        let shared = self.shared;
        if !shared.sink.accepting() {
            return discard(Status::OutOfResources, "processing backlog full");
        }
        match shared.spool.has_room().await {
            Ok(true) => {}
            Ok(false) => {
                warn!(
                    min_free_disk_bytes = shared.config.min_free_disk_bytes,
                    "Free disk space under the watermark: instance refused."
                );
                return discard(Status::OutOfResources, "disk space under the watermark");
            }
            Err(e) => {
                warn!(error = %ErrorChain(&e), "Instance refused.");
                return discard(Status::ProcessingFailure, "could not check disk space");
            }
        }
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(pc.abstract_syntax.as_str())
            .media_storage_sop_instance_uid(uid.as_str())
            .transfer_syntax(pc.transfer_syntax.as_str())
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
            .source_application_entity_title(self.calling_ae.as_str())
            .build()
            .map_err(|e| Error::BuildMeta(Box::new(e)))?;
        let spare = self.spare.take().unwrap_or_else(|| shared.spool.spare());
        match shared.spool.create_in(&meta, spare) {
            Ok(part) => Ok(Target::Spool {
                part: Box::new(part),
                uid,
                transfer_syntax: pc.transfer_syntax.clone(),
            }),
            Err(e) => {
                warn!(error = %ErrorChain(&e), "Could not spool an instance.");
                discard(status_for(&e), "could not write the instance")
            }
        }
    }

    /// The data set is complete: make it durable and record it, or say why not.
    async fn finish(&self, command: &Command, target: Target) -> (Status, Option<&'static str>) {
        let started = Instant::now();
        let answer = self.store(command, target).await;
        metrics::store_step(StoreStep::Total, started.elapsed());
        answer
    }

    /// The body of [`Self::finish`].
    async fn store(&self, command: &Command, target: Target) -> (Status, Option<&'static str>) {
        let received_at = SystemTime::now();
        let (part, uid, ts) = match target {
            Target::Discard { status, comment } => return (status, Some(comment)),
            Target::Spool {
                part,
                uid,
                transfer_syntax,
            } => (part, uid, transfer_syntax),
        };
        let spool = &self.shared.spool;
        // Held until the sink has answered: see the spool's module documentation. Taken
        // before the blocking call, which checks, commits and records in one go; it is
        // only contended by the same shard (1/256 of the instances).
        let locking = Instant::now();
        let _lock = spool.lock(&uid).await;
        metrics::store_step(StoreStep::Lock, locking.elapsed());
        let expected = command.clone();
        let sink = Arc::clone(&self.shared.sink);
        let (calling_ae_title, peer_addr) = (self.calling_ae.clone(), self.peer);
        let sop_instance_uid = uid.clone();
        // Runs in the spool's blocking call, once the file is durable in place.
        let record = move |committed: &Committed, verified: Verified| {
            let Verified {
                uids,
                transfer_syntax_uid,
                modality,
                patient_id,
            } = verified;
            let instance = StoredInstance {
                path: committed.path.clone(),
                size_bytes: committed.size_bytes,
                sop_class_uid: uids.sop_class,
                sop_instance_uid,
                transfer_syntax_uid,
                study_instance_uid: uids.study,
                series_instance_uid: uids.series,
                modality,
                patient_id,
                calling_ae_title,
                peer_addr,
                received_at,
            };
            let recording = Instant::now();
            let recorded = sink.record_blocking(&instance);
            metrics::store_step(StoreStep::Record, recording.elapsed());
            match recorded {
                Ok(recorded) => Ok((instance, recorded)),
                Err(e) => Err(Refusal::Sink(e)),
            }
        };
        let finished = spool
            .finish(
                *part,
                &uid,
                move |data| verify(data, &ts, &expected),
                record,
            )
            .await;
        let (instance, recorded) = match finished {
            Ok((_, done)) => done,
            Err(FinishError::Spool(e)) => {
                warn!(error = %ErrorChain(&e), "Could not spool an instance.");
                return (status_for(&e), Some("could not write the instance"));
            }
            Err(FinishError::Refused(refusal)) => return refusal.answer(),
        };
        debug!(
            sop_instance_uid = %instance.sop_instance_uid,
            study_instance_uid = %instance.study_instance_uid,
            series_instance_uid = %instance.series_instance_uid,
            bytes = instance.size_bytes,
            duplicate = recorded == Recorded::Duplicate,
            "Instance stored."
        );
        metrics::instance_received(instance.size_bytes);
        (Status::Success, None)
    }
}

/// What a synced `.part` file told about itself.
struct Verified {
    uids: InstanceUids,
    transfer_syntax_uid: Uid,
    modality: Option<String>,
    patient_id: Option<PatientId>,
}

/// Checks a synced `.part` file before it is committed (blocking, run inside the spool's
/// one blocking call): structure (truncation), header parse, header against `command`.
fn verify(
    data: &PartData<'_>,
    transfer_syntax: &str,
    command: &Command,
) -> Result<Verified, Refusal> {
    let io = |e| Refusal::Structure(StructureError::Io(e));
    let data_set = data.reader_at(data.data_offset()).map_err(io)?;
    structure::check_data_set(data_set, transfer_syntax).map_err(Refusal::Structure)?;
    let file = data.reader_at(0).map_err(io)?;
    let header = parse_header(file, data.path()).map_err(Refusal::Header)?;
    let uids = check_header(&header, command).map_err(|(s, c)| Refusal::Mismatch(s, c))?;
    let Ok(transfer_syntax_uid) = Uid::new(&header.transfer_syntax_uid) else {
        return Err(Refusal::Mismatch(
            Status::CannotUnderstand,
            "invalid transfer syntax UID",
        ));
    };
    let Header {
        modality,
        patient_id,
        ..
    } = header;
    Ok(Verified {
        uids,
        transfer_syntax_uid,
        modality,
        patient_id,
    })
}

/// Why a spooled data set was refused after its last byte.
enum Refusal {
    Structure(StructureError),
    Header(Error),
    /// The header does not do: the status and its comment.
    Mismatch(Status, &'static str),
    /// The sink did not record the durable file (which the spool then removed).
    Sink(SinkError),
}

impl Refusal {
    /// Logs the refusal and gives the status to answer.
    fn answer(self) -> (Status, Option<&'static str>) {
        match self {
            Self::Structure(StructureError::Io(e)) => {
                warn!(error = %ErrorChain(&e), "Could not read a spooled instance.");
                (
                    Status::ProcessingFailure,
                    Some("could not read the instance"),
                )
            }
            Self::Structure(e) => {
                info!(error = %ErrorChain(&e), "Instance refused: data set incomplete.");
                (
                    Status::CannotUnderstand,
                    Some("data set truncated or malformed"),
                )
            }
            Self::Header(e) => {
                info!(error = %ErrorChain(&e), "Instance refused: data set cannot be parsed.");
                (Status::CannotUnderstand, Some("data set cannot be parsed"))
            }
            Self::Mismatch(status, comment) => {
                info!(
                    status = status.label(),
                    reason = comment,
                    "Instance refused."
                );
                (status, Some(comment))
            }
            Self::Sink(SinkError::Backpressure) => {
                info!("Processing backlog full: instance refused.");
                (Status::OutOfResources, Some("processing backlog full"))
            }
            Self::Sink(e @ SinkError::Invalid(_)) => {
                info!(error = %ErrorChain(&e), "Instance refused.");
                (Status::CannotUnderstand, Some("instance refused"))
            }
            Self::Sink(e @ SinkError::Failed(_)) => {
                warn!(error = %ErrorChain(&e), "Could not record an instance.");
                (
                    Status::ProcessingFailure,
                    Some("could not record the instance"),
                )
            }
        }
    }
}

/// The UIDs a stored instance must carry.
struct InstanceUids {
    sop_class: Uid,
    study: Uid,
    series: Uid,
}

/// Checks the spooled header against the command (PS3.4 B.2.3: 0xA900 when the data
/// set does not match, 0xC000 when it cannot be understood).
fn check_header(
    header: &Header,
    command: &Command,
) -> Result<InstanceUids, (Status, &'static str)> {
    let required = |value: &Option<String>, missing: &'static str| {
        value
            .as_deref()
            .and_then(|v| Uid::new(v).ok())
            .ok_or((Status::CannotUnderstand, missing))
    };
    let sop_instance = required(
        &header.sop_instance_uid,
        "missing or invalid SOP Instance UID",
    )?;
    let sop_class = required(&header.sop_class_uid, "missing or invalid SOP Class UID")?;
    if sop_instance.as_str() != command.affected_sop_instance_uid {
        return Err((
            Status::DataSetMismatch,
            "SOP Instance UID differs from the command",
        ));
    }
    if sop_class.as_str() != command.affected_sop_class_uid {
        return Err((
            Status::DataSetMismatch,
            "SOP Class UID differs from the command",
        ));
    }
    Ok(InstanceUids {
        sop_class,
        study: required(
            &header.study_instance_uid,
            "missing or invalid Study Instance UID",
        )?,
        series: required(
            &header.series_instance_uid,
            "missing or invalid Series Instance UID",
        )?,
    })
}

/// The status for a failure on our side: a full disk is "out of resources" (the PACS
/// retries later), anything else a processing failure.
fn status_for(e: &Error) -> Status {
    let io = match e {
        Error::WriteSpool { source, .. } | Error::Commit { source, .. } => Some(source),
        _ => None,
    };
    match io.map(std::io::Error::kind) {
        Some(std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded) => {
            Status::OutOfResources
        }
        _ => Status::ProcessingFailure,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            sop_class_uid: Some("1.2.840.10008.5.1.4.1.1.2".into()),
            sop_instance_uid: Some("1.2.3.4".into()),
            study_instance_uid: Some("1.2.3".into()),
            series_instance_uid: Some("1.2.3.1".into()),
            modality: Some("CT".into()),
            patient_id: Some(PatientId::new("PAT-1")),
        }
    }

    fn command() -> Command {
        Command {
            field: command_field::C_STORE_RQ,
            message_id: 1,
            has_data_set: true,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            affected_sop_instance_uid: "1.2.3.4".into(),
        }
    }

    #[test]
    fn header_checks_map_to_statuses() {
        assert!(check_header(&header(), &command()).is_ok());
        let mut h = header();
        h.study_instance_uid = None;
        assert_eq!(
            check_header(&h, &command()).err().unwrap().0,
            Status::CannotUnderstand
        );
        let mut h = header();
        h.sop_instance_uid = Some("1.2.3.5".into());
        assert_eq!(
            check_header(&h, &command()).err().unwrap().0,
            Status::DataSetMismatch
        );
        let mut h = header();
        h.sop_class_uid = Some("1.2.840.10008.5.1.4.1.1.4".into());
        assert_eq!(
            check_header(&h, &command()).err().unwrap().0,
            Status::DataSetMismatch
        );
        let mut h = header();
        h.series_instance_uid = Some("not.a.uid".into());
        assert_eq!(
            check_header(&h, &command()).err().unwrap().0,
            Status::CannotUnderstand
        );
    }

    #[test]
    fn full_disk_is_out_of_resources() {
        let full = Error::WriteSpool {
            path: "x".into(),
            source: std::io::ErrorKind::StorageFull.into(),
        };
        assert_eq!(status_for(&full), Status::OutOfResources);
        let other = Error::WriteSpool {
            path: "x".into(),
            source: std::io::ErrorKind::PermissionDenied.into(),
        };
        assert_eq!(status_for(&other), Status::ProcessingFailure);
        assert!(IMPLEMENTATION_VERSION_NAME.len() <= 16);
    }
}
