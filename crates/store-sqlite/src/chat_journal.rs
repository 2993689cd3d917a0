//! The chat journal on SQLite: a put is one write (a savepoint of the group commit) that
//! inserts the entries and drops the account's oldest beyond its bounds.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::chat_journal::{
    ChatBounds, ChatEntry, ChatPut, ChatQuery, ChatSummaryEntry, DeviceId,
};
use sip_settings_core::ids::AccountId;
use sip_settings_core::store::ChatJournal;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::SqliteStore;
use crate::rows::{from_unix, map_err, unix};

/// The account's row id, by its address.
const ACCOUNT: &str = "(SELECT id FROM accounts WHERE domain = ? AND username = ?)";

/// Drops the account's oldest entries beyond the newest `max_entries` or beyond `max_bytes`
/// of data counted from the newest.
const TRIM: &str = "DELETE FROM chat_journal WHERE id IN (SELECT id FROM (SELECT id, \
     ROW_NUMBER() OVER (ORDER BY id DESC) AS n, SUM(bytes) OVER (ORDER BY id DESC) AS total \
     FROM chat_journal WHERE account_id = ?) AS ranked WHERE n > ? OR total > ?)";

fn entry_from(r: &SqliteRow) -> Result<ChatEntry, StoreError> {
    Ok(ChatEntry {
        id: r.try_get("id").map_err(map_err)?,
        timestamp: from_unix(r.try_get("created_at").map_err(map_err)?)?,
        device: DeviceId::stored(r.try_get("device").map_err(map_err)?),
        data: r.try_get("data").map_err(map_err)?,
    })
}

#[async_trait]
impl ChatJournal for SqliteStore {
    async fn put_chat_entries(
        &self,
        account: &AccountId,
        device: &DeviceId,
        data: &[String],
        at: DateTime<Utc>,
        bounds: ChatBounds,
    ) -> Result<ChatPut, StoreError> {
        let mut tx = self.group.write_for(account).await?;
        let account_id: i64 =
            sqlx::query("SELECT id FROM accounts WHERE domain = ? AND username = ?")
                .bind(account.domain().as_str())
                .bind(account.user().as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?
                .ok_or_else(|| StoreError::NotFound(format!("no account {account}")))?
                .try_get("id")
                .map_err(map_err)?;
        let mut ids = Vec::with_capacity(data.len());
        for d in data {
            let bytes = i64::try_from(d.len()).unwrap_or(i64::MAX);
            let done = sqlx::query(
                "INSERT INTO chat_journal (account_id, created_at, device, bytes, data) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(account_id)
            .bind(unix(at))
            .bind(device.as_str())
            .bind(bytes)
            .bind(d)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            ids.push(done.last_insert_rowid());
        }
        let dropped = sqlx::query(TRIM)
            .bind(account_id)
            .bind(i64::from(bounds.max_entries))
            .bind(bounds.max_bytes)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        tx.commit().await?;
        Ok(ChatPut { ids, dropped })
    }

    async fn chat_entries(
        &self,
        account: &AccountId,
        query: &ChatQuery,
    ) -> Result<Vec<ChatEntry>, StoreError> {
        // Device ids are never empty, so `<> ''` excludes nothing.
        let except = query.except_device.as_ref().map_or("", DeviceId::as_str);
        let rows = sqlx::query(&format!(
            "SELECT id, created_at, device, data FROM chat_journal WHERE account_id = {ACCOUNT} \
             AND id > ? AND created_at >= ? AND device <> ? ORDER BY id LIMIT ?"
        ))
        .bind(account.domain().as_str())
        .bind(account.user().as_str())
        .bind(query.after_id)
        .bind(query.since)
        .bind(except)
        .bind(i64::from(query.limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter().map(entry_from).collect()
    }

    async fn chat_summary(&self, account: &AccountId) -> Result<Vec<ChatSummaryEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT id, created_at FROM chat_journal WHERE account_id = {ACCOUNT} ORDER BY id"
        ))
        .bind(account.domain().as_str())
        .bind(account.user().as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(ChatSummaryEntry {
                    id: r.try_get("id").map_err(map_err)?,
                    timestamp: from_unix(r.try_get("created_at").map_err(map_err)?)?,
                })
            })
            .collect()
    }

    async fn delete_chat_entries(
        &self,
        account: &AccountId,
        ids: &[i64],
    ) -> Result<u64, StoreError> {
        // The ids as one JSON list (json_each), whatever their number: no bound on parameters.
        let list = format!(
            "[{}]",
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        );
        let mut tx = self.group.write_for(account).await?;
        let deleted = sqlx::query(&format!(
            "DELETE FROM chat_journal WHERE account_id = {ACCOUNT} \
             AND id IN (SELECT value FROM json_each(?))"
        ))
        .bind(account.domain().as_str())
        .bind(account.user().as_str())
        .bind(list)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    async fn import_chat_entries(
        &self,
        account: &AccountId,
        entries: &[ChatEntry],
    ) -> Result<u64, StoreError> {
        let mut tx = self.group.write_for(account).await?;
        let account_id: i64 =
            sqlx::query("SELECT id FROM accounts WHERE domain = ? AND username = ?")
                .bind(account.domain().as_str())
                .bind(account.user().as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?
                .ok_or_else(|| StoreError::NotFound(format!("no account {account}")))?
                .try_get("id")
                .map_err(map_err)?;
        // An explicit id above AUTOINCREMENT's sequence moves the sequence past it.
        for e in entries {
            sqlx::query(
                "INSERT INTO chat_journal (id, account_id, created_at, device, bytes, data) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(e.id)
            .bind(account_id)
            .bind(unix(e.timestamp))
            .bind(e.device.as_str())
            .bind(i64::try_from(e.data.len()).unwrap_or(i64::MAX))
            .bind(&e.data)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await?;
        Ok(u64::try_from(entries.len()).unwrap_or(u64::MAX))
    }
}
