//! [`SqliteStore`]: the embedded store, one SQLite file in WAL mode with `synchronous=FULL`, so
//! that a write is acknowledged only once it is on disk.
//!
//! Writes go through a pool of one connection (SQLite has one writer at a time anyway, and a
//! single writer never meets a lock upgrade conflict); reads use their own pool and run
//! concurrently with it.

mod rows;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::account::{Account, AccountProfile};
use sip_settings_core::cert::{CertRecord, Serial};
use sip_settings_core::credentials::Credentials;
use sip_settings_core::ids::{AccountId, Domain};
use sip_settings_core::{Store, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::rows::{account_from_row, cert_from_row, map_err};

/// The embedded SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

const ACCOUNT_COLUMNS: &str = "username, domain, first_name, last_name, email, timezone, mobile, \
     pstn_caller_id, language, no_answer_timeout, quick_dial, privacy, prepaid, created_at";

impl SqliteStore {
    /// Opens the database at `url` (`sqlite://path`), creating the file when `create` is set,
    /// and runs the migrations.
    pub async fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL {url}: {e}")))?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(map_err)?;
        Ok(Self { writer, reader })
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
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM domains WHERE name = ?")
            .bind(domain.as_str())
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }

    async fn insert_account(
        &self,
        account: &Account,
        credentials: &Credentials,
    ) -> Result<(), StoreError> {
        let p = &account.profile;
        sqlx::query(
            "INSERT INTO accounts (username, domain, first_name, last_name, email, timezone, mobile, \
             pstn_caller_id, language, no_answer_timeout, quick_dial, privacy, prepaid, \
             ha1_md5, ha1_sha256, password_hash, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE domain = ? AND username = ?"
        ))
        .bind(id.domain().as_str())
        .bind(id.user().as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.as_ref().map(account_from_row).transpose()
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

    async fn update_account(
        &self,
        id: &AccountId,
        profile: &AccountProfile,
        prepaid: bool,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE accounts SET first_name = ?, last_name = ?, email = ?, timezone = ?, mobile = ?, \
             pstn_caller_id = ?, language = ?, no_answer_timeout = ?, quick_dial = ?, prepaid = ?, \
             updated_at = ? WHERE domain = ? AND username = ?",
        )
        .bind(&profile.first_name)
        .bind(&profile.last_name)
        .bind(profile.email.as_ref().map(|e| e.as_str()))
        .bind(profile.timezone.name())
        .bind(profile.mobile.as_ref().map(|e| e.as_str()))
        .bind(profile.pstn_caller_id.as_ref().map(|e| e.as_str()))
        .bind(&profile.language)
        .bind(i64::from(profile.no_answer_timeout))
        .bind(profile.quick_dial.as_deref())
        .bind(prepaid)
        .bind(Utc::now())
        .bind(id.domain().as_str())
        .bind(id.user().as_str())
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {id}")));
        }
        Ok(())
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

    async fn set_credentials(
        &self,
        id: &AccountId,
        credentials: &Credentials,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE accounts SET ha1_md5 = ?, ha1_sha256 = ?, password_hash = ?, updated_at = ? \
             WHERE domain = ? AND username = ?",
        )
        .bind(&credentials.ha1_md5)
        .bind(&credentials.ha1_sha256)
        .bind(&credentials.password_hash)
        .bind(Utc::now())
        .bind(id.domain().as_str())
        .bind(id.user().as_str())
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account {id}")));
        }
        Ok(())
    }

    async fn delete_account(&self, id: &AccountId, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
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
        sqlx::query(
            "INSERT INTO certificates (serial, subject, role, account, fingerprint, not_before, \
             not_after, issued_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.serial.as_str())
        .bind(&record.subject)
        .bind(record.role.as_str())
        .bind(record.account.as_ref().map(ToString::to_string))
        .bind(&record.fingerprint)
        .bind(record.not_before)
        .bind(record.not_after)
        .bind(record.issued_at)
        .bind(record.revoked_at)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn get_certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM certificates WHERE serial = ?")
            .bind(serial.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.as_ref().map(cert_from_row).transpose()
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
        let row = sqlx::query(
            "UPDATE certificates SET revoked_at = COALESCE(revoked_at, ?) WHERE serial = ? RETURNING *",
        )
        .bind(at)
        .bind(serial.as_str())
        .fetch_optional(&self.writer)
        .await
        .map_err(map_err)?;
        match row {
            Some(r) => cert_from_row(&r),
            None => Err(StoreError::NotFound(format!("certificate {serial}"))),
        }
    }

    async fn revoke_account_certificates(
        &self,
        id: &AccountId,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE certificates SET revoked_at = ? WHERE account = ? AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(id.to_string())
        .execute(&self.writer)
        .await
        .map_err(map_err)?
        .rows_affected())
    }
}
