//! What the ops listener asks of the embedded store: whether its schema is current, how many
//! prepaid sessions are open, and its figures (the reader pool, group commits).

use async_trait::async_trait;
use sip_settings_core::StoreError;
use sip_settings_core::metrics::family;
use sip_settings_core::store::{Operations, pending_migrations};

use crate::rows::map_err;
use crate::{MIGRATOR, SqliteStore};

#[async_trait]
impl Operations for SqliteStore {
    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
        Ok(pending_migrations(
            MIGRATOR.iter().map(|m| (m.version, m.description.as_ref())),
            &applied,
        ))
    }

    async fn open_prepaid_session_count(&self) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM prepaid_sessions WHERE closed_at IS NULL")
                .fetch_one(&self.reader)
                .await
                .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn shut_down(&self) {
        self.close().await;
    }

    fn render_metrics(&self, out: &mut String) {
        let size = u64::from(self.reader.size());
        let idle = u64::try_from(self.reader.num_idle()).unwrap_or(u64::MAX);
        family(
            out,
            "sip_settings_store_pool_connections",
            "Open database connections of the store's read pool, by state (idle, busy).",
            "gauge",
            &[
                ("store=\"sqlite\",state=\"idle\"", idle),
                ("store=\"sqlite\",state=\"busy\"", size.saturating_sub(idle)),
            ],
        );
        family(
            out,
            "sip_settings_store_group_commits_total",
            "Transactions (each one flush to disk) that committed one or more concurrent writes \
             of the embedded store (group commit).",
            "counter",
            &[("store=\"sqlite\"", self.group.commits())],
        );
    }
}
