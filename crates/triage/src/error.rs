//! Errors of the journal and the queue.

use std::path::PathBuf;

use crate::journal::StudyState;

/// Result with the triage [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, one variant per failing operation; the state-machine refusals
/// ([`StaleGeneration`](Self::StaleGeneration), [`AlreadyFinished`](Self::AlreadyFinished),
/// [`WrongState`](Self::WrongState)) are typed so that the pipeline can tell "someone else's
/// work" from a broken database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database's directory could not be created.
    #[error("could not create the database directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The database could not be opened or configured.
    #[error("could not open the triage database {}", path.display())]
    Open {
        /// The database file (`:memory:` for an in-memory one).
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },

    /// A migration failed; the database stays at the previous version.
    #[error("could not migrate the triage database to version {version}")]
    Migrate {
        /// The version that failed.
        version: usize,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },

    /// The database was written by a newer spinewatch.
    #[error(
        "the triage database is at schema version {found}, newer than this build's {supported}"
    )]
    NewerSchema {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this build knows.
        supported: usize,
    },

    /// A statement of `operation` failed.
    #[error("could not {operation}")]
    Sql {
        /// What was being done, e.g. "record instance".
        operation: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },

    /// No study (or, for queue operations, no case) with this Study Instance UID.
    #[error("no study or case {study}")]
    NotFound {
        /// The Study Instance UID asked for.
        study: String,
    },

    /// The study was re-opened after this generation completed: the work belongs to an
    /// older generation and is refused, so that the newer one is analysed instead.
    #[error(
        "study {study} generation {generation} is stale (the study is at generation {current})"
    )]
    StaleGeneration {
        /// The study.
        study: String,
        /// The generation the caller worked on.
        generation: i64,
        /// The study's generation now.
        current: i64,
    },

    /// This generation already reached an outcome: a second `finish` is refused.
    #[error("study {study} generation {generation} already finished as {state}")]
    AlreadyFinished {
        /// The study.
        study: String,
        /// The generation.
        generation: i64,
        /// Its recorded outcome state.
        state: StudyState,
    },

    /// The study is not in a state `operation` applies to.
    #[error("cannot {operation} study {study} in state {state}")]
    WrongState {
        /// The study.
        study: String,
        /// What was attempted ("claim", "finish").
        operation: &'static str,
        /// Its state now.
        state: StudyState,
    },

    /// A new instance was not recordable as given.
    #[error("invalid instance {sop_instance_uid}: {why}")]
    InvalidInstance {
        /// The SOP Instance UID.
        sop_instance_uid: String,
        /// Which rule it breaks.
        why: String,
    },

    /// An outcome was refused as given (findings out of range, exclusion without reason).
    #[error("invalid outcome for study {study}: {why}")]
    InvalidOutcome {
        /// The study.
        study: String,
        /// Which rule it breaks.
        why: String,
    },

    /// A decision was refused as given (empty user, grade 0 confirmed, ...).
    #[error("invalid decision: {0}")]
    InvalidDecision(String),

    /// The study was re-opened and its case is waiting for the new analysis; a decision
    /// now would be on findings about to be replaced.
    #[error("study {study} is being re-analysed; decide once its new findings are queued")]
    AnalysisPending {
        /// The study.
        study: String,
    },

    /// A user was refused as given (bad name, disabled user's token, bad label).
    #[error("invalid user: {0}")]
    InvalidUser(String),

    /// `add_user` with a name that is taken (whatever its case).
    #[error("user {name} exists already")]
    UserExists {
        /// The name asked for.
        name: String,
    },

    /// No user of this name.
    #[error("no user {name}")]
    UnknownUser {
        /// The name asked for.
        name: String,
    },

    /// No API token with this id.
    #[error("no API token {id}")]
    UnknownToken {
        /// The id asked for.
        id: i64,
    },

    /// The operating system's random number generator failed.
    #[error("could not read random bytes from the operating system: {0}")]
    Random(String),

    /// A row holds a value this build cannot read (hand-edited or corrupted database).
    #[error("corrupt row in {table} for study {study}: {why}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The study.
        study: String,
        /// What could not be read.
        why: String,
    },
}

impl Error {
    pub(crate) fn sql(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> Self {
        move |source| Self::Sql { operation, source }
    }
}
