//! The change journal: every change to an account, through any door, with who made it, from
//! where, and the old and new value. Passwords and PINs appear only as "changed".

use std::fmt;

use chrono::{DateTime, Utc};

use crate::ids::AccountId;

/// Through which door a change came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Door {
    /// The compatibility endpoint `settings.phtml`.
    ActionApi,
    /// The resource API `/v1/me`.
    ResourceApi,
    /// The operator's command line.
    Cli,
    /// The web settings page.
    WebPage,
    /// The service API (proxies, call control).
    ServiceApi,
    /// The operator API `/v1/admin` (admin certificates).
    AdminApi,
}

impl Door {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ActionApi => "settings.phtml",
            Self::ResourceApi => "v1",
            Self::Cli => "cli",
            Self::WebPage => "web",
            Self::ServiceApi => "service",
            Self::AdminApi => "admin",
        }
    }
}

impl fmt::Display for Door {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is making changes, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The door.
    pub door: Door,
    /// The actor: `certificate <serial>`, `login <user@domain>`, `operator <name>`,
    /// `service <name>`, `admin <name> (serial <serial>)`.
    pub actor: String,
    /// The client's address, when there is one.
    pub source: Option<String>,
}

impl Origin {
    /// The operator on the command line.
    pub fn operator() -> Self {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".to_owned());
        Self {
            door: Door::Cli,
            actor: format!("operator {user}"),
            source: None,
        }
    }
}

/// A journal entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJournalEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Whose account changed.
    pub account: AccountId,
    /// The door's name.
    pub door: String,
    /// Who.
    pub actor: String,
    /// From where.
    pub source: Option<String>,
    /// What (`diversions.FUNC`, `privacy`, `alias`, …).
    pub resource: String,
    /// The value before, if any.
    pub old: Option<String>,
    /// The value after, if any.
    pub new: Option<String>,
}

/// Who made a change, when and from where: a journal entry without its content, for a store
/// that writes the entry itself inside the change's transaction (a balance change, where only
/// the transaction knows the balance before and after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// When.
    pub at: DateTime<Utc>,
    /// The door's name.
    pub door: String,
    /// Who.
    pub actor: String,
    /// From where.
    pub source: Option<String>,
}

impl Stamp {
    /// The entry of a change of `resource` of `account`.
    pub fn entry(
        &self,
        account: &AccountId,
        resource: &str,
        old: Option<String>,
        new: Option<String>,
    ) -> NewJournalEntry {
        NewJournalEntry {
            at: self.at,
            account: account.clone(),
            door: self.door.clone(),
            actor: self.actor.clone(),
            source: self.source.clone(),
            resource: resource.to_owned(),
            old,
            new,
        }
    }

    /// The entry of a balance change from `old` to `new`.
    pub fn balance_entry(
        &self,
        account: &AccountId,
        old: crate::money::Money,
        new: crate::money::Money,
    ) -> NewJournalEntry {
        self.entry(
            account,
            "balance",
            Some(old.to_string()),
            Some(new.to_string()),
        )
    }
}

/// A stored journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// Sequence number (the cursor).
    pub id: i64,
    /// The entry.
    pub entry: NewJournalEntry,
}

/// The stand-in shown for secrets.
pub const CHANGED: &str = "changed";
