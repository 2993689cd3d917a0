//! Turning rows into core types, and sqlx errors into [`StoreError`]s. Stored values are parsed
//! again on the way out: a corrupt row is an error, never a panic.

use chrono::{DateTime, TimeZone, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::account::Account;
use sip_settings_core::calls::{CallRecord, PrepaidSession, Settlement};
use sip_settings_core::cert::CertRecord;
use sip_settings_core::ids::{AccountId, E164};
use sip_settings_core::money::Money;
use sip_settings_core::rating::Rate;
use sip_settings_core::sip::SipUri;
use sip_settings_core::stored::{self, AccountRow, CertRow};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

/// The account columns [`account_from_row`] reads.
pub(crate) const ACCOUNT_COLUMNS: &str = "username, domain, first_name, last_name, email, \
     timezone, mobile, pstn_caller_id, language, no_answer_timeout, quick_dial, privacy, prepaid, \
     created_at";

/// Whether a SQLite result code, primary or extended, says that the database is busy or locked
/// (another connection holds it; a retry may succeed): its primary code, the low byte, is
/// `SQLITE_BUSY` (5) or `SQLITE_LOCKED` (6). Extended codes such as `SQLITE_BUSY_SNAPSHOT` (517),
/// `SQLITE_BUSY_TIMEOUT` (773) or `SQLITE_LOCKED_SHAREDCACHE` (262) count too.
pub(crate) fn busy_or_locked(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6)
}

/// Maps a sqlx error to the store's error kinds.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match code.as_ref() {
                // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
                "2067" | "1555" => StoreError::Conflict(db.message().to_owned()),
                // SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_CONSTRAINT_NOTNULL (an account sub-select
                // that found no account)
                "787" | "1299" => StoreError::NotFound(db.message().to_owned()),
                // SQLITE_BUSY, SQLITE_LOCKED and their extended codes
                c if c.parse().is_ok_and(busy_or_locked) => {
                    StoreError::Unavailable(db.message().to_owned())
                }
                _ => StoreError::Other(e.to_string()),
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// Maps a failed migration: a busy or locked database is [`StoreError::Unavailable`].
pub(crate) fn migrate_err(e: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::Execute(e) => map_err(e),
        MigrateError::ExecuteMigration(e, version) => match map_err(e) {
            StoreError::Unavailable(m) => {
                StoreError::Unavailable(format!("migration {version}: {m}"))
            }
            other => StoreError::Other(format!("migration {version} failed: {other}")),
        },
        e => StoreError::Other(format!("migration failed: {e}")),
    }
}

pub(crate) use sip_settings_core::stored::corrupt;

pub(crate) fn account_from_row(r: &SqliteRow) -> Result<Account, StoreError> {
    let get = |c: &str| -> Result<String, StoreError> { r.try_get(c).map_err(map_err) };
    let get_o = |c: &str| -> Result<Option<String>, StoreError> { r.try_get(c).map_err(map_err) };
    AccountRow {
        username: get("username")?,
        domain: get("domain")?,
        first_name: get("first_name")?,
        last_name: get("last_name")?,
        email: get_o("email")?,
        timezone: get("timezone")?,
        mobile: get_o("mobile")?,
        pstn_caller_id: get_o("pstn_caller_id")?,
        language: get("language")?,
        no_answer_timeout: r.try_get("no_answer_timeout").map_err(map_err)?,
        quick_dial: get_o("quick_dial")?,
        privacy: r.try_get("privacy").map_err(map_err)?,
        prepaid: r.try_get("prepaid").map_err(map_err)?,
        created_at: r.try_get("created_at").map_err(map_err)?,
    }
    .parse()
}

pub(crate) fn cert_from_row(r: &SqliteRow) -> Result<CertRecord, StoreError> {
    let get = |c: &str| -> Result<String, StoreError> { r.try_get(c).map_err(map_err) };
    CertRow {
        serial: get("serial")?,
        subject: get("subject")?,
        role: get("role")?,
        account: r.try_get("account").map_err(map_err)?,
        fingerprint: get("fingerprint")?,
        not_before: r.try_get("not_before").map_err(map_err)?,
        not_after: r.try_get("not_after").map_err(map_err)?,
        issued_at: r.try_get("issued_at").map_err(map_err)?,
        revoked_at: r.try_get("revoked_at").map_err(map_err)?,
        name: r.try_get("name").map_err(map_err)?,
        last_used: r.try_get("last_used_at").map_err(map_err)?,
    }
    .parse()
}

/// The account address in the columns `user` and `domain` of a row.
pub(crate) fn account_id_from(
    r: &SqliteRow,
    user: &str,
    domain: &str,
) -> Result<AccountId, StoreError> {
    let u: String = r.try_get(user).map_err(map_err)?;
    let d: String = r.try_get(domain).map_err(map_err)?;
    stored::address(&u, &d)
}

/// A time as the billing and device tables keep it: Unix seconds.
pub(crate) fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// A stored Unix time; out of range is corrupt data, never a panic.
pub(crate) fn from_unix(s: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_opt(s, 0)
        .single()
        .ok_or_else(|| corrupt("time", s))
}

/// An unsigned 32-bit column: a value out of range is a corrupt row.
pub(crate) fn u32_of(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|e| corrupt(what, e))
}

/// A rate from the row's columns, its prefix and description named with `p` before them.
pub(crate) fn rate_from(r: &SqliteRow, p: &str) -> Result<Rate, StoreError> {
    let col = |c: &str| format!("{p}{c}");
    let prefix: String = r.try_get(col("prefix").as_str()).map_err(map_err)?;
    let description: String = r.try_get(col("description").as_str()).map_err(map_err)?;
    let connect: i64 = r.try_get("connect_fee").map_err(map_err)?;
    let per_minute: i64 = r.try_get("rate_per_minute").map_err(map_err)?;
    let inc: i64 = r.try_get("increment_seconds").map_err(map_err)?;
    let min: i64 = r.try_get("minimum_seconds").map_err(map_err)?;
    Rate::new(
        &prefix,
        &description,
        Money::from_units(connect),
        Money::from_units(per_minute),
        u32_of(inc, "increment")?,
        u32_of(min, "minimum")?,
    )
    .map_err(|e| corrupt("rate", e))
}

/// A prepaid session from a row of `SESSION_SELECT` (billing).
pub(crate) fn session_from(r: &SqliteRow) -> Result<PrepaidSession, StoreError> {
    let destination: String = r.try_get("destination").map_err(map_err)?;
    let closed_at: Option<DateTime<Utc>> = r.try_get("closed_at").map_err(map_err)?;
    let closed = match closed_at {
        Some(closed_at) => {
            let duration: Option<i64> = r.try_get("duration").map_err(map_err)?;
            let price: Option<i64> = r.try_get("price").map_err(map_err)?;
            let balance: Option<i64> = r.try_get("balance_after").map_err(map_err)?;
            Some(Settlement {
                closed_at,
                duration: u32_of(duration.unwrap_or_default(), "duration")?,
                price: Money::from_units(price.unwrap_or_default()),
                balance: Money::from_units(balance.unwrap_or_default()),
            })
        }
        None => None,
    };
    let max: i64 = r.try_get("max_session_time").map_err(map_err)?;
    let reserved: i64 = r.try_get("reserved").map_err(map_err)?;
    Ok(PrepaidSession {
        call_id: r.try_get("call_id").map_err(map_err)?,
        account: account_id_from(r, "username", "domain")?,
        destination: E164::parse_for("destination", &destination)
            .map_err(|e| corrupt("destination", e))?,
        opened_at: r.try_get("opened_at").map_err(map_err)?,
        max_session_time: u32_of(max, "max_session_time")?,
        reserved: Money::from_units(reserved),
        rate: rate_from(r, "rate_")?,
        closed,
    })
}

/// A call record from a `calls` row.
pub(crate) fn call_from(r: &SqliteRow) -> Result<CallRecord, StoreError> {
    let caller: String = r.try_get("caller").map_err(map_err)?;
    let callee: String = r.try_get("callee").map_err(map_err)?;
    let media: String = r.try_get("media").map_err(map_err)?;
    let start: i64 = r.try_get("start_at").map_err(map_err)?;
    let stop: i64 = r.try_get("stop_at").map_err(map_err)?;
    let duration: i64 = r.try_get("duration").map_err(map_err)?;
    let status: i64 = r.try_get("status").map_err(map_err)?;
    let price: Option<i64> = r.try_get("price").map_err(map_err)?;
    Ok(CallRecord {
        call_id: r.try_get("call_id").map_err(map_err)?,
        from_tag: r.try_get("from_tag").map_err(map_err)?,
        to_tag: r.try_get("to_tag").map_err(map_err)?,
        caller: SipUri::parse_for("caller", &caller).map_err(|e| corrupt("caller", e))?,
        callee: SipUri::parse_for("callee", &callee).map_err(|e| corrupt("callee", e))?,
        start: from_unix(start)?,
        stop: from_unix(stop)?,
        duration: u32_of(duration, "duration")?,
        status: u16::try_from(status).map_err(|e| corrupt("status", e))?,
        media: stored::media(&media),
        proxy_ip: r.try_get("proxy_ip").map_err(map_err)?,
        price: price.map(Money::from_units),
    })
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error;
    use std::fmt;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A database error with the given SQLite result code, as sqlx reports it.
    #[derive(Debug)]
    struct Coded(i32);

    impl fmt::Display for Coded {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "error code {}", self.0)
        }
    }

    impl Error for Coded {}

    impl DatabaseError for Coded {
        fn message(&self) -> &str {
            "database error"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Owned(self.0.to_string()))
        }
        fn as_error(&self) -> &(dyn Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn mapped(code: i32) -> StoreError {
        map_err(sqlx::Error::Database(Box::new(Coded(code))))
    }

    #[test]
    fn busy_and_locked_are_unavailable_with_every_extended_code() {
        // SQLITE_BUSY, _RECOVERY, _SNAPSHOT, _TIMEOUT; SQLITE_LOCKED, _SHAREDCACHE, _VTAB.
        for code in [5, 261, 517, 773, 6, 262, 518] {
            assert!(
                matches!(mapped(code), StoreError::Unavailable(_)),
                "{code}: {:?}",
                mapped(code)
            );
        }
    }

    #[test]
    fn a_migration_on_a_busy_database_is_unavailable() {
        use sqlx::migrate::MigrateError;
        let busy = || sqlx::Error::Database(Box::new(Coded(517)));
        assert!(matches!(
            migrate_err(MigrateError::Execute(busy())),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            migrate_err(MigrateError::ExecuteMigration(busy(), 3)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            migrate_err(MigrateError::ExecuteMigration(
                sqlx::Error::Database(Box::new(Coded(1))),
                3
            )),
            StoreError::Other(_)
        ));
        assert!(matches!(
            migrate_err(MigrateError::VersionMissing(3)),
            StoreError::Other(_)
        ));
    }

    #[test]
    fn other_codes_keep_their_kinds() {
        assert!(matches!(mapped(2067), StoreError::Conflict(_)));
        assert!(matches!(mapped(1555), StoreError::Conflict(_)));
        assert!(matches!(mapped(787), StoreError::NotFound(_)));
        assert!(matches!(mapped(1299), StoreError::NotFound(_)));
        assert!(matches!(
            map_err(sqlx::Error::Database(Box::new(Coded(i32::MAX)))),
            StoreError::Other(_)
        ));
        // Only the primary code (the low byte) counts: SQLITE_IOERR_READ (266), SQLITE_FULL
        // with a high byte (1805, which ends in 05), SQLITE_CONSTRAINT_* are no busy database.
        for code in [1, 10, 266, 1805, 11, 19, 1032, 275] {
            assert!(
                !matches!(mapped(code), StoreError::Unavailable(_)),
                "{code}: {:?}",
                mapped(code)
            );
        }
    }
}
