//! The conformance suite on PostgreSQL: a fresh database per test on the server named by
//! `SIP_SETTINGS_TEST_PG_URL`, dropped afterwards. Without the variable each test says it
//! skipped.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sip_settings_core::{Clock, Store};
use sip_settings_store_postgres::PgStore;
use sip_settings_store_tests::pg::TempDatabase;
use sip_settings_store_tests::{Harness, conformance_suite};
use sqlx::{Connection, PgConnection};

struct Postgres {
    db: TempDatabase,
    store: Arc<PgStore>,
}

#[async_trait::async_trait]
impl Harness for Postgres {
    async fn start_with_clock(clock: Arc<dyn Clock>) -> Option<Self> {
        let db = TempDatabase::create().await?;
        let store = PgStore::open(db.url(), true)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", db.name()))
            .with_clock(clock);
        Some(Self {
            db,
            store: Arc::new(store),
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn times(&self, sql: &str) -> Vec<DateTime<Utc>> {
        let mut conn = PgConnection::connect(self.db.url())
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let times = sqlx::query_scalar(sql)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
        times
    }

    async fn finish(self) {
        self.store.close().await;
        self.db.drop_db().await;
    }
}

conformance_suite!(Postgres);

/// Migrations are versioned and idempotent: running them again on a migrated database is fine.
#[tokio::test]
async fn migrations_run_twice() {
    let Some(db) = TempDatabase::create().await else {
        return;
    };
    let store = PgStore::open(db.url(), true).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let again = PgStore::open(db.url(), true).await.unwrap();
    again.close().await;
    db.drop_db().await;
}
