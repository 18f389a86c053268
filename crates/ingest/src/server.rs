//! The listener: accepts TCP connections, negotiates associations, bounds how many run
//! at once, and shuts down gracefully.
//!
//! Concurrency: one tokio task per connection, in a [`JoinSet`] reaped as tasks end (a
//! panicking association is logged and the server goes on). A [`Semaphore`] with
//! `max_associations` permits bounds the associations served; a connection over the
//! limit gets an A-ASSOCIATE-RJ (transient, local limit exceeded) at once so the PACS
//! retries later, instead of waiting on a queue. Those refusals are bounded too: beyond
//! [`MAX_PENDING_REFUSALS`] the connection is closed without a word. On shutdown the
//! listener stops accepting and every association aborts at its next PDU boundary; the
//! instance it was receiving is deleted (never acknowledged, so the PACS sends it again).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dicom_ul::association::server::{AccessControl, ServerAssociationOptions};
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, UserIdentity,
};
use dicom_ul::{Pdu, association::Association};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::association;
use crate::config::{AllowedPeer, IngestConfig};
use crate::error::{Error, ErrorChain, Result};
use crate::metrics::{self, AssociationOutcome};
use crate::sink::InstanceSink;
use crate::spool::Spool;
use crate::syntax::{TRANSFER_SYNTAXES, abstract_syntaxes};

/// Connections over the association limit being answered at once; more are closed.
pub const MAX_PENDING_REFUSALS: usize = 16;
/// Pause after a failed `accept` (out of file descriptors...), so as not to spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What every association task shares.
pub(crate) struct Shared<S> {
    pub(crate) config: IngestConfig,
    pub(crate) spool: Spool,
    pub(crate) sink: Arc<S>,
    pub(crate) shutdown: CancellationToken,
}

/// A bound listener with its spool ready; [`Listener::run`] serves it.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    config: IngestConfig,
    spool: Spool,
}

impl Listener {
    /// Validates `config`, prepares the spool (removing `.part` files left by a
    /// previous run) and binds `config.bind` (port 0 picks a free port: see
    /// [`Self::local_addr`]).
    pub async fn bind(config: IngestConfig) -> Result<Self> {
        config.validate()?;
        let dir = config.spool_dir.clone();
        let min_free = config.min_free_disk_bytes;
        let spool = tokio::task::spawn_blocking(move || Spool::open(&dir, min_free))
            .await
            .map_err(Error::Join)??;
        let tcp = TcpListener::bind(config.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: config.bind,
                source,
            })?;
        Ok(Self { tcp, config, spool })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.tcp.local_addr().map_err(Error::LocalAddr)
    }

    /// Serves associations until `shutdown` is cancelled, then waits for the running
    /// ones to end (they abort at their next PDU boundary).
    pub async fn run<S: InstanceSink>(
        self,
        sink: Arc<S>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let local = self.local_addr()?;
        let Self { tcp, config, spool } = self;
        info!(addr = %local, ae_title = %config.ae_title, "DICOM listener ready.");
        let permits = Arc::new(Semaphore::new(config.max_associations));
        let refusals = Arc::new(Semaphore::new(MAX_PENDING_REFUSALS));
        let shared = Arc::new(Shared {
            config,
            spool,
            sink,
            shutdown: shutdown.clone(),
        });
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => reap(done),
                accepted = tcp.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            warn!(error = %ErrorChain(&e), "Could not accept a connection.");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                            continue;
                        }
                    };
                    // Responses are small: do not let Nagle hold them back.
                    if let Err(e) = socket.set_nodelay(true) {
                        debug!(error = %ErrorChain(&e), "Could not set TCP_NODELAY.");
                    }
                    let span = info_span!(
                        "association",
                        peer_addr = %peer,
                        peer_ae = tracing::field::Empty
                    );
                    if let Ok(permit) = permits.clone().try_acquire_owned() {
                        let shared = shared.clone();
                        tasks.spawn(handle(shared, socket, peer, permit).instrument(span));
                    } else if let Ok(permit) = refusals.clone().try_acquire_owned() {
                        let timeout = shared.config.association_timeout();
                        tasks.spawn(reject_busy(socket, timeout, permit).instrument(span));
                    } else {
                        metrics::association(AssociationOutcome::RejectedBusy);
                        span.in_scope(|| warn!("Too many connections: closed without answer."));
                    }
                }
            }
        }
        drop(tcp);
        info!(
            running = tasks.len(),
            "DICOM listener stopping: no new connections."
        );
        while let Some(done) = tasks.join_next().await {
            reap(done);
        }
        info!("DICOM listener stopped.");
        Ok(())
    }
}

/// Binds a [`Listener`] for `config` and runs it until `shutdown` is cancelled.
pub async fn serve<S: InstanceSink>(
    config: IngestConfig,
    sink: Arc<S>,
    shutdown: CancellationToken,
) -> Result<()> {
    Listener::bind(config).await?.run(sink, shutdown).await
}

/// Logs a finished task that did not end normally.
fn reap(done: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            error!(error = %ErrorChain(&e), "An association task panicked; the listener goes on.");
        } else {
            debug!(error = %ErrorChain(&e), "An association task was cancelled.");
        }
    }
}

/// Negotiates the association on `socket`, then serves it.
async fn handle<S: InstanceSink>(
    shared: Arc<Shared<S>>,
    socket: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let config = &shared.config;
    let policy = AePolicy {
        allowed: &config.allowed_calling_aes,
        peer: peer.ip(),
    };
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(policy)
        .ae_title(config.ae_title.as_str())
        .max_pdu_length(config.max_pdu_bytes)
        .strict(true);
    for uid in abstract_syntaxes() {
        options = options.with_abstract_syntax(uid);
    }
    for uid in TRANSFER_SYNTAXES {
        options = options.with_transfer_syntax(*uid);
    }
    // dicom-ul's own `read_timeout` would apply one value to both the association
    // request and every later PDU; we want two, so both are enforced here.
    let established = tokio::time::timeout(
        config.association_timeout(),
        options.establish_async(socket),
    )
    .await;
    let assoc = match established {
        Err(_elapsed) => {
            metrics::association(AssociationOutcome::RejectedOther);
            info!("No association request in time: connection closed.");
            return;
        }
        Ok(Err(e)) => {
            let outcome = rejection_outcome(&e);
            metrics::association(outcome);
            let e = Error::ul("negotiating the association", &e);
            info!(outcome = outcome.label(), error = %ErrorChain(&e), "Association refused.");
            return;
        }
        Ok(Ok(assoc)) => assoc,
    };
    tracing::Span::current().record("peer_ae", assoc.peer_ae_title());
    metrics::association(AssociationOutcome::Accepted);
    info!(
        contexts = assoc.presentation_contexts().len(),
        peer_max_pdu_bytes = assoc.peer_max_pdu_length(),
        "Association accepted."
    );
    let outcome = association::run(shared.clone(), assoc, peer).await;
    metrics::association(outcome);
    info!(outcome = outcome.label(), "Association ended.");
}

/// The outcome label of a failed negotiation.
fn rejection_outcome(e: &dicom_ul::association::Error) -> AssociationOutcome {
    match e {
        dicom_ul::association::Error::Rejected { association_rj, .. } => {
            match &association_rj.source {
                AssociationRJSource::ServiceUser(
                    AssociationRJServiceUserReason::CallingAETitleNotRecognized,
                ) => AssociationOutcome::RejectedCallingAe,
                AssociationRJSource::ServiceUser(
                    AssociationRJServiceUserReason::CalledAETitleNotRecognized,
                ) => AssociationOutcome::RejectedCalledAe,
                _ => AssociationOutcome::RejectedOther,
            }
        }
        _ => AssociationOutcome::RejectedOther,
    }
}

/// Who may associate: the called AE must be ours, and the calling AE (from its host,
/// when the entry names one) in the allow list, unless that list is empty. The policy
/// is built per connection because dicom-ul's [`AccessControl`] is not told the peer's
/// address.
#[derive(Debug, Clone, Copy)]
struct AePolicy<'a> {
    allowed: &'a [AllowedPeer],
    peer: IpAddr,
}

impl AccessControl for AePolicy<'_> {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> std::result::Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        let calling = calling_ae_title.trim();
        if !self.allowed.is_empty() && !self.allowed.iter().any(|p| p.matches(calling, self.peer)) {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

/// Answers a connection over the limit: reads its A-ASSOCIATE-RQ (unread data would
/// turn our close into a reset that can destroy the answer), sends A-ASSOCIATE-RJ
/// (transient, service provider, local limit exceeded: PS3.8 section 9.3.4) and waits
/// for the peer to close, all within `timeout`. Written here rather than through
/// dicom-ul, whose acceptor only sends permanent, service-user rejections.
async fn reject_busy(mut socket: TcpStream, timeout: Duration, _permit: OwnedSemaphorePermit) {
    metrics::association(AssociationOutcome::RejectedBusy);
    let answered = tokio::time::timeout(timeout, async {
        let mut header = [0_u8; 6];
        socket.read_exact(&mut header).await?;
        let [pdu_type, _, l0, l1, l2, l3] = header;
        let len = u32::from_be_bytes([l0, l1, l2, l3]);
        if pdu_type != 0x01 {
            return Ok(false);
        }
        tokio::io::copy(
            &mut (&mut socket).take(u64::from(len)),
            &mut tokio::io::sink(),
        )
        .await?;
        let rj = Pdu::AssociationRJ(AssociationRJ {
            result: AssociationRJResult::Transient,
            source: AssociationRJSource::ServiceProviderPresentation(
                AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
            ),
        });
        let mut bytes = Vec::with_capacity(16);
        dicom_ul::write_pdu(&mut bytes, &rj).map_err(std::io::Error::other)?;
        socket.write_all(&bytes).await?;
        socket.shutdown().await?;
        // Wait for the requestor to close (PS3.8 section 9.2.2, ARTIM timer).
        let mut rest = [0_u8; 64];
        while socket.read(&mut rest).await? > 0 {}
        Ok::<_, std::io::Error>(true)
    })
    .await;
    match answered {
        Ok(Ok(true)) => info!("Too many associations: refused (transient)."),
        Ok(Ok(false)) => {
            info!("Too many associations: connection without association request closed.")
        }
        Ok(Err(e)) => {
            debug!(error = %ErrorChain(&e), "Too many associations: refusal not delivered.")
        }
        Err(_elapsed) => debug!("Too many associations: peer silent, connection closed."),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn policy_checks_called_then_calling_ae() {
        let allowed = vec![AllowedPeer {
            ae_title: "PACS".into(),
            host: Some("10.0.0.1".parse().unwrap()),
        }];
        let policy = AePolicy {
            allowed: &allowed,
            peer: "10.0.0.1".parse().unwrap(),
        };
        assert!(policy.check_access("SW", "PACS", "SW", None).is_ok());
        assert_eq!(
            policy.check_access("SW", "PACS", "OTHER", None),
            Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
        );
        assert_eq!(
            policy.check_access("SW", "WRONG", "SW", None),
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        );
        let elsewhere = AePolicy {
            peer: "10.0.0.2".parse().unwrap(),
            ..policy
        };
        assert!(elsewhere.check_access("SW", "PACS", "SW", None).is_err());
        let open = AePolicy {
            allowed: &[],
            peer: "10.0.0.2".parse().unwrap(),
        };
        assert!(open.check_access("SW", "ANYONE", "SW", None).is_ok());
    }
}
