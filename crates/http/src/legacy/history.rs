//! The reply of `get_history` as Blink Cocoa imports it (issue 18, point 4): object C's calls
//! with the two fields Blink reads differently from the documented `calls`.
//!
//! Blink Cocoa polls `settings.phtml?action=get_history&realm=…` every 300 s and imports the
//! reply in `HistoryManager.py`, `SessionHistoryReplicator.syncServerHistoryWithLocalHistory`:
//!
//! * `remoteParty` goes through `sipuri_components_from_string` (which keeps any scheme) into
//!   the session history's `remote_uri`, the key of the recent-calls contacts, and into
//!   `SIPURI.parse('sip:'+str(remote_uri))` for the missed-call notification. Blink records its
//!   own calls as `format_identity_to_string(target_uri).lower()`, `user@host`. So here it is
//!   `user@host` lower-cased: no scheme (`sip:`/`sips:`), no port (a URI without a user part is
//!   its host). With the scheme, each remote party was a second contact, and the notification
//!   parsed `sip:sip:…`.
//! * `status` is compared as text: `'cancelled' if status == "487" else 'failed'`. So it is the
//!   SIP final code as a JSON string (`"487"`), as CDRTool's SOAP reply carried it.
//!
//! Everything else (`duration` a number, which Blink compares with `> 0`; the local times with
//! `timezone`; `sessionId` and `fromTag`, Blink's key against importing a call twice; `media`)
//! is object C's call as is, extra keys included.

use serde_json::Value;
use sip_settings_core::Account;
use sip_settings_core::calls::CallRecord;
use sip_settings_core::sip::SipUri;

use crate::legacy::objects;

/// `remoteParty` as Blink keys its contacts: `user@host`, lower-cased, without scheme or port.
pub fn remote_party(uri: &SipUri) -> String {
    match uri.user() {
        Some(user) => format!("{user}@{}", uri.host()).to_lowercase(),
        None => uri.host().to_lowercase(),
    }
}

fn entry(account: &Account, c: &CallRecord, placed: bool) -> Value {
    let mut v = objects::call(account, c, placed);
    if let Value::Object(map) = &mut v {
        // Same keys, same order as object C (preserve_order: insert keeps a key's place).
        let remote = if placed { &c.callee } else { &c.caller };
        map.insert(
            "remoteParty".to_owned(),
            Value::String(remote_party(remote)),
        );
        map.insert("status".to_owned(), Value::String(c.status.to_string()));
    }
    v
}

/// The `get_history` reply: `{"placed": [...], "received": [...]}`, newest first, each call as
/// in object C but with `remoteParty` as [`remote_party`] and `status` a string.
pub fn history(account: &Account, placed: &[CallRecord], received: &[CallRecord]) -> Value {
    serde_json::json!({
        "placed": placed.iter().map(|c| entry(account, c, true)).collect::<Vec<_>>(),
        "received": received.iter().map(|c| entry(account, c, false)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn uri(s: &str) -> SipUri {
        SipUri::parse_for("test", s).unwrap()
    }

    #[test]
    fn remote_party_is_the_address_blink_records_for_its_own_calls() {
        for (given, shown) in [
            ("sip:bob@example.com", "bob@example.com"),
            ("sips:bob@example.com", "bob@example.com"),
            ("sip:Bob@Example.COM:5061", "bob@example.com"),
            ("sip:+31201234567@example.com", "+31201234567@example.com"),
            ("sip:example.org", "example.org"),
            ("sip:carol@[2001:db8::1]:5060", "carol@[2001:db8::1]"),
        ] {
            assert_eq!(remote_party(&uri(given)), shown, "{given}");
        }
    }
}
