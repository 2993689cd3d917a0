//! [`Certificates`] for [`SqliteStore`]: certificates.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::cert::{CertRecord, Serial};
use sip_settings_core::ids::AccountId;
use sip_settings_core::store::Certificates;

use crate::SqliteStore;
use crate::account_write;
use crate::rows::{cert_from_row, map_err};

#[async_trait]
impl Certificates for SqliteStore {
    async fn insert_certificate(&self, record: &CertRecord) -> Result<(), StoreError> {
        let mut tx = self.group.write().await?;
        account_write::insert_certificate(&mut tx, record).await?;
        tx.commit().await
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
        let mut tx = self.group.write().await?;
        let revoked = account_write::revoke_certificate(&mut tx, serial, None, at).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    async fn record_certificate_uses(
        &self,
        uses: &[(Serial, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.group.write().await?;
        for (serial, at) in uses {
            sqlx::query(
                "UPDATE certificates SET last_used_at = ?1 \
                 WHERE serial = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
            )
            .bind(account_write::ts(*at))
            .bind(serial.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await
    }
}
