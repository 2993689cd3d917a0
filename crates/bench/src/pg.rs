//! The stores a run measures, and the PostgreSQL side of it: the database the benchmark creates
//! for itself on the server given by `--pg-url` (`sip_settings_bench_PID`, dropped at the end,
//! so that every run starts clean), and the server's version for the report.

use std::fmt;

use anyhow::{Context, anyhow, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The environment variable `--pg-url` defaults to (the one the PostgreSQL tests read).
pub(crate) const PG_URL_VAR: &str = "SIP_SETTINGS_TEST_PG_URL";

/// A store the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StoreKind {
    /// The embedded SQLite file in the data directory.
    Sqlite,
    /// A PostgreSQL database the benchmark creates on `--pg-url`.
    Postgres,
}

impl StoreKind {
    /// The name in the report.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }

    /// The name in file names and the progress lines.
    pub(crate) fn slug(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The database of this run on a PostgreSQL server, dropped (`WITH (FORCE)`) when the value
/// is dropped: also when the run fails or is interrupted.
#[derive(Debug)]
pub(crate) struct BenchDatabase {
    admin_url: String,
    name: String,
    /// The URL of the database, for the server's `--database`.
    pub url: String,
    /// The server's version and the settings that matter most here (`SHOW …`).
    pub version: String,
}

impl BenchDatabase {
    /// Creates `name` on the server at `admin_url` (dropping a leftover of that name first).
    pub(crate) async fn create(admin_url: &str, name: &str) -> anyhow::Result<Self> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("not a plain database name: {name:?}");
        }
        let redacted = crate::redact(admin_url);
        let mut admin = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {redacted}"))?;
        let mut settings = Vec::new();
        for setting in [
            "server_version",
            "shared_buffers",
            "synchronous_commit",
            "fsync",
            "max_connections",
        ] {
            let value: String = sqlx::query_scalar(&format!("SHOW {setting}"))
                .fetch_one(&mut admin)
                .await
                .with_context(|| format!("SHOW {setting}"))?;
            settings.push(format!("{setting} {value}"));
        }
        let version = settings.join(", ");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("dropping a leftover database {name}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("CREATE DATABASE {name} on {redacted}"))?;
        let _ = admin.close().await;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
            url: with_database(admin_url, name),
            version,
        })
    }

    /// The database's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for BenchDatabase {
    /// Drops the database on a thread of its own with a fresh runtime, so that this works
    /// inside the benchmark's runtime and while an error unwinds the run.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| anyhow!(e))?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                let _ = admin.close().await;
                Ok::<_, anyhow::Error>(())
            })
        })
        .join();
        match done {
            Ok(Ok(())) => eprintln!("dropped the database {}", self.name),
            Ok(Err(e)) => eprintln!("could not drop the database {}: {e:#}", self.name),
            Err(_) => eprintln!("could not drop the database {}", self.name),
        }
    }
}

/// Connections of a PostgreSQL server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connections {
    /// `max_connections`.
    pub max: i64,
    /// Client connections to the database of the URL (this one not counted).
    pub here: i64,
    /// Client connections to any database (this one not counted).
    pub all: i64,
}

/// The connections of the PostgreSQL server of `url`.
pub(crate) async fn connections(url: &str) -> anyhow::Result<Connections> {
    let mut conn = PgConnection::connect(url)
        .await
        .with_context(|| format!("connecting to {}", crate::redact(url)))?;
    let max: String = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(&mut conn)
        .await?;
    let (here, all): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE datname = current_database()), count(*) \
         FROM pg_stat_activity WHERE backend_type = 'client backend' \
         AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(Connections {
        max: max.parse().context("max_connections")?,
        here,
        all,
    })
}

/// Waits up to `patience` until the server of `url` has `needed` connections free (other
/// clients, e.g. tests, come and go), and says how many were free at the end.
pub(crate) async fn await_free_connections(
    url: &str,
    needed: i64,
    patience: std::time::Duration,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        // A server with no connection left at all refuses this one too: none free.
        let (free, why) = match connections(url).await {
            // The one this check used is free again once it is closed.
            Ok(c) => (
                c.max - c.all - 1,
                format!(
                    "max_connections {}, {} in use by other clients",
                    c.max, c.all
                ),
            ),
            Err(e) => (0, format!("{e:#}")),
        };
        if free >= needed {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "PostgreSQL has {free} connections free ({why}) but two servers need up to \
                 {needed}: raise max_connections or stop the other clients"
            );
        }
        eprintln!("waiting for {needed} free PostgreSQL connections ({free} free)");
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Replaces the database name (the path) of a PostgreSQL URL.
pub(crate) fn with_database(url: &str, name: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
