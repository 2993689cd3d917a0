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
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use sip_settings_core::StoreError;
use sip_settings_core::account::{Account, AccountProfile};
use sip_settings_core::cert::{CertRecord, CertRole, Serial};
use sip_settings_core::ids::{AccountId, E164, Email, TimeZone};
use sip_settings_core::settings::{Diversions, Group, TemporaryRule};
use sip_settings_core::sip::{Condition, DiversionTarget};

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

fn corrupt(what: &str, e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(
        0,
        format!("stored {what} is invalid: {e}"),
        rusqlite::types::Type::Text,
    )
}

fn time(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt("time", e))
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
        read: impl FnOnce(&Connection) -> rusqlite::Result<V>,
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

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
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
        let result = f(&conn).map_err(map_err);
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
            )?
            .query_row([serial.as_str()], cert_from_row)
            .optional()
        })
    }

    pub(crate) fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.cached(|c| &mut c.accounts, id, |c| {
            c.prepare_cached(
                "SELECT username, domain, first_name, last_name, email, timezone, mobile, \
                 pstn_caller_id, language, no_answer_timeout, quick_dial, privacy, prepaid, created_at \
                 FROM accounts WHERE domain = ?1 AND username = ?2",
            )?
            .query_row([id.domain().as_str(), id.user().as_str()], account_from_row)
            .optional()
        })
    }

    pub(crate) fn temporary_rule(
        &self,
        id: &AccountId,
    ) -> Result<Option<TemporaryRule>, StoreError> {
        self.cached(|c| &mut c.temporary_rules, id, |c| {
            c.prepare_cached(
                "SELECT t.groups, t.until FROM accept_temporary t JOIN accounts a ON a.id = t.account_id \
                 WHERE a.domain = ?1 AND a.username = ?2",
            )?
            .query_row([id.domain().as_str(), id.user().as_str()], |r| {
                let groups: String = r.get(0)?;
                let until: Option<String> = r.get(1)?;
                Ok(TemporaryRule {
                    groups: Group::parse_list(&groups).map_err(|e| corrupt("groups", e))?,
                    until: until.as_deref().map(time).transpose()?,
                })
            })
            .optional()
        })
    }

    pub(crate) fn diversions(&self, id: &AccountId) -> Result<Diversions, StoreError> {
        self.cached(|c| &mut c.diversions, id, |c| {
            let mut stmt = c.prepare_cached(
                "SELECT d.condition, d.target FROM diversions d JOIN accounts a ON a.id = d.account_id \
                 WHERE a.domain = ?1 AND a.username = ?2",
            )?;
            let rows = stmt.query_map([id.domain().as_str(), id.user().as_str()], |r| {
                let c: String = r.get(0)?;
                let t: String = r.get(1)?;
                let condition = Condition::from_code(&c).ok_or_else(|| corrupt("condition", &c))?;
                let target = DiversionTarget::from_stored(&t).map_err(|e| corrupt("target", e))?;
                Ok((condition, target))
            })?;
            rows.collect()
        })
    }
}

fn cert_from_row(r: &Row<'_>) -> rusqlite::Result<CertRecord> {
    let serial: String = r.get(0)?;
    let role: String = r.get(2)?;
    let account: Option<String> = r.get(3)?;
    let revoked: Option<String> = r.get(8)?;
    Ok(CertRecord {
        serial: Serial::parse(&serial).map_err(|e| corrupt("serial", e))?,
        subject: r.get(1)?,
        role: CertRole::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        account: account
            .map(|a| AccountId::parse(&a))
            .transpose()
            .map_err(|e| corrupt("certificate account", e))?,
        fingerprint: r.get(4)?,
        not_before: time(&r.get::<_, String>(5)?)?,
        not_after: time(&r.get::<_, String>(6)?)?,
        issued_at: time(&r.get::<_, String>(7)?)?,
        revoked_at: revoked.as_deref().map(time).transpose()?,
    })
}

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    let user: String = r.get(0)?;
    let domain: String = r.get(1)?;
    let opt = |v: Option<String>,
               f: &dyn Fn(&str) -> Result<E164, sip_settings_core::ServiceError>| {
        v.map(|s| f(&s))
            .transpose()
            .map_err(|e| corrupt("number", e))
    };
    let email: Option<String> = r.get(4)?;
    let tz: String = r.get(5)?;
    let timeout: i64 = r.get(9)?;
    let created: String = r.get(13)?;
    Ok(Account {
        id: AccountId::parse(&format!("{user}@{domain}")).map_err(|e| corrupt("account id", e))?,
        profile: AccountProfile {
            first_name: r.get(2)?,
            last_name: r.get(3)?,
            email: email
                .map(|e| Email::parse_for("email", &e))
                .transpose()
                .map_err(|e| corrupt("email", e))?,
            timezone: TimeZone::parse_for("timezone", &tz).map_err(|e| corrupt("timezone", e))?,
            mobile: opt(r.get(6)?, &|s| E164::parse_for("mobile", s))?,
            pstn_caller_id: opt(r.get(7)?, &|s| E164::parse_for("pstn_caller_id", s))?,
            language: r.get(8)?,
            no_answer_timeout: u32::try_from(timeout)
                .map_err(|e| corrupt("no_answer_timeout", e))?,
            quick_dial: r.get(10)?,
        },
        privacy: r.get(11)?,
        prepaid: r.get(12)?,
        created_at: time(&created)?,
    })
}
