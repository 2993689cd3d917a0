//! The hot reads (a certificate, an account, its DND, its forwarding) run inline on the calling
//! thread through rusqlite on their own read-only connections. In WAL mode a read never waits
//! for the writer, and a read from SQLite's page cache takes microseconds: less than handing it
//! to sqlx's worker thread and waking the task again, which the profile showed dominating
//! every request (see docs/benchmarks.md).
//!
//! Their results are kept in memory for as long as the database stays as it was: each look-up
//! first reads the database's [`Version`] (one `pread`, no lock; see [`crate::changes`]) and
//! answers from memory only when nothing was committed since the answer was read, by any
//! connection of any process. So a revocation, by this server, another one or the CLI, holds
//! for the next request at once, as without the cache. What the cache saves is SQLite's read
//! transaction: its file locks and the mutexes around them were half of a request's CPU time.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use sip_settings_core::StoreError;
use sip_settings_core::account::Account;
use sip_settings_core::cert::{CertRecord, Serial};
use sip_settings_core::ids::AccountId;
use sip_settings_core::settings::{Diversions, TemporaryRule};
use sip_settings_core::stored::{self, AccountRow, CertRow};

use crate::changes::{Version, WalWatch};

/// Most idle connections kept.
const KEEP: usize = 8;
/// Most entries of one kind kept; past that the kind is emptied and fills again.
const MAX_CACHED: usize = 50_000;

/// Read-only rusqlite connections to the database file, reused, and the answers they gave.
#[derive(Debug)]
pub(crate) struct FastReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// `None` for a database that is not a WAL file: nothing is cached then.
    watch: Option<WalWatch>,
    cache: Mutex<Cache>,
}

/// Answers read at one [`Version`] of the database.
#[derive(Debug, Default)]
struct Cache {
    version: Option<Version>,
    certificates: HashMap<Serial, Option<CertRecord>>,
    accounts: HashMap<AccountId, Option<Account>>,
    temporary_rules: HashMap<AccountId, Option<TemporaryRule>>,
    diversions: HashMap<AccountId, Diversions>,
}

fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// A time column as sqlx writes it (RFC 3339, or SQLite's `YYYY-MM-DD HH:MM:SS.fff+00:00`).
fn time(r: &Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    parse_time(i, &r.get::<_, String>(i)?)
}

fn time_opt(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    r.get::<_, Option<String>>(i)?
        .map(|s| parse_time(i, &s))
        .transpose()
}

fn parse_time(i: usize, s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, e.into()))
}

impl FastReader {
    pub(crate) fn new(path: PathBuf) -> Self {
        let watch = WalWatch::open(&path);
        if watch.is_none() {
            tracing::debug!(path = %path.display(), "not a WAL file: hot reads are not cached");
        }
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            watch,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The answer for `key` from the cache when the database has not changed since it was
    /// read; otherwise `read` runs, and its answer is kept under the version read *before* it
    /// ran (a commit in between makes the next look-up miss, never serve older data).
    fn cached<K: Hash + Eq + Clone, V: Clone>(
        &self,
        kind: fn(&mut Cache) -> &mut HashMap<K, V>,
        key: &K,
        read: impl FnOnce(&Connection) -> Result<V, StoreError>,
    ) -> Result<V, StoreError> {
        let version = self.watch.as_ref().and_then(WalWatch::version);
        if let Some(v) = version {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.version == Some(v)
                && let Some(hit) = kind(&mut cache).get(key)
            {
                return Ok(hit.clone());
            }
        }
        let value = self.with(read)?;
        if let Some(v) = version {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.version != Some(v) {
                *cache = Cache {
                    version: Some(v),
                    ..Cache::default()
                };
            }
            let entries = kind(&mut cache);
            if entries.len() >= MAX_CACHED {
                entries.clear();
            }
            entries.insert(key.clone(), value.clone());
        }
        Ok(value)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let reused = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match reused {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(map_err)?;
                c.busy_timeout(Duration::from_secs(10)).map_err(map_err)?;
                c
            }
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < KEEP {
            idle.push(conn);
        }
        result
    }

    pub(crate) fn certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        self.cached(|c| &mut c.certificates, serial, |c| {
            c.prepare_cached(
                "SELECT serial, subject, role, account, fingerprint, not_before, not_after, issued_at, \
                 revoked_at FROM certificates WHERE serial = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([serial.as_str()], cert_row).optional())
            .map_err(map_err)?
            .map(CertRow::parse)
            .transpose()
        })
    }

    pub(crate) fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.cached(|c| &mut c.accounts, id, |c| {
            c.prepare_cached(
                "SELECT username, domain, first_name, last_name, email, timezone, mobile, \
                 pstn_caller_id, language, no_answer_timeout, quick_dial, privacy, prepaid, created_at \
                 FROM accounts WHERE domain = ?1 AND username = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row([id.domain().as_str(), id.user().as_str()], account_row)
                    .optional()
            })
            .map_err(map_err)?
            .map(AccountRow::parse)
            .transpose()
        })
    }

    pub(crate) fn temporary_rule(
        &self,
        id: &AccountId,
    ) -> Result<Option<TemporaryRule>, StoreError> {
        self.cached(|c| &mut c.temporary_rules, id, |c| {
            let row = c
                .prepare_cached(
                    "SELECT t.groups, t.until FROM accept_temporary t \
                     JOIN accounts a ON a.id = t.account_id WHERE a.domain = ?1 AND a.username = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row([id.domain().as_str(), id.user().as_str()], |r| {
                        Ok((r.get::<_, String>(0)?, time_opt(r, 1)?))
                    })
                    .optional()
                })
                .map_err(map_err)?;
            row.map(|(groups, until)| {
                Ok(TemporaryRule {
                    groups: stored::groups(&groups)?,
                    until,
                })
            })
            .transpose()
        })
    }

    pub(crate) fn diversions(&self, id: &AccountId) -> Result<Diversions, StoreError> {
        self.cached(|c| &mut c.diversions, id, |c| {
            let rows: Vec<(String, String)> = c
                .prepare_cached(
                    "SELECT d.condition, d.target FROM diversions d \
                     JOIN accounts a ON a.id = d.account_id WHERE a.domain = ?1 AND a.username = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_map([id.domain().as_str(), id.user().as_str()], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect()
                })
                .map_err(map_err)?;
            rows.iter()
                .map(|(condition, target)| stored::diversion(condition, target))
                .collect()
        })
    }
}

fn cert_row(r: &Row<'_>) -> rusqlite::Result<CertRow> {
    Ok(CertRow {
        serial: r.get(0)?,
        subject: r.get(1)?,
        role: r.get(2)?,
        account: r.get(3)?,
        fingerprint: r.get(4)?,
        not_before: time(r, 5)?,
        not_after: time(r, 6)?,
        issued_at: time(r, 7)?,
        revoked_at: time_opt(r, 8)?,
    })
}

fn account_row(r: &Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        username: r.get(0)?,
        domain: r.get(1)?,
        first_name: r.get(2)?,
        last_name: r.get(3)?,
        email: r.get(4)?,
        timezone: r.get(5)?,
        mobile: r.get(6)?,
        pstn_caller_id: r.get(7)?,
        language: r.get(8)?,
        no_answer_timeout: r.get(9)?,
        quick_dial: r.get(10)?,
        privacy: r.get(11)?,
        prepaid: r.get(12)?,
        created_at: time(r, 13)?,
    })
}
