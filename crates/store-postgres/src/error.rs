//! PostgreSQL errors as [`StoreError`]s, and the retry of a whole operation that the database
//! rolled back as a serialization failure or a deadlock victim.
//!
//! Inside the store every operation returns [`Fail`], which keeps the raw [`sqlx::Error`] so that
//! [`retrying`] can tell a retryable failure from a final one; only the public methods map it.

use std::time::Duration;

use sip_settings_core::StoreError;

/// How often a rolled-back operation is run again before the caller gets
/// [`StoreError::Unavailable`].
const RETRIES: u32 = 3;

/// A failure inside the store: a database error (mapped by [`map_err`] at the edge) or a store
/// outcome decided by the code (`NotFound`, corrupt data, …).
#[derive(Debug)]
pub(crate) enum Fail {
    /// From the database.
    Db(sqlx::Error),
    /// Decided here.
    Store(StoreError),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The result of an operation inside the store.
pub(crate) type Res<T> = Result<T, Fail>;

/// The SQLSTATE of a database error.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// serialization_failure (40001) or deadlock_detected (40P01): the transaction was rolled back
/// as a whole and may simply run again.
fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("40001" | "40P01"))
}

/// Maps a sqlx error to the store's error kinds.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match code.as_ref() {
                // unique_violation
                "23505" => StoreError::Conflict(db.message().to_owned()),
                // foreign_key_violation (no such domain or account), not_null_violation (an
                // account sub-select that found no account)
                "23503" | "23502" => StoreError::NotFound(db.message().to_owned()),
                // serialization_failure, deadlock_detected (after the retries), admin_shutdown,
                // crash_shutdown, cannot_connect_now, and every connection exception (class 08)
                "40001" | "40P01" | "57P01" | "57P02" | "57P03" => {
                    StoreError::Unavailable(db.message().to_owned())
                }
                c if c.starts_with("08") => StoreError::Unavailable(db.message().to_owned()),
                _ => StoreError::Other(e.to_string()),
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

impl From<Fail> for StoreError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Db(e) => map_err(e),
            Fail::Store(e) => e,
        }
    }
}

/// Counts an operation run again, by why: `rolled_back` (serialization failure, deadlock) or
/// `connection_lost` (a read that met a dead connection).
pub(crate) fn count_retry(why: &'static str) {
    sip_settings_core::metrics::global().add(
        "sip_settings_store_retries_total",
        "Store operations run again, by why: rolled_back (serialization failure or deadlock \
         victim), connection_lost (a read that met a dead connection), stale (an optimistic \
         write found the account changed by another writer and runs again with its lock).",
        &["why"],
        &[why],
        1,
    );
}

/// Runs `op` (one whole transaction, or one statement) and runs it again, up to [`RETRIES`]
/// times with a short growing pause, when PostgreSQL rolled it back as a serialization failure
/// or a deadlock victim. Any other outcome is final.
pub(crate) async fn retrying<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Res<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(Fail::Db(e)) if attempt < RETRIES && is_retryable(&e) => {
                attempt += 1;
                count_retry("rolled_back");
                tracing::debug!(attempt, error = %e, "retrying a rolled-back store operation");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
            }
            Err(f) => return Err(f.into()),
        }
    }
}

/// Runs a read-only `op` like [`retrying`], and once more after a lost connection: a read
/// changes nothing, so running it again is always safe, and the pool pings the connections it
/// hands out after a connection error (`health.rs`), so the second run gets a live one.
pub(crate) async fn reading<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Res<T>>,
{
    let mut attempt = 0;
    let mut reconnected = false;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(Fail::Db(e))
                if !reconnected
                    && !matches!(e, sqlx::Error::PoolTimedOut)
                    && crate::health::is_connection_error(&e) =>
            {
                reconnected = true;
                count_retry("connection_lost");
                tracing::debug!(error = %e, "a read lost its connection; reading again");
            }
            Err(Fail::Db(e)) if attempt < RETRIES && is_retryable(&e) => {
                attempt += 1;
                count_retry("rolled_back");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
            }
            Err(f) => return Err(f.into()),
        }
    }
}

/// A stored value that does not parse: an error, never a panic.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> Fail {
    Fail::Store(sip_settings_core::stored::corrupt(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn store_outcomes_are_not_retried() {
        let mut runs = 0;
        let r: Result<(), StoreError> = retrying(|| {
            runs += 1;
            async { Err(Fail::Store(StoreError::NotFound("x".into()))) }
        })
        .await;
        assert!(matches!(r, Err(StoreError::NotFound(_))));
        assert_eq!(runs, 1);
    }

    #[test]
    fn pool_and_io_errors_are_unavailable() {
        assert!(matches!(
            map_err(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_err(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_err(sqlx::Error::Io(std::io::Error::other("reset"))),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_err(sqlx::Error::RowNotFound),
            StoreError::Other(_)
        ));
    }
}
