//! [`PgStore`]: the PostgreSQL store, for many stateless API servers sharing one (replicated)
//! database. It implements the [`Store`] trait with exactly the behaviour of the embedded
//! `SqliteStore` (one conformance suite runs against both), on the same schema in PostgreSQL
//! types (`migrations/`).
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
//! * every change of an account's data runs in an [`AccountWrite`]
//!   (`account_write`), which locks the account row first and holds it to the commit, journal
//!   entries included: writers of one account on every server run one after another, so
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
//! [`StoreError::Unavailable`]. The pool tests a connection before handing it out, so that a
//! connection ended by `pg_terminate_backend` or a server restart is replaced and the store
//! recovers by itself. While the database is unreachable, operations fail at once instead of
//! waiting for a connection (`health.rs`).

mod account_write;
mod billing;
mod devices;
mod error;
mod health;
mod rows;
#[doc(hidden)]
pub mod testing;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::account::Account;
use sip_settings_core::calls::{
    BillingSnapshot, CallRecord, CloseOutcome, CloseRequest, Direction, HistoryEntry, NewCall,
    OpenOutcome, OpenRequest, PrepaidSession, Usage,
};
use sip_settings_core::cert::{CertRecord, Serial};
use sip_settings_core::credentials::Credentials;
use sip_settings_core::ids::{AccountId, Domain, E164};
use sip_settings_core::journal::Stamp;
use sip_settings_core::journal::{JournalEntry, NewJournalEntry};
use sip_settings_core::money::Money;
use sip_settings_core::rating::Rate;
use sip_settings_core::settings::{
    AcceptRule, AcceptRules, DaysMask, Diversions, PhonebookEntry, RejectPattern, TemporaryRule,
    Voicemail, VoicemailDelivery,
};
use sip_settings_core::sip::SipUri;
use sip_settings_core::store::{AccountWrite, BalanceChange};
use sip_settings_core::stored;
use sip_settings_core::{Clock, Email, Store, StoreError, SystemClock};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, Row};

use crate::account_write::{PgAccountWrite, insert_journal};
use crate::error::{Fail, Res, corrupt, map_err, retrying};
use crate::health::GuardedPool;
use crate::rows::{ACCOUNT_COLUMNS, account_from_row, account_id_from, cert_from_row};

/// Connections per server process.
const MAX_CONNECTIONS: u32 = 16;
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
    clock: Arc<dyn Clock>,
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
        let mut options = PgConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?;
        if options.get_application_name().is_none() {
            options = options.application_name("sip-settings");
        }
        // Idle connections are pinged before they are handed out (by the health state, which
        // also learns from a failed ping that the database may be gone).
        let pool_options = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        let pool = GuardedPool::connect(pool_options, options)
            .await
            .map_err(map_err)?;
        let store = Self {
            pool,
            clock: Arc::new(SystemClock),
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

    /// Closes the pool, waiting for running statements.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A sub-select giving the row id of the account bound as `($1, $2)` = `(domain, username)`.
/// When there is no such account it yields NULL, which a NOT NULL column refuses
/// (not_null_violation, mapped to `NotFound`).
const ACCOUNT_ID: &str = "(SELECT id FROM accounts WHERE domain = $1 AND username = $2)";

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

#[async_trait]
impl Store for PgStore {
    async fn add_domain(&self, domain: &Domain, at: DateTime<Utc>) -> Result<(), StoreError> {
        retrying(|| async move {
            sqlx::query("INSERT INTO domains (name, created_at) VALUES ($1, $2)")
                .bind(domain.as_str())
                .bind(at)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn list_domains(&self) -> Result<Vec<Domain>, StoreError> {
        retrying(|| async move {
            let names: Vec<String> = sqlx::query_scalar("SELECT name FROM domains ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
            names
                .iter()
                .map(|n| Domain::parse(n).map_err(|e| corrupt("domain", e)))
                .collect()
        })
        .await
    }

    async fn domain_exists(&self, domain: &Domain) -> Result<bool, StoreError> {
        retrying(|| async move {
            Ok(
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1)")
                    .bind(domain.as_str())
                    .fetch_one(&self.pool)
                    .await?,
            )
        })
        .await
    }

    async fn insert_account(
        &self,
        account: &Account,
        credentials: &Credentials,
        journal: &[NewJournalEntry],
    ) -> Result<(), StoreError> {
        let p = &account.profile;
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO accounts (username, domain, first_name, last_name, email, timezone, \
                 mobile, pstn_caller_id, language, no_answer_timeout, quick_dial, privacy, prepaid, \
                 ha1_md5, ha1_sha256, password_hash, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $17) RETURNING id",
            )
            .bind(account.id.user().as_str())
            .bind(account.id.domain().as_str())
            .bind(&p.first_name)
            .bind(&p.last_name)
            .bind(p.email.as_ref().map(|e| e.as_str()))
            .bind(p.timezone.name())
            .bind(p.mobile.as_ref().map(|e| e.as_str()))
            .bind(p.pstn_caller_id.as_ref().map(|e| e.as_str()))
            .bind(&p.language)
            .bind(i64::from(p.no_answer_timeout))
            .bind(p.quick_dial.as_deref())
            .bind(account.privacy)
            .bind(account.prepaid)
            .bind(&credentials.ha1_md5)
            .bind(&credentials.ha1_sha256)
            .bind(&credentials.password_hash)
            .bind(account.created_at)
            .fetch_one(&mut *tx)
            .await?;
            // The address namespace is shared with aliases: a taken alias refuses the account.
            sqlx::query(
                "INSERT INTO sip_addresses (domain, username, account_id, is_alias, created_at) \
                 VALUES ($1, $2, $3, FALSE, $4)",
            )
            .bind(account.id.domain().as_str())
            .bind(account.id.user().as_str())
            .bind(id)
            .bind(account.created_at)
            .execute(&mut *tx)
            .await?;
            insert_journal(&mut tx, journal).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn begin_account(
        &self,
        account: &AccountId,
    ) -> Result<Box<dyn AccountWrite>, StoreError> {
        Ok(Box::new(
            PgAccountWrite::begin(&self.pool, account, self.clock.clone()).await?,
        ))
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        retrying(|| async move {
            let row = sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE domain = $1 AND username = $2"
            ))
            .bind(id.domain().as_str())
            .bind(id.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(account_from_row).transpose()
        })
        .await
    }

    async fn list_accounts(&self, domain: Option<&Domain>) -> Result<Vec<Account>, StoreError> {
        retrying(|| async move {
            let rows = match domain {
                Some(d) => {
                    sqlx::query(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE domain = $1 \
                         ORDER BY domain, username"
                    ))
                    .bind(d.as_str())
                    .fetch_all(&self.pool)
                    .await?
                }
                None => {
                    sqlx::query(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY domain, username"
                    ))
                    .fetch_all(&self.pool)
                    .await?
                }
            };
            rows.iter().map(account_from_row).collect()
        })
        .await
    }

    async fn get_credentials(&self, id: &AccountId) -> Result<Option<Credentials>, StoreError> {
        retrying(|| async move {
            let row = sqlx::query(
                "SELECT ha1_md5, ha1_sha256, password_hash FROM accounts \
                 WHERE domain = $1 AND username = $2",
            )
            .bind(id.domain().as_str())
            .bind(id.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| {
                Ok(Credentials {
                    ha1_md5: r.try_get("ha1_md5")?,
                    ha1_sha256: r.try_get("ha1_sha256")?,
                    password_hash: r.try_get("password_hash")?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_account(&self, id: &AccountId, at: DateTime<Utc>) -> Result<u64, StoreError> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let revoked = sqlx::query(
                "UPDATE certificates SET revoked_at = $1 WHERE account = $2 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let deleted = sqlx::query("DELETE FROM accounts WHERE domain = $1 AND username = $2")
                .bind(id.domain().as_str())
                .bind(id.user().as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                // Dropping the transaction rolls it back.
                return Err(not_found(id));
            }
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }

    async fn insert_certificate(&self, record: &CertRecord) -> Result<(), StoreError> {
        retrying(|| async move {
            let mut conn = self.pool.acquire().await?;
            Ok(account_write::insert_certificate(&mut conn, record).await?)
        })
        .await
    }

    async fn get_certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        retrying(|| async move {
            let row = sqlx::query("SELECT * FROM certificates WHERE serial = $1")
                .bind(serial.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(cert_from_row).transpose()
        })
        .await
    }

    async fn list_certificates(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<CertRecord>, StoreError> {
        retrying(|| async move {
            let rows =
                match account {
                    Some(id) => sqlx::query(
                        "SELECT * FROM certificates WHERE account = $1 ORDER BY issued_at, serial",
                    )
                    .bind(id.to_string())
                    .fetch_all(&self.pool)
                    .await?,
                    None => {
                        sqlx::query("SELECT * FROM certificates ORDER BY issued_at, serial")
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
            rows.iter().map(cert_from_row).collect()
        })
        .await
    }

    async fn revoke_certificate(
        &self,
        serial: &Serial,
        at: DateTime<Utc>,
    ) -> Result<CertRecord, StoreError> {
        retrying(|| async move {
            let mut conn = self.pool.acquire().await?;
            Ok(account_write::revoke_certificate(&mut conn, serial, None, at).await?)
        })
        .await
    }

    async fn resolve_address(&self, address: &AccountId) -> Result<Option<AccountId>, StoreError> {
        retrying(|| async move {
            let row = sqlx::query(
                "SELECT a.username, a.domain FROM sip_addresses s \
                 JOIN accounts a ON a.id = s.account_id WHERE s.domain = $1 AND s.username = $2",
            )
            .bind(address.domain().as_str())
            .bind(address.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| account_id_from(&r, "username", "domain"))
                .transpose()
        })
        .await
    }

    async fn list_aliases(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<(AccountId, AccountId)>, StoreError> {
        let base = "SELECT s.username AS alias_user, s.domain AS alias_domain, a.username, \
                    a.domain FROM sip_addresses s JOIN accounts a ON a.id = s.account_id \
                    WHERE s.is_alias";
        retrying(|| async move {
            let rows = match account {
                Some(id) => {
                    sqlx::query(&format!(
                        "{base} AND a.domain = $1 AND a.username = $2 \
                         ORDER BY s.domain, s.username"
                    ))
                    .bind(id.domain().as_str())
                    .bind(id.user().as_str())
                    .fetch_all(&self.pool)
                    .await?
                }
                None => {
                    sqlx::query(&format!("{base} ORDER BY s.domain, s.username"))
                        .fetch_all(&self.pool)
                        .await?
                }
            };
            rows.iter()
                .map(|r| {
                    Ok((
                        account_id_from(r, "alias_user", "alias_domain")?,
                        account_id_from(r, "username", "domain")?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn list_enum(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<(E164, AccountId)>, StoreError> {
        let base = "SELECT e.number, a.username, a.domain FROM enum_numbers e \
                    JOIN accounts a ON a.id = e.account_id";
        retrying(|| async move {
            let rows = match account {
                Some(id) => {
                    sqlx::query(&format!(
                        "{base} WHERE a.domain = $1 AND a.username = $2 ORDER BY e.number"
                    ))
                    .bind(id.domain().as_str())
                    .bind(id.user().as_str())
                    .fetch_all(&self.pool)
                    .await?
                }
                None => {
                    sqlx::query(&format!("{base} ORDER BY e.number"))
                        .fetch_all(&self.pool)
                        .await?
                }
            };
            rows.iter()
                .map(|r| {
                    let n: String = r.try_get("number")?;
                    Ok((
                        E164::parse_for("number", &n).map_err(|e| corrupt("ENUM number", e))?,
                        account_id_from(r, "username", "domain")?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn resolve_enum(&self, number: &E164) -> Result<Option<AccountId>, StoreError> {
        retrying(|| async move {
            let row = sqlx::query(
                "SELECT a.username, a.domain FROM enum_numbers e \
                 JOIN accounts a ON a.id = e.account_id WHERE e.number = $1",
            )
            .bind(number.as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| account_id_from(&r, "username", "domain"))
                .transpose()
        })
        .await
    }

    async fn get_diversions(&self, account: &AccountId) -> Result<Diversions, StoreError> {
        retrying(|| async move {
            let rows = sqlx::query(&format!(
                "SELECT condition, target FROM diversions WHERE account_id = {ACCOUNT_ID}"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&self.pool)
            .await?;
            let mut out = Diversions::new();
            for r in rows {
                let c: String = r.try_get("condition")?;
                let t: String = r.try_get("target")?;
                let (condition, target) = stored::diversion(&c, &t)?;
                out.insert(condition, target);
            }
            Ok(out)
        })
        .await
    }

    async fn get_accept_rules(&self, account: &AccountId) -> Result<AcceptRules, StoreError> {
        retrying(|| async move {
            let rows = sqlx::query(&format!(
                "SELECT days, start_minute, stop_minute, groups FROM accept_rules \
                 WHERE account_id = {ACCOUNT_ID} ORDER BY days"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&self.pool)
            .await?;
            let mut persistent = Vec::with_capacity(rows.len());
            for r in rows {
                let days: i32 = r.try_get("days")?;
                let groups: String = r.try_get("groups")?;
                persistent.push(AcceptRule {
                    days: u32::try_from(days)
                        .ok()
                        .and_then(|d| DaysMask::new(d).ok())
                        .ok_or_else(|| corrupt("days mask", days))?,
                    start: stored::minute(r.try_get::<i32, _>("start_minute")?.into())?,
                    stop: stored::minute(r.try_get::<i32, _>("stop_minute")?.into())?,
                    groups: stored::groups(&groups)?,
                });
            }
            let temp = sqlx::query(&format!(
                "SELECT groups, until FROM accept_temporary WHERE account_id = {ACCOUNT_ID}"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            let temporary = match temp {
                Some(r) => {
                    let groups: String = r.try_get("groups")?;
                    Some(TemporaryRule {
                        groups: stored::groups(&groups)?,
                        until: r.try_get("until")?,
                    })
                }
                None => None,
            };
            Ok(AcceptRules {
                persistent,
                temporary,
            })
        })
        .await
    }

    async fn get_temporary_rule(
        &self,
        account: &AccountId,
    ) -> Result<Option<TemporaryRule>, StoreError> {
        retrying(|| async move {
            let row = sqlx::query(&format!(
                "SELECT groups, until FROM accept_temporary WHERE account_id = {ACCOUNT_ID}"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            match row {
                Some(r) => {
                    let groups: String = r.try_get("groups")?;
                    Ok(Some(TemporaryRule {
                        groups: stored::groups(&groups)?,
                        until: r.try_get("until")?,
                    }))
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn list_reject(&self, account: &AccountId) -> Result<Vec<RejectPattern>, StoreError> {
        retrying(|| async move {
            let patterns: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT pattern FROM reject_rules WHERE account_id = {ACCOUNT_ID} ORDER BY pattern"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&self.pool)
            .await?;
            patterns
                .iter()
                .map(|p| RejectPattern::parse(p).map_err(|e| corrupt("reject pattern", e)))
                .collect()
        })
        .await
    }

    async fn get_voicemail(&self, account: &AccountId) -> Result<Option<Voicemail>, StoreError> {
        retrying(|| async move {
            let row = sqlx::query(&format!(
                "SELECT enabled, delivery, email, pin_hash FROM voicemail \
                 WHERE account_id = {ACCOUNT_ID}"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            let delivery: String = r.try_get("delivery")?;
            let email: Option<String> = r.try_get("email")?;
            Ok(Some(Voicemail {
                enabled: r.try_get("enabled")?,
                delivery: VoicemailDelivery::parse(&delivery)
                    .map_err(|e| corrupt("delivery", e))?,
                email: email
                    .map(|e| Email::parse_for("email", &e))
                    .transpose()
                    .map_err(|e| corrupt("voicemail email", e))?,
                pin_hash: r.try_get("pin_hash")?,
            }))
        })
        .await
    }

    async fn list_phonebook(&self, account: &AccountId) -> Result<Vec<PhonebookEntry>, StoreError> {
        retrying(|| async move {
            let rows = sqlx::query(&format!(
                "SELECT uri, name, groups FROM phonebook WHERE account_id = {ACCOUNT_ID} \
                 ORDER BY uri"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let uri: String = r.try_get("uri")?;
                    let groups: String = r.try_get("groups")?;
                    Ok(PhonebookEntry {
                        uri: SipUri::parse_for("uri", &uri)
                            .map_err(|e| corrupt("phonebook uri", e))?,
                        name: r.try_get("name")?,
                        groups: stored::phonebook_groups(&groups)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn import_rates(&self, rates: &[Rate], replace: bool) -> Result<u64, StoreError> {
        self.import_rates_impl(rates, replace).await
    }

    async fn list_rates(&self) -> Result<Vec<Rate>, StoreError> {
        self.list_rates_impl().await
    }

    async fn find_rate(&self, digits: &str) -> Result<Option<Rate>, StoreError> {
        self.find_rate_impl(digits).await
    }

    async fn get_balance(&self, account: &AccountId) -> Result<Money, StoreError> {
        self.get_balance_impl(account).await
    }

    async fn change_balance(
        &self,
        account: &AccountId,
        change: &BalanceChange,
        at: DateTime<Utc>,
        journal: Option<&Stamp>,
    ) -> Result<Money, StoreError> {
        self.change_balance_impl(account, change, at, journal).await
    }

    async fn balance_history(
        &self,
        account: &AccountId,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.balance_history_impl(account, limit).await
    }

    async fn open_prepaid_session(&self, request: &OpenRequest) -> Result<OpenOutcome, StoreError> {
        self.open_session_impl(request).await
    }

    async fn close_prepaid_session(
        &self,
        request: &CloseRequest,
    ) -> Result<Option<CloseOutcome>, StoreError> {
        self.close_session_impl(request).await
    }

    async fn active_sessions(
        &self,
        account: &AccountId,
    ) -> Result<Vec<PrepaidSession>, StoreError> {
        self.active_sessions_impl(account).await
    }

    async fn record_calls(&self, calls: &[NewCall]) -> Result<Vec<bool>, StoreError> {
        self.record_calls_impl(calls).await
    }

    async fn list_calls(
        &self,
        account: &AccountId,
        direction: Direction,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.list_calls_impl(account, direction, since, limit).await
    }

    async fn usage(
        &self,
        account: &AccountId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Usage, StoreError> {
        self.usage_impl(account, from, to).await
    }

    async fn export_billing(&self, account: &AccountId) -> Result<BillingSnapshot, StoreError> {
        self.export_billing_impl(account).await
    }

    async fn import_billing(
        &self,
        account: &AccountId,
        snapshot: &BillingSnapshot,
    ) -> Result<(), StoreError> {
        self.import_billing_impl(account, snapshot).await
    }

    async fn register(
        &self,
        registration: &sip_settings_core::devices::Registration,
    ) -> Result<Vec<sip_settings_core::devices::Device>, StoreError> {
        self.register_impl(registration).await
    }

    async fn list_devices(
        &self,
        account: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<Vec<sip_settings_core::devices::Device>, StoreError> {
        self.list_devices_impl(account, now).await
    }

    async fn device_expiry(
        &self,
        account: &AccountId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.device_expiry_impl(account).await
    }

    async fn list_journal(
        &self,
        account: &AccountId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM journal WHERE account = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(account.to_string())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(JournalEntry {
                    id: r.try_get("id").map_err(map_err)?,
                    entry: NewJournalEntry {
                        at: r.try_get("at").map_err(map_err)?,
                        account: account.clone(),
                        door: r.try_get("door").map_err(map_err)?,
                        actor: r.try_get("actor").map_err(map_err)?,
                        source: r.try_get("source").map_err(map_err)?,
                        resource: r.try_get("resource").map_err(map_err)?,
                        old: r.try_get("old_value").map_err(map_err)?,
                        new: r.try_get("new_value").map_err(map_err)?,
                    },
                })
            })
            .collect()
    }
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
