//! Turning PostgreSQL rows into core types. Stored values are parsed again with core's parsers on
//! the way out, exactly as on SQLite: a corrupt row is [`StoreError::Other`], never a panic.
//!
//! [`StoreError::Other`]: sip_settings_core::StoreError::Other

use chrono::{DateTime, TimeZone, Utc};
use sip_settings_core::Email;
use sip_settings_core::account::Account;
use sip_settings_core::calls::{CallRecord, HistoryEntry, PrepaidSession, Settlement};
use sip_settings_core::cert::CertRecord;
use sip_settings_core::ids::{AccountId, E164};
use sip_settings_core::money::Money;
use sip_settings_core::rating::Rate;
use sip_settings_core::settings::{Diversions, TemporaryRule, Voicemail, VoicemailDelivery};
use sip_settings_core::sip::SipUri;
use sip_settings_core::stored::{self, AccountRow, CertRow};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::{Res, corrupt};

/// The account columns [`account_from_row`] reads.
pub(crate) const ACCOUNT_COLUMNS: &str = "username, domain, first_name, last_name, email, \
     timezone, mobile, pstn_caller_id, language, no_answer_timeout, quick_dial, privacy, prepaid, \
     created_at";

/// A session row with its account's address, as [`session_from`] reads it.
pub(crate) const SESSION_SELECT: &str = "SELECT s.*, a.username, a.domain FROM prepaid_sessions s \
                                         JOIN accounts a ON a.id = s.account_id";

pub(crate) fn account_from_row(r: &PgRow) -> Res<Account> {
    Ok(AccountRow {
        username: r.try_get("username")?,
        domain: r.try_get("domain")?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        email: r.try_get("email")?,
        timezone: r.try_get("timezone")?,
        mobile: r.try_get("mobile")?,
        pstn_caller_id: r.try_get("pstn_caller_id")?,
        language: r.try_get("language")?,
        no_answer_timeout: r.try_get("no_answer_timeout")?,
        quick_dial: r.try_get("quick_dial")?,
        privacy: r.try_get("privacy")?,
        prepaid: r.try_get("prepaid")?,
        created_at: r.try_get("created_at")?,
    }
    .parse()?)
}

/// A temporary rule from its stored groups and end.
pub(crate) fn temporary_from(groups: &str, until: Option<DateTime<Utc>>) -> Res<TemporaryRule> {
    Ok(TemporaryRule {
        groups: stored::groups(groups)?,
        until,
    })
}

/// A voice mailbox from its stored columns.
pub(crate) fn voicemail_from(
    enabled: bool,
    delivery: &str,
    email: Option<String>,
    pin_hash: Option<String>,
) -> Res<Voicemail> {
    Ok(Voicemail {
        enabled,
        delivery: VoicemailDelivery::parse(delivery).map_err(|e| corrupt("delivery", e))?,
        email: email
            .map(|e| Email::parse_for("email", &e))
            .transpose()
            .map_err(|e| corrupt("voicemail email", e))?,
        pin_hash,
    })
}

/// Forwarding from its stored `(condition, target)` pairs.
pub(crate) fn diversions_from(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Res<Diversions> {
    let mut out = Diversions::new();
    for (c, t) in pairs {
        let (condition, target) = stored::diversion(&c, &t)?;
        out.insert(condition, target);
    }
    Ok(out)
}

pub(crate) fn cert_from_row(r: &PgRow) -> Res<CertRecord> {
    Ok(CertRow {
        serial: r.try_get("serial")?,
        subject: r.try_get("subject")?,
        role: r.try_get("role")?,
        account: r.try_get("account")?,
        fingerprint: r.try_get("fingerprint")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
        issued_at: r.try_get("issued_at")?,
        revoked_at: r.try_get("revoked_at")?,
        name: r.try_get("name")?,
        last_used: r.try_get("last_used_at")?,
    }
    .parse()?)
}

/// The address in columns `user` and `domain`.
pub(crate) fn account_id_from(r: &PgRow, user: &str, domain: &str) -> Res<AccountId> {
    let u: String = r.try_get(user)?;
    let d: String = r.try_get(domain)?;
    Ok(stored::address(&u, &d)?)
}

pub(crate) fn u32_of(v: i64, what: &str) -> Res<u32> {
    u32::try_from(v).map_err(|e| corrupt(what, e))
}

/// Call times are stored as Unix seconds, as on SQLite.
pub(crate) fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

pub(crate) fn from_unix(s: i64) -> Res<DateTime<Utc>> {
    Utc.timestamp_opt(s, 0)
        .single()
        .ok_or_else(|| corrupt("time", s))
}

/// A rate from the columns `{p}prefix`, `{p}description` and the plain price columns.
pub(crate) fn rate_from(r: &PgRow, p: &str) -> Res<Rate> {
    let prefix: String = r.try_get(format!("{p}prefix").as_str())?;
    let description: String = r.try_get(format!("{p}description").as_str())?;
    let connect: i64 = r.try_get("connect_fee")?;
    let per_minute: i64 = r.try_get("rate_per_minute")?;
    let inc: i64 = r.try_get("increment_seconds")?;
    let min: i64 = r.try_get("minimum_seconds")?;
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

/// A `balance_history` row of `account`.
pub(crate) fn history_from(r: &PgRow, account: &AccountId) -> Res<HistoryEntry> {
    Ok(HistoryEntry {
        id: r.try_get("id")?,
        account: account.clone(),
        at: r.try_get("at")?,
        action: r.try_get("action")?,
        description: r.try_get("description")?,
        value: Money::from_units(r.try_get("value")?),
        balance: Money::from_units(r.try_get("balance")?),
        session: r.try_get("session")?,
    })
}

/// A session from a [`SESSION_SELECT`] row.
pub(crate) fn session_from(r: &PgRow) -> Res<PrepaidSession> {
    let destination: String = r.try_get("destination")?;
    let closed_at: Option<DateTime<Utc>> = r.try_get("closed_at")?;
    let closed = match closed_at {
        Some(closed_at) => {
            let duration: Option<i64> = r.try_get("duration")?;
            let price: Option<i64> = r.try_get("price")?;
            let balance: Option<i64> = r.try_get("balance_after")?;
            Some(Settlement {
                closed_at,
                duration: u32_of(duration.unwrap_or_default(), "duration")?,
                price: Money::from_units(price.unwrap_or_default()),
                balance: Money::from_units(balance.unwrap_or_default()),
            })
        }
        None => None,
    };
    let max: i64 = r.try_get("max_session_time")?;
    let reserved: i64 = r.try_get("reserved")?;
    Ok(PrepaidSession {
        call_id: r.try_get("call_id")?,
        account: account_id_from(r, "username", "domain")?,
        destination: E164::parse_for("destination", &destination)
            .map_err(|e| corrupt("destination", e))?,
        opened_at: r.try_get("opened_at")?,
        max_session_time: u32_of(max, "max_session_time")?,
        reserved: Money::from_units(reserved),
        rate: rate_from(r, "rate_")?,
        closed,
    })
}

pub(crate) fn call_from(r: &PgRow) -> Res<CallRecord> {
    let caller: String = r.try_get("caller")?;
    let callee: String = r.try_get("callee")?;
    let media: String = r.try_get("media")?;
    let duration: i64 = r.try_get("duration")?;
    let status: i32 = r.try_get("status")?;
    let price: Option<i64> = r.try_get("price")?;
    Ok(CallRecord {
        call_id: r.try_get("call_id")?,
        from_tag: r.try_get("from_tag")?,
        to_tag: r.try_get("to_tag")?,
        caller: SipUri::parse_for("caller", &caller).map_err(|e| corrupt("caller", e))?,
        callee: SipUri::parse_for("callee", &callee).map_err(|e| corrupt("callee", e))?,
        start: from_unix(r.try_get("start_at")?)?,
        stop: from_unix(r.try_get("stop_at")?)?,
        duration: u32_of(duration, "duration")?,
        status: u16::try_from(status).map_err(|e| corrupt("status", e))?,
        media: stored::media(&media),
        proxy_ip: r.try_get("proxy_ip")?,
        price: price.map(Money::from_units),
    })
}
