//! The reply objects of the compatibility endpoint besides A: D (diversions), R (accept rules)
//! and V (voicemail), keys in the order the specification lists them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use sip_settings_core::Account;
use sip_settings_core::calls::{CallRecord, HistoryEntry, PrepaidSession};
use sip_settings_core::money::Money;
use sip_settings_core::settings::{AcceptRules, Diversions, Group, Voicemail};
use sip_settings_core::sip::Condition;

/// Object D, with the added key `"rules": true` when the account's forwarding rules say more
/// than the five conditions (issue 19; absent otherwise, so that the seed's object is unchanged
/// for every account without such rules).
pub fn diversions(diversions: &Diversions, no_answer_timeout: u32, richer: bool) -> Value {
    let mut map = Map::new();
    for c in Condition::ALL {
        let v = diversions
            .get(&c)
            .map_or(Value::Null, |t| Value::String(t.shown()));
        map.insert(c.code().to_owned(), v);
    }
    map.insert("no_answer_timeout".to_owned(), json!(no_answer_timeout));
    if richer {
        map.insert("rules".to_owned(), Value::Bool(true));
    }
    Value::Object(map)
}

fn names(groups: &[Group]) -> Vec<&str> {
    groups.iter().map(Group::name).collect()
}

/// Object R at `now`: a lapsed temporary rule shows as none.
pub fn accept(rules: &AcceptRules, phonebook_groups: &[String], now: DateTime<Utc>) -> Value {
    let mut persistent = Map::new();
    for r in &rules.persistent {
        persistent.insert(
            r.days.to_string(),
            json!({"start": r.start.to_string(), "stop": r.stop.to_string(), "groups": names(&r.groups)}),
        );
    }
    let temporary = match rules.active_temporary(now) {
        Some(t) => json!({
            "groups": names(&t.groups),
            "duration": t.remaining_minutes(now),
            "until": t.until.map(|u| u.to_rfc3339_opts(SecondsFormat::Secs, true)),
        }),
        None => json!({"groups": [], "duration": 0, "until": null}),
    };
    json!({"persistent": persistent, "temporary": temporary, "groups": phonebook_groups})
}

/// Object V (never the PIN).
pub fn voicemail(account: &Account, v: &Voicemail) -> Value {
    let name = format!(
        "{} {}",
        account.profile.first_name, account.profile.last_name
    );
    let email = v
        .email
        .as_ref()
        .or(account.profile.email.as_ref())
        .map(ToString::to_string)
        .unwrap_or_default();
    json!({
        "mailbox": account.id.to_string(),
        "email": email,
        "delivery": v.delivery.as_str(),
        "enabled": v.enabled,
        "name": name.trim(),
    })
}

/// A time in the account's zone, `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(account: &Account, t: DateTime<Utc>) -> String {
    t.with_timezone(&account.profile.timezone.tz())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One call of object C (`placed`: the remote party is the callee, and `price` is shown).
pub fn call(account: &Account, c: &CallRecord, placed: bool) -> Value {
    let remote = if placed { &c.callee } else { &c.caller };
    let mut v = json!({
        "remoteParty": remote.to_string(),
        "displayName": "",
        "startTime": local_time(account, c.start),
        "stopTime": local_time(account, c.stop),
        "timezone": account.profile.timezone.name(),
        "duration": c.duration,
        "status": c.status,
    });
    if let Value::Object(map) = &mut v {
        if placed {
            map.insert(
                "price".to_owned(),
                c.price
                    .map_or(Value::Null, |p| Value::String(p.to_string())),
            );
        }
        map.insert("sessionId".to_owned(), json!(c.call_id));
        map.insert("fromTag".to_owned(), json!(c.from_tag));
        map.insert("toTag".to_owned(), json!(c.to_tag));
        map.insert("proxyIP".to_owned(), json!(c.proxy_ip));
        map.insert("media".to_owned(), json!(c.media));
        map.insert("startTimeUtc".to_owned(), json!(utc(c.start)));
        map.insert("stopTimeUtc".to_owned(), json!(utc(c.stop)));
    }
    v
}

/// Object C.
pub fn calls(account: &Account, placed: &[CallRecord], received: &[CallRecord]) -> Value {
    json!({
        "placed": placed.iter().map(|c| call(account, c, true)).collect::<Vec<_>>(),
        "received": received.iter().map(|c| call(account, c, false)).collect::<Vec<_>>(),
    })
}

/// The registered devices (`get_devices`), most recently registered first: each
/// `{contact, userAgent, transport, sourceAddress, registeredAt, expiresAt, expires}` with the
/// times in the account's time zone (`registeredAtUtc`/`expiresAtUtc` in RFC 3339) and
/// `expires` the seconds left.
pub fn devices(
    account: &Account,
    devices: &[sip_settings_core::devices::Device],
    now: DateTime<Utc>,
) -> Value {
    Value::Array(
        devices
            .iter()
            .map(|d| {
                json!({
                    "contact": d.contact,
                    "userAgent": d.user_agent,
                    "transport": d.transport,
                    "sourceAddress": d.source,
                    "registeredAt": local_time(account, d.registered_at),
                    "expiresAt": local_time(account, d.expires_at),
                    "timezone": account.profile.timezone.name(),
                    "expires": d.expires_in(now),
                    "registeredAtUtc": utc(d.registered_at),
                    "expiresAtUtc": utc(d.expires_at),
                })
            })
            .collect(),
    )
}

/// Object P. `balance` is a JSON number written from the exact decimal (four decimals), never
/// through floating point.
#[derive(Debug, Serialize)]
pub struct PrepaidObject {
    balance: Box<RawValue>,
    currency: String,
    active_calls: Vec<Value>,
    prepaid: bool,
}

fn number(m: Money) -> Box<RawValue> {
    // A Money prints as `-?digits.dddd`, always a valid JSON number.
    RawValue::from_string(m.to_string()).unwrap_or_else(|_| {
        RawValue::from_string("0".to_owned()).unwrap_or_else(|_| unreachable!("0 is JSON"))
    })
}

/// Object P. A postpaid account shows balance 0 and no active calls.
pub fn prepaid(
    account: &Account,
    balance: Money,
    sessions: &[PrepaidSession],
    currency: &str,
    now: DateTime<Utc>,
) -> PrepaidObject {
    if !account.prepaid {
        return PrepaidObject {
            balance: number(Money::ZERO),
            currency: currency.to_owned(),
            active_calls: vec![],
            prepaid: false,
        };
    }
    let active: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "sessionId": s.call_id,
                "destination": s.destination.to_string(),
                "startTime": local_time(account, s.opened_at),
                "maxSessionTime": s.max_session_time,
                "elapsed": (now - s.opened_at).num_seconds().max(0),
            })
        })
        .collect();
    PrepaidObject {
        balance: number(balance),
        currency: currency.to_owned(),
        active_calls: active,
        prepaid: true,
    }
}

/// Array H.
pub fn history(account: &Account, entries: &[HistoryEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|h| {
                json!({
                    "date": local_time(account, h.at),
                    "dateUtc": utc(h.at),
                    "action": h.action,
                    "description": h.description,
                    "value": h.value.signed(),
                    "balance": h.balance.to_string(),
                    "session": h.session,
                })
            })
            .collect(),
    )
}

/// The balance history as RFC 4180 CSV.
pub fn history_csv(account: &Account, entries: &[HistoryEntry]) -> Result<String, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record([
        "Id",
        "Account",
        "Date",
        "Action",
        "Description",
        "Value",
        "Final Balance",
    ])?;
    for h in entries {
        w.write_record([
            h.id.to_string(),
            account.id.to_string(),
            local_time(account, h.at),
            h.action.clone(),
            h.description.clone(),
            h.value.signed(),
            h.balance.to_string(),
        ])?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
