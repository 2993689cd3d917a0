//! [`Certificates`] for [`PgStore`]: certificates.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::cert::{CertRecord, Serial};
use sip_settings_core::ids::AccountId;
use sip_settings_core::store::Certificates;

use crate::PgStore;
use crate::account_write;
use crate::error::{reading, retrying};
use crate::read_cache::Cached;
use crate::rows::cert_from_row;

#[async_trait]
impl Certificates for PgStore {
    async fn insert_certificate(&self, record: &CertRecord) -> Result<(), StoreError> {
        retrying(|| async move {
            let mut conn = self.pool.acquire().await?;
            Ok(account_write::insert_certificate(&mut conn, record).await?)
        })
        .await?;
        self.published().await
    }

    async fn get_certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        let ticket = match self.cache.certificate(serial) {
            Cached::Hit(record) => return Ok(Some(record)),
            Cached::Miss(ticket) => ticket,
        };
        self.note_hot_read();
        let record = reading(|| async move {
            let row = sqlx::query("SELECT * FROM certificates WHERE serial = $1")
                .bind(serial.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(cert_from_row).transpose()
        })
        .await?;
        // An unknown serial is not kept: the certificate may be recorded any time.
        if let Some(record) = &record {
            self.cache.keep_certificate(ticket, record);
        }
        Ok(record)
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
        let record = retrying(|| async move {
            let mut conn = self.pool.acquire().await?;
            Ok(account_write::revoke_certificate(&mut conn, serial, None, at).await?)
        })
        .await?;
        self.published().await?;
        Ok(record)
    }

    async fn record_certificate_uses(
        &self,
        uses: &[(Serial, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let serials: Vec<&str> = uses.iter().map(|(s, _)| s.as_str()).collect();
        let times: Vec<DateTime<Utc>> = uses.iter().map(|(_, t)| *t).collect();
        // Not published: the last use is no part of what the hot reads answer
        // (`core::cert_use`). In serial order, as [`CertUses::take`] gives them, so that two
        // servers writing at once take the rows' locks in one order.
        retrying(|| async {
            sqlx::query(
                "UPDATE certificates c SET last_used_at = u.at \
                 FROM UNNEST($1::text[], $2::timestamptz[]) AS u(serial, at) \
                 WHERE c.serial = u.serial AND (c.last_used_at IS NULL OR c.last_used_at < u.at)",
            )
            .bind(&serials)
            .bind(&times)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }
}
