//! The stored form of core types, shared by every store. A store reads the columns as its
//! database keeps them into an [`AccountRow`] or a [`CertRow`] (or hands over the text of a
//! forwarding entry, a group list, a time of day); this module parses them again with core's
//! own parsers. A corrupt value is [`StoreError::Other`] naming the column, never a panic, and
//! the rule is the same on SQLite, PostgreSQL and the inline SQLite reads.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::account::{Account, AccountProfile};
use crate::cert::{CertRecord, CertRole, Serial};
use crate::error::StoreError;
use crate::ids::{AccountId, E164, Email, TimeZone};
use crate::settings::{ClockTime, Group};
use crate::sip::{Condition, DiversionTarget};

/// A stored value that does not parse.
pub fn corrupt(what: &str, e: impl fmt::Display) -> StoreError {
    StoreError::Other(format!("stored {what} is invalid: {e}"))
}

/// The address kept as a user part and a domain.
pub fn address(user: &str, domain: &str) -> Result<AccountId, StoreError> {
    AccountId::parse(&format!("{user}@{domain}")).map_err(|e| corrupt("address", e))
}

/// The columns of an account as stored.
#[derive(Debug, Clone)]
pub struct AccountRow {
    /// `username`.
    pub username: String,
    /// `domain`.
    pub domain: String,
    /// `first_name`.
    pub first_name: String,
    /// `last_name`.
    pub last_name: String,
    /// `email`.
    pub email: Option<String>,
    /// `timezone`.
    pub timezone: String,
    /// `mobile`.
    pub mobile: Option<String>,
    /// `pstn_caller_id`.
    pub pstn_caller_id: Option<String>,
    /// `language`.
    pub language: String,
    /// `no_answer_timeout`.
    pub no_answer_timeout: i64,
    /// `quick_dial`.
    pub quick_dial: Option<String>,
    /// `privacy`.
    pub privacy: bool,
    /// `prepaid`.
    pub prepaid: bool,
    /// `created_at`.
    pub created_at: DateTime<Utc>,
}

impl AccountRow {
    /// The account these columns hold.
    pub fn parse(self) -> Result<Account, StoreError> {
        let number = |field: &str, v: Option<String>| {
            v.map(|s| E164::parse_for(field, &s))
                .transpose()
                .map_err(|e| corrupt(field, e))
        };
        Ok(Account {
            id: address(&self.username, &self.domain)?,
            profile: AccountProfile {
                first_name: self.first_name,
                last_name: self.last_name,
                email: self
                    .email
                    .map(|e| Email::parse_for("email", &e))
                    .transpose()
                    .map_err(|e| corrupt("email", e))?,
                timezone: TimeZone::parse_for("timezone", &self.timezone)
                    .map_err(|e| corrupt("timezone", e))?,
                mobile: number("mobile", self.mobile)?,
                pstn_caller_id: number("pstn_caller_id", self.pstn_caller_id)?,
                language: self.language,
                no_answer_timeout: u32::try_from(self.no_answer_timeout)
                    .map_err(|e| corrupt("no_answer_timeout", e))?,
                quick_dial: self.quick_dial,
            },
            privacy: self.privacy,
            prepaid: self.prepaid,
            created_at: self.created_at,
        })
    }
}

/// The columns of a certificate record as stored.
#[derive(Debug, Clone)]
pub struct CertRow {
    /// `serial`.
    pub serial: String,
    /// `subject`.
    pub subject: String,
    /// `role`.
    pub role: String,
    /// `account`.
    pub account: Option<String>,
    /// `fingerprint`.
    pub fingerprint: String,
    /// `not_before`.
    pub not_before: DateTime<Utc>,
    /// `not_after`.
    pub not_after: DateTime<Utc>,
    /// `issued_at`.
    pub issued_at: DateTime<Utc>,
    /// `revoked_at`.
    pub revoked_at: Option<DateTime<Utc>>,
    /// `name`.
    pub name: Option<String>,
    /// `last_used_at`.
    pub last_used: Option<DateTime<Utc>>,
}

impl CertRow {
    /// The certificate record these columns hold.
    pub fn parse(self) -> Result<CertRecord, StoreError> {
        Ok(CertRecord {
            serial: Serial::parse(&self.serial).map_err(|e| corrupt("serial", e))?,
            subject: self.subject,
            role: CertRole::parse(&self.role).ok_or_else(|| corrupt("role", &self.role))?,
            account: self
                .account
                .map(|a| AccountId::parse(&a))
                .transpose()
                .map_err(|e| corrupt("certificate account", e))?,
            fingerprint: self.fingerprint,
            not_before: self.not_before,
            not_after: self.not_after,
            issued_at: self.issued_at,
            revoked_at: self.revoked_at,
            name: self.name,
            last_used: self.last_used,
        })
    }
}

/// One forwarding entry kept as its condition code and target text.
pub fn diversion(
    condition: &str,
    target: &str,
) -> Result<(Condition, DiversionTarget), StoreError> {
    let c = Condition::from_code(condition).ok_or_else(|| corrupt("condition", condition))?;
    let t = DiversionTarget::from_stored(target).map_err(|e| corrupt("diversion target", e))?;
    Ok((c, t))
}

/// Groups kept as their names, comma-joined.
pub fn join_groups(groups: &[Group]) -> String {
    groups.iter().map(Group::name).collect::<Vec<_>>().join(",")
}

/// Groups as [`join_groups`] keeps them.
pub fn groups(stored: &str) -> Result<Vec<Group>, StoreError> {
    Group::parse_list(stored).map_err(|e| corrupt("groups", e))
}

/// The items of a comma-joined list, empty ones dropped.
fn items(stored: &str) -> impl Iterator<Item = &str> {
    stored.split(',').filter(|item| !item.is_empty())
}

/// A phonebook entry's groups kept as their names, comma-joined.
pub fn join_phonebook_groups(groups: &[String]) -> String {
    groups.join(",")
}

/// A phonebook entry's groups as [`join_phonebook_groups`] keeps them. Each is a named group as
/// [`crate::settings::parse_phonebook_groups`] makes it (lower case, never `everybody` or
/// `nobody`); anything else is a corrupt row.
pub fn phonebook_groups(stored: &str) -> Result<Vec<String>, StoreError> {
    items(stored)
        .map(|item| match Group::parse(item) {
            Ok(Group::Named(name)) if name == item => Ok(name),
            _ => Err(corrupt("phonebook group", item)),
        })
        .collect()
}

/// A call's media kept comma-joined.
pub fn join_media(media: &[String]) -> String {
    media.join(",")
}

/// A call's media as [`join_media`] keeps them.
pub fn media(stored: &str) -> Vec<String> {
    items(stored).map(str::to_owned).collect()
}

/// A time of day kept as minutes after midnight.
pub fn minute(m: i64) -> Result<ClockTime, StoreError> {
    u16::try_from(m)
        .ok()
        .and_then(ClockTime::from_minutes)
        .ok_or_else(|| corrupt("time of day", m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account_row() -> AccountRow {
        AccountRow {
            username: "alice".into(),
            domain: "example.com".into(),
            first_name: "Alice".into(),
            last_name: String::new(),
            email: Some("alice@example.org".into()),
            timezone: "Europe/Amsterdam".into(),
            mobile: Some("+31612345678".into()),
            pstn_caller_id: None,
            language: "en".into(),
            no_answer_timeout: 20,
            quick_dial: None,
            privacy: true,
            prepaid: false,
            created_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_good_account_row_parses() {
        let a = account_row().parse().unwrap();
        assert_eq!(a.id.to_string(), "alice@example.com");
        assert_eq!(a.profile.mobile.unwrap().to_string(), "+31612345678");
        assert!(a.privacy);
    }

    #[test]
    fn a_corrupt_column_is_an_error_naming_it() {
        type Spoil = fn(&mut AccountRow);
        let cases: [(&str, Spoil); 5] = [
            ("address", |r| r.username = "Not Valid".into()),
            ("email", |r| r.email = Some("nope".into())),
            ("timezone", |r| r.timezone = "Mars/Base".into()),
            ("mobile", |r| r.mobile = Some("12".into())),
            ("no_answer_timeout", |r| r.no_answer_timeout = -1),
        ];
        for (column, spoil) in cases {
            let mut row = account_row();
            spoil(&mut row);
            match row.parse() {
                Err(StoreError::Other(m)) => assert!(m.contains(column), "{column}: {m}"),
                other => panic!("{column}: {other:?}"),
            }
        }
        assert!(matches!(
            diversion("XXXX", "sip:a@b.c"),
            Err(StoreError::Other(_))
        ));
        assert!(matches!(minute(24 * 60), Err(StoreError::Other(_))));
        assert_eq!(join_groups(&groups("nobody").unwrap()), "nobody");
    }

    #[test]
    fn phonebook_groups_and_media_round_trip() {
        let family = vec!["family".to_owned(), "work-2".to_owned()];
        assert_eq!(join_phonebook_groups(&family), "family,work-2");
        assert_eq!(phonebook_groups("family,work-2").unwrap(), family);
        // Empty items (an empty list, a trailing comma) are no groups.
        assert_eq!(phonebook_groups("").unwrap(), Vec::<String>::new());
        assert_eq!(phonebook_groups("family,,").unwrap(), ["family"]);
        // What a phonebook entry cannot hold is a corrupt row, not a group.
        for bad in ["everybody", "Family", "no way", "a,nobody", "-x"] {
            assert!(
                matches!(phonebook_groups(bad), Err(StoreError::Other(_))),
                "{bad}"
            );
        }

        let media = vec!["audio".to_owned(), "video".to_owned()];
        assert_eq!(join_media(&media), "audio,video");
        assert_eq!(super::media("audio,video"), media);
        assert_eq!(super::media(""), Vec::<String>::new());
    }
}
