//! The conformance suite on the embedded SQLite store, a fresh file per test.

use std::sync::Arc;

use sip_settings_core::Store;
use sip_settings_store_sqlite::SqliteStore;
use sip_settings_store_tests::{Harness, conformance_suite};

struct Sqlite {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
}

#[async_trait::async_trait]
impl Harness for Sqlite {
    async fn start() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url, true).await.ok()?;
        Some(Self {
            _dir: dir,
            store: Arc::new(store),
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    async fn finish(self) {
        self.store.close().await;
    }
}

conformance_suite!(Sqlite);
