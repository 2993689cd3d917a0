//! Failing fast while PostgreSQL is unreachable: [`GuardedPool`], the store's connection pool
//! with a shared health state.
//!
//! Without it every operation during an outage waits the pool's whole acquire timeout (sqlx
//! keeps retrying a refused connect until then) before it is [`StoreError::Unavailable`], and
//! requests pile up. Here:
//!
//! * **up** (the normal state): operations run as they always did, with the normal acquire
//!   timeout, so a merely busy pool never fails fast;
//! * a **connection error** (an I/O or TLS error, a pool timeout, a dropped connection's SQLSTATE
//!   class 08, 57P01–57P03), whether from an operation or from the ping of an idle connection
//!   before it is handed out, makes the store *suspect* the database and start one probe;
//! * the **probe** (one at a time, in the background) opens a connection of its own with a short
//!   timeout. If it connects — or the server answers at all, even with an error such as "too many
//!   connections" — the store stays (or is again) up; a busy pool or one killed connection is
//!   therefore never an outage. If it cannot reach the server, the store is **down** and the
//!   probe tries again every [`PROBE_INTERVAL`] until it connects;
//! * while **down**, every operation fails at once with [`StoreError::Unavailable`] (the HTTP
//!   layer answers 503 with `Retry-After`), without touching the pool; when a probe connects the
//!   store is up again by itself, and the pool replaces its dead connections: for
//!   [`PING_AFTER_ERROR`] after a connection error every connection is pinged before it is
//!   handed out (otherwise only those idle for more than [`PING_IDLE`]: a ping per statement
//!   was a round trip per statement), and a read that still meets a dead one runs again
//!   (`error::reading`).
//!
//! Operations already waiting for a connection when the outage is detected still wait their
//! acquire timeout: only the first requests of an outage are slow.
//!
//! [`GuardedPool`] is used exactly like a `PgPool` (`&pool` is an [`Executor`],
//! [`GuardedPool::begin`] starts a transaction), so store code does not change; statements inside
//! a transaction run on its connection and are not gated.
//!
//! [`StoreError::Unavailable`]: sip_settings_core::StoreError::Unavailable

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use sqlx::postgres::{PgConnectOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Connection, Describe, Either, Execute, Executor, PgConnection, PgPool, Postgres};

/// How often a down store tries to connect again.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How long one probe may take to connect.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// A connection idle for longer is pinged before it is handed out.
pub(crate) const PING_IDLE: Duration = Duration::from_secs(1);
/// For this long after a connection error every connection is pinged before it is handed out.
pub(crate) const PING_AFTER_ERROR: Duration = Duration::from_secs(2);

/// Whether an error says that the database could not be reached or the connection was lost
/// (as opposed to an answer of the server).
pub(crate) fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// The error of an operation refused while the store is down (mapped to
/// [`StoreError::Unavailable`](sip_settings_core::StoreError::Unavailable)).
fn unreachable() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "PostgreSQL is unreachable; failing fast until a probe connects again",
    ))
}

/// The health state shared by every clone of a [`GuardedPool`] and its probe.
#[derive(Debug)]
struct Health {
    /// A probe could not reach the server, and none has since.
    down: AtomicBool,
    /// A probe task is running.
    probing: AtomicBool,
    /// The pool was closed: no more probes.
    closed: AtomicBool,
    /// Where the probe connects (those of the pool).
    options: PgConnectOptions,
    /// The origin of `last_error`.
    base: Instant,
    /// Milliseconds after `base` of the last connection error (0: none yet).
    last_error: AtomicU64,
}

impl Health {
    /// Whether a connection error was seen within [`PING_AFTER_ERROR`].
    fn recent_error(&self) -> bool {
        let at = self.last_error.load(Ordering::Acquire);
        at != 0 && Duration::from_millis(at) + PING_AFTER_ERROR > self.base.elapsed()
    }

    /// Starts a probe unless one is running (or the store is closed); connections are pinged
    /// before use for a while.
    fn suspect(self: &Arc<Self>) {
        let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_error.store(now.max(1), Ordering::Release);
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(probe(Arc::downgrade(self)));
            }
            // Not on a runtime (cannot happen inside sqlx): the next error tries again.
            Err(_) => self.probing.store(false, Ordering::Release),
        }
    }
}

/// Clears `probing` when the probe ends, however it ends (its runtime may shut down).
struct ProbeRunning(Weak<Health>);

impl Drop for ProbeRunning {
    fn drop(&mut self) {
        if let Some(health) = self.0.upgrade() {
            health.probing.store(false, Ordering::Release);
        }
    }
}

/// Whether the server can be reached: a fresh connection, or any answer of the server; else
/// why not (for the log: a refused TLS certificate is not a network outage).
async fn reachable(options: &PgConnectOptions) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(e)) if is_connection_error(&e) => Err(e.to_string()),
        Ok(Err(_)) => Ok(()),
        Err(_) => Err(format!("no connection within {PROBE_TIMEOUT:?}")),
    }
}

/// Probes until the server is reachable (then the store is up) or the store is gone.
async fn probe(health: Weak<Health>) {
    let _running = ProbeRunning(health.clone());
    loop {
        let Some(options) = health
            .upgrade()
            .filter(|h| !h.closed.load(Ordering::Acquire))
            .map(|h| h.options.clone())
        else {
            return;
        };
        let reached = reachable(&options).await;
        let Some(h) = health.upgrade() else { return };
        let reason = match reached {
            Ok(()) => {
                if h.down.swap(false, Ordering::AcqRel) {
                    tracing::info!("PostgreSQL is reachable again");
                }
                return;
            }
            Err(reason) => reason,
        };
        if !h.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                error = %reason,
                "PostgreSQL is unreachable: store operations fail at once until it is back"
            );
        }
        drop(h);
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// The store's pool with its health state; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct GuardedPool {
    pool: PgPool,
    health: Arc<Health>,
}

impl GuardedPool {
    /// Connects the pool built by `pool_options` to `options`, with the health state's ping of
    /// connections idle for more than [`PING_IDLE`], or of all for [`PING_AFTER_ERROR`] after a
    /// connection error, before they are handed out (instead of `test_before_acquire`, which
    /// pings every time: a round trip per statement).
    pub(crate) async fn connect(
        pool_options: sqlx::postgres::PgPoolOptions,
        options: PgConnectOptions,
    ) -> Result<Self, sqlx::Error> {
        let health = Arc::new(Health {
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            options: options.clone(),
            base: Instant::now(),
            last_error: AtomicU64::new(0),
        });
        let watcher = Arc::downgrade(&health);
        let pool = pool_options
            .test_before_acquire(false)
            .before_acquire(move |connection, meta| {
                let watcher = watcher.clone();
                Box::pin(async move {
                    // A connection used within the last second is alive but for a rare
                    // failover; a read that finds it dead runs again (`error::reading`), and
                    // after any connection error every connection is pinged for a while.
                    let recent_error = watcher.upgrade().is_some_and(|h| h.recent_error());
                    if meta.idle_for < PING_IDLE && !recent_error {
                        return Ok(true);
                    }
                    let pinged = connection.ping().await;
                    if let (Err(e), Some(health)) = (&pinged, watcher.upgrade()) {
                        // A dead idle connection: the pool replaces it; the probe finds out
                        // whether the database is gone.
                        if is_connection_error(e) {
                            health.suspect();
                        }
                    }
                    pinged.map(|()| true)
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, health })
    }

    /// The pool itself, for what takes a `PgPool` (the migrator).
    pub(crate) fn inner(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool, waiting for running statements; no more probes.
    pub(crate) async fn close(&self) {
        self.health.closed.store(true, Ordering::Release);
        self.pool.close().await;
    }

    /// Starts a transaction, failing at once while the store is down.
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.gate()?;
        self.observe(self.pool.begin().await)
    }

    /// A connection, failing at once while the store is down.
    pub(crate) async fn acquire(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<Postgres>, sqlx::Error> {
        self.gate()?;
        self.observe(self.pool.acquire().await)
    }

    /// Whether the store is known to be down.
    pub(crate) fn is_down(&self) -> bool {
        self.health.down.load(Ordering::Acquire)
    }

    /// Fails at once while the store is down.
    fn gate(&self) -> Result<(), sqlx::Error> {
        if self.is_down() {
            // In case the probe's runtime went away: one is running again.
            self.health.suspect();
            return Err(unreachable());
        }
        Ok(())
    }

    /// Passes a result on; a connection error starts a probe.
    fn observe<T>(&self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Err(e) = &result
            && is_connection_error(e)
        {
            self.health.suspect();
        }
        result
    }
}

/// A stream of the pool's results that starts a probe on a connection error, or the one error
/// of a refused operation.
struct Observed<'e> {
    inner: Option<BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>>,
    refused: Option<sqlx::Error>,
    health: Arc<Health>,
}

impl Stream for Observed<'_> {
    type Item = Result<Either<PgQueryResult, PgRow>, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(e) = self.refused.take() {
            self.inner = None;
            return Poll::Ready(Some(Err(e)));
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Err(e))) = &polled
            && is_connection_error(e)
        {
            self.health.suspect();
        }
        polled
    }
}

impl<'p> Executor<'p> for &'_ GuardedPool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let health = self.health.clone();
        match self.gate() {
            Ok(()) => Box::pin(Observed {
                inner: Some((&self.pool).fetch_many(query)),
                refused: None,
                health,
            }),
            Err(e) => Box::pin(Observed {
                inner: None,
                refused: Some(e),
                health,
            }),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        let this = self.clone();
        Box::pin(async move {
            this.gate()?;
            let result = (&this.pool).fetch_optional(query).await;
            this.observe(result)
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>> {
        let this = self.clone();
        Box::pin(async move {
            this.gate()?;
            let result = (&this.pool).prepare_with(sql, parameters).await;
            this.observe(result)
        })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>> {
        let this = self.clone();
        Box::pin(async move {
            this.gate()?;
            let result = (&this.pool).describe(sql).await;
            this.observe(result)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Instant;

    use sqlx::postgres::PgPoolOptions;

    use super::*;

    /// A pool of one connection on `SIP_SETTINGS_TEST_PG_URL` (which says it skips without it,
    /// and fails without it in CI).
    async fn one_connection_pool(acquire_timeout: Duration) -> Option<GuardedPool> {
        let url = crate::testing::test_server_url("a PostgreSQL test")?;
        let options = PgConnectOptions::from_str(&url).unwrap();
        let pool_options = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire_timeout);
        Some(GuardedPool::connect(pool_options, options).await.unwrap())
    }

    /// Waits (bounded) until no probe runs.
    async fn probe_done(pool: &GuardedPool) {
        let deadline = Instant::now() + PROBE_TIMEOUT * 3;
        while pool.health.probing.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the probe did not end");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_busy_pool_waits_its_timeout_and_is_not_an_outage() {
        let timeout = Duration::from_millis(300);
        let Some(pool) = one_connection_pool(timeout).await else {
            return;
        };
        let held = pool.begin().await.unwrap();
        for _ in 0..2 {
            let started = Instant::now();
            let r = sqlx::query("SELECT 1").execute(&pool).await;
            assert!(matches!(r, Err(sqlx::Error::PoolTimedOut)), "{r:?}");
            assert!(started.elapsed() >= timeout, "a busy pool waits");
            // The time-out started a probe, which reached the server: still up.
            probe_done(&pool).await;
            assert!(!pool.is_down());
        }
        drop(held);
        sqlx::query("SELECT 1").execute(&pool).await.unwrap();
        pool.close().await;
    }

    #[tokio::test]
    async fn a_down_store_fails_at_once_and_comes_up_by_itself() {
        let Some(pool) = one_connection_pool(Duration::from_secs(5)).await else {
            return;
        };
        // As a probe that could not connect leaves it.
        pool.health.down.store(true, Ordering::Release);
        let started = Instant::now();
        let r = sqlx::query("SELECT 1").fetch_optional(&pool).await;
        assert!(
            matches!(&r, Err(sqlx::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotConnected),
            "{r:?}"
        );
        assert!(pool.begin().await.is_err());
        assert!(sqlx::query("SELECT 1").fetch_all(&pool).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(100), "at once");
        // The refused operation started a probe; the server is there, so the store is up.
        probe_done(&pool).await;
        assert!(!pool.is_down());
        sqlx::query("SELECT 1").fetch_all(&pool).await.unwrap();
        pool.close().await;
    }

    #[test]
    fn lost_connections_are_connection_errors_and_answers_are_not() {
        assert!(is_connection_error(&sqlx::Error::PoolTimedOut));
        assert!(is_connection_error(&sqlx::Error::Io(
            std::io::Error::other("reset")
        )));
        assert!(!is_connection_error(&sqlx::Error::RowNotFound));
        assert!(!is_connection_error(&sqlx::Error::PoolClosed));
        assert!(matches!(
            crate::error::map_err(unreachable()),
            sip_settings_core::StoreError::Unavailable(_)
        ));
    }
}
