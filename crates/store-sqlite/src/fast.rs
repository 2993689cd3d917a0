//! The hot reads run inline on the calling thread through rusqlite on their own read-only
//! connections: those of every request (a certificate, an account, its DND, its forwarding)
//! and those of deciding a call (whether a domain is local, the account an address or an ENUM
//! number reaches, the accept rules, reject patterns, phonebook and voicemail). In WAL mode a
//! read never waits for the writer, and a read from SQLite's page cache takes microseconds:
//! less than handing it to sqlx's worker thread and waking the task again, which the profile
//! showed dominating every request (see docs/benchmarks.md).
//!
//! Their results are kept in memory for as long as the database stays as it was: each look-up
//! first reads the database's [`Version`](crate::changes::Version) (one `pread`, no lock; see
//! [`crate::changes`]) and answers from memory only when nothing was committed since the answer
//! was read, by any connection of any process. So a revocation, by this server, another one or the CLI, holds
//! for the next request at once, as without the cache. What the cache saves is SQLite's read
//! transaction: its file locks and the mutexes around them were half of a request's CPU time.

use std::hash::Hash;
use std::path::PathBuf;
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};
use sip_settings_core::StoreError;
use sip_settings_core::account::Account;
use sip_settings_core::cert::{CertRecord, Serial};
use sip_settings_core::forwarding::Forwarding;
use sip_settings_core::ids::{AccountId, Domain, E164, Email};
use sip_settings_core::settings::{
    AcceptRule, AcceptRules, DaysMask, Diversions, PhonebookEntry, RejectPattern, TemporaryRule,
    Voicemail, VoicemailDelivery,
};
use sip_settings_core::sip::SipUri;
use sip_settings_core::stored::{self, AccountRow, CertRow, corrupt};

use crate::cache::{Cache, Kind, Rows};
use crate::changes::WalWatch;

/// Most idle connections kept.
const KEEP: usize = 8;
/// SQLite's page cache of each fast-read connection, as `PRAGMA cache_size` takes it
/// (negative: KiB).
const FAST_PAGE_CACHE_KIB: i64 = -256;
/// Read-only rusqlite connections to the database file, reused, and the answers they gave.
#[derive(Debug)]
pub(crate) struct FastReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// `None` for a database that is not a WAL file: nothing is cached then.
    watch: Option<WalWatch>,
    cache: Mutex<Cache>,
    /// Answers given from the cache, for the tests.
    #[cfg(test)]
    hits: AtomicU64,
}

/// Maps a rusqlite error to the store's error kinds: a busy or locked database (any extended
/// code of `SQLITE_BUSY` or `SQLITE_LOCKED`) is [`StoreError::Unavailable`].
fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if crate::rows::busy_or_locked(f.extended_code) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// A time column as sqlx writes it (RFC 3339, or SQLite's `YYYY-MM-DD HH:MM:SS.fff+00:00`).
fn time(r: &Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    parse_time(r, i, &r.get::<_, String>(i)?)
}

fn time_opt(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    r.get::<_, Option<String>>(i)?
        .map(|s| parse_time(r, i, &s))
        .transpose()
}

/// A time that does not parse is an error naming its column.
fn parse_time(r: &Row<'_>, i: usize, s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            let column = r.as_ref().column_name(i).unwrap_or("?");
            rusqlite::Error::FromSqlConversionFailure(
                i,
                Type::Text,
                format!("column {column}: {e}").into(),
            )
        })
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
            #[cfg(test)]
            hits: AtomicU64::new(0),
        }
    }

    /// Answers given from the cache so far.
    #[cfg(test)]
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The answer for `key` from the cache when the database has not changed since it was
    /// read; otherwise `read` runs, and its answer is kept under the version read *before* it
    /// ran (a commit in between makes the next look-up miss, never serve older data).
    fn cached<K: Hash + Eq + Clone, V: Clone + Rows>(
        &self,
        kind: fn(&mut Cache) -> &mut Kind<K, V>,
        key: &K,
        read: impl FnOnce(&Connection) -> Result<V, StoreError>,
    ) -> Result<V, StoreError> {
        let version = self.watch.as_ref().and_then(WalWatch::version);
        if let Some(v) = version {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.version == Some(v)
                && let Some(hit) = kind(&mut cache).answers.get(key)
            {
                #[cfg(test)]
                self.hits.fetch_add(1, Ordering::Relaxed);
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
            kind(&mut cache).keep(key.clone(), value.clone());
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
                // These connections answer only cache misses (each read is a few pages of an
                // index and a row, and the kernel's page cache holds the file): SQLite's
                // default 2 MiB page cache per connection would only hold copies of it.
                c.pragma_update(None, "cache_size", FAST_PAGE_CACHE_KIB)
                    .map_err(map_err)?;
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
                 revoked_at, name, last_used_at FROM certificates WHERE serial = ?1",
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
        self.cached(
            |c| &mut c.temporary_rules,
            id,
            |c| read_temporary_rule(c, id),
        )
    }

    pub(crate) fn diversions(&self, id: &AccountId) -> Result<Diversions, StoreError> {
        self.cached(|c| &mut c.diversions, id, |c| read_diversions(c, id))
    }

    /// The account's forwarding rules: its document, or the simple rules of its diversions.
    pub(crate) fn forwarding(&self, id: &AccountId) -> Result<Arc<Forwarding>, StoreError> {
        self.cached(|c| &mut c.forwarding, id, |c| {
            let document: Option<String> = c
                .prepare_cached(
                    "SELECT f.document FROM forwarding_documents f \
                     JOIN accounts a ON a.id = f.account_id WHERE a.domain = ?1 AND a.username = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row([id.domain().as_str(), id.user().as_str()], |r| r.get(0))
                        .optional()
                })
                .map_err(map_err)?;
            let forwarding = match document {
                Some(text) => Forwarding::from_stored(&text)
                    .map_err(|e| corrupt("forwarding document", e))?,
                None => Forwarding::of_diversions(&read_diversions(c, id)?),
            };
            Ok(Arc::new(forwarding))
        })
    }

    pub(crate) fn domain_exists(&self, domain: &Domain) -> Result<bool, StoreError> {
        self.cached(
            |c| &mut c.domains,
            domain,
            |c| {
                let n: i64 = c
                    .prepare_cached("SELECT count(*) FROM domains WHERE name = ?1")
                    .and_then(|mut stmt| stmt.query_row([domain.as_str()], |r| r.get(0)))
                    .map_err(map_err)?;
                Ok(n > 0)
            },
        )
    }

    /// The account an address (its own or an alias) belongs to.
    pub(crate) fn resolve_address(
        &self,
        address: &AccountId,
    ) -> Result<Option<AccountId>, StoreError> {
        self.cached(|c| &mut c.addresses, address, |c| {
            c.prepare_cached(
                "SELECT a.username, a.domain FROM sip_addresses s JOIN accounts a ON a.id = s.account_id \
                 WHERE s.domain = ?1 AND s.username = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    [address.domain().as_str(), address.user().as_str()],
                    address_columns,
                )
                .optional()
            })
            .map_err(map_err)?
            .map(|(user, domain)| stored::address(&user, &domain))
            .transpose()
        })
    }

    /// The account an ENUM number is mapped to.
    pub(crate) fn resolve_enum(&self, number: &E164) -> Result<Option<AccountId>, StoreError> {
        self.cached(|c| &mut c.enum_numbers, number, |c| {
            c.prepare_cached(
                "SELECT a.username, a.domain FROM enum_numbers e JOIN accounts a ON a.id = e.account_id \
                 WHERE e.number = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([number.as_str()], address_columns).optional())
            .map_err(map_err)?
            .map(|(user, domain)| stored::address(&user, &domain))
            .transpose()
        })
    }

    /// The persistent accept rules by days mask and the temporary rule, read in one
    /// transaction (so both are of the same commit).
    pub(crate) fn accept_rules(&self, id: &AccountId) -> Result<AcceptRules, StoreError> {
        self.cached(
            |c| &mut c.accept_rules,
            id,
            |c| {
                let tx = c.unchecked_transaction().map_err(map_err)?;
                let rows: Vec<(i64, i64, i64, String)> = of_account(
                    &tx,
                    "SELECT days, start_minute, stop_minute, groups FROM accept_rules \
                 WHERE account_id = (SELECT id FROM accounts WHERE domain = ?1 AND username = ?2) \
                 ORDER BY days",
                    id,
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )?;
                let temporary = read_temporary_rule(&tx, id)?;
                tx.commit().map_err(map_err)?;
                let persistent = rows
                    .into_iter()
                    .map(|(days, start, stop, groups)| {
                        Ok(AcceptRule {
                            days: u32::try_from(days)
                                .ok()
                                .and_then(|d| DaysMask::new(d).ok())
                                .ok_or_else(|| corrupt("days mask", days))?,
                            start: stored::minute(start)?,
                            stop: stored::minute(stop)?,
                            groups: stored::groups(&groups)?,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?;
                Ok(AcceptRules {
                    persistent,
                    temporary,
                })
            },
        )
    }

    /// The reject patterns, sorted.
    pub(crate) fn reject(&self, id: &AccountId) -> Result<Vec<RejectPattern>, StoreError> {
        self.cached(
            |c| &mut c.reject,
            id,
            |c| {
                let patterns: Vec<String> = of_account(
                    c,
                    "SELECT pattern FROM reject_rules \
                 WHERE account_id = (SELECT id FROM accounts WHERE domain = ?1 AND username = ?2) \
                 ORDER BY pattern",
                    id,
                    |r| r.get(0),
                )?;
                patterns
                    .iter()
                    .map(|p| RejectPattern::parse(p).map_err(|e| corrupt("reject pattern", e)))
                    .collect()
            },
        )
    }

    /// The phonebook, by address.
    pub(crate) fn phonebook(&self, id: &AccountId) -> Result<Vec<PhonebookEntry>, StoreError> {
        self.cached(
            |c| &mut c.phonebooks,
            id,
            |c| {
                let rows: Vec<(String, String, String)> = of_account(
                    c,
                    "SELECT uri, name, groups FROM phonebook \
                 WHERE account_id = (SELECT id FROM accounts WHERE domain = ?1 AND username = ?2) \
                 ORDER BY uri",
                    id,
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                rows.into_iter()
                    .map(|(uri, name, groups)| {
                        Ok(PhonebookEntry {
                            uri: SipUri::parse_for("uri", &uri)
                                .map_err(|e| corrupt("phonebook uri", e))?,
                            name,
                            groups: stored::phonebook_groups(&groups)?,
                        })
                    })
                    .collect()
            },
        )
    }

    /// When the account's last device binding lapses (Unix seconds in the table).
    pub(crate) fn device_expiry(
        &self,
        id: &AccountId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.cached(
            |c| &mut c.device_expiry,
            id,
            |c| {
                let rows: Vec<Option<i64>> = of_account(
                    c,
                    "SELECT MAX(expires_at) FROM devices \
                     WHERE account_id = (SELECT id FROM accounts WHERE domain = ?1 AND username = ?2)",
                    id,
                    |r| r.get(0),
                )?;
                rows.into_iter()
                    .flatten()
                    .next()
                    .map(|s| {
                        DateTime::<Utc>::from_timestamp(s, 0)
                            .ok_or_else(|| corrupt("devices expires_at", s))
                    })
                    .transpose()
            },
        )
    }

    /// The voice mailbox, if one is set up.
    pub(crate) fn voicemail(&self, id: &AccountId) -> Result<Option<Voicemail>, StoreError> {
        self.cached(
            |c| &mut c.voicemail,
            id,
            |c| {
                let row: Option<(bool, String, Option<String>, Option<String>)> = of_account(
                    c,
                    "SELECT enabled, delivery, email, pin_hash FROM voicemail \
                 WHERE account_id = (SELECT id FROM accounts WHERE domain = ?1 AND username = ?2)",
                    id,
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )?
                .into_iter()
                .next();
                row.map(|(enabled, delivery, email, pin_hash)| {
                    Ok(Voicemail {
                        enabled,
                        delivery: VoicemailDelivery::parse(&delivery)
                            .map_err(|e| corrupt("delivery", e))?,
                        email: email
                            .map(|e| Email::parse_for("email", &e))
                            .transpose()
                            .map_err(|e| corrupt("voicemail email", e))?,
                        pin_hash,
                    })
                })
                .transpose()
            },
        )
    }
}

/// The temporary accept rule (DND) of `id`, if one is stored.
/// The account's diversions (the seed view).
fn read_diversions(c: &Connection, id: &AccountId) -> Result<Diversions, StoreError> {
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
}

fn read_temporary_rule(
    c: &Connection,
    id: &AccountId,
) -> Result<Option<TemporaryRule>, StoreError> {
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
}

/// The rows of `sql`, run with the account `id` bound as `?1` (domain) and `?2` (username).
fn of_account<T>(
    c: &Connection,
    sql: &str,
    id: &AccountId,
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    c.prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map([id.domain().as_str(), id.user().as_str()], row)?
                .collect()
        })
        .map_err(map_err)
}

/// The `username` and `domain` columns of an address.
fn address_columns(r: &Row<'_>) -> rusqlite::Result<(String, String)> {
    Ok((r.get(0)?, r.get(1)?))
}

pub(crate) fn cert_row(r: &Row<'_>) -> rusqlite::Result<CertRow> {
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
        name: r.get(9)?,
        last_used: time_opt(r, 10)?,
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
mod tests {
    use std::fmt::Debug;
    use std::future::Future;

    use chrono::{TimeZone, Utc};
    use sip_settings_core::Credentials;
    use sip_settings_core::account::{Account, AccountProfile};
    use sip_settings_core::settings::{ClockTime, Group};
    use sip_settings_core::store::{Accounts, Addresses, Settings};

    use super::*;
    use crate::SqliteStore;

    #[test]
    fn busy_and_locked_are_unavailable_with_every_extended_code() {
        let mapped = |code: i32| {
            map_err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        // SQLITE_BUSY, _RECOVERY, _SNAPSHOT, _TIMEOUT; SQLITE_LOCKED, _SHAREDCACHE, _VTAB.
        for code in [5, 261, 517, 773, 6, 262, 518] {
            assert!(
                matches!(mapped(code), StoreError::Unavailable(_)),
                "{code}: {:?}",
                mapped(code)
            );
        }
        for code in [1, 10, 266, 1805, 11, 19, 2067, 275] {
            assert!(
                matches!(mapped(code), StoreError::Other(_)),
                "{code}: {:?}",
                mapped(code)
            );
        }
    }

    /// Reads twice: the second answer must come from the cache and equal the first.
    async fn twice<T, F>(store: &SqliteStore, read: impl Fn() -> F) -> T
    where
        T: PartialEq + Debug,
        F: Future<Output = Result<T, StoreError>>,
    {
        let first = read().await.unwrap();
        let hits = store.fast.hits();
        let second = read().await.unwrap();
        assert_eq!(store.fast.hits(), hits + 1, "not answered from the cache");
        assert_eq!(first, second);
        first
    }

    /// Reads once, right after a commit: the answer must come from SQLite.
    async fn fresh<T, F>(store: &SqliteStore, read: impl Fn() -> F) -> T
    where
        F: Future<Output = Result<T, StoreError>>,
    {
        let hits = store.fast.hits();
        let value = read().await.unwrap();
        assert_eq!(store.fast.hits(), hits, "a cached answer outlived a commit");
        value
    }

    /// A step of the test below: aliases and ENUM numbers of `alice` (who exists), added and
    /// removed through `cli`, are seen by `server` at the next look-up.
    async fn aliases_and_numbers_follow_commits(
        server: &SqliteStore,
        cli: &SqliteStore,
        alice: &AccountId,
    ) {
        let al = AccountId::parse("al@example.com").unwrap();
        let number = E164::parse_for("n", "+31201234567").unwrap();
        let found = Some(alice.clone());
        assert_eq!(twice(server, || server.resolve_address(&al)).await, None);
        cli.add_alias(&al, alice, 20).await.unwrap();
        assert_eq!(fresh(server, || server.resolve_address(&al)).await, found);
        assert_eq!(twice(server, || server.resolve_address(&al)).await, found);
        cli.remove_alias(&al).await.unwrap();
        assert_eq!(fresh(server, || server.resolve_address(&al)).await, None);

        assert_eq!(twice(server, || server.resolve_enum(&number)).await, None);
        cli.add_enum(&number, alice).await.unwrap();
        assert_eq!(fresh(server, || server.resolve_enum(&number)).await, found);
        assert_eq!(twice(server, || server.resolve_enum(&number)).await, found);
        cli.remove_enum(&number).await.unwrap();
        assert_eq!(fresh(server, || server.resolve_enum(&number)).await, None);
    }

    /// A step of the test below: reject patterns and the phonebook of `alice`, changed through
    /// `cli` or a bare SQLite connection on `path`, are seen by `server` at the next look-up.
    async fn reject_and_phonebook_follow_commits(
        server: &SqliteStore,
        cli: &SqliteStore,
        alice: &AccountId,
        path: &std::path::Path,
    ) {
        assert!(twice(server, || server.list_reject(alice)).await.is_empty());
        let pattern = RejectPattern::parse("sip:%0900@%").unwrap();
        cli.add_reject(alice, &pattern).await.unwrap();
        let patterns = vec![pattern];
        assert_eq!(fresh(server, || server.list_reject(alice)).await, patterns);
        assert_eq!(twice(server, || server.list_reject(alice)).await, patterns);
        // A writer that is no store at all (sqlite3 on the command line, say).
        let raw = Connection::open(path).unwrap();
        raw.execute("DELETE FROM reject_rules", []).unwrap();
        assert!(fresh(server, || server.list_reject(alice)).await.is_empty());

        assert!(
            twice(server, || server.list_phonebook(alice))
                .await
                .is_empty()
        );
        let entry = PhonebookEntry {
            uri: SipUri::parse_for("u", "sip:mom@example.org").unwrap(),
            name: "Mom".into(),
            groups: vec!["family".into()],
        };
        cli.put_phonebook_entry(alice, &entry).await.unwrap();
        let book = vec![entry.clone()];
        assert_eq!(fresh(server, || server.list_phonebook(alice)).await, book);
        assert_eq!(twice(server, || server.list_phonebook(alice)).await, book);
        let renamed = PhonebookEntry {
            name: "Mother".into(),
            ..entry
        };
        cli.put_phonebook_entry(alice, &renamed).await.unwrap();
        assert_eq!(
            fresh(server, || server.list_phonebook(alice)).await,
            [renamed]
        );
    }

    /// Each read that deciding a call needs is answered from memory when repeated, and shows
    /// a commit through a second store on the same file (another process: the CLI, a second
    /// server) or a bare SQLite connection at the very next look-up.
    #[tokio::test]
    async fn the_call_reads_are_cached_and_follow_every_commit_of_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let url = format!("sqlite://{}", path.display());
        let server = SqliteStore::open(&url, true).await.unwrap();
        let cli = SqliteStore::open(&url, false).await.unwrap();
        let t0 = Utc.timestamp_opt(1_790_000_000, 0).single().unwrap();
        let alice = AccountId::parse("alice@example.com").unwrap();
        let com = Domain::parse("example.com").unwrap();
        let net = Domain::parse("example.net").unwrap();
        assert!(server.fast.watch.is_some(), "a WAL file is cached");

        // Misses are cached too, and a commit ends them.
        assert!(!twice(&server, || server.domain_exists(&com)).await);
        cli.add_domain(&com, t0).await.unwrap();
        assert!(fresh(&server, || server.domain_exists(&com)).await);
        assert!(twice(&server, || server.domain_exists(&com)).await);
        assert!(!twice(&server, || server.domain_exists(&net)).await);

        assert_eq!(
            twice(&server, || server.resolve_address(&alice)).await,
            None
        );
        let account = Account {
            id: alice.clone(),
            profile: AccountProfile::default(),
            privacy: false,
            prepaid: false,
            created_at: t0,
        };
        let credentials = Credentials {
            ha1_md5: "md5".into(),
            ha1_sha256: "sha".into(),
            ha1b: None,
            password_hash: "$argon2id$stand-in".into(),
        };
        cli.insert_account(&account, &credentials, &[])
            .await
            .unwrap();
        let found = Some(alice.clone());
        assert_eq!(
            fresh(&server, || server.resolve_address(&alice)).await,
            found
        );
        aliases_and_numbers_follow_commits(&server, &cli, &alice).await;

        let none = AcceptRules::default();
        assert_eq!(
            twice(&server, || server.get_accept_rules(&alice)).await,
            none
        );
        let rule = AcceptRule {
            days: DaysMask::new(31).unwrap(),
            start: ClockTime::parse_for("s", "09:00").unwrap(),
            stop: ClockTime::parse_for("s", "17:00").unwrap(),
            groups: vec![Group::Everybody],
        };
        cli.put_accept_rule(&alice, &rule).await.unwrap();
        let rules = fresh(&server, || server.get_accept_rules(&alice)).await;
        assert_eq!(rules.persistent, [rule]);
        assert_eq!(
            twice(&server, || server.get_accept_rules(&alice)).await,
            rules
        );
        let dnd = TemporaryRule {
            groups: vec![Group::Nobody],
            until: Some(t0),
        };
        cli.set_temporary_rule(&alice, Some(&dnd)).await.unwrap();
        let rules = fresh(&server, || server.get_accept_rules(&alice)).await;
        assert_eq!((rules.persistent.len(), rules.temporary), (1, Some(dnd)));

        reject_and_phonebook_follow_commits(&server, &cli, &alice, &path).await;

        assert_eq!(twice(&server, || server.get_voicemail(&alice)).await, None);
        let on = Voicemail {
            enabled: true,
            delivery: VoicemailDelivery::Email,
            email: None,
            pin_hash: Some("hash".into()),
        };
        cli.put_voicemail(&alice, &on).await.unwrap();
        let seen = Some(on.clone());
        assert_eq!(fresh(&server, || server.get_voicemail(&alice)).await, seen);
        assert_eq!(twice(&server, || server.get_voicemail(&alice)).await, seen);
        let off = Voicemail {
            enabled: false,
            ..on
        };
        // The server's own writes are seen at once as well.
        server.put_voicemail(&alice, &off).await.unwrap();
        assert_eq!(
            fresh(&server, || server.get_voicemail(&alice)).await,
            Some(off)
        );

        // Deleting the account empties every one of its reads at once.
        twice(&server, || server.list_phonebook(&alice)).await;
        cli.delete_account(&alice, t0, &[]).await.unwrap();
        assert_eq!(
            fresh(&server, || server.resolve_address(&alice)).await,
            None
        );
        assert_eq!(
            fresh(&server, || server.get_accept_rules(&alice)).await,
            none
        );
        assert!(
            fresh(&server, || server.list_phonebook(&alice))
                .await
                .is_empty()
        );
        assert_eq!(fresh(&server, || server.get_voicemail(&alice)).await, None);

        cli.close().await;
        server.close().await;
    }
}
