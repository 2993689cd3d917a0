//! [`SqliteStore`]: the embedded store, one SQLite file in WAL mode with `synchronous=FULL`, so
//! that a write is acknowledged only once it is on disk.
//!
//! Writes go through a pool of one connection (SQLite has one writer at a time anyway, and a
//! single writer never meets a lock upgrade conflict); reads use their own pool and run
//! concurrently with it.

mod account_write;
mod billing;
mod changes;
mod devices;
mod fast;
mod rows;

use std::str::FromStr;
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
    AcceptRules, Diversions, PhonebookEntry, RejectPattern, TemporaryRule, Voicemail,
};
use sip_settings_core::store::{AccountWrite, BalanceChange};
use sip_settings_core::{Clock, Store, StoreError, SystemClock};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::account_write::{BEGIN, SqliteAccountWrite, insert_journal};
use crate::rows::{account_from_row, account_id_from, cert_from_row, corrupt, map_err};

/// The embedded SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    fast: std::sync::Arc<fast::FastReader>,
    /// The time of what the store stamps by itself (`updated_at`, an alias's `created_at`…).
    clock: std::sync::Arc<dyn Clock>,
}

const ACCOUNT_COLUMNS: &str = "username, domain, first_name, last_name, email, timezone, mobile, \
     pstn_caller_id, language, no_answer_timeout, quick_dial, privacy, prepaid, created_at";

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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        if migrate {
            sqlx::migrate!("./migrations")
                .run(&writer)
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
        let fast = std::sync::Arc::new(fast::FastReader::new(options.get_filename().to_owned()));
        Ok(Self {
            writer,
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
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Closes both pools, waiting for running statements.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_domain(&self, domain: &Domain, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO domains (name, created_at) VALUES (?, ?)")
            .bind(domain.as_str())
            .bind(at)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn list_domains(&self) -> Result<Vec<Domain>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM domains ORDER BY name")
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        names
            .into_iter()
            .map(|n| {
                Domain::parse(&n).map_err(|e| StoreError::Other(format!("stored domain: {e}")))
            })
            .collect()
    }

    async fn domain_exists(&self, domain: &Domain) -> Result<bool, StoreError> {
        self.fast.domain_exists(domain)
    }

    async fn insert_account(
        &self,
        account: &Account,
        credentials: &Credentials,
        journal: &[NewJournalEntry],
    ) -> Result<(), StoreError> {
        let p = &account.profile;
        let mut tx = self.writer.begin_with(BEGIN).await.map_err(map_err)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (username, domain, first_name, last_name, email, timezone, mobile, \
             pstn_caller_id, language, no_answer_timeout, quick_dial, privacy, prepaid, \
             ha1_md5, ha1_sha256, password_hash, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
        .bind(account.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        // The address namespace is shared with aliases: a taken alias refuses the account.
        sqlx::query(
            "INSERT INTO sip_addresses (domain, username, account_id, is_alias, created_at) \
             VALUES (?, ?, ?, 0, ?)",
        )
        .bind(account.id.domain().as_str())
        .bind(account.id.user().as_str())
        .bind(id)
        .bind(account.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_journal(&mut tx, journal).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(())
    }

    async fn begin_account(
        &self,
        account: &AccountId,
    ) -> Result<Box<dyn AccountWrite>, StoreError> {
        Ok(Box::new(
            SqliteAccountWrite::begin(&self.writer, account, self.clock.clone()).await?,
        ))
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.fast.account(id)
    }

    async fn list_accounts(&self, domain: Option<&Domain>) -> Result<Vec<Account>, StoreError> {
        let rows = match domain {
            Some(d) => sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE domain = ? ORDER BY domain, username"
            ))
            .bind(d.as_str())
            .fetch_all(&self.reader)
            .await,
            None => {
                sqlx::query(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY domain, username"
                ))
                .fetch_all(&self.reader)
                .await
            }
        }
        .map_err(map_err)?;
        rows.iter().map(account_from_row).collect()
    }

    async fn get_credentials(&self, id: &AccountId) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query(
            "SELECT ha1_md5, ha1_sha256, password_hash FROM accounts WHERE domain = ? AND username = ?",
        )
        .bind(id.domain().as_str())
        .bind(id.user().as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(|r| {
            Ok(Credentials {
                ha1_md5: r.try_get("ha1_md5").map_err(map_err)?,
                ha1_sha256: r.try_get("ha1_sha256").map_err(map_err)?,
                password_hash: r.try_get("password_hash").map_err(map_err)?,
            })
        })
        .transpose()
    }

    async fn delete_account(&self, id: &AccountId, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin_with(BEGIN).await.map_err(map_err)?;
        let revoked = sqlx::query(
            "UPDATE certificates SET revoked_at = ? WHERE account = ? AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        let deleted = sqlx::query("DELETE FROM accounts WHERE domain = ? AND username = ?")
            .bind(id.domain().as_str())
            .bind(id.user().as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if deleted == 0 {
            // Dropping the transaction rolls it back.
            return Err(StoreError::NotFound(format!("account {id}")));
        }
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn insert_certificate(&self, record: &CertRecord) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await.map_err(map_err)?;
        account_write::insert_certificate(&mut conn, record).await
    }

    async fn get_certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        self.fast.certificate(serial)
    }

    async fn list_certificates(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<CertRecord>, StoreError> {
        let rows = match account {
            Some(id) => {
                sqlx::query(
                    "SELECT * FROM certificates WHERE account = ? ORDER BY issued_at, serial",
                )
                .bind(id.to_string())
                .fetch_all(&self.reader)
                .await
            }
            None => {
                sqlx::query("SELECT * FROM certificates ORDER BY issued_at, serial")
                    .fetch_all(&self.reader)
                    .await
            }
        }
        .map_err(map_err)?;
        rows.iter().map(cert_from_row).collect()
    }

    async fn revoke_certificate(
        &self,
        serial: &Serial,
        at: DateTime<Utc>,
    ) -> Result<CertRecord, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(map_err)?;
        account_write::revoke_certificate(&mut conn, serial, None, at).await
    }

    async fn resolve_address(&self, address: &AccountId) -> Result<Option<AccountId>, StoreError> {
        self.fast.resolve_address(address)
    }

    async fn list_aliases(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<(AccountId, AccountId)>, StoreError> {
        let base = "SELECT s.username AS alias_user, s.domain AS alias_domain, a.username, a.domain \
                    FROM sip_addresses s JOIN accounts a ON a.id = s.account_id WHERE s.is_alias = 1";
        let rows = match account {
            Some(id) => {
                sqlx::query(&format!(
                    "{base} AND a.domain = ? AND a.username = ? ORDER BY s.domain, s.username"
                ))
                .bind(id.domain().as_str())
                .bind(id.user().as_str())
                .fetch_all(&self.reader)
                .await
            }
            None => {
                sqlx::query(&format!("{base} ORDER BY s.domain, s.username"))
                    .fetch_all(&self.reader)
                    .await
            }
        }
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    account_id_from(r, "alias_user", "alias_domain")?,
                    account_id_from(r, "username", "domain")?,
                ))
            })
            .collect()
    }

    async fn list_enum(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<(E164, AccountId)>, StoreError> {
        let base = "SELECT e.number, a.username, a.domain FROM enum_numbers e \
                    JOIN accounts a ON a.id = e.account_id";
        let rows = match account {
            Some(id) => {
                sqlx::query(&format!(
                    "{base} WHERE a.domain = ? AND a.username = ? ORDER BY e.number"
                ))
                .bind(id.domain().as_str())
                .bind(id.user().as_str())
                .fetch_all(&self.reader)
                .await
            }
            None => {
                sqlx::query(&format!("{base} ORDER BY e.number"))
                    .fetch_all(&self.reader)
                    .await
            }
        }
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let n: String = r.try_get("number").map_err(map_err)?;
                Ok((
                    E164::parse_for("number", &n).map_err(|e| corrupt("ENUM number", e))?,
                    account_id_from(r, "username", "domain")?,
                ))
            })
            .collect()
    }

    async fn resolve_enum(&self, number: &E164) -> Result<Option<AccountId>, StoreError> {
        self.fast.resolve_enum(number)
    }

    async fn get_diversions(&self, account: &AccountId) -> Result<Diversions, StoreError> {
        self.fast.diversions(account)
    }

    async fn get_accept_rules(&self, account: &AccountId) -> Result<AcceptRules, StoreError> {
        self.fast.accept_rules(account)
    }

    async fn get_temporary_rule(
        &self,
        account: &AccountId,
    ) -> Result<Option<TemporaryRule>, StoreError> {
        self.fast.temporary_rule(account)
    }

    async fn list_reject(&self, account: &AccountId) -> Result<Vec<RejectPattern>, StoreError> {
        self.fast.reject(account)
    }

    async fn get_voicemail(&self, account: &AccountId) -> Result<Option<Voicemail>, StoreError> {
        self.fast.voicemail(account)
    }

    async fn list_phonebook(&self, account: &AccountId) -> Result<Vec<PhonebookEntry>, StoreError> {
        self.fast.phonebook(account)
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
        self.fast.device_expiry(account)
    }

    async fn list_journal(
        &self,
        account: &AccountId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM journal WHERE account = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(account.to_string())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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
