//! [`PgStore`]: the PostgreSQL store, for many stateless API servers sharing one (replicated)
//! database. It implements the [`Store`](sip_settings_core::Store) trait with exactly the
//! behaviour of the embedded `SqliteStore` (one conformance suite runs against both), on the
//! same schema in PostgreSQL types (`migrations/`), one file per trait by concern
//! (`accounts.rs`, `certificates.rs`, `addresses.rs`, `settings.rs`, `billing.rs`, `devices.rs`,
//! `journal.rs`, `chat_journal.rs`), each the same as the embedded store's but for the SQL dialect.
//!
//! # Transactions and concurrency
//!
//! Every method is one statement or one transaction at PostgreSQL's default isolation, READ
//! COMMITTED. SQLite gets serial execution for free from its single writer; here the rules that
//! depend on it are made explicit with row locks, always taken in the order *account row, then
//! session row*:
//!
//! * `open_prepaid_session` locks the paying account's row (`SELECT … FOR NO KEY UPDATE`) before
//!   it sums the open reservations, so concurrent opens on one balance run one after another and
//!   can never together reserve more than the balance;
//! * `close_prepaid_session` locks the account, then the session row, and settles only a session
//!   it finds open under that lock: closing twice debits once;
//! * every change of an account's data runs in an
//!   [`AccountWrite`](sip_settings_core::store::AccountWrite) (`account_write`), which locks
//!   the account row first and holds it to the commit, journal entries included: writers of
//!   one account on every server run one after another, so
//!   `add_alias` counts the aliases exactly (the address's uniqueness across accounts stays
//!   with the `sip_addresses` primary key: a unique violation is `AliasOutcome::Taken`) and
//!   `If-Match` holds across servers;
//! * `change_balance` and `import_billing` lock the account row too;
//! * `record_calls` relies on the `calls` unique key (`ON CONFLICT DO NOTHING`);
//! * `export_billing` reads balance, history and sessions in one REPEATABLE READ, READ ONLY
//!   transaction, so that the copy is of one moment.
//!
//! `FOR NO KEY UPDATE` is the form of `FOR UPDATE` that PostgreSQL itself takes for an `UPDATE`
//! of non-key columns: lockers exclude each other just the same, but inserts into other tables
//! whose foreign keys point at the account (a call party, a history entry) are not blocked by it,
//! which removes a source of deadlocks.
//!
//! A transaction that PostgreSQL rolls back as a serialization failure (40001) or a deadlock
//! victim (40P01) is run again as a whole, up to three times, before the caller gets
//! [`StoreError::Unavailable`]. While the database is unreachable, operations fail at once
//! instead of waiting for a connection (`health.rs`).
//!
//! # Lost connections
//!
//! The pool pings a connection before handing it out only when it has been idle for more than
//! a second, or when any connection error was seen in the last two seconds — not before every
//! statement, which cost a round trip each. A read that finds its connection dead (ended by
//! `pg_terminate_backend`, a failover, a restart) runs once more (`error::reading`), on a
//! connection the pool has pinged; a write whose lock statement finds it dead begins again
//! (nothing was done yet). A write that loses its connection later fails as before: whether a
//! lost `COMMIT` committed cannot be known, so it is never run twice.
//!
//! # Hot reads: kept in memory, invalidated before a change is acknowledged
//!
//! What every request and every call decision reads — a certificate, an account, its DND,
//! forwarding and voice mailbox, whether a domain is served, the account of an address or an
//! ENUM number — is kept in memory (`read_cache.rs`) under a protocol that keeps the
//! guarantee the store had without it: **a change (a revocation included) that any server or
//! the CLI has acknowledged holds for every request that starts after it, on every server**.
//!
//! * A caching server (a *holder*) `LISTEN`s on a connection of its own and holds a short lease
//!   in the table `cache_holders` (2 s, renewed every 0.4 s). It answers from memory only while
//!   its listener is connected and its lease, reckoned conservatively in its own clock, runs.
//!   A lost listener or lease empties the cache and the server reads the database until it has
//!   registered again.
//! * A writer, after its commit, forgets what its own cache held of the change, then — when
//!   other holders have a live lease — sends a numbered ping on the channel and answers its
//!   caller only once every other holder with a live lease has recorded a ping numbered at least
//!   as high (PostgreSQL delivers notifications in commit order, and the ping is numbered after
//!   the commit, so such a holder has emptied its cache after the change). A holder that does
//!   not confirm within 1 s is fenced (its lease is never renewed) and the writer waits for the
//!   lease to lapse: a write waits at most about 3 s for a stuck or dead server, never for ever.
//! * While this server writes an account, reads of that account answer what the write read
//!   together with its row lock (one statement): the state the write applies to, as before,
//!   even if another server's change just before the lock has not reached this cache yet.
//! * A read that misses keeps its answer only if no invalidation ran since before it read.
//!
//! What it does not cover, said plainly: a change made behind the store's back (SQL by hand)
//! is seen by caching servers only after the next change through a store, or after 5 s, the
//! longest an answer is kept; so is a change whose writer died between its commit and its ping
//! (a change never acknowledged to anyone). Reads of *other* accounts' data during a write may
//! be that much behind a change not yet acknowledged, exactly as a read made a moment earlier
//! would be. Writes do not `NOTIFY` inside their transaction: PostgreSQL serialises the commits
//! of notifying transactions, WAL flush included, and that would end group commit.
//!
//! A process starts caching after 100 hot reads, so that a short CLI run does not leave a lease
//! that writers wait on after it exits. Cached, a hot read costs no round trip at all; a write
//! costs BEGIN, the lock (with its snapshot), its statements, the journal, COMMIT and one ping
//! (a statement that finds no other holder and sends nothing when the server is alone).
//!
//! Connections per process: `MAX_CONNECTIONS` (32, each closed after a minute idle); account
//! writes holding a transaction at once: `MAX_CONCURRENT_WRITES` (24, the store's
//! `Accounts::max_concurrent_writes`), which leaves connections for the reads around them.

mod account_write;
mod accounts;
mod addresses;
mod billing;
mod call_batcher;
mod call_insert;
mod certificates;
mod chat_journal;
mod devices;
mod error;
mod health;
mod journal;
mod operations;
mod read_cache;
mod rows;
mod settings;
#[doc(hidden)]
pub mod testing;
mod tls;
mod vouchers;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sip_settings_core::ids::AccountId;
use sip_settings_core::{Clock, StoreError, SystemClock};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, Row};

use crate::error::{Fail, Res, map_err};
use crate::health::GuardedPool;
use crate::read_cache::ReadCache;

/// Connections per server process.
const MAX_CONNECTIONS: u32 = 32;
/// Account writes of one process holding a transaction at once: each holds a connection, and
/// the reads it makes under its lock take a second one for a moment; the rest of the pool
/// serves the reads of everyone else.
const MAX_CONCURRENT_WRITES: usize = 24;
/// A connection idle this long is closed (the servers share the database's connections).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a method waits for a free connection before it is [`StoreError::Unavailable`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The versioned schema, embedded.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Whether sqlx's PostgreSQL URL parser knows the query parameter `name` (decoded).
fn known_parameter(name: &str) -> bool {
    matches!(
        name,
        "sslmode"
            | "ssl-mode"
            | "sslrootcert"
            | "ssl-root-cert"
            | "ssl-ca"
            | "sslcert"
            | "ssl-cert"
            | "sslkey"
            | "ssl-key"
            | "statement-cache-capacity"
            | "host"
            | "hostaddr"
            | "port"
            | "dbname"
            | "user"
            | "password"
            | "application_name"
            | "options"
    ) || (name.starts_with("options[") && name.ends_with(']'))
}

/// A query string's `text` decoded as sqlx decodes it (`+` is a space, `%XX` a byte).
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |i: usize| {
        bytes
            .get(i)
            .and_then(|b| (*b as char).to_digit(16))
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` without the query parameters sqlx does not know, and their names. sqlx would ignore
/// them too, but log each with its value, which may be a secret (`PASSWORD=…`, `sslpassword=…`).
fn known_parameters_only(url: &str) -> (String, Vec<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut unknown = Vec::new();
    for parameter in query.split('&').filter(|p| !p.is_empty()) {
        let name = form_decode(parameter.split_once('=').map_or(parameter, |(n, _)| n));
        if known_parameter(&name) {
            kept.push(parameter);
        } else {
            unknown.push(name);
        }
    }
    if kept.is_empty() {
        (base.to_owned(), unknown)
    } else {
        (format!("{base}?{}", kept.join("&")), unknown)
    }
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    /// The pool, failing fast while the database is unreachable (`health.rs`).
    pub(crate) pool: GuardedPool,
    /// The time of what the store stamps by itself (`updated_at`, an alias's `created_at`…).
    pub(crate) clock: Arc<dyn Clock>,
    /// The hot reads kept in memory, and this process's lease (`read_cache.rs`).
    pub(crate) cache: Arc<ReadCache>,
    /// The one connection the read cache listens on (connected when it starts).
    pub(crate) listen: sqlx::PgPool,
    /// Call records sent a few at a time, sharing statements (`call_batcher.rs`).
    pub(crate) calls: Arc<call_batcher::CallBatcher>,
}

impl PgStore {
    /// Connects to `url` (`postgres://` or `postgresql://`); runs the migrations when `migrate`
    /// is set.
    pub async fn open(url: &str, migrate: bool) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Other(
                "a PostgreSQL URL starts with postgres:// or postgresql://".to_owned(),
            ));
        }
        // The URL may hold a password: it is never repeated in an error, nor in sqlx's warning
        // about a parameter it does not know (which shows the value: `PASSWORD=secret`).
        let (url, unknown) = known_parameters_only(url);
        for name in unknown {
            tracing::warn!(parameter = %name, "ignoring an unrecognised parameter of the PostgreSQL URL");
        }
        let options = PgConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?;
        let files = tls::TlsFiles::of(&url, |name| std::env::var(name).ok());
        let mut options = tls::configure(options, &files).await?;
        let mode = options.get_ssl_mode();
        if options.get_application_name().is_none() {
            options = options.application_name("sip-settings");
        }
        // Idle connections are pinged before they are handed out (by the health state, which
        // also learns from a failed ping that the database may be gone).
        let pool_options = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .idle_timeout(IDLE_TIMEOUT)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        let listen = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options.clone());
        let pool = GuardedPool::connect(pool_options, options)
            .await
            .map_err(|e| tls::connect_error(e, mode))?;
        let store = Self {
            calls: call_batcher::CallBatcher::new(pool.clone()),
            pool,
            clock: Arc::new(SystemClock),
            cache: Arc::default(),
            listen,
        };
        if migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Runs the migrations (idempotent; concurrent runs from several servers are serialised by
    /// sqlx's advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(self.pool.inner()).await.map_err(|e| match e {
            MigrateError::Execute(e) => map_err(e),
            e => StoreError::Other(format!("migration failed: {e}")),
        })
    }

    /// The store taking the time of what it stamps by itself (an account's `updated_at`, an
    /// alias's or a number's `created_at`) from `clock`, the service layer's, instead of the
    /// system clock.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// Closes the pool, waiting for running statements; ends this process's lease of the read
    /// cache.
    pub async fn close(&self) {
        let holder = self.cache.close();
        if holder != 0 {
            let _ = sqlx::query("DELETE FROM cache_holders WHERE id = $1")
                .bind(holder)
                .execute(&self.pool)
                .await;
        }
        self.listen.close().await;
        self.pool.close().await;
    }

    /// Starts caching the hot reads now rather than after a number of them (for tests).
    #[doc(hidden)]
    pub fn start_read_cache(&self) {
        if self.cache.start_now() {
            self.start_holding();
        }
    }

    /// Whether this process answers hot reads from memory now (for tests).
    #[doc(hidden)]
    pub fn read_cache_holding(&self) -> bool {
        self.cache.holding()
    }

    /// How many servers hold a live lease of the read cache on this database (for tests).
    #[doc(hidden)]
    pub async fn live_read_cache_holders(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT count(*) FROM cache_holders WHERE expires_at > now()")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    /// Post-commit pings skipped so far because this process held the only lease (for tests).
    #[doc(hidden)]
    pub fn read_cache_pings_skipped(&self) -> u64 {
        self.cache.skipped()
    }

    /// Hot reads answered from memory so far (for tests).
    #[doc(hidden)]
    pub fn read_cache_hits(&self) -> u64 {
        self.cache.hits()
    }

    /// Invalidation pings this process has sent so far (for tests).
    #[doc(hidden)]
    pub fn read_cache_pings(&self) -> u64 {
        self.cache.pings()
    }
}

/// A sub-select giving the row id of the account bound as `($1, $2)` = `(domain, username)`.
/// When there is no such account it yields NULL, which a NOT NULL column refuses
/// (not_null_violation, mapped to `NotFound`).
pub(crate) const ACCOUNT_ID: &str = "(SELECT id FROM accounts WHERE domain = $1 AND username = $2)";

/// Locks an account's row for the rest of the transaction; returns its id, prepaid flag and
/// balance as they are under the lock. `NotFound` if there is no account.
pub(crate) async fn lock_account(
    conn: &mut PgConnection,
    account: &AccountId,
) -> Res<(i64, bool, i64)> {
    let row = sqlx::query(
        "SELECT id, prepaid, balance FROM accounts WHERE domain = $1 AND username = $2 \
         FOR NO KEY UPDATE",
    )
    .bind(account.domain().as_str())
    .bind(account.user().as_str())
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| not_found(account))?;
    Ok((
        row.try_get("id")?,
        row.try_get("prepaid")?,
        row.try_get("balance")?,
    ))
}

pub(crate) fn not_found(account: &AccountId) -> Fail {
    Fail::Store(StoreError::NotFound(format!("account {account}")))
}

#[cfg(test)]
mod tests {
    use super::known_parameters_only;

    #[test]
    fn parameters_sqlx_does_not_know_are_dropped_by_name() {
        assert_eq!(
            known_parameters_only(
                "postgres://u@h/db?sslmode=disable&PASSWORD=secret&application_name=x&sslpassword=s"
            ),
            (
                "postgres://u@h/db?sslmode=disable&application_name=x".to_owned(),
                vec!["PASSWORD".to_owned(), "sslpassword".to_owned()]
            )
        );
        assert_eq!(
            known_parameters_only("postgres://u:p@h/db?password=p&options[search_path]=x"),
            (
                "postgres://u:p@h/db?password=p&options[search_path]=x".to_owned(),
                Vec::new()
            )
        );
        assert_eq!(
            known_parameters_only("postgres://u@h/db?Password=secret"),
            ("postgres://u@h/db".to_owned(), vec!["Password".to_owned()])
        );
        // Names are compared decoded, as sqlx compares them.
        assert_eq!(
            known_parameters_only("postgres://u@h/db?pass%77ord=p&PASS%57ORD=q&x=%zz"),
            (
                "postgres://u@h/db?pass%77ord=p".to_owned(),
                vec!["PASSWORD".to_owned(), "x".to_owned()]
            )
        );
        assert_eq!(
            known_parameters_only("postgres://u@h/db"),
            ("postgres://u@h/db".to_owned(), Vec::new())
        );
    }
}
