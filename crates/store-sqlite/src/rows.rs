//! Turning rows into core types, and sqlx errors into [`StoreError`]s. Stored values are parsed
//! again on the way out: a corrupt row is an error, never a panic.

use chrono::{DateTime, TimeZone, Utc};
use sip_settings_core::StoreError;
use sip_settings_core::account::Account;
use sip_settings_core::cert::CertRecord;
use sip_settings_core::ids::AccountId;
use sip_settings_core::stored::{self, AccountRow, CertRow};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

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
                c if c == "5" || c == "6" || c.ends_with("05") || c == "261" || c == "517" => {
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
