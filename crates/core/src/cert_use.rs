//! What tells one of an account's certificates from another besides its serial: a **name**
//! (given when it is issued, or later by its owner; by default what it was issued as and for
//! which client, `.p12 for Chrome on Linux`) and **when it was last used** (issue 20).
//!
//! The last use is kept to the minute. Writing it on every request would put a write on every
//! read, so each server keeps the uses it saw in memory ([`CertUses`]) and writes them in one
//! statement a minute ([`crate::Services::record_certificate_uses`], run by the server's
//! timer and when it stops). A list shown by a server adds what that server has not written
//! yet; another server's uses show within a minute. A use lost with a crash makes the shown
//! time at most a minute early: it is a hint for telling certificates apart, not an audit
//! trail (the journal and the logs are that).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::cert::{CertRecord, Serial};
use crate::error::ServiceError;
use crate::ids::printable;

/// Most characters in a certificate's name.
pub const MAX_NAME_CHARS: usize = 64;

/// A certificate name as given: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control
/// characters. The field is `name`.
pub fn check_name(raw: &str) -> Result<String, ServiceError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ServiceError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ServiceError::invalid(
            "name",
            format!("is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "name",
            format!("'{}' holds a control character", printable(name)),
        ));
    }
    Ok(name.to_owned())
}

/// The name a certificate gets when none is given: what it was issued as (`.crt`, `.p12`,
/// `CSR`) and, from the `User-Agent` of the request that asked for it, for which client —
/// `.p12 for Firefox on Windows`, `.crt for curl 8.5.0`, or just `.crt` without one.
pub fn default_name(form: &str, user_agent: Option<&str>) -> String {
    match user_agent.and_then(client_of) {
        Some(client) => format!("{form} for {client}"),
        None => form.to_owned(),
    }
}

/// The name a form field gave (`given`, blank or absent meaning none), else [`default_name`]:
/// what the web page's and the seed actions' downloads are named.
pub fn given_or_default(given: Option<&str>, form: &str, user_agent: Option<&str>) -> String {
    match given.map(str::trim) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => default_name(form, user_agent),
    }
}

/// A short name of the client a `User-Agent` header names: the browser and its system for a
/// browser (`Chrome on Linux`), else the first product with its version (`curl 8.5.0`).
pub fn client_of(user_agent: &str) -> Option<String> {
    let ua = user_agent.trim();
    if ua.is_empty() {
        return None;
    }
    // Order matters: Edge and Opera say Chrome too, Chrome says Safari.
    const BROWSERS: [(&str, &str); 7] = [
        ("Firefox/", "Firefox"),
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Chromium/", "Chromium"),
        ("HeadlessChrome/", "Chrome"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ];
    const SYSTEMS: [(&str, &str); 7] = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ];
    let browser = BROWSERS
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| *name);
    let client = match browser {
        Some(browser) => match SYSTEMS.iter().find(|(token, _)| ua.contains(token)) {
            Some((_, system)) => format!("{browser} on {system}"),
            None => browser.to_owned(),
        },
        None => {
            let product = ua.split_whitespace().next()?;
            product.replacen('/', " ", 1)
        }
    };
    let client: String = client
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS - 12)
        .collect();
    (!client.trim().is_empty()).then_some(client)
}

/// The minute `at` falls in: what a use is kept to.
pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at)
}

/// The certificate uses this server has seen and not written to the store yet, each to the
/// minute.
#[derive(Debug, Default)]
pub struct CertUses {
    pending: Mutex<HashMap<Serial, DateTime<Utc>>>,
}

impl CertUses {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Serial, DateTime<Utc>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that `serial` authenticated a request at `at`.
    pub fn note(&self, serial: &Serial, at: DateTime<Utc>) {
        let minute = minute_of(at);
        let mut pending = self.pending();
        match pending.get_mut(serial) {
            Some(last) if *last >= minute => {}
            Some(last) => *last = minute,
            None => {
                pending.insert(serial.clone(), minute);
            }
        }
    }

    /// Takes every use not written yet, oldest serial first.
    pub fn take(&self) -> Vec<(Serial, DateTime<Utc>)> {
        let mut uses: Vec<_> = std::mem::take(&mut *self.pending()).into_iter().collect();
        uses.sort();
        uses
    }

    /// Puts back uses whose write failed (a later use of the same certificate wins).
    pub fn restore(&self, uses: Vec<(Serial, DateTime<Utc>)>) {
        for (serial, at) in uses {
            self.note(&serial, at);
        }
    }

    /// `records` with what this server has seen and not written yet added to their last use.
    pub fn add_pending(&self, records: &mut [CertRecord]) {
        let pending = self.pending();
        for record in records {
            if let Some(at) = pending.get(&record.serial) {
                record.last_used = record.last_used.max(Some(*at));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_named_as_a_person_would_name_them() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/156.0.0.0 Safari/537.36",
                Some("Chrome on Linux"),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
                Some("Firefox on Windows"),
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                Some("Safari on macOS"),
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like \
                 Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                Some("Edge on Windows"),
            ),
            (
                "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/131.0.0.0 Mobile Safari/537.36",
                Some("Chrome on Android"),
            ),
            ("curl/8.5.0", Some("curl 8.5.0")),
            ("Blink 6.0.4 (Linux)", Some("Blink")),
            ("   ", None),
        ];
        for (ua, want) in cases {
            assert_eq!(client_of(ua).as_deref(), want, "{ua}");
        }
        assert_eq!(
            default_name(".crt", Some("curl/8.5.0")),
            ".crt for curl 8.5.0"
        );
        assert_eq!(default_name(".p12", None), ".p12");
        assert_eq!(given_or_default(Some(" Desk "), ".crt", None), "Desk");
        assert_eq!(
            given_or_default(Some("  "), ".crt", Some("curl/8.5.0")),
            ".crt for curl 8.5.0"
        );
        assert_eq!(given_or_default(None, ".p12", None), ".p12");
    }

    #[test]
    fn a_name_is_trimmed_bounded_and_printable() {
        assert_eq!(check_name("  Laptop  ").ok().as_deref(), Some("Laptop"));
        for bad in ["", "   ", "tab\there", &"x".repeat(MAX_NAME_CHARS + 1)] {
            let e = check_name(bad).expect_err(bad);
            assert!(e.to_string().contains("name"), "{e}");
        }
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
    }

    #[test]
    fn uses_are_kept_to_the_minute_and_the_latest_wins() {
        let uses = CertUses::default();
        let serial = Serial::parse("0A").expect("serial");
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        uses.note(&serial, t("2026-12-06T10:14:59Z"));
        uses.note(&serial, t("2026-12-06T10:13:10Z"));
        assert_eq!(
            uses.take(),
            vec![(serial.clone(), t("2026-12-06T10:14:00Z"))]
        );
        assert!(uses.take().is_empty());
        uses.note(&serial, t("2026-12-06T10:20:01Z"));
        uses.restore(vec![(serial.clone(), t("2026-12-06T10:15:00Z"))]);
        assert_eq!(uses.take(), vec![(serial, t("2026-12-06T10:20:00Z"))]);
    }
}
