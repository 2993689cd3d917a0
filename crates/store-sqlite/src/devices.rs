//! Registered devices on SQLite: one write (a savepoint of the group commit) per registration.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::devices::{Device, MAX_DEVICES, Registration, lapses_at};
use sip_settings_core::ids::AccountId;
use sip_settings_core::store::Devices;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::SqliteStore;
use crate::rows::{corrupt, from_unix, map_err};

fn device_from(r: &SqliteRow) -> Result<Device, StoreError> {
    let cseq: i64 = r.try_get("cseq").map_err(map_err)?;
    Ok(Device {
        contact: r.try_get("contact").map_err(map_err)?,
        user_agent: r.try_get("user_agent").map_err(map_err)?,
        transport: r.try_get("transport").map_err(map_err)?,
        source: r.try_get("source").map_err(map_err)?,
        call_id: r.try_get("call_id").map_err(map_err)?,
        cseq: u32::try_from(cseq).map_err(|e| corrupt("cseq", e))?,
        registered_at: from_unix(r.try_get("registered_at").map_err(map_err)?)?,
        expires_at: from_unix(r.try_get("expires_at").map_err(map_err)?)?,
    })
}

/// An account's devices that have not lapsed, by the account's address.
const LIST: &str = "SELECT contact, user_agent, transport, source, call_id, cseq, \
     registered_at, expires_at FROM devices WHERE account_id = \
     (SELECT id FROM accounts WHERE domain = ? AND username = ?) AND expires_at > ? \
     ORDER BY registered_at DESC, contact";

const ACCOUNT: &str = "SELECT id FROM accounts WHERE domain = ? AND username = ?";

#[async_trait]
impl Devices for SqliteStore {
    async fn register(&self, reg: &Registration) -> Result<Vec<Device>, StoreError> {
        let now = reg.now.timestamp();
        let mut tx = self.group.write_for(&reg.account).await?;
        let account: i64 = sqlx::query(ACCOUNT)
            .bind(reg.account.domain().as_str())
            .bind(reg.account.user().as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::NotFound(format!("no account {}", reg.account)))?
            .try_get("id")
            .map_err(map_err)?;
        sqlx::query("DELETE FROM devices WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        // RFC 3261 §10.3 step 7: the same Call-ID with a CSeq not above the stored one is an
        // old request arriving late; it changes nothing.
        let newer = "(call_id <> ? OR cseq < ?)";
        if reg.remove_all {
            sqlx::query(&format!(
                "DELETE FROM devices WHERE account_id = ? AND {newer}"
            ))
            .bind(account)
            .bind(&reg.call_id)
            .bind(i64::from(reg.cseq))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        for (contact, lifetime) in &reg.bindings {
            if *lifetime == 0 {
                sqlx::query(&format!(
                    "DELETE FROM devices WHERE account_id = ? AND contact = ? AND {newer}"
                ))
                .bind(account)
                .bind(contact)
                .bind(&reg.call_id)
                .bind(i64::from(reg.cseq))
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                continue;
            }
            sqlx::query(
                "INSERT INTO devices (account_id, contact, user_agent, transport, source, call_id, \
                 cseq, registered_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (account_id, contact) DO UPDATE SET user_agent = excluded.user_agent, \
                 transport = excluded.transport, source = excluded.source, \
                 call_id = excluded.call_id, cseq = excluded.cseq, \
                 registered_at = excluded.registered_at, expires_at = excluded.expires_at \
                 WHERE devices.call_id <> excluded.call_id OR devices.cseq < excluded.cseq",
            )
            .bind(account)
            .bind(contact)
            .bind(&reg.user_agent)
            .bind(&reg.transport)
            .bind(&reg.source)
            .bind(&reg.call_id)
            .bind(i64::from(reg.cseq))
            .bind(now)
            .bind(lapses_at(reg.now, *lifetime))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let rows = sqlx::query(LIST)
            .bind(reg.account.domain().as_str())
            .bind(reg.account.user().as_str())
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        if rows.len() > MAX_DEVICES {
            // Dropping the transaction rolls it back.
            return Err(StoreError::Conflict(format!(
                "{} would have {} registered devices, at most {MAX_DEVICES}",
                reg.account,
                rows.len()
            )));
        }
        let devices = rows
            .iter()
            .map(device_from)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(devices)
    }

    async fn list_devices(
        &self,
        account: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Device>, StoreError> {
        let rows = sqlx::query(LIST)
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .bind(now.timestamp())
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter().map(device_from).collect()
    }

    async fn device_expiry(
        &self,
        account: &AccountId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.fast.device_expiry(account)
    }
}
