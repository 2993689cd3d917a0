//! The answers of the hot reads ([`crate::fast`]) kept in memory, one [`Kind`] per read, all
//! valid at one [`Version`] of the database, and the bound on the rows they hold.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sip_settings_core::account::Account;
use sip_settings_core::cert::{CertRecord, Serial};
use sip_settings_core::forwarding::Forwarding;
use sip_settings_core::ids::{AccountId, Domain, E164};
use sip_settings_core::settings::{
    AcceptRules, Diversions, PhonebookEntry, RejectPattern, TemporaryRule, Voicemail,
};

use crate::changes::Version;

/// Most rows of one kind kept (an answer counts as the rows it holds, at least one); past that
/// the kind is emptied and fills again.
pub(crate) const MAX_CACHED: usize = 50_000;

/// Answers read at one [`Version`] of the database.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    pub(crate) version: Option<Version>,
    pub(crate) certificates: Kind<Serial, Option<CertRecord>>,
    pub(crate) accounts: Kind<AccountId, Option<Account>>,
    pub(crate) temporary_rules: Kind<AccountId, Option<TemporaryRule>>,
    pub(crate) diversions: Kind<AccountId, Diversions>,
    pub(crate) forwarding: Kind<AccountId, Arc<Forwarding>>,
    pub(crate) domains: Kind<Domain, bool>,
    pub(crate) addresses: Kind<AccountId, Option<AccountId>>,
    pub(crate) enum_numbers: Kind<E164, Option<AccountId>>,
    pub(crate) accept_rules: Kind<AccountId, AcceptRules>,
    pub(crate) reject: Kind<AccountId, Vec<RejectPattern>>,
    pub(crate) phonebooks: Kind<AccountId, Vec<PhonebookEntry>>,
    pub(crate) voicemail: Kind<AccountId, Option<Voicemail>>,
    pub(crate) device_expiry: Kind<AccountId, Option<DateTime<Utc>>>,
}

/// The answers of one kind and the rows they hold.
#[derive(Debug)]
pub(crate) struct Kind<K, V> {
    pub(crate) answers: HashMap<K, V>,
    pub(crate) rows: usize,
}

impl<K, V> Default for Kind<K, V> {
    fn default() -> Self {
        Self {
            answers: HashMap::new(),
            rows: 0,
        }
    }
}

impl<K: Hash + Eq, V: Rows> Kind<K, V> {
    /// Keeps `value`, emptying the kind first when it would hold more than [`MAX_CACHED`]
    /// rows; an answer larger than that alone is not kept.
    pub(crate) fn keep(&mut self, key: K, value: V) {
        let rows = value.rows();
        if rows > MAX_CACHED {
            return;
        }
        if self.rows + rows > MAX_CACHED {
            self.answers.clear();
            self.rows = 0;
        }
        if let Some(old) = self.answers.insert(key, value) {
            self.rows = self.rows.saturating_sub(old.rows());
        }
        self.rows += rows;
    }
}

/// How many rows an answer holds, counted against [`MAX_CACHED`]: one for a single value or a
/// miss, the length for a list (a phonebook may be long; a cache of 50 000 of them must not be).
pub(crate) trait Rows {
    fn rows(&self) -> usize {
        1
    }
}

impl Rows for bool {}
impl<T> Rows for Option<T> {}

impl<T> Rows for Vec<T> {
    fn rows(&self) -> usize {
        self.len().max(1)
    }
}

impl<K, V> Rows for BTreeMap<K, V> {
    fn rows(&self) -> usize {
        self.len().max(1)
    }
}

/// A forwarding is one answer plus one row per 16 rules: the seed's conditions and a few rules
/// count as one row, so that every account's forwarding fits the bound (a decision reads it on
/// every call), while an account's 64 rules count for more.
impl Rows for Arc<Forwarding> {
    fn rows(&self) -> usize {
        1 + self.rules.len() / 16
    }
}

impl Rows for AcceptRules {
    fn rows(&self) -> usize {
        self.persistent.len() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind holds at most [`MAX_CACHED`] rows: a list counts as its length.
    #[test]
    fn a_kind_is_bounded_by_the_rows_it_holds() {
        let mut kind: Kind<u32, Vec<u8>> = Kind::default();
        kind.keep(1, vec![0; MAX_CACHED / 2]);
        kind.keep(2, vec![0; MAX_CACHED / 2]);
        assert_eq!((kind.answers.len(), kind.rows), (2, MAX_CACHED));
        kind.keep(3, Vec::new());
        assert_eq!(
            (kind.answers.len(), kind.rows),
            (1, 1),
            "emptied, then kept"
        );
        kind.keep(3, vec![0; 10]);
        assert_eq!((kind.answers.len(), kind.rows), (1, 10), "replaced");
        kind.keep(4, vec![0; MAX_CACHED + 1]);
        assert!(!kind.answers.contains_key(&4), "too large to keep");
        assert_eq!(kind.rows, 10);
    }
}
