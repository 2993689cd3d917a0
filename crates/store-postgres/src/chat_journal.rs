//! The chat journal on PostgreSQL: a put is one transaction that locks the account row (so
//! concurrent puts of one account take their ids, and trim, one after another), inserts the
//! entries and drops the account's oldest beyond its bounds.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::chat_journal::{
    ChatBounds, ChatEntry, ChatPut, ChatQuery, ChatSummaryEntry, DeviceId,
};
use sip_settings_core::ids::AccountId;
use sip_settings_core::store::ChatJournal;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::PgStore;
use crate::error::{Fail, Res, reading, retrying};
use crate::rows::from_unix;

/// The account's row id, by its address.
const ACCOUNT: &str = "(SELECT id FROM accounts WHERE domain = $1 AND username = $2)";

/// Drops the account's oldest entries beyond the newest `max_entries` or beyond `max_bytes`
/// of data counted from the newest.
const TRIM: &str = "DELETE FROM chat_journal WHERE id IN (SELECT id FROM (SELECT id, \
     ROW_NUMBER() OVER (ORDER BY id DESC) AS n, SUM(bytes) OVER (ORDER BY id DESC) AS total \
     FROM chat_journal WHERE account_id = $1) AS ranked WHERE n > $2 OR total > $3)";

fn entry_from(r: &PgRow) -> Res<ChatEntry> {
    Ok(ChatEntry {
        id: r.try_get("id")?,
        timestamp: from_unix(r.try_get("created_at")?)?,
        device: DeviceId::stored(r.try_get("device")?),
        data: r.try_get("data")?,
    })
}

#[async_trait]
impl ChatJournal for PgStore {
    async fn put_chat_entries(
        &self,
        account: &AccountId,
        device: &DeviceId,
        data: &[String],
        at: DateTime<Utc>,
        bounds: ChatBounds,
    ) -> Result<ChatPut, StoreError> {
        let bytes: Vec<i64> = data
            .iter()
            .map(|d| i64::try_from(d.len()).unwrap_or(i64::MAX))
            .collect();
        let bytes = &bytes;
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let account_id: i64 = sqlx::query(
                "SELECT id FROM accounts WHERE domain = $1 AND username = $2 FOR UPDATE",
            )
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Fail::Store(StoreError::NotFound(format!("no account {account}"))))?
            .try_get("id")?;
            // One statement for all the entries; WITH ORDINALITY keeps the ids in their order.
            let ids: Vec<i64> = sqlx::query_scalar(
                "INSERT INTO chat_journal (account_id, created_at, device, bytes, data) \
                 SELECT $1, $2, $3, b, d FROM UNNEST($4::bigint[], $5::text[]) \
                 WITH ORDINALITY AS t(b, d, n) ORDER BY n RETURNING id",
            )
            .bind(account_id)
            .bind(at.timestamp())
            .bind(device.as_str())
            .bind(bytes)
            .bind(data)
            .fetch_all(&mut *tx)
            .await?;
            let dropped = sqlx::query(TRIM)
                .bind(account_id)
                .bind(i64::from(bounds.max_entries))
                .bind(bounds.max_bytes)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            let mut ids = ids;
            // RETURNING follows the insertion order, and identity values are taken in the
            // order the rows are inserted (ORDER BY n): sorting keeps that order explicit.
            ids.sort_unstable();
            Ok(ChatPut { ids, dropped })
        })
        .await
    }

    async fn chat_entries(
        &self,
        account: &AccountId,
        query: &ChatQuery,
    ) -> Result<Vec<ChatEntry>, StoreError> {
        // Device ids are never empty, so `<> ''` excludes nothing.
        let except = query.except_device.as_ref().map_or("", DeviceId::as_str);
        reading(|| async move {
            let rows = sqlx::query(&format!(
                "SELECT id, created_at, device, data FROM chat_journal \
                 WHERE account_id = {ACCOUNT} AND id > $3 AND created_at >= $4 \
                 AND device <> $5 ORDER BY id LIMIT $6"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .bind(query.after_id)
            .bind(query.since)
            .bind(except)
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(entry_from).collect()
        })
        .await
    }

    async fn chat_summary(&self, account: &AccountId) -> Result<Vec<ChatSummaryEntry>, StoreError> {
        reading(|| async move {
            let rows = sqlx::query(&format!(
                "SELECT id, created_at FROM chat_journal WHERE account_id = {ACCOUNT} ORDER BY id"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(ChatSummaryEntry {
                        id: r.try_get("id")?,
                        timestamp: from_unix(r.try_get("created_at")?)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn delete_chat_entries(
        &self,
        account: &AccountId,
        ids: &[i64],
    ) -> Result<u64, StoreError> {
        retrying(|| async move {
            let done = sqlx::query(&format!(
                "DELETE FROM chat_journal WHERE account_id = {ACCOUNT} AND id = ANY($3)"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .bind(ids)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn import_chat_entries(
        &self,
        account: &AccountId,
        entries: &[ChatEntry],
    ) -> Result<u64, StoreError> {
        let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
        let times: Vec<i64> = entries.iter().map(|e| e.timestamp.timestamp()).collect();
        let devices: Vec<&str> = entries.iter().map(|e| e.device.as_str()).collect();
        let bytes: Vec<i64> = entries
            .iter()
            .map(|e| i64::try_from(e.data.len()).unwrap_or(i64::MAX))
            .collect();
        let data: Vec<&str> = entries.iter().map(|e| e.data.as_str()).collect();
        let (ids, times, devices, bytes, data) = (&ids, &times, &devices, &bytes, &data);
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            let account_id: i64 = sqlx::query(
                "SELECT id FROM accounts WHERE domain = $1 AND username = $2 FOR UPDATE",
            )
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Fail::Store(StoreError::NotFound(format!("no account {account}"))))?
            .try_get("id")?;
            let done = sqlx::query(
                "INSERT INTO chat_journal (id, account_id, created_at, device, bytes, data) \
                 OVERRIDING SYSTEM VALUE \
                 SELECT i, $1, t, v, b, d FROM UNNEST($2::bigint[], $3::bigint[], $4::text[], \
                 $5::bigint[], $6::text[]) AS u(i, t, v, b, d)",
            )
            .bind(account_id)
            .bind(ids)
            .bind(times)
            .bind(devices)
            .bind(bytes)
            .bind(data)
            .execute(&mut *tx)
            .await?;
            // Later puts take ids above every imported one, and never one given before.
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence('chat_journal', 'id'), \
                 GREATEST((SELECT MAX(id) FROM chat_journal), \
                 pg_sequence_last_value(pg_get_serial_sequence('chat_journal', 'id')::regclass)))",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        })
        .await
    }
}
