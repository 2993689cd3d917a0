//! A throw-away PostgreSQL database for one test: the conformance suite's
//! [`TempDatabase`](sip_settings_store_tests::pg::TempDatabase) (same server, same naming,
//! same skip-or-fail rule), dropped when the guard goes out of scope — when the test panics too.

use std::ops::Deref;

use sip_settings_store_tests::pg::TempDatabase;

/// A [`TempDatabase`] that is dropped (with `DROP DATABASE … WITH (FORCE)`) when this guard is,
/// synchronously: on a thread of its own with a fresh runtime, so that it works inside a test's
/// runtime and while a panic unwinds.
pub(crate) struct TestDatabase(Option<TempDatabase>);

impl TestDatabase {
    /// A fresh database, or `None` (having said why) when `SIP_SETTINGS_TEST_PG_URL` is unset
    /// outside CI.
    pub(crate) async fn create() -> Option<Self> {
        TempDatabase::create().await.map(|db| Self(Some(db)))
    }
}

impl Deref for TestDatabase {
    type Target = TempDatabase;

    fn deref(&self) -> &TempDatabase {
        self.0
            .as_ref()
            .expect("the database is there until the guard drops")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(db) = self.0.take() else { return };
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database")
                .block_on(db.drop_db());
        })
        .join();
        if dropped.is_err() && !std::thread::panicking() {
            panic!("dropping the test database failed");
        }
    }
}
