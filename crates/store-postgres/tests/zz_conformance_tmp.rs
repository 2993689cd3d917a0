#![allow(clippy::unwrap_used)]
use std::sync::Arc;
use sip_settings_core::Store;
use sip_settings_store_postgres::PgStore;
use sip_settings_store_tests::{Harness, conformance_suite};
use sqlx::{Connection, PgConnection};
struct Pg { admin: String, name: String, store: Arc<PgStore> }
#[async_trait::async_trait]
impl Harness for Pg {
    async fn start() -> Option<Self> {
        let admin = std::env::var("SIP_SETTINGS_TEST_PG_URL").ok()?;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!("pgstore_conf_{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let mut c = PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.unwrap();
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let store = PgStore::open(&url, true).await.unwrap();
        Some(Self { admin, name, store: Arc::new(store) })
    }
    fn store(&self) -> Arc<dyn Store> { self.store.clone() }
    async fn finish(self) {
        self.store.close().await;
        let mut c = PgConnection::connect(&self.admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).execute(&mut c).await.unwrap();
    }
}
conformance_suite!(Pg);
