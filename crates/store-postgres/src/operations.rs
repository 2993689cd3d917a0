//! What the ops listener asks of the PostgreSQL store: whether its schema is current, how many
//! prepaid sessions are open (on every server of the database), and its figures: the pool, the
//! database's reachability as the store sees it, the read cache.

use async_trait::async_trait;
use sip_settings_core::StoreError;
use sip_settings_core::metrics::family;
use sip_settings_core::store::{Operations, pending_migrations};

use crate::error::reading;
use crate::{MAX_CONNECTIONS, MIGRATOR, PgStore};

#[async_trait]
impl Operations for PgStore {
    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let applied: Vec<i64> = reading(|| async {
            Ok(
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(&self.pool)
                    .await?,
            )
        })
        .await?;
        Ok(pending_migrations(
            MIGRATOR.iter().map(|m| (m.version, m.description.as_ref())),
            &applied,
        ))
    }

    async fn open_prepaid_session_count(&self) -> Result<u64, StoreError> {
        let n: i64 = reading(|| async {
            Ok(
                sqlx::query_scalar("SELECT COUNT(*) FROM prepaid_sessions WHERE closed_at IS NULL")
                    .fetch_one(&self.pool)
                    .await?,
            )
        })
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn shut_down(&self) {
        self.close().await;
    }

    fn render_metrics(&self, out: &mut String) {
        let pool = self.pool.inner();
        let size = u64::from(pool.size());
        let idle = u64::try_from(pool.num_idle()).unwrap_or(u64::MAX);
        family(
            out,
            "sip_settings_store_pool_connections",
            "Open database connections of the store's pool, by state (idle, busy).",
            "gauge",
            &[
                ("store=\"postgres\",state=\"idle\"", idle),
                (
                    "store=\"postgres\",state=\"busy\"",
                    size.saturating_sub(idle),
                ),
            ],
        );
        family(
            out,
            "sip_settings_store_pool_max_connections",
            "The most connections the store's pool opens.",
            "gauge",
            &[("store=\"postgres\"", u64::from(MAX_CONNECTIONS))],
        );
        family(
            out,
            "sip_settings_store_database_up",
            "1 while the store reaches PostgreSQL, 0 while it fails fast because a probe could \
             not connect.",
            "gauge",
            &[("store=\"postgres\"", u64::from(!self.pool.is_down()))],
        );
        family(
            out,
            "sip_settings_store_read_cache_active",
            "1 while this server holds a lease of the read cache and answers hot reads from \
             memory.",
            "gauge",
            &[("store=\"postgres\"", u64::from(self.cache.holding()))],
        );
        family(
            out,
            "sip_settings_store_read_cache_hits_total",
            "Hot reads answered from the read cache instead of the database.",
            "counter",
            &[("store=\"postgres\"", self.cache.hits())],
        );
    }
}
