//! The conformance suite on PostgreSQL: a fresh database per test on the server named by
//! `SIP_SETTINGS_TEST_PG_URL`, dropped afterwards. Without the variable each test says it
//! skipped, except in CI (`CI=true`), where it fails.

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

/// Without `SIP_SETTINGS_TEST_PG_URL` the PostgreSQL tests skip, saying so; in CI (`CI=true`)
/// they fail instead, so that a CI run without the database cannot pass untested. This runs one
/// of them in a child process of this test binary, the variable removed.
#[test]
fn without_a_server_the_tests_skip_except_in_ci() {
    use std::process::Command;

    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("this test binary: {e}"));
    let run = |ci: Option<&str>| {
        let mut command = Command::new(&exe);
        command
            .args(["--exact", "migrations_run_twice", "--nocapture"])
            .env_remove(sip_settings_store_tests::pg::PG_URL_VAR)
            .env_remove("CI");
        if let Some(ci) = ci {
            command.env("CI", ci);
        }
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (passed, text) = run(None);
    assert!(passed, "{text}");
    assert!(text.contains("not set: skipping"), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    let (passed, text) = run(Some("true"));
    assert!(!passed, "{text}");
    assert!(text.contains("CI=true"), "{text}");
}

/// A test that panics still drops its database: `TempDatabase` drops it when the value is
/// dropped while the panic unwinds, so failed runs leave nothing behind on the server.
#[tokio::test]
async fn a_database_is_dropped_when_its_test_panics() {
    let Some(probe) = TempDatabase::create().await else {
        return;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let panicked = tokio::spawn(async move {
        let db = TempDatabase::create()
            .await
            .unwrap_or_else(|| panic!("no database"));
        let _ = tx.send(db.name().to_owned());
        panic!("a test failing with its database open");
    })
    .await;
    assert!(panicked.is_err_and(|e| e.is_panic()));
    let name = rx.recv().unwrap_or_else(|e| panic!("the name: {e}"));
    let mut conn = PgConnection::connect(probe.url())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("pg_database: {e}"));
    let _ = conn.close().await;
    assert_eq!(left, 0, "{name} is still on the server");
    probe.drop_db().await;
}
