//! The reply objects of the compatibility endpoint besides A: D (diversions), R (accept rules)
//! and V (voicemail), keys in the order the specification lists them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sip_settings_core::Account;
use sip_settings_core::settings::{AcceptRules, Diversions, Group, Voicemail};
use sip_settings_core::sip::Condition;

/// Object D.
pub fn diversions(diversions: &Diversions, no_answer_timeout: u32) -> Value {
    let mut map = Map::new();
    for c in Condition::ALL {
        let v = diversions
            .get(&c)
            .map_or(Value::Null, |t| Value::String(t.shown()));
        map.insert(c.code().to_owned(), v);
    }
    map.insert("no_answer_timeout".to_owned(), json!(no_answer_timeout));
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
