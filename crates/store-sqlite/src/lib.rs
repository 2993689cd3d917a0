//! [`SqliteStore`]: the embedded store, one SQLite file in WAL mode with `synchronous=FULL`, so
//! that a write is acknowledged only once it is on disk.
//!
//! Writes run one at a time on a writer connection (SQLite has one writer at a time anyway, and
//! a single writer never meets a lock upgrade conflict) through a group commit (`group.rs`):
//! writes that arrive while a commit is being flushed wait for the connection in order, each runs in
//! its own savepoint of one shared `BEGIN IMMEDIATE` transaction, and one `COMMIT` (one flush)
//! then makes them all durable together. Each is acknowledged only after that commit; a write
//! refused midway rolls back to its savepoint and leaves the others of its batch alone; a
//! commit that fails fails every write of its batch and keeps none. Writes still run one after
//! another, so what a write reads inside its transaction (an account's balance, an alias
//! count) is what the writes before it left. A flush costs this disk about 1.5 ms whether it
//! holds one write or a hundred, so concurrent writers share it instead of queueing for one
//! each; a writer alone pays one flush, as before. Nothing else takes SQLite's write lock in
//! this process: a backup (`VACUUM INTO`, which cannot run in a transaction) commits what is
//! pending and runs outside a transaction on the sqlx connection. After a commit of several
//! writes, the next flush waits up to a millisecond for as many to join (`commit_delay`).
//!
//! What limits the writes per second is then the time each write holds the connection, one
//! after another. The account writes (the hot ones: forwarding, DND, the profile) run their
//! statements on a rusqlite connection inline on the writing task, a few microseconds each;
//! through sqlx each statement was a round trip to its worker thread whose wake-up waited behind
//! every other runnable task. Their `BEGIN IMMEDIATE` and `COMMIT` run on a blocking thread. The
//! other writes (billing, devices, certificates, accounts created or deleted) stay on the sqlx
//! connection; a batch is on one connection, so a write for the other one commits the open batch
//! first. An account write of an account with a write waiting in the open batch waits for that
//! batch's commit first (the service reads the old values through the store's other
//! connections, which see only what is committed).
//!
//! Reads use their own connections and run concurrently with the writer: a pool for the
//! listings, and rusqlite connections for the hot reads (`fast.rs`), whose cache follows
//! SQLite's WAL index and so sees every commit, whoever made it, by the time it is
//! acknowledged.
//!
//! The traits by concern whose sum is [`Store`](sip_settings_core::Store) are implemented one
//! file each (`accounts.rs`, `certificates.rs`, `addresses.rs`, `settings.rs`, `billing.rs`,
//! `devices.rs`, `journal.rs`, `chat_journal.rs`), the same as the PostgreSQL store's but for the SQL dialect.

mod account_write;
mod accounts;
mod addresses;
mod billing;
mod cache;
mod certificates;
mod changes;
mod chat_journal;
mod devices;
mod fast;
mod group;
mod journal;
mod operations;
mod rows;
mod settings;
mod vouchers;

use std::str::FromStr;
use std::time::Duration;

use sip_settings_core::{Clock, StoreError, SystemClock};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};

use crate::rows::map_err;

/// The versioned schema, embedded.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The embedded SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The connection of every write, committing concurrent writes together.
    pub(crate) group: group::Group,
    pub(crate) reader: SqlitePool,
    fast: std::sync::Arc<fast::FastReader>,
    /// The time of what the store stamps by itself (`updated_at`, an alias's `created_at`…).
    clock: std::sync::Arc<dyn Clock>,
}

/// The rusqlite connection of the account writes, with the pragmas of sqlx's (WAL is the
/// file's already; `synchronous` and foreign keys are the connection's).
fn open_lite(path: &std::path::Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(group::lite_err)?;
    // Zero: its statements run on the runtime's threads and must never sleep there; its
    // `BEGIN IMMEDIATE` waits for another process on a blocking thread instead (`group.rs`).
    conn.busy_timeout(Duration::ZERO).map_err(group::lite_err)?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")
        .map_err(group::lite_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(group::lite_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(format!(
            "{} is in journal mode {mode}, not WAL",
            path.display()
        )));
    }
    Ok(conn)
}

impl SqliteStore {
    /// Opens the database at `url` (`sqlite://path`), creating the file when `create` is set,
    /// and runs the migrations.
    pub async fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        Self::open_with(url, create, true).await
    }

    /// Opens the database; runs the migrations only when `migrate` is set.
    pub async fn open_with(url: &str, create: bool, migrate: bool) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL {url}: {e}")))?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // An embedded file has no connection to lose: skip the ping before each use.
        let mut writer = options.connect().await.map_err(map_err)?;
        if migrate {
            MIGRATOR
                .run_direct(&mut writer)
                .await
                .map_err(rows::migrate_err)?;
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone().read_only(true))
            .await
            .map_err(map_err)?;
        let lite = open_lite(options.get_filename())?;
        let fast = std::sync::Arc::new(fast::FastReader::new(options.get_filename().to_owned()));
        Ok(Self {
            group: group::Group::new(writer, lite),
            reader,
            fast,
            clock: std::sync::Arc::new(SystemClock),
        })
    }

    /// The store taking the time of what it stamps by itself (an account's `updated_at`, an
    /// alias's or a number's `created_at`) from `clock`, the service layer's, instead of the
    /// system clock.
    pub fn with_clock(self, clock: std::sync::Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// Writes a consistent copy of the database to `path` (`VACUUM INTO`), while it serves.
    pub async fn backup_to(&self, path: &std::path::Path) -> Result<(), StoreError> {
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Other("backup path is not UTF-8".to_owned()))?;
        // Not in a transaction: pending writes are committed first, and none runs meanwhile.
        self.group
            .outside_transaction(async |conn| {
                sqlx::query("VACUUM INTO ?")
                    .bind(target)
                    .execute(conn)
                    .await
                    .map_err(map_err)
            })
            .await?;
        Ok(())
    }

    /// Commits the pending writes and refuses later ones; closes the readers' pool.
    pub async fn close(&self) {
        self.group.close().await;
        self.reader.close().await;
    }
}
