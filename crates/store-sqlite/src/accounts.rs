//! [`Accounts`] for [`SqliteStore`]: domains, accounts and credentials.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::account::Account;
use sip_settings_core::credentials::{Credentials, Ha1b};
use sip_settings_core::ids::{AccountId, Domain};
use sip_settings_core::journal::NewJournalEntry;
use sip_settings_core::store::{AccountWrite, Accounts};
use sqlx::Row;

use crate::SqliteStore;
use crate::account_write::{SqliteAccountWrite, insert_journal};
use crate::rows::ACCOUNT_COLUMNS;

/// Most account writes of this process open at once: each waits for the writer connection in
/// turn, and those that arrive during one commit share the next.
const MAX_CONCURRENT_WRITES: usize = 256;
use crate::rows::{account_from_row, map_err};

#[async_trait]
impl Accounts for SqliteStore {
    async fn add_domain(&self, domain: &Domain, at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.group.write().await?;
        sqlx::query("INSERT INTO domains (name, created_at) VALUES (?, ?)")
            .bind(domain.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await
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

    async fn domain_digest(&self, domain: &Domain) -> Result<Option<bool>, StoreError> {
        let on: Option<i64> = sqlx::query_scalar("SELECT digest FROM domains WHERE name = ?")
            .bind(domain.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(on.map(|v| v != 0))
    }

    async fn set_domain_digest(&self, domain: &Domain, on: bool) -> Result<(), StoreError> {
        let mut tx = self.group.write().await?;
        let changed = sqlx::query("UPDATE domains SET digest = ? WHERE name = ?")
            .bind(i64::from(on))
            .bind(domain.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        tx.commit().await
    }

    async fn insert_account(
        &self,
        account: &Account,
        credentials: &Credentials,
        journal: &[NewJournalEntry],
    ) -> Result<(), StoreError> {
        let p = &account.profile;
        let mut tx = self.group.write_for(&account.id).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (username, domain, first_name, last_name, email, timezone, mobile, \
             pstn_caller_id, language, no_answer_timeout, quick_dial, privacy, prepaid, \
             ha1_md5, ha1_sha256, ha1b_md5, ha1b_sha256, password_hash, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
        .bind(credentials.ha1b.as_ref().map(|b| b.md5.as_str()))
        .bind(credentials.ha1b.as_ref().map(|b| b.sha256.as_str()))
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
        tx.commit().await?;
        Ok(())
    }

    async fn begin_account(
        &self,
        account: &AccountId,
    ) -> Result<Box<dyn AccountWrite>, StoreError> {
        Ok(Box::new(
            SqliteAccountWrite::begin(&self.group, account, self.clock.clone()).await?,
        ))
    }

    /// Enough for 64 and more concurrent writers to share one commit (see `crate::group`):
    /// writers wait for the connection in order, each holding it only for its statements.
    fn max_concurrent_writes(&self) -> usize {
        MAX_CONCURRENT_WRITES
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
            "SELECT ha1_md5, ha1_sha256, ha1b_md5, ha1b_sha256, password_hash FROM accounts \
             WHERE domain = ? AND username = ?",
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
                ha1b: Ha1b::from_columns(
                    r.try_get("ha1b_md5").map_err(map_err)?,
                    r.try_get("ha1b_sha256").map_err(map_err)?,
                ),
                password_hash: r.try_get("password_hash").map_err(map_err)?,
            })
        })
        .transpose()
    }

    async fn delete_account(
        &self,
        id: &AccountId,
        at: DateTime<Utc>,
        journal: &[NewJournalEntry],
    ) -> Result<u64, StoreError> {
        let mut tx = self.group.write_for(id).await?;
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
        insert_journal(&mut tx, journal).await?;
        tx.commit().await?;
        Ok(revoked)
    }
}
