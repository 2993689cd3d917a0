//! Group commit: the writes of the store run one at a time on a writer connection (the account
//! writes on a rusqlite one, the others on sqlx's), and concurrent writes share one transaction
//! and one flush.
//!
//! [`Group::write`] waits for the connection (a FIFO [`tokio::sync::Mutex`]), opens the shared
//! transaction with `BEGIN IMMEDIATE` when none is open, and opens the write's own savepoint;
//! the [`Write`] it returns derefs to the connection for the write's statements.
//! [`Write::commit`] releases the savepoint, leaves the write in the batch's pending list,
//! hands the connection to the next writer and waits for the `COMMIT` that holds the write: the
//! write is acknowledged only once that commit is on disk (`synchronous=FULL`).
//!
//! The first write released into a batch schedules the flush: a task that queues for the
//! connection behind the writers already waiting (so they join the batch), commits, and answers
//! every pending writer with the commit's result. Writers arriving after it queue behind it and
//! make the next batch, so a batch holds what arrived during the previous flush and never more
//! than the writers admitted at once ([`crate::SqliteStore`]'s `max_concurrent_writes`). After
//! a commit of several writes, the flush first waits (at most a millisecond) for as many to join
//! ([`Group::schedule_flush`]); after a commit of one, it does not wait.
//!
//! A write's own statements see the writes before it in the batch, committed or not; reads
//! through the store's other connections see only what is committed. So a write of an account
//! whose caller reads the account that way ([`Group::write_for`]: an account write, whose
//! service reads the old values through the store) first waits for the commit of any pending
//! write of the same account: no write of an account begins before the one before it is
//! durable, as without group commit.
//!
//! A write dropped without commit (an error, a refused change, a cancelled request) leaves its
//! savepoint open; the next holder of the connection rolls back to it first
//! (`ROLLBACK TO w; RELEASE w`), so the other writes of the batch are kept. If that fails, or a
//! `RELEASE` or the `COMMIT` does, SQLite may have rolled back the whole transaction (an I/O
//! error, a full disk): the batch is failed, every pending writer gets an error, and the next
//! write begins a fresh transaction. A commit never acknowledges a write it does not hold.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sip_settings_core::StoreError;
use sip_settings_core::ids::AccountId;
use sqlx::SqliteConnection;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot, watch};

use crate::rows::map_err;

/// The connection of every write, and the writes waiting for its next commit.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Arc<Mutex<State>>,
    /// Whether a flush is scheduled and has not yet taken the connection.
    flush_scheduled: AtomicBool,
    /// Commits run so far (the tests check that concurrent writes share them).
    commits: AtomicU64,
    /// Writes released into the open transaction (the length of `State::pending`, readable
    /// without the connection).
    released: Arc<AtomicUsize>,
    /// Notified at each release, for a flush waiting for the batch to fill.
    joined: Notify,
    /// How many writes the last commit held.
    last_batch: AtomicUsize,
}

/// The longest a flush waits for a batch to fill before it queues for the connection (one tick
/// of tokio's timer; see [`Group::schedule_flush`]).
const FILL: Duration = Duration::from_millis(1);

/// The longest a write waits for its turn on the connection (as long as the pool of one
/// connection before the group commit waited): a writer that holds it for longer (a bug, a
/// write that waits for another write it started) is not waited for forever.
const WAIT: Duration = Duration::from_secs(30);

/// The two connections to the file; a transaction is on one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// sqlx's connection: every write but the account writes.
    Sqlx,
    /// rusqlite's: the account writes.
    Lite,
}

/// Who is told the outcome of a commit.
type Waiter = oneshot::Sender<Result<(), StoreError>>;

#[derive(Debug)]
struct State {
    conn: SqliteConnection,
    /// The same file through rusqlite, for the account writes: their statements run inline on
    /// the writing task, with no round trip to another thread (see [`Write::lite`]). Behind a
    /// mutex of its own so that a statement run on a blocking thread (`BEGIN IMMEDIATE`,
    /// `COMMIT`) keeps it even if the task that started it is cancelled.
    lite: Arc<std::sync::Mutex<rusqlite::Connection>>,
    /// The shared transaction is open.
    open: bool,
    /// Which connection holds the open transaction.
    on: Kind,
    /// A write's savepoint is open: its write is running, or was dropped without commit and
    /// is to be rolled back by the next holder.
    savepoint: bool,
    /// The writes released into the open transaction, waiting for its commit.
    pending: Vec<Waiter>,
    /// The accounts that those writes changed (see [`Group::write_for`]).
    accounts: HashSet<AccountId>,
    /// Counts the transactions ended (committed or failed), for writers waiting for one.
    ended: watch::Sender<u64>,
    /// `pending.len()`, for a flush waiting for the batch to fill ([`Shared::released`]).
    released: Arc<AtomicUsize>,
    /// [`Group::close`] ran: no more writes.
    closed: bool,
}

impl Group {
    /// The group writing through `conn`.
    pub(crate) fn new(conn: SqliteConnection, lite: rusqlite::Connection) -> Self {
        let released = Arc::new(AtomicUsize::new(0));
        Self {
            shared: Arc::new(Shared {
                state: Arc::new(Mutex::new(State {
                    conn,
                    lite: Arc::new(std::sync::Mutex::new(lite)),
                    open: false,
                    on: Kind::Sqlx,
                    savepoint: false,
                    pending: Vec::new(),
                    accounts: HashSet::new(),
                    ended: watch::Sender::new(0),
                    released: released.clone(),
                    closed: false,
                })),
                flush_scheduled: AtomicBool::new(false),
                commits: AtomicU64::new(0),
                released,
                joined: Notify::new(),
                last_batch: AtomicUsize::new(0),
            }),
        }
    }

    /// Begins a write: waits for the connection, joins the open transaction (or begins one)
    /// and opens the write's savepoint.
    pub(crate) async fn write(&self) -> Result<Write, StoreError> {
        let mut w = self.lock(None, Kind::Sqlx).await?;
        w.open_savepoint().await?;
        Ok(w)
    }

    /// Begins an account write of `account` on the rusqlite connection, its savepoint open.
    /// Such a write's caller reads the account through the store's other connections (the old
    /// values): when a write of the open transaction changed the account, it first waits for
    /// that transaction to end, so that those reads see every write of the account before it,
    /// committed.
    pub(crate) async fn lite_write_for(&self, account: &AccountId) -> Result<Write, StoreError> {
        let mut w = self.lock(Some(account), Kind::Lite).await?;
        w.open_lite_savepoint().await?;
        Ok(w)
    }

    /// Begins a write of no account in particular on the rusqlite connection, its savepoint
    /// open (call records): its statements run inline through [`Write::lite`].
    pub(crate) async fn lite_write(&self) -> Result<Write, StoreError> {
        let mut w = self.lock(None, Kind::Lite).await?;
        w.open_lite_savepoint().await?;
        Ok(w)
    }

    /// As [`Group::write`], for a write of `account`: it waits as [`Group::lite_write_for`]
    /// does, and a later account write of `account` waits for its commit.
    pub(crate) async fn write_for(&self, account: &AccountId) -> Result<Write, StoreError> {
        let mut w = self.lock(Some(account), Kind::Sqlx).await?;
        w.open_savepoint().await?;
        Ok(w)
    }

    /// Waits (at most [`WAIT`]) for the connection, and for the end of the open transaction
    /// when it holds a write of `account`.
    async fn lock(&self, account: Option<&AccountId>, kind: Kind) -> Result<Write, StoreError> {
        let mut state = tokio::time::timeout(WAIT, self.wait_for(account))
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no turn on the writer connection within {} s",
                    WAIT.as_secs()
                ))
            })??;
        state.settle().await;
        if state.closed {
            return Err(StoreError::Unavailable("the store is closed".to_owned()));
        }
        if state.open && state.on != kind {
            // The open transaction is on the other connection: it commits first.
            state = self.flushed(state).await;
        }
        Ok(Write {
            state,
            shared: self.shared.clone(),
            account: account.cloned(),
        })
    }

    async fn wait_for(
        &self,
        account: Option<&AccountId>,
    ) -> Result<OwnedMutexGuard<State>, StoreError> {
        Ok(loop {
            let state = self.shared.state.clone().lock_owned().await;
            match account {
                Some(a) if state.accounts.contains(a) => {
                    let mut ended = state.ended.subscribe();
                    // The write of the account scheduled the flush that ends the transaction.
                    drop(state);
                    if ended.changed().await.is_err() {
                        return Err(StoreError::Unavailable("the store is closed".to_owned()));
                    }
                }
                _ => break state,
            }
        })
    }

    /// Commits what is pending, then runs `f` on the connection outside any transaction, with
    /// no write running (`VACUUM INTO` cannot run inside a transaction).
    pub(crate) async fn outside_transaction<T>(
        &self,
        f: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let state = self.shared.state.clone().lock_owned().await;
        let mut state = self.flushed(state).await;
        f(&mut state.conn).await
    }

    /// Commits what is pending and refuses every later write.
    pub(crate) async fn close(&self) {
        let state = self.shared.state.clone().lock_owned().await;
        let mut state = self.flushed(state).await;
        state.closed = true;
    }

    /// Commits what is pending, in a task of its own so that it completes (and its writers
    /// are answered) even if the caller is cancelled; the connection comes back to the caller.
    async fn flushed(&self, mut state: OwnedMutexGuard<State>) -> OwnedMutexGuard<State> {
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            state.flush(&shared).await;
            state
        });
        match task.await {
            Ok(state) => state,
            // Only if the runtime is shutting down: take the connection again.
            Err(_) => self.shared.state.clone().lock_owned().await,
        }
    }

    /// Commits run so far.
    pub(crate) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Schedules a flush: a task that queues for the connection and commits what is pending.
    ///
    /// When the last commit held several writes, the writers are many: their next writes
    /// reach the store spread over the time the server takes to answer them and read their next
    /// requests, and a flush queued at the first of them would commit a few and hold the
    /// connection for a whole flush while the rest wait. So it first waits, at most [`FILL`],
    /// for as many writes as the last commit held (PostgreSQL's `commit_delay`, which also
    /// applies only when other transactions are active). A writer alone is never delayed.
    fn schedule_flush(shared: &Arc<Shared>) {
        if shared.flush_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let shared = shared.clone();
                runtime.spawn(async move {
                    // Cleared however the task ends (its runtime may drop it unfinished): the
                    // next release then schedules a new flush for what this one left.
                    let scheduled = Unschedule(&shared.flush_scheduled);
                    let expected = shared.last_batch.load(Ordering::Relaxed);
                    if expected > 1 {
                        let deadline = tokio::time::Instant::now() + FILL;
                        loop {
                            let joined = shared.joined.notified();
                            if shared.released.load(Ordering::Acquire) >= expected {
                                break;
                            }
                            tokio::select! {
                                () = joined => {}
                                () = tokio::time::sleep_until(deadline) => break,
                            }
                        }
                    }
                    let mut state = shared.state.lock().await;
                    drop(scheduled);
                    state.flush(&shared).await;
                });
            }
            // No runtime to run it on: the next writer, or close, commits instead.
            Err(_) => shared.flush_scheduled.store(false, Ordering::Release),
        }
    }
}

/// Runs `sql` (one or more statements without parameters) on `conn`.
async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    // `Executor::execute`'s boxed future, unlike `raw_sql`'s, is `Send` for any lifetime of
    // the connection, as the store's `async_trait` methods need.
    sqlx::Executor::execute(conn, sql).await.map(|_| ())
}

/// The rusqlite connection, whoever held it last (a panic holding it leaves nothing half-done
/// that the transaction's end does not undo).
fn lock_lite(
    lite: &std::sync::Mutex<rusqlite::Connection>,
) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
    lite.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long the rusqlite connection's `BEGIN IMMEDIATE` waits for another process's write
/// lock, as the store's other connections do.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `sql` on the rusqlite connection on a blocking thread (a flush). The connection stays where it is: cancelled, the caller
/// leaves the statement to complete, and the next holder of the group finds its outcome.
async fn lite_blocking(
    lite: &Arc<std::sync::Mutex<rusqlite::Connection>>,
    sql: &'static str,
) -> Result<(), StoreError> {
    let lite = lite.clone();
    tokio::task::spawn_blocking(move || lock_lite(&lite).execute_batch(sql).map_err(lite_err))
        .await
        .map_err(|e| StoreError::Unavailable(format!("the writer thread ended: {e}")))?
}

/// Maps a rusqlite error as [`map_err`] maps sqlx's: a uniqueness rule is a conflict, a
/// foreign key or a NOT NULL (an account sub-select that found nothing) is "not found", a busy
/// or locked database is unavailable.
pub(crate) fn lite_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, message) => {
            let message = message.clone().unwrap_or_else(|| e.to_string());
            match f.extended_code {
                2067 | 1555 => StoreError::Conflict(message),
                787 | 1299 => StoreError::NotFound(message),
                c if crate::rows::busy_or_locked(c) => StoreError::Unavailable(message),
                _ => StoreError::Other(e.to_string()),
            }
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// Clears the flag when dropped.
struct Unschedule<'a>(&'a AtomicBool);

impl Drop for Unschedule<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl State {
    /// Rolls back the savepoint of a write dropped without commit, if any.
    async fn settle(&mut self) {
        if !self.savepoint {
            return;
        }
        self.savepoint = false;
        if let Err(e) = self.run("ROLLBACK TO w; RELEASE w").await {
            // The savepoint is gone: SQLite rolled back the whole transaction.
            self.fail_batch(e.to_string()).await;
        }
    }

    /// Settles, then commits the open transaction and answers its pending writers.
    async fn flush(&mut self, shared: &Shared) {
        self.settle().await;
        if !self.open {
            return;
        }
        if self.pending.is_empty() {
            // Only refused writes ran in it: nothing to keep.
            if let Err(e) = self.run("ROLLBACK").await {
                tracing::warn!(error = %e, "rolling back an empty write transaction");
            }
            self.open = false;
            return;
        }
        shared.commits.fetch_add(1, Ordering::Relaxed);
        shared
            .last_batch
            .store(self.pending.len(), Ordering::Relaxed);
        let committed = match self.on {
            Kind::Sqlx => exec(&mut self.conn, "COMMIT").await.map_err(map_err),
            // The flush: not on the runtime's threads.
            Kind::Lite => lite_blocking(&self.lite, "COMMIT").await,
        };
        match committed {
            Ok(_) => {
                self.open = false;
                for waiter in self.pending.drain(..) {
                    // A writer that went away (a cancelled request) needs no answer.
                    let _ = waiter.send(Ok(()));
                }
                self.ended();
            }
            Err(e) => self.fail_batch(e.to_string()).await,
        }
    }

    /// Runs `sql` (statements that do no I/O to wait for: a savepoint's or a transaction's
    /// end) on the connection that holds the open transaction.
    async fn run(&mut self, sql: &'static str) -> Result<(), StoreError> {
        match self.on {
            Kind::Sqlx => exec(&mut self.conn, sql).await.map_err(map_err),
            Kind::Lite => lock_lite(&self.lite).execute_batch(sql).map_err(lite_err),
        }
    }

    /// Ends the transaction without keeping any of it, and tells every pending writer.
    async fn fail_batch(&mut self, cause: String) {
        if !self.pending.is_empty() {
            tracing::error!(error = %cause, writes = self.pending.len(), "a group commit failed");
        }
        // It may be gone already: then the rollback fails, and there is nothing to end.
        let _ = self.run("ROLLBACK").await;
        self.open = false;
        self.savepoint = false;
        for waiter in self.pending.drain(..) {
            let _ = waiter.send(Err(batch_failed(&cause)));
        }
        self.ended();
    }

    /// Wakes the writers waiting for the open transaction to end.
    fn ended(&mut self) {
        self.accounts.clear();
        self.released.store(0, Ordering::Release);
        self.ended.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The error of a write whose batch failed: it was not kept, and may be tried again.
fn batch_failed(cause: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "the commit of this write failed, nothing of it was kept: {cause}"
    ))
}

/// One write in the shared transaction, inside its own savepoint. Dropped without
/// [`Write::commit`], it is rolled back (by the next holder of the connection) and the other
/// writes of the batch are kept.
#[derive(Debug)]
pub(crate) struct Write {
    state: OwnedMutexGuard<State>,
    shared: Arc<Shared>,
    /// The account whose data it changes, when it says ([`Group::write_for`]).
    account: Option<AccountId>,
}

impl Write {
    /// The statements that open this write's savepoint (and the shared transaction, when none
    /// is open), for the caller to run before its first statement in the same call: one round
    /// trip to the connection's worker thread less. From here on the savepoint counts as open:
    /// if those statements fail, the write is to be dropped, and the next holder of the
    /// connection rolls back to the savepoint or, if there is none, fails the batch.
    pub(crate) fn opening(&mut self) -> Opening {
        self.state.savepoint = true;
        if self.state.open {
            Opening::Savepoint
        } else {
            // Set now: a failed BEGIN is then ended like a failed batch (an empty one).
            self.state.open = true;
            self.state.on = Kind::Sqlx;
            Opening::Transaction
        }
    }

    /// Opens the write's savepoint on the rusqlite connection (and the shared transaction
    /// there, when none is open).
    async fn open_lite_savepoint(&mut self) -> Result<(), StoreError> {
        self.state.savepoint = true;
        if !self.state.open {
            // Set first: a failed BEGIN is then ended like a failed batch (an empty one).
            self.state.open = true;
            self.state.on = Kind::Lite;
            // The connection's busy timeout is zero: no statement of it ever sleeps on the
            // runtime's threads. Only when another process holds the write lock does the
            // BEGIN wait for it, on a blocking thread, under the store's busy timeout.
            let begun = self.lite().execute_batch("BEGIN IMMEDIATE");
            match begun {
                Ok(()) => {}
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if crate::rows::busy_or_locked(f.extended_code) =>
                {
                    let lite = self.state.lite.clone();
                    tokio::task::spawn_blocking(move || {
                        let conn = lock_lite(&lite);
                        conn.busy_timeout(BUSY_TIMEOUT).map_err(lite_err)?;
                        let begun = conn.execute_batch("BEGIN IMMEDIATE").map_err(lite_err);
                        conn.busy_timeout(Duration::ZERO).map_err(lite_err)?;
                        begun
                    })
                    .await
                    .map_err(|e| {
                        StoreError::Unavailable(format!("the writer thread ended: {e}"))
                    })??;
                }
                Err(e) => return Err(lite_err(e)),
            }
        }
        self.lite().execute_batch("SAVEPOINT w").map_err(lite_err)
    }

    /// The rusqlite connection, for a write begun by [`Group::lite_write_for`]: its statements
    /// run inline (a few microseconds each, no I/O to wait for: the flush is the commit's).
    /// Not to be held across an `.await`.
    pub(crate) fn lite(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        lock_lite(&self.state.lite)
    }

    /// Opens the write's savepoint (and the shared transaction, when none is open).
    pub(crate) async fn open_savepoint(&mut self) -> Result<(), StoreError> {
        let sql = match self.opening() {
            Opening::Savepoint => "SAVEPOINT w",
            // Immediate: the transaction holds SQLite's write lock from its first statement,
            // so no other connection (the CLI, a second server) commits between a write's
            // reads and its changes; it waits for the lock under the busy timeout.
            Opening::Transaction => "BEGIN IMMEDIATE; SAVEPOINT w",
        };
        exec(&mut self.state.conn, sql).await.map_err(map_err)
    }

    /// Releases the write's savepoint and waits for the commit that holds it: `Ok` only once
    /// it is on disk.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        if let Err(e) = exec(&mut self.state.conn, "RELEASE w").await {
            // The savepoint is gone (SQLite rolled back the whole transaction): dropped with
            // the savepoint counted open, the write makes the next holder fail the batch.
            return Err(map_err(e));
        }
        self.released().await
    }

    /// As [`Write::commit`], when the caller ran `RELEASE w` itself as the last statement of
    /// its last call (with its journal entry, say), successfully.
    pub(crate) async fn released(mut self) -> Result<(), StoreError> {
        self.state.savepoint = false;
        let (tx, rx) = oneshot::channel();
        self.state.pending.push(tx);
        self.state
            .released
            .store(self.state.pending.len(), Ordering::Release);
        self.shared.joined.notify_waiters();
        if let Some(account) = self.account.take() {
            self.state.accounts.insert(account);
        }
        let shared = self.shared.clone();
        // Hands the connection to the next writer.
        drop(self);
        Group::schedule_flush(&shared);
        rx.await.map_err(|_| {
            StoreError::Unavailable("the write's commit never ran (shutting down)".to_owned())
        })?
    }
}

/// What [`Write::opening`] asks the caller to run first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// `SAVEPOINT w`: the shared transaction is open.
    Savepoint,
    /// `BEGIN IMMEDIATE; SAVEPOINT w`: the write begins the shared transaction.
    Transaction,
}

impl std::ops::Deref for Write {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.state.conn
    }
}

impl std::ops::DerefMut for Write {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.state.conn
    }
}

impl Drop for Write {
    fn drop(&mut self) {
        if self.state.savepoint {
            // Rolled back by the next holder of the connection. Schedule one, so that the
            // transaction (and SQLite's write lock) does not stay open until the next write.
            Group::schedule_flush(&self.shared);
        }
    }
}

#[cfg(test)]
mod tests;
