//! The settings of an account besides its profile: forwarding ([`Diversions`]), accept rules
//! ([`AcceptRules`]: persistent [`AcceptRule`]s per [`DaysMask`] and one [`TemporaryRule`], of
//! which DND is the `nobody` case), reject patterns ([`RejectPattern`]), voicemail
//! ([`Voicemail`]) and the phonebook ([`PhonebookEntry`]) whose groups accept rules name.

use std::collections::BTreeMap;
use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use chrono::{DateTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::error::ServiceError;
use crate::ids::{Email, printable};
use crate::sip::{Condition, DiversionTarget, MAX_URI_BYTES, SipUri};

/// Forwarding per condition; an absent condition does not forward.
pub type Diversions = BTreeMap<Condition, DiversionTarget>;

/// Days of the week as a bit mask: Mon=1, Tue=2, Wed=4, Thu=8, Fri=16, Sat=32, Sun=64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DaysMask(u8);

impl DaysMask {
    /// Every day.
    pub const EVERY_DAY: DaysMask = DaysMask(127);
    /// Monday to Friday.
    pub const WEEKDAYS: DaysMask = DaysMask(31);
    /// Saturday and Sunday.
    pub const WEEKEND: DaysMask = DaysMask(96);

    /// Parses a mask 1–127, digits only (no sign, no spaces).
    pub fn parse(input: &str) -> Result<Self, ServiceError> {
        let n: u32 = crate::ids::whole_number(input).ok_or_else(|| {
            ServiceError::invalid(
                "days",
                format!(
                    "'{}' is not a number 1–127 (Mon=1 … Sun=64)",
                    printable(input)
                ),
            )
        })?;
        Self::new(n)
    }

    /// A mask from its value, 1–127.
    pub fn new(n: u32) -> Result<Self, ServiceError> {
        match u8::try_from(n) {
            Ok(v) if (1..=127).contains(&v) => Ok(Self(v)),
            _ => Err(ServiceError::invalid(
                "days",
                format!("must be between 1 and 127 (Mon=1 … Sun=64), not {n}"),
            )),
        }
    }

    /// The mask value.
    pub fn value(self) -> u8 {
        self.0
    }

    /// Whether the mask includes a weekday.
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }
}

impl fmt::Display for DaysMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A time of day `HH:MM`, 00:00–23:59.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClockTime(u16);

impl ClockTime {
    /// Parses `HH:MM` for the parameter `field`.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        let bad = || {
            ServiceError::invalid(
                field,
                format!(
                    "'{}' is not a time HH:MM between 00:00 and 23:59",
                    printable(input)
                ),
            )
        };
        let (h, m) = input.trim().split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = crate::ids::whole_number(h).ok_or_else(bad)?;
        let m: u16 = crate::ids::whole_number(m).ok_or_else(bad)?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(Self(h * 60 + m))
    }

    /// From minutes after midnight (0–1439).
    pub fn from_minutes(m: u16) -> Option<Self> {
        (m < 1440).then_some(Self(m))
    }

    /// Minutes after midnight.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// Who an accept rule lets through.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// Every caller.
    Everybody,
    /// No caller.
    Nobody,
    /// Callers listed in this phonebook group.
    Named(String),
}

impl Group {
    /// Parses a group name: `everybody`, `nobody`, or `[a-z0-9][a-z0-9_.-]{0,31}`.
    pub fn parse(input: &str) -> Result<Self, ServiceError> {
        let s = input.trim().to_ascii_lowercase();
        match s.as_str() {
            "everybody" => Ok(Self::Everybody),
            "nobody" => Ok(Self::Nobody),
            _ => {
                let ok = !s.is_empty()
                    && s.len() <= 32
                    && s.as_bytes()[0].is_ascii_alphanumeric()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
                if ok {
                    Ok(Self::Named(s))
                } else {
                    Err(ServiceError::invalid(
                        "groups",
                        format!(
                            "'{}' is not a group name (everybody, nobody, or 1–32 letters, digits, '_', '.', '-')",
                            printable(input)
                        ),
                    ))
                }
            }
        }
    }

    /// Parses a comma-separated list of groups: at least one; `everybody` and `nobody` stand
    /// alone.
    pub fn parse_list(input: &str) -> Result<Vec<Self>, ServiceError> {
        let mut groups = Vec::new();
        for part in input.split(',').filter(|p| !p.trim().is_empty()) {
            let g = Self::parse(part)?;
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        Self::check_list(groups)
    }

    /// Parses a list of group names given one by one (`groups[i]` names a bad one), without
    /// repeats, and checks it as [`Group::check_list`] does.
    pub fn parse_each(list: &[String]) -> Result<Vec<Self>, ServiceError> {
        let mut groups = Vec::new();
        for (i, g) in list.iter().enumerate() {
            let group = Self::parse(g).map_err(|e| e.renamed(&format!("groups[{i}]")))?;
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        Self::check_list(groups)
    }

    /// Checks a list of groups: at least one; `everybody` and `nobody` stand alone.
    pub fn check_list(mut groups: Vec<Self>) -> Result<Vec<Self>, ServiceError> {
        if groups.is_empty() {
            return Err(ServiceError::invalid(
                "groups",
                "must name at least one group",
            ));
        }
        if groups.len() > 1
            && groups
                .iter()
                .any(|g| matches!(g, Self::Everybody | Self::Nobody))
        {
            return Err(ServiceError::invalid(
                "groups",
                "everybody and nobody cannot be combined with other groups",
            ));
        }
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Everybody => "everybody",
            Self::Nobody => "nobody",
            Self::Named(n) => n,
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A persistent accept rule: on the days of `days`, from `start` to `stop` (account time zone;
/// a window with `stop` before `start` crosses midnight and belongs to the day it starts on;
/// `start == stop` is the whole day), only callers in `groups` are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptRule {
    /// The days.
    pub days: DaysMask,
    /// Window start.
    pub start: ClockTime,
    /// Window end.
    pub stop: ClockTime,
    /// Who is accepted in the window.
    pub groups: Vec<Group>,
}

/// The one temporary rule; it overrides the persistent ones until `until` (or until removed
/// when `until` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryRule {
    /// Who is accepted.
    pub groups: Vec<Group>,
    /// When it lapses by itself.
    pub until: Option<DateTime<Utc>>,
}

impl TemporaryRule {
    /// Whether the rule is still in force at `now`.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|u| now < u)
    }

    /// Whole minutes left at `now`, rounded up; `None` for a rule without an end.
    pub fn remaining_minutes(&self, now: DateTime<Utc>) -> Option<i64> {
        self.until.map(|u| {
            let secs = (u - now).num_seconds().max(0);
            (secs + 59) / 60
        })
    }

    /// Whether this is Do Not Disturb (accept nobody).
    pub fn is_dnd(&self) -> bool {
        self.groups == [Group::Nobody]
    }
}

/// All accept rules of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptRules {
    /// Persistent rules, one per days mask, by mask.
    pub persistent: Vec<AcceptRule>,
    /// The temporary rule, if one is stored (it may have lapsed; check [`TemporaryRule::active_at`]).
    pub temporary: Option<TemporaryRule>,
}

impl AcceptRules {
    /// The temporary rule if it is in force at `now`.
    pub fn active_temporary(&self, now: DateTime<Utc>) -> Option<&TemporaryRule> {
        self.temporary.as_ref().filter(|t| t.active_at(now))
    }

    /// Whether DND is on at `now`.
    pub fn dnd_at(&self, now: DateTime<Utc>) -> bool {
        self.active_temporary(now)
            .is_some_and(TemporaryRule::is_dnd)
    }
}

/// A reject pattern: `sip:user@domain`, where `%` matches any run of characters, or
/// `anonymous`, which refuses callers who hide their identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RejectPattern(String);

/// The reject pattern that refuses anonymous callers (RFC 5079's 433 Anonymity Disallowed).
pub const ANONYMOUS: &str = "anonymous";

impl RejectPattern {
    /// Parses a pattern (lower-cased).
    pub fn parse(input: &str) -> Result<Self, ServiceError> {
        let s = input.trim().to_ascii_lowercase();
        let bad =
            |why: &str| ServiceError::invalid("pattern", format!("'{}' {why}", printable(input)));
        if s.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "pattern",
                "contains control characters",
            ));
        }
        if s.len() > MAX_URI_BYTES {
            return Err(ServiceError::invalid(
                "pattern",
                format!("is longer than {MAX_URI_BYTES} bytes"),
            ));
        }
        if s == ANONYMOUS {
            return Ok(Self(s));
        }
        let Some(rest) = s.strip_prefix("sip:") else {
            return Err(bad(
                "must start with sip: (e.g. sip:%0900@% or sip:spam@example.net), or be anonymous",
            ));
        };
        let Some((user, host)) = rest.rsplit_once('@') else {
            return Err(bad("must be of the form sip:user@domain"));
        };
        let chars_ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$,:[]".contains(c))
        };
        if !chars_ok(user) || !chars_ok(host) {
            return Err(bad("has characters that cannot appear in a SIP address"));
        }
        Ok(Self(s))
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `caller` (a SIP URI, compared case-insensitively) matches. The pattern
    /// `anonymous` matches no address: it refuses callers who hide their identity
    /// ([`RejectPattern::refuses_anonymous`]).
    pub fn matches(&self, caller: &str) -> bool {
        self.matches_lowercase(&caller.to_ascii_lowercase())
    }

    /// [`RejectPattern::matches`] for a caller address already lowercased (made once per
    /// decision, however many patterns it is compared with).
    pub(crate) fn matches_lowercase(&self, caller: &str) -> bool {
        !self.refuses_anonymous() && wildcard_match(self.0.as_bytes(), caller.as_bytes())
    }

    /// Whether this is the pattern `anonymous`, which refuses anonymous callers.
    pub fn refuses_anonymous(&self) -> bool {
        self.0 == ANONYMOUS
    }
}

/// Whether `text` matches `pattern`, where `%` matches any run of bytes (the reject patterns'
/// matcher, also the forwarding rules' caller patterns').
pub(crate) fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher for '%' (any run), with backtracking to the last '%'.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'%' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'%' {
        p += 1;
    }
    p == pattern.len()
}

impl fmt::Display for RejectPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How voicemail messages are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailDelivery {
    /// Sent by e-mail, not kept.
    Email,
    /// Sent by e-mail and kept in the mailbox.
    EmailAndStore,
}

impl VoicemailDelivery {
    /// Parses `email` or `email_and_store`.
    pub fn parse(input: &str) -> Result<Self, ServiceError> {
        match input.trim() {
            "email" => Ok(Self::Email),
            "email_and_store" => Ok(Self::EmailAndStore),
            other => Err(ServiceError::invalid(
                "delivery",
                format!("'{}' must be email or email_and_store", printable(other)),
            )),
        }
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::EmailAndStore => "email_and_store",
        }
    }
}

/// An account's voice mailbox.
#[derive(Clone, PartialEq, Eq)]
pub struct Voicemail {
    /// Whether the mailbox answers calls.
    pub enabled: bool,
    /// Delivery mode.
    pub delivery: VoicemailDelivery,
    /// Notification address (defaults to the account's e-mail).
    pub email: Option<Email>,
    /// Argon2id hash of the PIN, never shown.
    pub pin_hash: Option<String>,
}

impl fmt::Debug for Voicemail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Voicemail")
            .field("enabled", &self.enabled)
            .field("delivery", &self.delivery)
            .field("email", &self.email)
            .field("pin", &self.pin_hash.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Checks a voicemail PIN (4–10 digits) and returns its hash.
pub fn hash_pin(input: &str) -> Result<String, ServiceError> {
    if !(4..=10).contains(&input.len()) || !input.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ServiceError::invalid("pin", "must be 4 to 10 digits"));
    }
    let mut salt = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut salt);
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| ServiceError::Internal(format!("salt: {e}")))?;
    Ok(Argon2::default()
        .hash_password(input.as_bytes(), &salt)
        .map_err(|e| ServiceError::Internal(format!("argon2: {e}")))?
        .to_string())
}

/// A phonebook entry: a caller address with a display name and the groups it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhonebookEntry {
    /// The caller's address.
    pub uri: SipUri,
    /// A display name.
    pub name: String,
    /// Named groups (never `everybody`/`nobody`).
    pub groups: Vec<String>,
}

/// Whether `uri` is listed in `phonebook` in group `name` (user parts compared
/// case-insensitively; hosts are lower-cased when parsed).
pub fn in_phonebook_group(phonebook: &[PhonebookEntry], name: &str, uri: &SipUri) -> bool {
    phonebook.iter().any(|e| {
        e.groups.iter().any(|n| n == name)
            && match (e.uri.user(), uri.user()) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                (a, b) => a.is_none() && b.is_none(),
            }
            && e.uri.host() == uri.host()
    })
}

/// Parses phonebook group names (comma-separated or repeated): named groups only.
pub fn parse_phonebook_groups(inputs: &[String]) -> Result<Vec<String>, ServiceError> {
    let mut out = Vec::new();
    for input in inputs {
        for part in input.split(',').filter(|p| !p.trim().is_empty()) {
            match Group::parse(part)? {
                Group::Named(n) => {
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
                other => {
                    return Err(ServiceError::invalid(
                        "group",
                        format!("{other} is not a phonebook group; it is implied"),
                    ));
                }
            }
        }
    }
    if out.is_empty() {
        return Err(ServiceError::invalid(
            "group",
            "must name at least one group",
        ));
    }
    out.sort();
    Ok(out)
}

/// Parses a phonebook address: a SIP URI or `user@host`.
pub fn parse_contact_uri(input: &str) -> Result<SipUri, ServiceError> {
    let s = input.trim();
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        SipUri::parse_for("uri", s)
    } else {
        SipUri::parse_for("uri", &format!("sip:{s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_times_groups() {
        assert!(DaysMask::parse("0").is_err());
        assert!(DaysMask::parse("128").is_err());
        for bad in ["+31", " 31", "31 ", "-1", ""] {
            assert!(DaysMask::parse(bad).is_err(), "{bad}");
        }
        assert!(DaysMask::WEEKDAYS.contains(Weekday::Fri));
        assert!(!DaysMask::WEEKDAYS.contains(Weekday::Sat));
        assert_eq!(
            ClockTime::parse_for("start", "09:05").unwrap().to_string(),
            "09:05"
        );
        for bad in ["24:00", "9:00", "09:60", "0900", "ab:cd", "+9:00", "09:+5"] {
            assert!(ClockTime::parse_for("start", bad).is_err(), "{bad}");
        }
        assert_eq!(Group::parse_list("Family,work").unwrap().len(), 2);
        assert!(Group::parse_list("nobody,family").is_err());
        assert!(Group::parse_list("").is_err());
        assert!(Group::parse_list("bad name").is_err());
    }

    #[test]
    fn reject_patterns_match_with_wildcards() {
        let p = RejectPattern::parse("sip:%0900@%").unwrap();
        assert!(!p.matches("sip:+310900123@example.com"));
        assert!(p.matches("sip:310900@example.com"));
        assert!(
            RejectPattern::parse("sip:%0900%@%")
                .unwrap()
                .matches("sip:+310900123@example.com")
        );
        let exact = RejectPattern::parse("sip:Spam@Example.net").unwrap();
        assert!(exact.matches("sip:spam@example.net"));
        assert!(!exact.matches("sip:spam@example.net.evil"));
        for bad in ["spam@example.net", "sip:spam", "sip:sp am@x", "sip:\u{1}@x"] {
            assert!(RejectPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pins_are_hashed() {
        let h = hash_pin("1234").unwrap();
        assert!(!h.contains("1234"));
        assert!(hash_pin("12").is_err());
        assert!(hash_pin("12345678901").is_err());
        assert!(hash_pin("12a4").is_err());
    }

    #[test]
    fn temporary_rule_remaining_minutes_round_up() {
        let now = Utc::now();
        let t = TemporaryRule {
            groups: vec![Group::Nobody],
            until: Some(now + chrono::Duration::seconds(61)),
        };
        assert_eq!(t.remaining_minutes(now), Some(2));
        assert!(t.active_at(now));
        assert!(!t.active_at(now + chrono::Duration::seconds(61)));
        assert!(t.is_dnd());
    }
}
