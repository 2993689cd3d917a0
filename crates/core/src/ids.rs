//! Identifiers of the SIP world, each parsed once at the edge: [`Domain`], [`UserPart`],
//! [`AccountId`] (`user@domain`), [`E164`] numbers, [`Email`] addresses and IANA [`TimeZone`]s.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ServiceError;

/// A SIP domain served by this installation: a lower-case DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    /// Parses a DNS name (case-insensitive; stored lower-case).
    pub fn parse(input: &str) -> Result<Self, ServiceError> {
        let invalid = |reason: &str| {
            ServiceError::invalid("domain", format!("'{}' {reason}", printable(input)))
        };
        let s = input.trim().to_ascii_lowercase();
        if s.is_empty() {
            return Err(ServiceError::invalid("domain", "is empty"));
        }
        if s.len() > 253 {
            return Err(invalid("is longer than 253 characters"));
        }
        if !s.contains('.') && s != "localhost" {
            return Err(invalid(
                "is not a fully qualified domain name (it has no dot)",
            ));
        }
        for label in s.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(invalid(
                    "has an empty label or one longer than 63 characters",
                ));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(invalid("may contain only letters, digits, '-' and '.'"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid("has a label that starts or ends with '-'"));
            }
        }
        Ok(Self(s))
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Domain {
    type Error = ServiceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Domain> for String {
    fn from(value: Domain) -> Self {
        value.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The user part of an account or alias: `[a-z0-9][a-z0-9._-]{0,63}`, stored lower-case.
///
/// This is the alias rule of the specification, applied to account names as well so that an
/// account and an alias can never be confused by case or by characters that need escaping in a
/// SIP URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserPart(String);

impl UserPart {
    /// Parses a user part for the parameter named `field` (used in the error message).
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        let s = input.to_ascii_lowercase();
        if s.is_empty() {
            return Err(ServiceError::invalid(field, "is empty"));
        }
        if s.len() > 64 {
            return Err(ServiceError::invalid(
                field,
                format!("'{}' is longer than 64 characters", printable(input)),
            ));
        }
        let bytes = s.as_bytes();
        let first_ok = bytes[0].is_ascii_alphanumeric();
        let rest_ok = bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !first_ok || !rest_ok {
            return Err(ServiceError::invalid(
                field,
                format!(
                    "'{}' must start with a letter or digit and contain only letters, digits, '.', '_' and '-'",
                    printable(input)
                ),
            ));
        }
        Ok(Self(s))
    }

    /// Parses a user part (errors name the parameter `user`).
    pub fn parse(input: &str) -> Result<Self, ServiceError> {
        Self::parse_for("user", input)
    }

    /// The user part as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserPart {
    type Error = ServiceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserPart> for String {
    fn from(value: UserPart) -> Self {
        value.0
    }
}

impl fmt::Display for UserPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SIP account `user@domain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId {
    user: UserPart,
    domain: Domain,
}

impl AccountId {
    /// Builds an account id from its parts.
    pub fn new(user: UserPart, domain: Domain) -> Self {
        Self { user, domain }
    }

    /// Parses `user@domain` (an optional `sip:` prefix is accepted), for the parameter `field`.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        let trimmed = input.trim();
        let without_scheme = trimmed
            .strip_prefix("sip:")
            .or_else(|| trimmed.strip_prefix("SIP:"))
            .unwrap_or(trimmed);
        let Some((user, domain)) = without_scheme.rsplit_once('@') else {
            return Err(ServiceError::invalid(
                field,
                format!("'{}' is not of the form user@domain", printable(input)),
            ));
        };
        let user = UserPart::parse_for(field, user)?;
        let domain = Domain::parse(domain).map_err(|e| e.renamed(field))?;
        Ok(Self { user, domain })
    }

    /// Parses `user@domain` (errors name the parameter `account`).
    pub fn parse(input: &str) -> Result<Self, ServiceError> {
        Self::parse_for("account", input)
    }

    /// The user part.
    pub fn user(&self) -> &UserPart {
        &self.user
    }

    /// The domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// `sip:user@domain`.
    pub fn sip_uri(&self) -> String {
        format!("sip:{self}")
    }
}

impl FromStr for AccountId {
    type Err = ServiceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for AccountId {
    type Error = ServiceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<AccountId> for String {
    fn from(value: AccountId) -> Self {
        value.to_string()
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

/// An E.164 telephone number in canonical form `+` followed by 2–15 digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

impl E164 {
    /// Parses `+E164` for the parameter `field`. Spaces, dots, dashes and parentheses, as people
    /// write numbers, are removed first.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        let cleaned: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let Some(digits) = cleaned.strip_prefix('+') else {
            return Err(ServiceError::invalid(
                field,
                format!(
                    "'{}' is not an E.164 number: it must start with '+'",
                    printable(input)
                ),
            ));
        };
        let ok = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(ServiceError::invalid(
                field,
                format!(
                    "'{}' is not an E.164 number: '+' then 2 to 15 digits, the first not 0",
                    printable(input)
                ),
            ));
        }
        Ok(Self(cleaned))
    }

    /// The number with its leading `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl TryFrom<String> for E164 {
    type Error = ServiceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_for("number", &value)
    }
}

impl From<E164> for String {
    fn from(value: E164) -> Self {
        value.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address: `local@domain`, at most 254 bytes, no spaces or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Parses an e-mail address for the parameter `field`.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        let s = input.trim();
        let bad = || {
            ServiceError::invalid(
                field,
                format!("'{}' is not an e-mail address", printable(input)),
            )
        };
        if s.len() > 254 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad());
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(bad());
        };
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(bad());
        }
        Domain::parse(domain).map_err(|_| bad())?;
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = ServiceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_for("email", &value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IANA time zone such as `Europe/Amsterdam`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    /// Parses an IANA time zone name for the parameter `field`.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        input
            .trim()
            .parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| {
                ServiceError::invalid(
                    field,
                    format!(
                        "'{}' is not an IANA time zone name (e.g. Europe/Amsterdam)",
                        printable(input)
                    ),
                )
            })
    }

    /// The zone, for date arithmetic.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }

    /// The IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        Self(chrono_tz::Tz::UTC)
    }
}

impl TryFrom<String> for TimeZone {
    type Error = ServiceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_for("timezone", &value)
    }
}

impl From<TimeZone> for String {
    fn from(value: TimeZone) -> Self {
        value.name().to_owned()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Renders untrusted input for an error message: control characters are escaped and long input
/// is cut, so that a message can never carry a terminal escape or a megabyte of junk.
pub fn printable(input: &str) -> String {
    let mut out = String::new();
    for (i, c) in input.chars().enumerate() {
        if i >= 80 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses a whole number written with the ASCII digits `0`–`9` only: no sign, no spaces, no
/// separators, at least one digit. `None` when the text is not such a number or it does not fit
/// `T`. (Rust's own `parse` takes a leading `+`, so `duration=%2B5` would pass as 5.)
pub fn whole_number<T: std::str::FromStr>(input: &str) -> Option<T> {
    if input.is_empty() || !input.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    input.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_digits_only() {
        assert_eq!(whole_number::<u32>("5"), Some(5));
        assert_eq!(whole_number::<u32>("0042"), Some(42));
        for bad in ["", "+5", "-5", " 5", "5 ", "5_0", "٥", "1e3", "4294967296"] {
            assert_eq!(whole_number::<u32>(bad), None, "{bad}");
        }
    }

    #[test]
    fn account_ids_parse_and_lower_case() {
        let id = AccountId::parse("Alice@Example.COM").unwrap();
        assert_eq!(id.to_string(), "alice@example.com");
        assert_eq!(
            AccountId::parse("sip:bob@example.com")
                .unwrap()
                .user()
                .as_str(),
            "bob"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "al ice@example.com",
            "-a@example.com",
            "a@exa_mple.com",
            "a@com",
        ] {
            assert!(AccountId::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn e164_numbers() {
        assert_eq!(
            E164::parse_for("n", "+31 20 123-4567").unwrap().as_str(),
            "+31201234567"
        );
        for bad in ["31201234567", "+0123", "+1", "+1234567890123456", "+12a4"] {
            assert!(E164::parse_for("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_and_emails() {
        assert_eq!(
            TimeZone::parse_for("tz", "Europe/Amsterdam")
                .unwrap()
                .name(),
            "Europe/Amsterdam"
        );
        assert!(TimeZone::parse_for("tz", "Mars/Olympus").is_err());
        assert!(Email::parse_for("email", "a@b.example").is_ok());
        assert!(Email::parse_for("email", "a b@b.example").is_err());
        assert!(Email::parse_for("email", "ab.example").is_err());
    }

    #[test]
    fn printable_escapes_controls() {
        assert_eq!(printable("a\u{1b}[31m"), "a\\u{1b}[31m");
    }
}
