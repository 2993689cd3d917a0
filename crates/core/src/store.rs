//! The [`Store`] trait: everything the service keeps, behind one interface that the embedded
//! SQLite store and the PostgreSQL store implement identically. It is the sum of the traits by
//! concern ([`Accounts`], [`Certificates`], [`Addresses`], [`Settings`], [`Billing`],
//! [`Vouchers`], [`Devices`], [`Journal`], [`ChatJournal`]), which each back end implements in one
//! file per trait.
//!
//! Rules the trait promises, whatever the back end:
//! * each method is atomic: it changes everything it says or nothing;
//! * a method returns only after its change is durable;
//! * uniqueness (domains, accounts, serials) is enforced by the store, and a violation is
//!   [`StoreError::Conflict`], never a silent overwrite;
//! * every change to an account's data runs in an [`AccountWrite`]: one transaction that holds
//!   the account's write lock in the database (SQLite `BEGIN IMMEDIATE`, PostgreSQL a row lock
//!   on the account) from its first read to its commit, and commits the change together with its
//!   journal entries. While a caller holds it, no other writer — in this process, another server
//!   or the CLI — can change the account, so what the caller reads through the store in the
//!   meantime is the state its change applies to (its `old` values, its `If-Match` check).
//!   The single-change methods below ([`Settings::set_privacy`] …) are one-op `AccountWrite`s
//!   without journal entries, for the CLI's copy and for tests.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::account::{Account, AccountProfile};
use crate::calls::{
    BillingSnapshot, CallRecord, CloseOutcome, CloseRequest, Direction, HistoryEntry, NewCall,
    OpenOutcome, OpenRequest, PrepaidSession, Usage,
};
use crate::cert::{CertRecord, Serial};
use crate::credentials::Credentials;
use crate::error::StoreError;
use crate::forwarding::Forwarding;
use crate::ids::{AccountId, Domain, E164};
use crate::journal::{JournalEntry, NewJournalEntry, Stamp};
use crate::money::Money;
use crate::rating::Rate;
use crate::settings::{
    AcceptRule, AcceptRules, DaysMask, Diversions, PhonebookEntry, RejectPattern, TemporaryRule,
    Voicemail,
};
use crate::sip::{Condition, DiversionTarget, SipUri};
use crate::voucher::{NewVoucher, Redeemed, Redemption, Voucher};

/// A change of a prepaid balance.
#[derive(Debug, Clone)]
pub enum BalanceChange {
    /// Add `value` (negative to take off) with a history `action` (`topup`, `refund`, …).
    Add {
        /// The change.
        value: Money,
        /// History action.
        action: String,
        /// History description.
        description: String,
    },
    /// Set the balance to `value`; the history shows the difference.
    Set {
        /// The new balance.
        value: Money,
        /// History description.
        description: String,
    },
}

/// What [`Addresses::add_alias`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasOutcome {
    /// The alias was added.
    Added,
    /// The address is used by an account or another alias.
    Taken,
    /// The account has `limit` aliases already.
    LimitReached,
}

/// One change to an account's data, applied by [`AccountWrite::apply`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AccountOp {
    /// Replaces the profile and prepaid flag.
    UpdateAccount {
        /// The new profile.
        profile: AccountProfile,
        /// The new prepaid flag.
        prepaid: bool,
    },
    /// Replaces the credentials.
    SetCredentials(Credentials),
    /// Records a certificate issued for the account. [`StoreError::Conflict`] on a duplicate
    /// serial.
    InsertCertificate(CertRecord),
    /// Revokes one of the account's certificates (keeping the first revocation time):
    /// [`Applied::Certificate`]. [`StoreError::NotFound`] for a serial not of this account.
    RevokeCertificate {
        /// The serial.
        serial: Serial,
        /// When.
        at: DateTime<Utc>,
    },
    /// Names one of the account's certificates: [`Applied::Certificate`].
    /// [`StoreError::NotFound`] for a serial not of this account.
    RenameCertificate {
        /// The serial.
        serial: Serial,
        /// The new name.
        name: String,
    },
    /// Revokes every unrevoked certificate of the account: [`Applied::Count`].
    RevokeAllCertificates {
        /// When.
        at: DateTime<Utc>,
    },
    /// Adds an alias, checking that the address is free and the account is below `limit`:
    /// [`Applied::Alias`].
    AddAlias {
        /// The alias (in the account's domain).
        alias: AccountId,
        /// Most aliases the account may have.
        limit: u32,
    },
    /// Removes one of the account's aliases: [`Applied::Existed`].
    RemoveAlias(AccountId),
    /// Maps a number to the account. [`StoreError::Conflict`] if mapped already.
    AddEnum(E164),
    /// Removes one of the account's numbers: [`Applied::Existed`].
    RemoveEnum(E164),
    /// Sets (`Some`) or clears (`None`) the given forwarding conditions only: the seed's
    /// change, applied to the account's rules by [`Forwarding::set_diversions`] (the simple
    /// rules of those conditions change; other rules do not).
    SetDiversions(Vec<(Condition, Option<DiversionTarget>)>),
    /// Replaces the account's forwarding rules and sets, and with them its seed view.
    SetForwarding(Arc<Forwarding>),
    /// Adds or replaces the persistent accept rule of its days: [`Applied::Existed`] (replaced).
    PutAcceptRule(AcceptRule),
    /// Removes the persistent accept rule of `days`: [`Applied::Existed`].
    RemoveAcceptRule(DaysMask),
    /// Sets or removes the temporary rule.
    SetTemporaryRule(Option<TemporaryRule>),
    /// Adds a reject pattern. [`StoreError::Conflict`] if present.
    AddReject(RejectPattern),
    /// Removes a reject pattern: [`Applied::Existed`].
    RemoveReject(RejectPattern),
    /// Creates or replaces the voice mailbox.
    PutVoicemail(Voicemail),
    /// Sets caller-id privacy.
    SetPrivacy(bool),
    /// Adds or replaces the phonebook entry of its address.
    PutPhonebookEntry(PhonebookEntry),
    /// Removes a phonebook entry: [`Applied::Existed`].
    RemovePhonebookEntry(SipUri),
}

/// What an [`AccountOp`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// The change was made.
    Done,
    /// Whether the thing removed or replaced was there.
    Existed(bool),
    /// What adding an alias did ([`AliasOutcome::Added`] is the only outcome that changed
    /// anything).
    Alias(AliasOutcome),
    /// How many rows changed.
    Count(u64),
    /// The certificate as it is after the change.
    Certificate(CertRecord),
}

impl Applied {
    /// Whether the thing removed or replaced was there ([`Applied::Existed`]); false otherwise.
    pub fn existed(&self) -> bool {
        matches!(self, Self::Existed(true))
    }
}

/// A change of one account in progress: one database transaction holding the account's write
/// lock (see the module documentation). Dropping it without [`AccountWrite::commit`] rolls
/// everything back.
#[async_trait]
pub trait AccountWrite: Send {
    /// Applies one change inside the transaction. An error leaves the transaction to be dropped
    /// (rolled back) by the caller.
    async fn apply(&mut self, op: &AccountOp) -> Result<Applied, StoreError>;
    /// Appends the journal entries and commits, durably, everything at once.
    async fn commit(self: Box<Self>, journal: &[NewJournalEntry]) -> Result<(), StoreError>;
}

/// One op in its own [`AccountWrite`], without journal entries.
async fn write_one<S: Accounts + ?Sized>(
    store: &S,
    account: &AccountId,
    op: AccountOp,
) -> Result<Applied, StoreError> {
    let mut write = store.begin_account(account).await?;
    let applied = write.apply(&op).await?;
    write.commit(&[]).await?;
    Ok(applied)
}

/// The persistent state of the service: the sum of the traits by concern ([`Accounts`],
/// [`Certificates`], [`Addresses`], [`Settings`], [`Billing`], [`Vouchers`], [`Devices`],
/// [`Journal`], [`ChatJournal`]),
/// implemented for every type that implements them all. Their methods are callable on a
/// `dyn Store` without importing the traits by concern.
pub trait Store:
    Accounts
    + Certificates
    + Addresses
    + Settings
    + Billing
    + Vouchers
    + Devices
    + Journal
    + ChatJournal
    + Operations
    + fmt::Debug
{
}

impl<T> Store for T where
    T: Accounts
        + Certificates
        + Addresses
        + Settings
        + Billing
        + Vouchers
        + Devices
        + Journal
        + ChatJournal
        + Operations
        + fmt::Debug
        + ?Sized
{
}

/// The embedded migrations (`(version, description)`) whose version is not among `applied`,
/// as `version description`.
pub fn pending_migrations<'a>(
    embedded: impl IntoIterator<Item = (i64, &'a str)>,
    applied: &[i64],
) -> Vec<String> {
    embedded
        .into_iter()
        .filter(|(version, _)| !applied.contains(version))
        .map(|(version, description)| format!("{version} {description}"))
        .collect()
}

/// What the ops listener asks of a store (`/readyz`, `/metrics`).
#[async_trait]
pub trait Operations: Send + Sync {
    /// The embedded migrations not applied to the database, by version and description
    /// (empty: the schema is current). Asks the database itself, never a cache, so it also
    /// shows that the database answers.
    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError>;
    /// Prepaid sessions open now, across all accounts (and all servers of the database).
    async fn open_prepaid_session_count(&self) -> Result<u64, StoreError>;
    /// The store's own figures — its connection pools, caches, group commits, retries — as
    /// metric families in the Prometheus text format, appended to `out`.
    fn render_metrics(&self, out: &mut String);
    /// Closes the store at the end of the process: pending writes are committed, running
    /// statements finish, the connections close, and a PostgreSQL server gives up its lease of
    /// the read cache (so that the other servers stop asking it).
    async fn shut_down(&self);
}

/// Domains, accounts and their credentials, and the [`AccountWrite`] every change of an
/// account's data runs in.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Adds a domain. [`StoreError::Conflict`] if it exists.
    async fn add_domain(&self, domain: &Domain, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// All domains, sorted.
    async fn list_domains(&self) -> Result<Vec<Domain>, StoreError>;
    /// Whether the domain is served here.
    async fn domain_exists(&self, domain: &Domain) -> Result<bool, StoreError>;
    /// Whether HTTP Digest is accepted for the domain on `settings.phtml` (on unless the
    /// operator turned it off); `None` if the domain is not served here. Read from the store on
    /// every call, so that a change takes effect at once on every server.
    async fn domain_digest(&self, domain: &Domain) -> Result<Option<bool>, StoreError>;
    /// Turns HTTP Digest on or off for a domain. [`StoreError::NotFound`] if it is not served.
    async fn set_domain_digest(&self, domain: &Domain, on: bool) -> Result<(), StoreError>;

    /// Creates an account with its credentials. [`StoreError::Conflict`] if the address is
    /// taken; [`StoreError::NotFound`] if its domain is not served here.
    /// The journal entries are committed with it.
    async fn insert_account(
        &self,
        account: &Account,
        credentials: &Credentials,
        journal: &[NewJournalEntry],
    ) -> Result<(), StoreError>;
    /// Begins a change of the account's data: waits for the account's write lock (other
    /// writers, in any process, wait for this one to commit or roll back). [`StoreError::NotFound`]
    /// if there is no account.
    async fn begin_account(&self, account: &AccountId)
    -> Result<Box<dyn AccountWrite>, StoreError>;
    /// Begins a change of the account's data without waiting for its lock, where the store
    /// can: what the write reads is the account as of one moment, and its commit changes
    /// nothing and fails with [`StoreError::Stale`] if another writer changed the account
    /// since (in any process). For a caller that can run again with
    /// [`Accounts::begin_account`]; a store that cannot do better begins a locked write.
    async fn begin_account_optimistic(
        &self,
        account: &AccountId,
    ) -> Result<Box<dyn AccountWrite>, StoreError> {
        self.begin_account(account).await
    }
    /// Most account writes of one process that should hold an open
    /// [`AccountWrite`] at once: more wait in the process, holding nothing. A store whose
    /// writers each hold a pooled connection caps them below its pool size; one that runs
    /// concurrent writes through a shared commit (group commit) lets many in, so that they
    /// share its flushes.
    fn max_concurrent_writes(&self) -> usize {
        crate::write::MAX_CONCURRENT_WRITES
    }
    /// One account.
    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>, StoreError>;
    /// All accounts (of one domain), sorted by address.
    async fn list_accounts(&self, domain: Option<&Domain>) -> Result<Vec<Account>, StoreError>;
    /// Replaces the profile and prepaid flag. [`StoreError::NotFound`] if there is no account.
    async fn update_account(
        &self,
        id: &AccountId,
        profile: &AccountProfile,
        prepaid: bool,
    ) -> Result<(), StoreError> {
        let op = AccountOp::UpdateAccount {
            profile: profile.clone(),
            prepaid,
        };
        write_one(self, id, op).await.map(drop)
    }
    /// The stored credentials of an account.
    async fn get_credentials(&self, id: &AccountId) -> Result<Option<Credentials>, StoreError>;
    /// Replaces the credentials. [`StoreError::NotFound`] if there is no account.
    async fn set_credentials(
        &self,
        id: &AccountId,
        credentials: &Credentials,
    ) -> Result<(), StoreError> {
        let op = AccountOp::SetCredentials(credentials.clone());
        write_one(self, id, op).await.map(drop)
    }
    /// Deletes an account with all its settings and revokes its certificates, in one
    /// transaction. Returns how many certificates were revoked. [`StoreError::NotFound`] if
    /// there is no account. `journal` is appended in the same transaction (the journal
    /// outlives the account).
    async fn delete_account(
        &self,
        id: &AccountId,
        at: DateTime<Utc>,
        journal: &[NewJournalEntry],
    ) -> Result<u64, StoreError>;
}

/// The certificates issued to accounts.
#[async_trait]
pub trait Certificates: Accounts {
    /// Records an issued certificate. [`StoreError::Conflict`] on a duplicate serial.
    async fn insert_certificate(&self, record: &CertRecord) -> Result<(), StoreError>;
    /// One certificate by serial.
    async fn get_certificate(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError>;
    /// All certificates (of one account), oldest first.
    async fn list_certificates(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<CertRecord>, StoreError>;
    /// Revokes a certificate (keeping the first revocation time if it was revoked already) and
    /// returns its record. [`StoreError::NotFound`] for an unknown serial.
    async fn revoke_certificate(
        &self,
        serial: &Serial,
        at: DateTime<Utc>,
    ) -> Result<CertRecord, StoreError>;
    /// Records when certificates were last used (each to the minute): a certificate's
    /// `last_used` becomes the later of what it was and the time given; unknown serials are
    /// skipped. Not journaled and not a change of what the hot reads keep: it is a hint for
    /// telling certificates apart ([`crate::cert_use`]), in one transaction for all of them.
    async fn record_certificate_uses(
        &self,
        uses: &[(Serial, DateTime<Utc>)],
    ) -> Result<(), StoreError>;
    /// Revokes every unrevoked certificate of an account; returns how many.
    async fn revoke_account_certificates(
        &self,
        id: &AccountId,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        match write_one(self, id, AccountOp::RevokeAllCertificates { at }).await? {
            Applied::Count(n) => Ok(n),
            other => Err(StoreError::Other(format!(
                "revoke_account_certificates answered {other:?}"
            ))),
        }
    }
}

/// The addresses of accounts besides their own: aliases (accounts and aliases share one
/// namespace per domain) and ENUM numbers.
#[async_trait]
pub trait Addresses: Accounts {
    /// The account an address (an account's own or an alias) belongs to.
    async fn resolve_address(&self, address: &AccountId) -> Result<Option<AccountId>, StoreError>;
    /// Adds `alias` (in the account's domain) to `account`, atomically checking that the address
    /// is free among accounts and aliases and that the account has fewer than `limit` aliases.
    /// [`StoreError::NotFound`] if there is no account.
    async fn add_alias(
        &self,
        alias: &AccountId,
        account: &AccountId,
        limit: u32,
    ) -> Result<AliasOutcome, StoreError> {
        let op = AccountOp::AddAlias {
            alias: alias.clone(),
            limit,
        };
        match write_one(self, account, op).await? {
            Applied::Alias(outcome) => Ok(outcome),
            other => Err(StoreError::Other(format!("add_alias answered {other:?}"))),
        }
    }
    /// Removes an alias; false if there was none.
    async fn remove_alias(&self, alias: &AccountId) -> Result<bool, StoreError> {
        match self.resolve_address(alias).await? {
            Some(owner) if &owner != alias => {
                let op = AccountOp::RemoveAlias(alias.clone());
                Ok(write_one(self, &owner, op).await?.existed())
            }
            _ => Ok(false),
        }
    }
    /// `(alias, account)` pairs (of one account), sorted by alias.
    async fn list_aliases(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<(AccountId, AccountId)>, StoreError>;

    // ----- ENUM numbers -----

    /// Maps a number to an account. [`StoreError::Conflict`] if mapped already,
    /// [`StoreError::NotFound`] if there is no account.
    async fn add_enum(&self, number: &E164, account: &AccountId) -> Result<(), StoreError> {
        write_one(self, account, AccountOp::AddEnum(number.clone()))
            .await
            .map(drop)
    }
    /// Removes a mapping; false if there was none.
    async fn remove_enum(&self, number: &E164) -> Result<bool, StoreError> {
        match self.resolve_enum(number).await? {
            Some(owner) => {
                let op = AccountOp::RemoveEnum(number.clone());
                Ok(write_one(self, &owner, op).await?.existed())
            }
            None => Ok(false),
        }
    }
    /// `(number, account)` pairs (of one account), sorted by number.
    async fn list_enum(
        &self,
        account: Option<&AccountId>,
    ) -> Result<Vec<(E164, AccountId)>, StoreError>;
    /// The account a number maps to.
    async fn resolve_enum(&self, number: &E164) -> Result<Option<AccountId>, StoreError>;
}

/// An account's call settings: forwarding, accept rules and DND, reject rules, voicemail,
/// caller-id privacy and the phonebook.
#[async_trait]
pub trait Settings: Accounts {
    // ----- forwarding -----

    /// The account's forwarding.
    async fn get_diversions(&self, account: &AccountId) -> Result<Diversions, StoreError>;
    /// Sets (`Some`) or clears (`None`) the given conditions only, in one transaction; other
    /// conditions are untouched. [`StoreError::NotFound`] if there is no account.
    async fn set_diversions(
        &self,
        account: &AccountId,
        changes: &[(Condition, Option<DiversionTarget>)],
    ) -> Result<(), StoreError> {
        let op = AccountOp::SetDiversions(changes.to_vec());
        write_one(self, account, op).await.map(drop)
    }
    /// The account's forwarding rules and the sets they name (issue 19): what was set with
    /// [`AccountOp::SetForwarding`], or, for an account whose rules are the seed's conditions
    /// alone, [`Forwarding::of_diversions`] of its diversions. No rules for an unknown account.
    async fn get_forwarding(&self, account: &AccountId) -> Result<Arc<Forwarding>, StoreError>;
    /// Replaces the account's forwarding rules and sets. [`StoreError::NotFound`] if there is
    /// no account.
    async fn set_forwarding(
        &self,
        account: &AccountId,
        forwarding: &Forwarding,
    ) -> Result<(), StoreError> {
        let op = AccountOp::SetForwarding(Arc::new(forwarding.clone()));
        write_one(self, account, op).await.map(drop)
    }

    // ----- accept rules and DND -----

    /// The account's accept rules (the temporary rule as stored, possibly lapsed).
    async fn get_accept_rules(&self, account: &AccountId) -> Result<AcceptRules, StoreError>;
    /// The temporary rule alone (as stored, possibly lapsed): what DND reads on every `account`.
    async fn get_temporary_rule(
        &self,
        account: &AccountId,
    ) -> Result<Option<TemporaryRule>, StoreError> {
        Ok(self.get_accept_rules(account).await?.temporary)
    }
    /// Adds or replaces the persistent rule for `rule.days`; true if it replaced one.
    async fn put_accept_rule(
        &self,
        account: &AccountId,
        rule: &AcceptRule,
    ) -> Result<bool, StoreError> {
        let op = AccountOp::PutAcceptRule(rule.clone());
        Ok(write_one(self, account, op).await?.existed())
    }
    /// Removes the persistent rule for `days`; false if there was none.
    async fn remove_accept_rule(
        &self,
        account: &AccountId,
        days: DaysMask,
    ) -> Result<bool, StoreError> {
        let op = AccountOp::RemoveAcceptRule(days);
        Ok(write_one(self, account, op).await?.existed())
    }
    /// Sets or removes the temporary rule. [`StoreError::NotFound`] if there is no account.
    async fn set_temporary_rule(
        &self,
        account: &AccountId,
        rule: Option<&TemporaryRule>,
    ) -> Result<(), StoreError> {
        let op = AccountOp::SetTemporaryRule(rule.cloned());
        write_one(self, account, op).await.map(drop)
    }

    // ----- reject rules -----

    /// The account's reject patterns, sorted.
    async fn list_reject(&self, account: &AccountId) -> Result<Vec<RejectPattern>, StoreError>;
    /// Adds a pattern. [`StoreError::Conflict`] if present.
    async fn add_reject(
        &self,
        account: &AccountId,
        pattern: &RejectPattern,
    ) -> Result<(), StoreError> {
        let op = AccountOp::AddReject(pattern.clone());
        write_one(self, account, op).await.map(drop)
    }
    /// Removes a pattern; false if there was none.
    async fn remove_reject(
        &self,
        account: &AccountId,
        pattern: &RejectPattern,
    ) -> Result<bool, StoreError> {
        let op = AccountOp::RemoveReject(pattern.clone());
        Ok(write_one(self, account, op).await?.existed())
    }

    // ----- voicemail, privacy, phonebook -----

    /// The account's voice mailbox, if it has one.
    async fn get_voicemail(&self, account: &AccountId) -> Result<Option<Voicemail>, StoreError>;
    /// Creates or replaces the voice mailbox.
    async fn put_voicemail(
        &self,
        account: &AccountId,
        voicemail: &Voicemail,
    ) -> Result<(), StoreError> {
        let op = AccountOp::PutVoicemail(voicemail.clone());
        write_one(self, account, op).await.map(drop)
    }
    /// Sets caller-id privacy. [`StoreError::NotFound`] if there is no account.
    async fn set_privacy(&self, account: &AccountId, on: bool) -> Result<(), StoreError> {
        write_one(self, account, AccountOp::SetPrivacy(on))
            .await
            .map(drop)
    }
    /// The account's phonebook, sorted by address.
    async fn list_phonebook(&self, account: &AccountId) -> Result<Vec<PhonebookEntry>, StoreError>;
    /// Adds or replaces the entry for `entry.uri`.
    async fn put_phonebook_entry(
        &self,
        account: &AccountId,
        entry: &PhonebookEntry,
    ) -> Result<(), StoreError> {
        let op = AccountOp::PutPhonebookEntry(entry.clone());
        write_one(self, account, op).await.map(drop)
    }
    /// Removes an entry; false if there was none.
    async fn remove_phonebook_entry(
        &self,
        account: &AccountId,
        uri: &SipUri,
    ) -> Result<bool, StoreError> {
        let op = AccountOp::RemovePhonebookEntry(uri.clone());
        Ok(write_one(self, account, op).await?.existed())
    }
}

/// Rates, prepaid balances and sessions, call records, and moving an account's billing state
/// (`sip-settings copy`).
#[async_trait]
pub trait Billing: Send + Sync {
    // ----- rates -----

    /// Stores rates in one transaction (adding or replacing by prefix; with `replace`, the
    /// table is replaced as a whole). Returns how many were stored.
    async fn import_rates(&self, rates: &[Rate], replace: bool) -> Result<u64, StoreError>;
    /// All rates, by prefix.
    async fn list_rates(&self) -> Result<Vec<Rate>, StoreError>;
    /// The rate with the longest prefix of `digits` (E.164 digits without `+`).
    async fn find_rate(&self, digits: &str) -> Result<Option<Rate>, StoreError>;

    // ----- balance -----

    /// The account's balance. [`StoreError::NotFound`] if there is no account.
    async fn get_balance(&self, account: &AccountId) -> Result<Money, StoreError>;
    /// Changes the balance and writes the history entry, in one transaction; returns the new
    /// balance. With `journal`, the `balance` journal entry (old and new balance) is committed
    /// with it.
    async fn change_balance(
        &self,
        account: &AccountId,
        change: &BalanceChange,
        at: DateTime<Utc>,
        journal: Option<&Stamp>,
    ) -> Result<Money, StoreError>;
    /// History entries, newest first.
    async fn balance_history(
        &self,
        account: &AccountId,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, StoreError>;

    // ----- prepaid sessions -----

    /// Opens a session atomically: the account must be prepaid and below the session limit;
    /// the time granted is what the balance less every open reservation pays at the rate, and
    /// its price is reserved. Concurrent opens can never together reserve more than the
    /// balance. Opening an already open Call-ID answers that session;
    /// [`StoreError::Conflict`] for a closed one.
    async fn open_prepaid_session(&self, request: &OpenRequest) -> Result<OpenOutcome, StoreError>;
    /// Closes a session in one transaction: prices the duration at the session's rate — capped
    /// at the granted time, the debit at most the reservation and the balance
    /// ([`crate::calls::Charge`]) — debits the balance, writes the history entry, the call
    /// record and (with `request.journal`) the `balance` journal entry, releases the
    /// reservation. Closing a closed session changes nothing and answers it as it is
    /// ([`CloseOutcome::AlreadyClosed`]). `None` for an unknown Call-ID.
    async fn close_prepaid_session(
        &self,
        request: &CloseRequest,
    ) -> Result<Option<CloseOutcome>, StoreError>;
    /// The account's open sessions, oldest first.
    async fn active_sessions(&self, account: &AccountId)
    -> Result<Vec<PrepaidSession>, StoreError>;

    // ----- calls -----

    /// Records calls for their local parties, all in one transaction. Idempotent on (Call-ID,
    /// from tag, to tag): a replay stores nothing. Returns, per call, whether it was new.
    async fn record_calls(&self, calls: &[NewCall]) -> Result<Vec<bool>, StoreError>;
    /// An account's calls of one direction that started at or after `since`, newest first.
    async fn list_calls(
        &self,
        account: &AccountId,
        direction: Direction,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<CallRecord>, StoreError>;
    /// Placed calls that started in `[from, to)`.
    async fn usage(
        &self,
        account: &AccountId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Usage, StoreError>;

    // ----- moving an installation (`sip-settings copy`) -----

    /// An account's balance, full history and every prepaid session.
    async fn export_billing(&self, account: &AccountId) -> Result<BillingSnapshot, StoreError>;
    /// Writes an exported billing state into an account that has none yet (balance, history
    /// entries with their times and order, sessions), in one transaction.
    async fn import_billing(
        &self,
        account: &AccountId,
        snapshot: &BillingSnapshot,
    ) -> Result<(), StoreError>;
}

/// Prepaid cards ([`crate::voucher`]): made in batches, listed, disabled, redeemed once.
#[async_trait]
pub trait Vouchers: Send + Sync {
    /// Stores a batch of cards in one transaction; answers their ids in the batch's order.
    /// [`StoreError::NotFound`] if a card's domain is not served here (nothing is stored).
    async fn create_vouchers(&self, batch: &[NewVoucher]) -> Result<Vec<i64>, StoreError>;
    /// The cards of `domain`, newest (highest id) first, at most `limit`.
    async fn list_vouchers(&self, domain: &Domain, limit: u32) -> Result<Vec<Voucher>, StoreError>;
    /// One card.
    async fn get_voucher(&self, id: i64) -> Result<Option<Voucher>, StoreError>;
    /// Disables an unused card (keeping the first time it was disabled) and answers it.
    /// [`StoreError::NotFound`] for an unknown id, [`StoreError::Conflict`] for a used card.
    async fn disable_voucher(&self, id: i64, at: DateTime<Utc>) -> Result<Voucher, StoreError>;
    /// Redeems a card in one transaction under the account's write lock: decides with
    /// [`Voucher::refusal`] on the card as stored, and, when nothing refuses, marks it used by
    /// the account at `journal.at` (only if it is still unused: of concurrent redemptions of one
    /// card exactly one credits), adds its value to the balance, and writes the `topup` history
    /// entry and the journal entries (`balance` old → new, `voucher`). A refusal changes
    /// nothing. [`StoreError::NotFound`] if there is no account.
    async fn redeem_voucher(&self, redemption: &Redemption) -> Result<Redeemed, StoreError>;
}

/// The devices (SIP registrations) of accounts.
#[async_trait]
pub trait Devices: Send + Sync {
    /// Applies a registration in one transaction (the rules in [`crate::devices`]: a binding
    /// of the same Call-ID with a CSeq not above the stored one is left as it is) and answers
    /// the account's devices that have not lapsed at `registration.now`, most recently
    /// registered first. Lapsed bindings (of any account) are removed on the way.
    /// [`StoreError::Conflict`] when the account would hold more than
    /// [`crate::devices::MAX_DEVICES`]; nothing is changed then.
    async fn register(
        &self,
        registration: &crate::devices::Registration,
    ) -> Result<Vec<crate::devices::Device>, StoreError>;
    /// The account's devices that have not lapsed at `now`, most recently registered first.
    async fn list_devices(
        &self,
        account: &AccountId,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::devices::Device>, StoreError>;
    /// When the account's last binding lapses, if it has any (lapsed ones included). Read on
    /// every call's decision.
    async fn device_expiry(&self, account: &AccountId)
    -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// The journal of changes of each account.
#[async_trait]
pub trait Journal: Send + Sync {
    /// An account's journal, newest first, entries with an id below `before` (a cursor).
    async fn list_journal(
        &self,
        account: &AccountId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, StoreError>;
    /// The journal of every account of `domain` (deleted ones too), newest first, entries with
    /// an id below `before` (a cursor).
    async fn list_domain_journal(
        &self,
        domain: &Domain,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JournalEntry>, StoreError>;
}

/// The chat journal of each account ([`crate::chat_journal`]): opaque entries that a client
/// (Blink) replicates between the account's devices. Not the change journal ([`Journal`]).
/// Entries go when their account is deleted.
#[async_trait]
pub trait ChatJournal: Send + Sync {
    /// Stores `data` (one entry each, in order, all stamped `at`) from `device` in one
    /// transaction, then drops the account's oldest entries (lowest ids) until it holds at most
    /// `bounds` (entries and bytes of data), the account locked meanwhile so that concurrent
    /// puts together stay within them. Answers the new ids in the order of `data` and how many
    /// were dropped. [`StoreError::NotFound`] if there is no account.
    async fn put_chat_entries(
        &self,
        account: &AccountId,
        device: &crate::chat_journal::DeviceId,
        data: &[String],
        at: DateTime<Utc>,
        bounds: crate::chat_journal::ChatBounds,
    ) -> Result<crate::chat_journal::ChatPut, StoreError>;
    /// The account's entries with an id above `query.after_id`, stored at or after
    /// `query.since` (Unix seconds), not from `query.except_device`, lowest id first, at most
    /// `query.limit`.
    async fn chat_entries(
        &self,
        account: &AccountId,
        query: &crate::chat_journal::ChatQuery,
    ) -> Result<Vec<crate::chat_journal::ChatEntry>, StoreError>;
    /// Every entry of the account (id and time), lowest id first.
    async fn chat_summary(
        &self,
        account: &AccountId,
    ) -> Result<Vec<crate::chat_journal::ChatSummaryEntry>, StoreError>;
    /// Deletes the entries among `ids` that belong to the account (others are left alone) and
    /// answers how many were deleted.
    async fn delete_chat_entries(
        &self,
        account: &AccountId,
        ids: &[i64],
    ) -> Result<u64, StoreError>;
    /// Stores `entries` of the account as they are — their ids, times, devices and data — in
    /// one transaction, for `copy` (clients hold the ids, so a move must keep them); later puts
    /// get ids above every imported one. No bounds are applied. [`StoreError::Conflict`] if an
    /// id is taken (nothing is stored then), [`StoreError::NotFound`] if there is no account.
    async fn import_chat_entries(
        &self,
        account: &AccountId,
        entries: &[crate::chat_journal::ChatEntry],
    ) -> Result<u64, StoreError>;
}
