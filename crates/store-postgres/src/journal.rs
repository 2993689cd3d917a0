//! [`Journal`] for [`PgStore`]: the journal.

use async_trait::async_trait;
use sip_settings_core::StoreError;
use sip_settings_core::ids::{AccountId, Domain};
use sip_settings_core::journal::{JournalEntry, NewJournalEntry};
use sip_settings_core::store::Journal;
use sqlx::Row;

use crate::PgStore;
use crate::error::map_err;

#[async_trait]
impl Journal for PgStore {
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
        rows.iter().map(entry_of).collect()
    }

    async fn list_domain_journal(
        &self,
        domain: &Domain,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        // A domain is letters, digits, '-' and '.': no LIKE wildcard can be in it.
        let rows = sqlx::query(
            "SELECT * FROM journal WHERE account LIKE '%@' || $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(domain.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(entry_of).collect()
    }
}

/// A journal row as an entry; an account that does not parse is corrupt data.
fn entry_of(r: &sqlx::postgres::PgRow) -> Result<JournalEntry, StoreError> {
    let account: String = r.try_get("account").map_err(map_err)?;
    let account = AccountId::parse(&account)
        .map_err(|e| StoreError::Other(format!("journal entry of account {account:?}: {e}")))?;
    Ok(JournalEntry {
        id: r.try_get("id").map_err(map_err)?,
        entry: NewJournalEntry {
            at: r.try_get("at").map_err(map_err)?,
            account,
            door: r.try_get("door").map_err(map_err)?,
            actor: r.try_get("actor").map_err(map_err)?,
            source: r.try_get("source").map_err(map_err)?,
            resource: r.try_get("resource").map_err(map_err)?,
            old: r.try_get("old_value").map_err(map_err)?,
            new: r.try_get("new_value").map_err(map_err)?,
        },
    })
}
