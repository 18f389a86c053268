//! The store: one SQLite connection behind a mutex, its schema and its clock.
//!
//! # Concurrency
//!
//! A [`Store`] is a cheap handle (`Arc`): clones share one connection, and each method holds
//! the connection's mutex for its whole transaction, so transactions never interleave inside
//! the process. Methods are synchronous and do disk I/O: async callers run them with
//! `tokio::task::spawn_blocking` (as [`api`](crate::api) does); the mutex is never held
//! across an `.await`. One connection is plenty at this rate (a study every few seconds,
//! a handful of nurses) and keeps every read consistent with the last write. Writes open
//! `BEGIN IMMEDIATE` transactions so that a second process on the same file waits
//! (busy timeout) instead of failing half-way.
//!
//! # Durability
//!
//! WAL journal with `synchronous = FULL`: a transaction that returned is on disk, so a crash
//! or power cut loses no state change the pipeline acted on. One exception:
//! [`Store::record_instance_unsynced`], the listener's per-instance row, commits without
//! the WAL fsync. A process crash loses nothing (the WAL is in the page cache); a power cut
//! can lose only the last such rows, never one a synced commit (completion, claim,
//! outcome) came after, and `spinewatch serve` re-records them at start from the spool's
//! fsynced files, which are the source of truth for instances (see its `serve/sink.rs`).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use time::OffsetDateTime;

use crate::clock::{Clock, SystemClock};
use crate::{Error, Result};

/// Schema migrations, applied in order; migration `i` brings the file to
/// `PRAGMA user_version = i + 1`. Append only: never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_journal_and_queue.sql"),
    include_str!("migrations/0002_web_ui.sql"),
    include_str!("migrations/0003_retention.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// How long a write waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The durable study journal and nurse queue (see the [module docs](self)).
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating it and its directory if need be) the database at `path`, configures
    /// it for durability and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let open_err = |source| Error::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        Self::configure(conn, path)
    }

    /// An empty database in memory (tests).
    pub fn open_in_memory() -> Result<Self> {
        let path = Path::new(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::configure(conn, path)
    }

    fn configure(mut conn: Connection, path: &Path) -> Result<Self> {
        let open_err = |source| Error::Open {
            path: path.to_owned(),
            source,
        };
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // Migrations rebuild tables, which needs foreign keys off (they are checked before
        // each migration commits); they are on for everything else.
        conn.pragma_update(None, "foreign_keys", false)
            .map_err(open_err)?;
        migrate(&mut conn)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same store with timestamps from `clock` (set it before cloning the handle).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The store's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        self.lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(Error::sql("read the schema version"))
    }

    /// The connection. A panic while it was held cannot leave a transaction half-applied
    /// (a dropped `Transaction` rolls back), so a poisoned lock is still safe to use.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in a write transaction and commits it when `f` succeeds.
    pub(crate) fn write<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&Transaction<'_>, i64) -> Result<T>,
    ) -> Result<T> {
        let now = to_millis(self.now());
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::sql(operation))?;
        let out = f(&tx, now)?;
        tx.commit().map_err(Error::sql(operation))?;
        Ok(out)
    }
}

/// Applies the migrations the file lacks, each in its own transaction with its version.
///
/// Foreign keys are off (the caller's job: the pragma is a no-op inside a transaction), so
/// that a migration can rebuild a table others refer to; every reference is checked with
/// `PRAGMA foreign_key_check` before the migration commits.
fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| Error::Migrate { version: 0, source })?;
    let current = usize::try_from(found).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(Error::NewerSchema {
            found,
            supported: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = i + 1;
        let err = |source| Error::Migrate { version, source };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        let dangling: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(err)?;
        if let Some(table) = dangling {
            return Err(Error::Migrate {
                version,
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                    Some(format!("a row of {table} refers to a missing row")),
                ),
            });
        }
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::info!(version, "Triage database migrated.");
    }
    Ok(())
}

/// UTC Unix milliseconds, as stored.
pub(crate) fn to_millis(t: OffsetDateTime) -> i64 {
    // i64 milliseconds cover ±292 million years: the cast cannot truncate a real date.
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The time of stored UTC Unix milliseconds.
pub(crate) fn from_millis(ms: i64) -> OffsetDateTime {
    // Only a hand-edited row can lie outside years ±9999; show it as the epoch rather than
    // failing the whole worklist.
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A duration in milliseconds, saturating.
pub(crate) fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
