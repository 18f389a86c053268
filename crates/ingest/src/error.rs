//! Errors of the listener: one variant per failing operation, with its context.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the listener, an association or a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value the listener cannot run with.
    #[error("invalid ingest configuration: {0}")]
    Config(String),
    /// The TCP listener could not be bound.
    #[error("could not bind the DICOM listener to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bound listener's address could not be read.
    #[error("could not read the address of the DICOM listener")]
    LocalAddr(#[source] std::io::Error),
    /// A spool folder could not be created, listed or cleaned.
    #[error("could not prepare the spool folder {path}")]
    PrepareSpool {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Free disk space could not be measured.
    #[error("could not measure free disk space at {path}")]
    DiskSpace {
        /// The folder measured.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An instance could not be written to (or synced in) the spool.
    #[error("could not write instance to spool at {path}")]
    WriteSpool {
        /// The `.part` file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A received instance could not be moved to its final place.
    #[error("could not move spooled instance {from} to {to}")]
    Commit {
        /// The `.part` file.
        from: PathBuf,
        /// The final path.
        to: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The header of a spooled instance could not be parsed.
    #[error("could not read the header of spooled instance {path}")]
    ReadHeader {
        /// The `.part` file.
        path: PathBuf,
        /// What dicom-object said.
        #[source]
        source: Box<dicom_object::ReadError>,
    },
    /// The file meta group of an instance could not be built.
    #[error("could not build the file meta group")]
    BuildMeta(#[source] Box<dicom_object::meta::Error>),
    /// A DIMSE command set could not be decoded.
    #[error("could not decode a DIMSE command set")]
    DecodeCommand(#[source] Box<dicom_object::ReadError>),
    /// A DIMSE command set could not be encoded.
    #[error("could not encode a DIMSE command set")]
    EncodeCommand(#[source] Box<dicom_object::WriteError>),
    /// The upper layer (dicom-ul) failed: I/O, a malformed PDU, a timeout.
    #[error("DICOM upper layer failure while {doing}: {detail}")]
    Ul {
        /// What we were doing.
        doing: &'static str,
        /// What dicom-ul said, without PDU contents (see [`Error::ul`]).
        detail: String,
    },
    /// The peer went silent for longer than the configured timeout.
    #[error("no data from the peer for {secs} s while {doing}")]
    Timeout {
        /// What we were waiting for.
        doing: &'static str,
        /// The timeout.
        secs: u64,
    },
    /// The peer broke the DIMSE or upper layer protocol.
    #[error("protocol violation by the peer: {0}")]
    Protocol(String),
    /// A blocking task (file parsing, fsync) panicked or was cancelled.
    #[error("a blocking spool task failed")]
    Join(#[source] tokio::task::JoinError),
}

impl Error {
    /// Wraps a dicom-ul error. Its text is kept but never a PDU's contents: dicom-ul
    /// shows an unexpected PDU with `{:?}`, which for P-DATA would put data set bytes,
    /// patient names included, in the logs.
    pub fn ul(doing: &'static str, e: &dicom_ul::association::Error) -> Self {
        use dicom_ul::association::Error as E;
        let detail = match e {
            E::UnexpectedPdu { pdu, .. } => format!("unexpected {}", pdu_kind(pdu)),
            E::UnknownPdu { pdu, .. } => format!("unknown {}", pdu_kind(pdu)),
            other => ErrorChain(other).to_string(),
        };
        Self::Ul { doing, detail }
    }
}

/// The type of a PDU, without its contents.
pub(crate) fn pdu_kind(pdu: &dicom_ul::Pdu) -> &'static str {
    use dicom_ul::Pdu;
    match pdu {
        Pdu::Unknown { .. } => "PDU of unknown type",
        Pdu::AssociationRQ(_) => "A-ASSOCIATE-RQ",
        Pdu::AssociationAC(_) => "A-ASSOCIATE-AC",
        Pdu::AssociationRJ(_) => "A-ASSOCIATE-RJ",
        Pdu::PData { .. } => "P-DATA-TF",
        Pdu::ReleaseRQ => "A-RELEASE-RQ",
        Pdu::ReleaseRP => "A-RELEASE-RP",
        Pdu::AbortRQ { .. } => "A-ABORT",
    }
}

/// Result with the ingest [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shows an error with its whole chain of causes (`a: b: c`), for the `error` field of
/// log events.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
