//! Accounts: [`Account`] as stored and shown, its editable [`AccountProfile`], and the partial
//! [`AccountUpdate`] used by `account add` and `account set`.

use chrono::{DateTime, Utc};

use crate::error::ServiceError;
use crate::ids::{AccountId, E164, Email, TimeZone, printable};

/// Default seconds a call rings before `FNOA` applies.
pub const DEFAULT_NO_ANSWER_TIMEOUT: u32 = 35;
/// Allowed range of the no-answer timeout, in seconds.
pub const NO_ANSWER_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 5..=900;

/// The fields of an account that the operator (and partly the subscriber) edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProfile {
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Notification e-mail address.
    pub email: Option<Email>,
    /// Time zone in which times are shown and accept rules are evaluated.
    pub timezone: TimeZone,
    /// Mobile number, the `<mobile-number>` forwarding target.
    pub mobile: Option<E164>,
    /// The caller id shown on calls to the PSTN.
    pub pstn_caller_id: Option<E164>,
    /// Language tag (`en`, `nl`, `pt-BR`).
    pub language: String,
    /// Seconds a call rings before `FNOA` applies (5–900).
    pub no_answer_timeout: u32,
    /// Quick-dial prefix, if the operator set one.
    pub quick_dial: Option<String>,
}

impl Default for AccountProfile {
    fn default() -> Self {
        Self {
            first_name: String::new(),
            last_name: String::new(),
            email: None,
            timezone: TimeZone::default(),
            mobile: None,
            pstn_caller_id: None,
            language: "en".to_owned(),
            no_answer_timeout: DEFAULT_NO_ANSWER_TIMEOUT,
            quick_dial: None,
        }
    }
}

/// A SIP account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `user@domain`.
    pub id: AccountId,
    /// Editable fields.
    pub profile: AccountProfile,
    /// Caller-id privacy on outgoing calls.
    pub privacy: bool,
    /// Whether calls are paid from a prepaid balance.
    pub prepaid: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// A partial change of the profile, each field already parsed. `Some(None)` clears an optional
/// field.
#[derive(Debug, Clone, Default)]
pub struct AccountUpdate {
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// New e-mail (or cleared).
    pub email: Option<Option<Email>>,
    /// New time zone.
    pub timezone: Option<TimeZone>,
    /// New mobile number (or cleared).
    pub mobile: Option<Option<E164>>,
    /// New PSTN caller id (or cleared).
    pub pstn_caller_id: Option<Option<E164>>,
    /// New language.
    pub language: Option<String>,
    /// New no-answer timeout.
    pub no_answer_timeout: Option<u32>,
    /// New prepaid flag.
    pub prepaid: Option<bool>,
}

impl AccountUpdate {
    /// Applies the update to a profile.
    pub fn apply(&self, profile: &mut AccountProfile) {
        if let Some(v) = &self.first_name {
            profile.first_name = v.clone();
        }
        if let Some(v) = &self.last_name {
            profile.last_name = v.clone();
        }
        if let Some(v) = &self.email {
            profile.email = v.clone();
        }
        if let Some(v) = self.timezone {
            profile.timezone = v;
        }
        if let Some(v) = &self.mobile {
            profile.mobile = v.clone();
        }
        if let Some(v) = &self.pstn_caller_id {
            profile.pstn_caller_id = v.clone();
        }
        if let Some(v) = &self.language {
            profile.language = v.clone();
        }
        if let Some(v) = self.no_answer_timeout {
            profile.no_answer_timeout = v;
        }
    }
}

/// Parses a person's name field: at most 64 characters, no control characters.
pub fn parse_name(field: &str, input: &str) -> Result<String, ServiceError> {
    let s = input.trim();
    if s.chars().count() > 64 {
        return Err(ServiceError::invalid(
            field,
            "must be at most 64 characters long",
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(s.to_owned())
}

/// Parses a language tag: a 2–3 letter language, optionally `-` and a 2-letter region or 4-letter
/// script (`en`, `nl`, `pt-BR`, `zh-Hant`).
pub fn parse_language(input: &str) -> Result<String, ServiceError> {
    let s = input.trim();
    let mut parts = s.split('-');
    let lang = parts.next().unwrap_or_default();
    let lang_ok = (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_alphabetic());
    let rest_ok = parts
        .all(|p| (p.len() == 2 || p.len() == 4) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if lang_ok && rest_ok && s.matches('-').count() <= 1 {
        Ok(s.to_owned())
    } else {
        Err(ServiceError::invalid(
            "language",
            format!(
                "'{}' is not a language tag such as en, nl or pt-BR",
                printable(input)
            ),
        ))
    }
}

/// Parses the no-answer timeout in seconds (5–900), digits only (no sign, no spaces).
pub fn parse_no_answer_timeout(input: &str) -> Result<u32, ServiceError> {
    let field = "no_answer_timeout";
    let n: u32 = crate::ids::whole_number(input).ok_or_else(|| {
        ServiceError::invalid(
            field,
            format!("'{}' is not a whole number of seconds", printable(input)),
        )
    })?;
    check_no_answer_timeout(n)
}

/// Checks the no-answer timeout range.
pub fn check_no_answer_timeout(n: u32) -> Result<u32, ServiceError> {
    if NO_ANSWER_TIMEOUT_RANGE.contains(&n) {
        Ok(n)
    } else {
        Err(ServiceError::invalid(
            "no_answer_timeout",
            format!(
                "must be between {} and {} seconds, not {n}",
                NO_ANSWER_TIMEOUT_RANGE.start(),
                NO_ANSWER_TIMEOUT_RANGE.end()
            ),
        ))
    }
}

/// Checks that an account id names an account in `account` (used by the subscriber endpoint's
/// `account=` parameter, which older clients send).
pub fn same_account(own: &AccountId, named: &str) -> Result<(), ServiceError> {
    let named = AccountId::parse(named)?;
    if &named == own {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "a certificate may act on its own account only".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_and_timeouts() {
        for ok in ["en", "nl", "pt-BR", "zh-Hant"] {
            assert!(parse_language(ok).is_ok(), "{ok}");
        }
        for bad in ["", "e", "english", "en-", "en-US-x", "e1"] {
            assert!(parse_language(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_no_answer_timeout("35").unwrap(), 35);
        assert!(parse_no_answer_timeout("4").is_err());
        assert!(parse_no_answer_timeout("901").is_err());
        assert!(parse_no_answer_timeout("-5").is_err());
    }

    #[test]
    fn same_account_rule() {
        let own = AccountId::parse("alice@example.com").unwrap();
        assert!(same_account(&own, "Alice@example.com").is_ok());
        assert!(matches!(
            same_account(&own, "bob@example.com"),
            Err(ServiceError::Forbidden(_))
        ));
    }
}
