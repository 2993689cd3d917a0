//! Registered devices on PostgreSQL: one transaction per registration, the account row locked
//! so that two registrations of one account never together pass the device limit.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::devices::{Device, MAX_DEVICES, Registration, lapses_at};
use sip_settings_core::ids::AccountId;
use sip_settings_core::store::Devices;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::PgStore;
use crate::error::{Fail, Res, corrupt, retrying};
use crate::rows::{from_unix, u32_of};

fn device_from(r: &PgRow) -> Res<Device> {
    Ok(Device {
        contact: r.try_get("contact")?,
        user_agent: r.try_get("user_agent")?,
        transport: r.try_get("transport")?,
        source: r.try_get("source")?,
        call_id: r.try_get("call_id")?,
        cseq: u32_of(r.try_get("cseq")?, "cseq")?,
        registered_at: from_unix(r.try_get("registered_at")?)?,
        expires_at: from_unix(r.try_get("expires_at")?)?,
    })
}

const COLUMNS: &str =
    "contact, user_agent, transport, source, call_id, cseq, registered_at, expires_at";

#[async_trait]
impl Devices for PgStore {
    async fn register(&self, reg: &Registration) -> Result<Vec<Device>, StoreError> {
        retrying(|| async move {
            let now = reg.now.timestamp();
            let cseq = i64::from(reg.cseq);
            let mut tx = self.pool.begin().await?;
            let account: i64 = sqlx::query(
                "SELECT id FROM accounts WHERE domain = $1 AND username = $2 FOR UPDATE",
            )
            .bind(reg.account.domain().as_str())
            .bind(reg.account.user().as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                Fail::Store(StoreError::NotFound(format!("no account {}", reg.account)))
            })?
            .try_get("id")?;
            sqlx::query("DELETE FROM devices WHERE account_id = $1 AND expires_at <= $2")
                .bind(account)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            // RFC 3261 §10.3 step 7: the same Call-ID with a CSeq not above the stored one is
            // an old request arriving late; it changes nothing.
            if reg.remove_all {
                sqlx::query(
                    "DELETE FROM devices WHERE account_id = $1 AND (call_id <> $2 OR cseq < $3)",
                )
                .bind(account)
                .bind(&reg.call_id)
                .bind(cseq)
                .execute(&mut *tx)
                .await?;
            }
            for (contact, lifetime) in &reg.bindings {
                if *lifetime == 0 {
                    sqlx::query(
                        "DELETE FROM devices WHERE account_id = $1 AND contact = $2 \
                         AND (call_id <> $3 OR cseq < $4)",
                    )
                    .bind(account)
                    .bind(contact)
                    .bind(&reg.call_id)
                    .bind(cseq)
                    .execute(&mut *tx)
                    .await?;
                    continue;
                }
                sqlx::query(
                    "INSERT INTO devices (account_id, contact, user_agent, transport, source, \
                     call_id, cseq, registered_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (account_id, contact) DO UPDATE SET \
                     user_agent = excluded.user_agent, transport = excluded.transport, \
                     source = excluded.source, call_id = excluded.call_id, cseq = excluded.cseq, \
                     registered_at = excluded.registered_at, expires_at = excluded.expires_at \
                     WHERE devices.call_id <> excluded.call_id OR devices.cseq < excluded.cseq",
                )
                .bind(account)
                .bind(contact)
                .bind(&reg.user_agent)
                .bind(&reg.transport)
                .bind(&reg.source)
                .bind(&reg.call_id)
                .bind(cseq)
                .bind(now)
                .bind(lapses_at(reg.now, *lifetime))
                .execute(&mut *tx)
                .await?;
            }
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM devices WHERE account_id = $1 AND expires_at > $2 \
                 ORDER BY registered_at DESC, contact"
            ))
            .bind(account)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            if rows.len() > MAX_DEVICES {
                // Dropping the transaction rolls it back.
                return Err(Fail::Store(StoreError::Conflict(format!(
                    "{} would have {} registered devices, at most {MAX_DEVICES}",
                    reg.account,
                    rows.len()
                ))));
            }
            let devices = rows.iter().map(device_from).collect::<Res<Vec<_>>>()?;
            tx.commit().await?;
            // Bindings of other accounts that lapsed, outside the account's transaction.
            sqlx::query("DELETE FROM devices WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
            Ok(devices)
        })
        .await
    }

    async fn list_devices(
        &self,
        account: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Device>, StoreError> {
        retrying(|| async move {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM devices WHERE account_id = \
                 (SELECT id FROM accounts WHERE domain = $1 AND username = $2) \
                 AND expires_at > $3 ORDER BY registered_at DESC, contact"
            ))
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .bind(now.timestamp())
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(device_from).collect()
        })
        .await
    }

    async fn device_expiry(
        &self,
        account: &AccountId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        retrying(|| async move {
            let at: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(expires_at) FROM devices WHERE account_id = \
                 (SELECT id FROM accounts WHERE domain = $1 AND username = $2)",
            )
            .bind(account.domain().as_str())
            .bind(account.user().as_str())
            .fetch_one(&self.pool)
            .await?;
            at.map(|s| {
                DateTime::<Utc>::from_timestamp(s, 0)
                    .ok_or_else(|| corrupt("devices expires_at", s))
            })
            .transpose()
        })
        .await
    }
}
