//! Turning rows into core types, and sqlx errors into [`StoreError`]s. Stored values are parsed
//! again on the way out: a corrupt row is an error, never a panic.

use sip_settings_core::StoreError;
use sip_settings_core::account::{Account, AccountProfile};
use sip_settings_core::cert::{CertRecord, CertRole, Serial};
use sip_settings_core::ids::{AccountId, E164, Email, TimeZone};
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

/// A stored value that does not parse: an error, never a panic.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("stored {what} is invalid: {e}"))
}

pub(crate) fn account_from_row(r: &SqliteRow) -> Result<Account, StoreError> {
    let get_s =
        |c: &str| -> Result<String, StoreError> { r.try_get::<String, _>(c).map_err(map_err) };
    let get_o = |c: &str| -> Result<Option<String>, StoreError> {
        r.try_get::<Option<String>, _>(c).map_err(map_err)
    };
    let id = account_id_from(r, "username", "domain")?;
    let email = get_o("email")?
        .map(|e| Email::parse_for("email", &e))
        .transpose()
        .map_err(|e| corrupt("email", e))?;
    let mobile = get_o("mobile")?
        .map(|m| E164::parse_for("mobile", &m))
        .transpose()
        .map_err(|e| corrupt("mobile", e))?;
    let pstn = get_o("pstn_caller_id")?
        .map(|m| E164::parse_for("pstn_caller_id", &m))
        .transpose()
        .map_err(|e| corrupt("pstn_caller_id", e))?;
    let timezone =
        TimeZone::parse_for("timezone", &get_s("timezone")?).map_err(|e| corrupt("timezone", e))?;
    let timeout: i64 = r.try_get("no_answer_timeout").map_err(map_err)?;
    let profile = AccountProfile {
        first_name: get_s("first_name")?,
        last_name: get_s("last_name")?,
        email,
        timezone,
        mobile,
        pstn_caller_id: pstn,
        language: get_s("language")?,
        no_answer_timeout: u32::try_from(timeout).map_err(|e| corrupt("no_answer_timeout", e))?,
        quick_dial: get_o("quick_dial")?,
    };
    Ok(Account {
        id,
        profile,
        privacy: r.try_get("privacy").map_err(map_err)?,
        prepaid: r.try_get("prepaid").map_err(map_err)?,
        created_at: r.try_get("created_at").map_err(map_err)?,
    })
}

pub(crate) fn cert_from_row(r: &SqliteRow) -> Result<CertRecord, StoreError> {
    let role: String = r.try_get("role").map_err(map_err)?;
    let account: Option<String> = r.try_get("account").map_err(map_err)?;
    let serial: String = r.try_get("serial").map_err(map_err)?;
    Ok(CertRecord {
        serial: Serial::parse(&serial).map_err(|e| corrupt("serial", e))?,
        subject: r.try_get("subject").map_err(map_err)?,
        role: CertRole::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        account: account
            .map(|a| AccountId::parse(&a))
            .transpose()
            .map_err(|e| corrupt("certificate account", e))?,
        fingerprint: r.try_get("fingerprint").map_err(map_err)?,
        not_before: r.try_get("not_before").map_err(map_err)?,
        not_after: r.try_get("not_after").map_err(map_err)?,
        issued_at: r.try_get("issued_at").map_err(map_err)?,
        revoked_at: r.try_get("revoked_at").map_err(map_err)?,
    })
}

/// The account address in the columns `user` and `domain` of a row.
pub(crate) fn account_id_from(
    r: &SqliteRow,
    user: &str,
    domain: &str,
) -> Result<AccountId, StoreError> {
    let u: String = r.try_get(user).map_err(map_err)?;
    let d: String = r.try_get(domain).map_err(map_err)?;
    AccountId::parse(&format!("{u}@{d}")).map_err(|e| corrupt("address", e))
}
