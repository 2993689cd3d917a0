//! Throw-away PostgreSQL databases for tests: one per test, created on the server named by
//! `SIP_SETTINGS_TEST_PG_URL` and dropped afterwards. Without the variable the tests say that
//! they skip, except in CI (`CI=true`), where they fail
//! ([`sip_settings_store_postgres::testing`]).

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The environment variable naming the PostgreSQL server for tests.
pub use sip_settings_store_postgres::testing::PG_URL_VAR;

/// A database created for one test.
#[derive(Debug)]
///
/// The database is dropped (`DROP DATABASE … WITH (FORCE)`) by [`TempDatabase::drop_db`], or
/// else when the value is dropped: also when the test panics, so that no failed run leaves a
/// database behind.
pub struct TempDatabase {
    admin_url: String,
    name: String,
    url: String,
    /// Set once [`TempDatabase::drop_db`] has dropped it.
    dropped: bool,
}

/// Replaces the database name (the path) of a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TempDatabase {
    /// Creates a fresh database, or says why not and gives `None` when the variable is unset.
    ///
    /// # Panics
    ///
    /// When the variable is unset in CI (`CI=true`), or the server refuses.
    pub async fn create() -> Option<Self> {
        let admin_url = sip_settings_store_postgres::testing::test_server_url("PostgreSQL tests")?;
        let name = format!("sip_settings_test_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {PG_URL_VAR}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
            dropped: false,
        })
    }

    /// The URL of the fresh database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ends every connection to the database (as a crash or failover would).
    pub async fn terminate_connections(&self) -> u64 {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("admin connection");
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .fetch_all(&mut admin)
        .await
        .expect("pg_terminate_backend");
        let _ = admin.close().await;
        killed.into_iter().filter(|k| *k).count() as u64
    }

    /// Drops the database (ending its connections).
    pub async fn drop_db(mut self) {
        drop_database(&self.admin_url, &self.name).await;
        self.dropped = true;
    }
}

/// `DROP DATABASE name WITH (FORCE)` through the server at `admin_url`; a failure is reported,
/// not raised (the database is only garbage then).
async fn drop_database(admin_url: &str, name: &str) {
    let dropped = match PgConnection::connect(admin_url).await {
        Ok(mut admin) => {
            let r = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
            let _ = admin.close().await;
            r.map(|_| ())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = dropped {
        eprintln!("could not drop the test database {name}: {e}");
    }
}

impl Drop for TempDatabase {
    /// A database not dropped by [`TempDatabase::drop_db`] (a test that returned early or
    /// panicked) is dropped here, synchronously: on a thread of its own with a fresh runtime,
    /// so that this works inside a test's runtime and while a panic unwinds.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(drop_database(&admin_url, &name)),
                Err(e) => eprintln!("could not drop the test database {name}: {e}"),
            }
        })
        .join();
        if done.is_err() {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
    }
}
