//! [`Accounts`] for [`PgStore`]: domains, accounts and credentials.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::account::Account;
use sip_settings_core::credentials::{Credentials, Ha1b};
use sip_settings_core::ids::{AccountId, Domain};
use sip_settings_core::journal::NewJournalEntry;
use sip_settings_core::store::{AccountWrite, Accounts};
use sqlx::Row;

use crate::PgStore;
use crate::account_write::{PgAccountWrite, insert_journal};
use crate::error::{corrupt, reading, retrying};
use crate::not_found;
use crate::read_cache::Cached;
use crate::rows::{ACCOUNT_COLUMNS, account_from_row};

#[async_trait]
impl Accounts for PgStore {
    async fn add_domain(&self, domain: &Domain, at: DateTime<Utc>) -> Result<(), StoreError> {
        retrying(|| async move {
            sqlx::query("INSERT INTO domains (name, created_at) VALUES ($1, $2)")
                .bind(domain.as_str())
                .bind(at)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await?;
        // An answer "not served here" may be kept.
        self.published().await
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

    async fn domain_digest(&self, domain: &Domain) -> Result<Option<bool>, StoreError> {
        reading(|| async move {
            Ok(
                sqlx::query_scalar("SELECT digest FROM domains WHERE name = $1")
                    .bind(domain.as_str())
                    .fetch_optional(&self.pool)
                    .await?,
            )
        })
        .await
    }

    async fn set_domain_digest(&self, domain: &Domain, on: bool) -> Result<(), StoreError> {
        let changed = retrying(|| async move {
            Ok(
                sqlx::query("UPDATE domains SET digest = $1 WHERE name = $2")
                    .bind(on)
                    .bind(domain.as_str())
                    .execute(&self.pool)
                    .await?
                    .rows_affected(),
            )
        })
        .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        Ok(())
    }

    async fn domain_exists(&self, domain: &Domain) -> Result<bool, StoreError> {
        let ticket = match self.cache.domain(domain) {
            Cached::Hit(exists) => return Ok(exists),
            Cached::Miss(ticket) => ticket,
        };
        let exists = reading(|| async move {
            Ok(
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM domains WHERE name = $1)")
                    .bind(domain.as_str())
                    .fetch_one(&self.pool)
                    .await?,
            )
        })
        .await?;
        self.cache.keep_domain(ticket, domain, exists);
        Ok(exists)
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
                 ha1_md5, ha1_sha256, ha1b_md5, ha1b_sha256, password_hash, created_at, \
                 updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $19) RETURNING id",
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
        .await?;
        // An answer "no such account" may be kept.
        self.published().await
    }

    async fn begin_account(
        &self,
        account: &AccountId,
    ) -> Result<Box<dyn AccountWrite>, StoreError> {
        Ok(Box::new(PgAccountWrite::begin(self, account).await?))
    }

    async fn begin_account_optimistic(
        &self,
        account: &AccountId,
    ) -> Result<Box<dyn AccountWrite>, StoreError> {
        Ok(Box::new(
            PgAccountWrite::begin_optimistic(self, account).await?,
        ))
    }

    fn max_concurrent_writes(&self) -> usize {
        crate::MAX_CONCURRENT_WRITES
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let ticket = match self.cache.account(id) {
            Cached::Hit(account) => return Ok(account),
            Cached::Miss(ticket) => ticket,
        };
        self.note_hot_read();
        let account = reading(|| async move {
            let row = sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE domain = $1 AND username = $2"
            ))
            .bind(id.domain().as_str())
            .bind(id.user().as_str())
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(account_from_row).transpose()
        })
        .await?;
        self.cache.keep_account(ticket, id, &account);
        Ok(account)
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
                "SELECT ha1_md5, ha1_sha256, ha1b_md5, ha1b_sha256, password_hash FROM accounts \
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
                    ha1b: Ha1b::from_columns(r.try_get("ha1b_md5")?, r.try_get("ha1b_sha256")?),
                    password_hash: r.try_get("password_hash")?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_account(
        &self,
        id: &AccountId,
        at: DateTime<Utc>,
        journal: &[NewJournalEntry],
    ) -> Result<u64, StoreError> {
        let revoked = retrying(|| async move {
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
            insert_journal(&mut tx, journal).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await?;
        self.published().await?;
        Ok(revoked)
    }
}
