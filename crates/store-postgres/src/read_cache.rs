//! The hot reads kept in memory — an account's certificate, the account, its temporary rule
//! (DND) and its forwarding, what every request reads — under a protocol that keeps every
//! acknowledged change visible to the next request on every server, as without the cache.
//!
//! # The protocol
//!
//! * A server that caches (a **holder**) first `LISTEN`s on [`CHANNEL`] on a connection of its
//!   own, then registers in `cache_holders` with a **lease** (`expires_at`, [`LEASE`] ahead,
//!   renewed every [`RENEW_EVERY`]) and `seen`, the last ping it has processed (at
//!   registration: the last one sent, since its cache starts empty). It answers from memory only
//!   while its listener is connected and before its own deadline, which it reckons from the
//!   moment it *sent* the registration or renewal, [`MARGIN`] short of the lease: always before
//!   the lease runs out in the database.
//! * Every ping of another server (or of the CLI) empties what it names from the holder's
//!   cache — the accounts its writers changed (with every address and number when an alias
//!   changed), or everything (a change that is not one account's: a certificate, an account
//!   created or deleted; a list too long for a notification) — and then the holder records the
//!   highest such ping in `seen`. Its own pings it skips: its own writes empty what they change
//!   before they ping.
//! * A **writer**, after its commit, empties its own server's cache, then — if another holder
//!   has a live lease — takes the next number `n` of the sequence `cache_pings`, notifies the
//!   channel with it, and acknowledges the change only once every *other* holder with a live
//!   lease has `seen >= n` ([`PgStore::published`]). PostgreSQL delivers notifications in commit
//!   order, and a ping numbered `m >= n` was committed after ping `n` was *numbered*, which was
//!   after the change committed: a holder that has processed any ping `m >= n` has processed the
//!   change's own notification, so its cache no longer holds anything older than the change.
//! * A writer that knows it is **alone** skips the ping: when a query of the live leases sent
//!   less than [`ALONE_VALID`] ago found none but its own (a renewal of its own lease, or an
//!   earlier ping). A server registering after that query was answered starts answering from
//!   memory only [`WARM_UP`] (longer) after its registration, so every read it caches starts
//!   after the writer's commit. On one server the ping, a round trip and a pooled connection
//!   per write, costs nothing.
//! * A holder that does not catch up within [`ACK_WAIT`] is **fenced** by the writer (its lease
//!   is never renewed again) and the writer waits for its lease to run out; a fenced holder
//!   finds out at its next renewal, drops its cache and registers anew. So a write waits at most
//!   [`ACK_WAIT`] + [`LEASE`] for a holder that is stuck, has lost its listener without noticing
//!   yet, or has died.
//! * A read that misses fills the cache only if no invalidation ran since before it read the
//!   database (a generation counter): an answer read before a commit is never kept after it.
//! * While this server holds an open [`AccountWrite`](sip_settings_core::store::AccountWrite)
//!   on an account, that account's reads skip the cache: a change committed by another server
//!   just before the lock was taken may not have reached this cache yet, and what a writer reads
//!   under the lock must be the state its change applies to. An optimistic writer (one that
//!   read the account without the lock and commits only if its version is unchanged) answers
//!   its own task's reads from what it read, and nobody else's.
//!
//! A write transaction does not `NOTIFY` itself: PostgreSQL serialises the commits of
//! notifying transactions on one lock held through their WAL flush, which would end group
//! commit for every write. The ping is a transaction of its own with `synchronous_commit` off
//! (nothing in it needs to survive a crash), so it holds that lock for microseconds. The price:
//! a change whose writer dies between its commit and its ping — a change never acknowledged —
//! stays unseen by the other servers' caches until a ping names it (a later change of the same
//! account, or one that names everything) or for at most [`MAX_AGE`], the longest an answer is
//! kept. So does a change made in the database behind the store's back.
//!
//! A process starts holding only after [`ACTIVATE_AFTER`] hot reads, so that a short CLI run
//! does not register a lease that writers would then wait on after it exits.
//!
//! What the guarantee rests on: every change goes through a `PgStore` (which notifies and
//! publishes), and the database's clock and the servers' clocks run at the same rate over a few
//! seconds (the lease is compared with `now()` in the database, the deadline with the server's
//! monotonic clock, [`MARGIN`] earlier).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use sip_settings_core::StoreError;
use sip_settings_core::account::Account;
use sip_settings_core::cert::{CertRecord, Serial};
use sip_settings_core::forwarding::Forwarding;
use sip_settings_core::ids::{AccountId, Domain, E164};
use sip_settings_core::settings::{Diversions, TemporaryRule, Voicemail};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;

use crate::PgStore;
use crate::health::{GuardedPool, is_connection_error};

/// The notification channel of invalidations and pings.
pub(crate) const CHANNEL: &str = "sip_settings_cache";
/// How long a registration or renewal holds, in the database's clock.
pub(crate) const LEASE: Duration = Duration::from_secs(2);
/// How often a holder renews its lease.
const RENEW_EVERY: Duration = Duration::from_millis(400);
/// How much earlier than its lease a holder stops answering from memory.
const MARGIN: Duration = Duration::from_millis(300);
/// How long a writer waits for a holder to catch up before fencing it.
pub(crate) const ACK_WAIT: Duration = Duration::from_secs(1);
/// How long after a query that found no other live lease a writer may skip its ping.
const ALONE_VALID: Duration = Duration::from_millis(700);
/// How long after its registration a holder starts answering from memory (more than
/// [`ALONE_VALID`]: a writer that did not see the registration no longer skips its ping).
const WARM_UP: Duration = Duration::from_secs(1);
/// How long a holder waits before it starts again after losing its listener or its lease.
const RESTART_AFTER: Duration = Duration::from_millis(200);
/// Hot reads of a process before it starts caching.
pub(crate) const ACTIVATE_AFTER: u64 = 100;
/// Most answers kept of each kind; past it the kind is emptied.
const MAX_ENTRIES: usize = 100_000;

/// How long an answer is kept at most: the bound on how long a change stays unseen whose
/// writer died between its commit and its ping (a change never acknowledged).
pub(crate) const MAX_AGE: Duration = Duration::from_secs(5);

/// Answers by key, with the time each was kept (nanoseconds after [`ReadCache::base`]).
type Aged<K, V> = HashMap<K, (V, u64)>;

/// What the cache holds, and what protects it.
#[derive(Debug, Default)]
struct Entries {
    /// Counts the invalidations: a fill read before the last one is dropped.
    generation: u64,
    certificates: Aged<Serial, CertRecord>,
    /// The serials in `certificates` of each account: a write empties its account's without
    /// going through all of them.
    certificates_of: HashMap<AccountId, Vec<Serial>>,
    accounts: Aged<AccountId, Option<Account>>,
    temporary: Aged<AccountId, Option<TemporaryRule>>,
    diversions: Aged<AccountId, Diversions>,
    forwarding: Aged<AccountId, Arc<Forwarding>>,
    voicemail: Aged<AccountId, Option<Voicemail>>,
    domains: Aged<Domain, bool>,
    addresses: Aged<AccountId, Option<AccountId>>,
    numbers: Aged<E164, Option<AccountId>>,
    /// Accounts with an open write in this process.
    writing: HashMap<AccountId, Held>,
    /// What this process's last optimistic write of an account left it at.
    write_states: Aged<AccountId, WriteState>,
}

/// An account as an optimistic write of this process committed it: its next optimistic
/// write starts from here instead of reading the account, while the cache may answer. It is
/// emptied as the rest of the cache is; should it be stale all the same, the version makes
/// that write change nothing, and it runs again with the lock.
#[derive(Debug, Clone)]
pub(crate) struct WriteState {
    /// The account's row.
    pub(crate) id: i64,
    pub(crate) version: i64,
    pub(crate) snapshot: Arc<Snapshot>,
}

impl Entries {
    fn clear(&mut self) {
        self.generation += 1;
        self.certificates.clear();
        self.certificates_of.clear();
        self.accounts.clear();
        self.temporary.clear();
        self.diversions.clear();
        self.forwarding.clear();
        self.voicemail.clear();
        self.domains.clear();
        self.addresses.clear();
        self.numbers.clear();
        self.write_states.clear();
    }
}

/// An account's data as its writer read it with the account's lock (`account_write.rs`): the
/// state the write applies to, which nobody else can change until it ends. (An optimistic
/// writer reads it without the lock, with the account's version.)
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) account: Account,
    pub(crate) diversions: Diversions,
    /// The forwarding document, if the account has one (else its forwarding is the simple
    /// rules of `diversions`).
    pub(crate) document: Option<Arc<Forwarding>>,
    pub(crate) temporary: Option<TemporaryRule>,
    pub(crate) voicemail: Option<Voicemail>,
}

impl Snapshot {
    /// The account's forwarding: its document, or the simple rules of its diversions.
    pub(crate) fn forwarding(&self) -> Arc<Forwarding> {
        self.document
            .clone()
            .unwrap_or_else(|| Arc::new(Forwarding::of_diversions(&self.diversions)))
    }
}

/// The open writes of one account in this process.
#[derive(Debug, Default)]
struct Held {
    /// How many (a second waits in the database for the first's lock).
    writers: usize,
    /// The snapshot of the writer that has the lock, or of an optimistic writer.
    snapshot: Option<HeldSnapshot>,
}

/// A writer's snapshot.
#[derive(Debug)]
struct HeldSnapshot {
    /// Which writer.
    write: u64,
    state: Arc<Snapshot>,
    /// For an optimistic writer (one without the lock), its task: the snapshot answers that
    /// task's reads alone. Another writer may change the account before this one commits (the
    /// commit then fails and changes nothing); the writer's own reads must be of the state it
    /// read, everybody else's must not outlast a change acknowledged elsewhere.
    only_for: Option<tokio::task::Id>,
}

impl HeldSnapshot {
    /// Whether the snapshot answers a read made now.
    fn answers(&self) -> bool {
        self.only_for
            .is_none_or(|task| tokio::task::try_id() == Some(task))
    }
}

/// Whether an answer kept at `at` may still be given at `now` ([`MAX_AGE`]).
fn fresh(at: u64, now: u64) -> bool {
    u128::from(now.saturating_sub(at)) < MAX_AGE.as_nanos()
}

/// A look-up: the answer, or the ticket under which an answer read now may be kept (`None`: it
/// may not).
pub(crate) enum Cached<V> {
    Hit(V),
    Miss(Option<u64>),
}

/// The cache of one store (shared by its clones).
#[derive(Debug)]
pub(crate) struct ReadCache {
    entries: Mutex<Entries>,
    /// The origin of [`Self::usable_until`].
    base: Instant,
    /// Nanoseconds after `base` until which the cache may answer; 0: it may not.
    usable_until: AtomicU64,
    /// Nanoseconds after `base` from which the cache may answer ([`WARM_UP`]).
    usable_from: AtomicU64,
    /// Nanoseconds after `base` at which the latest query was sent that found no other live
    /// lease; 0: none.
    alone_at: AtomicU64,
    /// This process's row in `cache_holders` (0: none).
    holder: AtomicI64,
    /// Hot reads so far (until [`ACTIVATE_AFTER`]).
    reads: AtomicU64,
    /// The holder task was started.
    started: AtomicBool,
    /// The store was closed: the holder task ends.
    closed: AtomicBool,
    /// Answers given from memory (for the tests).
    hits: AtomicU64,
    /// Pings skipped by a writer alone (for the tests).
    skipped: AtomicU64,
    /// Pings sent (for the tests).
    pings: AtomicU64,
    /// Ends the running session (when the store is closed).
    session_end: Mutex<Option<Arc<Notify>>>,
    /// Writers of this process waiting for a ping, and whether a round runs ([`PingRounds`]).
    rounds: Mutex<PingRounds>,
}

/// Writers of this process that wait for the other holders to confirm their changes share
/// pings: a writer that has committed joins the waiting list; one round at a time takes the
/// whole list, sends one ping (numbered after every commit in it) and waits for the other
/// holders, and answers every writer in the list. Writers that join while a round runs wait
/// for the next. Under load one ping, one wait and one confirmation of each other server serve
/// many writes instead of each paying for its own.
#[derive(Debug, Default)]
struct PingRounds {
    running: bool,
    waiting: Vec<(tokio::sync::oneshot::Sender<Result<(), String>>, Changed)>,
}

/// What a change makes the other holders forget: what its ping names, and what a holder reads
/// in a ping.
#[derive(Debug, PartialEq)]
pub(crate) enum Changed {
    /// Everything they hold.
    Everything,
    /// What they hold of these accounts, each with whether every address and number goes too.
    Accounts(Vec<(AccountId, bool)>),
}

impl Changed {
    /// One account's change (and every address and number, when `addresses`).
    pub(crate) fn account(account: AccountId, addresses: bool) -> Self {
        Self::Accounts(vec![(account, addresses)])
    }

    /// What two changes make a holder forget.
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Accounts(mut a), Self::Accounts(b)) => {
                a.extend(b);
                Self::Accounts(a)
            }
            _ => Self::Everything,
        }
    }
}

/// The longest list of accounts a ping names; a longer one names everything instead
/// (PostgreSQL refuses a notification's payload of 8 000 bytes or more).
const MAX_NAMED: usize = 7_000;

/// What a round's ping names for its `changes`: `*` for everything, or the accounts separated
/// by spaces, each once, with a `+` before it when its addresses go too (no account's text
/// holds a space, a `+`, a `*` or a `:`).
fn named(changes: impl IntoIterator<Item = Changed>) -> String {
    let Some(Changed::Accounts(changed)) = changes.into_iter().reduce(Changed::and) else {
        return "*".to_owned();
    };
    let mut accounts: HashMap<AccountId, bool> = HashMap::new();
    for (account, addresses) in changed {
        *accounts.entry(account).or_default() |= addresses;
    }
    let mut text = String::new();
    for (account, addresses) in accounts {
        if !text.is_empty() {
            text.push(' ');
        }
        if addresses {
            text.push('+');
        }
        text.push_str(&account.to_string());
        if text.len() > MAX_NAMED {
            return "*".to_owned();
        }
    }
    text
}

/// A ping's payload, `n:sender:named` ([`named`]): its number, the holder row of its sender
/// and what it makes a holder forget. Whatever cannot be read makes it forget everything (a
/// ping without a list is one of a server from before pings named accounts).
fn read_ping(payload: &str) -> (Option<i64>, Option<i64>, Changed) {
    let mut parts = payload.splitn(3, ':');
    let n = parts.next().and_then(|n| n.parse().ok());
    let sender = parts.next().and_then(|s| s.parse().ok());
    let forget = match parts.next() {
        None | Some("*") => Changed::Everything,
        Some(list) => list
            .split(' ')
            .map(|entry| {
                let (addresses, account) = match entry.strip_prefix('+') {
                    Some(account) => (true, account),
                    None => (false, entry),
                };
                AccountId::parse(account).ok().map(|a| (a, addresses))
            })
            .collect::<Option<Vec<_>>>()
            .map_or(Changed::Everything, Changed::Accounts),
    };
    (n, sender, forget)
}

impl Default for ReadCache {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            base: Instant::now(),
            usable_until: AtomicU64::new(0),
            usable_from: AtomicU64::new(0),
            alone_at: AtomicU64::new(0),
            holder: AtomicI64::new(0),
            reads: AtomicU64::new(0),
            started: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            session_end: Mutex::default(),
            rounds: Mutex::default(),
        }
    }
}

impl ReadCache {
    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the cache may answer now.
    fn usable(&self) -> bool {
        self.now_if_usable().is_some()
    }

    /// The time now (as [`Self::nanos`]) if the cache may answer now.
    fn now_if_usable(&self) -> Option<u64> {
        let until = self.usable_until.load(Ordering::Acquire);
        let now = self.nanos(Instant::now());
        (until != 0 && now < until && now >= self.usable_from.load(Ordering::Acquire))
            .then_some(now)
    }

    /// Records that a query sent at `sent` found no live lease but this process's own.
    fn alone_as_of(&self, sent: Instant) {
        self.alone_at
            .fetch_max(self.nanos(sent).max(1), Ordering::AcqRel);
    }

    /// Whether a query sent less than [`ALONE_VALID`] ago found no other live lease, so that
    /// every other holder is still warming up (see the module documentation).
    fn alone(&self) -> bool {
        let at = self.alone_at.load(Ordering::Acquire);
        at != 0
            && u128::from(self.nanos(Instant::now()).saturating_sub(at)) < ALONE_VALID.as_nanos()
    }

    /// Answers given from memory so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Pings skipped so far by writers alone (for the tests).
    pub(crate) fn pings(&self) -> u64 {
        self.pings.load(Ordering::Relaxed)
    }

    pub(crate) fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Whether this process holds a live lease (for the tests).
    pub(crate) fn holding(&self) -> bool {
        self.usable()
    }

    /// This process's holder row, 0 if none.
    pub(crate) fn holder(&self) -> i64 {
        self.holder.load(Ordering::Acquire)
    }

    /// Counts a hot read; true once when the holder task should start.
    pub(crate) fn should_start(&self) -> bool {
        if self.started.load(Ordering::Relaxed) || self.closed.load(Ordering::Relaxed) {
            return false;
        }
        self.reads.fetch_add(1, Ordering::Relaxed) + 1 >= ACTIVATE_AFTER
            && !self.started.swap(true, Ordering::AcqRel)
    }

    /// Starts holding now instead of after [`ACTIVATE_AFTER`] reads (for the tests).
    pub(crate) fn start_now(&self) -> bool {
        !self.closed.load(Ordering::Relaxed) && !self.started.swap(true, Ordering::AcqRel)
    }

    /// The answer for `key` (of no account in particular), unless the cache may not answer.
    fn look<K: Hash + Eq, V: Clone>(&self, key: &K, map: fn(&Entries) -> &Aged<K, V>) -> Cached<V> {
        let Some(now) = self.now_if_usable() else {
            return Cached::Miss(None);
        };
        let entries = self.lock();
        match map(&entries).get(key).filter(|(_, at)| fresh(*at, now)) {
            Some((v, _)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Cached::Hit(v.clone())
            }
            None => Cached::Miss(Some(entries.generation)),
        }
    }

    /// The answer for `id`'s data: while this process writes the account, from its writer's
    /// snapshot (or from the database until the writer has its lock); otherwise from the cache
    /// if it may answer.
    fn look_account<V: Clone>(
        &self,
        id: &AccountId,
        map: fn(&Entries) -> &Aged<AccountId, V>,
        of_snapshot: fn(&Snapshot) -> V,
    ) -> Cached<V> {
        let entries = self.lock();
        if let Some(held) = entries.writing.get(id) {
            return match &held.snapshot {
                Some(snapshot) if snapshot.answers() => Cached::Hit(of_snapshot(&snapshot.state)),
                _ => Cached::Miss(None),
            };
        }
        let Some(now) = self.now_if_usable() else {
            return Cached::Miss(None);
        };
        match map(&entries).get(id).filter(|(_, at)| fresh(*at, now)) {
            Some((v, _)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Cached::Hit(v.clone())
            }
            None => Cached::Miss(Some(entries.generation)),
        }
    }

    /// A certificate, unless it is of an account this process writes (then the database).
    pub(crate) fn certificate(&self, serial: &Serial) -> Cached<CertRecord> {
        let Some(now) = self.now_if_usable() else {
            return Cached::Miss(None);
        };
        let entries = self.lock();
        match entries
            .certificates
            .get(serial)
            .filter(|(_, at)| fresh(*at, now))
        {
            Some((c, _))
                if c.account
                    .as_ref()
                    .is_some_and(|a| entries.writing.contains_key(a)) =>
            {
                Cached::Miss(None)
            }
            Some((c, _)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Cached::Hit(c.clone())
            }
            None => Cached::Miss(Some(entries.generation)),
        }
    }

    pub(crate) fn account(&self, id: &AccountId) -> Cached<Option<Account>> {
        self.look_account(id, |e| &e.accounts, |s| Some(s.account.clone()))
    }

    pub(crate) fn temporary(&self, id: &AccountId) -> Cached<Option<TemporaryRule>> {
        self.look_account(id, |e| &e.temporary, |s| s.temporary.clone())
    }

    pub(crate) fn diversions(&self, id: &AccountId) -> Cached<Diversions> {
        self.look_account(id, |e| &e.diversions, |s| s.diversions.clone())
    }

    pub(crate) fn forwarding(&self, id: &AccountId) -> Cached<Arc<Forwarding>> {
        self.look_account(id, |e| &e.forwarding, Snapshot::forwarding)
    }

    pub(crate) fn voicemail(&self, id: &AccountId) -> Cached<Option<Voicemail>> {
        self.look_account(id, |e| &e.voicemail, |s| s.voicemail.clone())
    }

    pub(crate) fn domain(&self, domain: &Domain) -> Cached<bool> {
        self.look(domain, |e| &e.domains)
    }

    pub(crate) fn address(&self, address: &AccountId) -> Cached<Option<AccountId>> {
        self.look(address, |e| &e.addresses)
    }

    pub(crate) fn number(&self, number: &E164) -> Cached<Option<AccountId>> {
        self.look(number, |e| &e.numbers)
    }

    /// Keeps an answer read under `ticket`, unless an invalidation ran since.
    fn keep<K: Hash + Eq, V>(
        &self,
        ticket: Option<u64>,
        map: fn(&mut Entries) -> &mut Aged<K, V>,
        key: K,
        value: V,
    ) {
        let Some(ticket) = ticket else { return };
        let now = self.nanos(Instant::now());
        let mut entries = self.lock();
        if entries.generation != ticket {
            return;
        }
        let kind = map(&mut entries);
        if kind.len() >= MAX_ENTRIES {
            kind.clear();
        }
        kind.insert(key, (value, now));
    }

    pub(crate) fn keep_certificate(&self, ticket: Option<u64>, record: &CertRecord) {
        let Some(ticket) = ticket else { return };
        let now = self.nanos(Instant::now());
        let mut entries = self.lock();
        if entries.generation != ticket {
            return;
        }
        if entries.certificates.len() >= MAX_ENTRIES {
            entries.certificates.clear();
            entries.certificates_of.clear();
        }
        let serial = record.serial.clone();
        if let Some(account) = &record.account {
            let serials = entries.certificates_of.entry(account.clone()).or_default();
            if !serials.contains(&serial) {
                serials.push(serial.clone());
            }
        }
        entries.certificates.insert(serial, (record.clone(), now));
    }

    pub(crate) fn keep_account(&self, ticket: Option<u64>, id: &AccountId, v: &Option<Account>) {
        self.keep(ticket, |e| &mut e.accounts, id.clone(), v.clone());
    }

    pub(crate) fn keep_temporary(
        &self,
        ticket: Option<u64>,
        id: &AccountId,
        v: &Option<TemporaryRule>,
    ) {
        self.keep(ticket, |e| &mut e.temporary, id.clone(), v.clone());
    }

    pub(crate) fn keep_diversions(&self, ticket: Option<u64>, id: &AccountId, v: &Diversions) {
        self.keep(ticket, |e| &mut e.diversions, id.clone(), v.clone());
    }

    pub(crate) fn keep_forwarding(&self, ticket: Option<u64>, id: &AccountId, v: &Arc<Forwarding>) {
        self.keep(ticket, |e| &mut e.forwarding, id.clone(), v.clone());
    }

    pub(crate) fn keep_voicemail(
        &self,
        ticket: Option<u64>,
        id: &AccountId,
        v: &Option<Voicemail>,
    ) {
        self.keep(ticket, |e| &mut e.voicemail, id.clone(), v.clone());
    }

    pub(crate) fn keep_domain(&self, ticket: Option<u64>, domain: &Domain, v: bool) {
        self.keep(ticket, |e| &mut e.domains, domain.clone(), v);
    }

    pub(crate) fn keep_address(
        &self,
        ticket: Option<u64>,
        address: &AccountId,
        v: &Option<AccountId>,
    ) {
        self.keep(ticket, |e| &mut e.addresses, address.clone(), v.clone());
    }

    pub(crate) fn keep_number(&self, ticket: Option<u64>, number: &E164, v: &Option<AccountId>) {
        self.keep(ticket, |e| &mut e.numbers, number.clone(), v.clone());
    }

    /// Empties the cache; answers being read now are not kept.
    pub(crate) fn invalidate(&self) {
        self.lock().clear();
    }

    /// Forgets what is kept of `account` (and every address and number when `addresses`);
    /// answers being read now are not kept.
    pub(crate) fn invalidate_account(&self, account: &AccountId, addresses: bool) {
        Self::forget_account(&mut self.lock(), account, addresses);
    }

    /// [`ReadCache::invalidate_account`] of each of `accounts`.
    fn invalidate_accounts(&self, accounts: &[(AccountId, bool)]) {
        let mut entries = self.lock();
        for (account, addresses) in accounts {
            Self::forget_account(&mut entries, account, *addresses);
        }
    }

    /// [`ReadCache::invalidate_account`] after an optimistic write of `account`, which
    /// committed `state`: kept for the account's next optimistic write if the cache answers
    /// now (past its warm-up: nothing kept predates a change acknowledged elsewhere).
    pub(crate) fn written(&self, account: &AccountId, addresses: bool, state: WriteState) {
        let now = self.now_if_usable();
        let mut entries = self.lock();
        Self::forget_account(&mut entries, account, addresses);
        if let Some(now) = now {
            if entries.write_states.len() >= MAX_ENTRIES {
                entries.write_states.clear();
            }
            entries.write_states.insert(account.clone(), (state, now));
        }
    }

    /// Where an optimistic write of `account` starts, if this process's last one left it
    /// and the cache may answer.
    pub(crate) fn write_state(&self, account: &AccountId) -> Option<WriteState> {
        let now = self.now_if_usable()?;
        let entries = self.lock();
        entries
            .write_states
            .get(account)
            .filter(|(_, at)| fresh(*at, now))
            .map(|(state, _)| state.clone())
    }

    fn forget_account(entries: &mut Entries, account: &AccountId, addresses: bool) {
        entries.generation += 1;
        entries.write_states.remove(account);
        entries.accounts.remove(account);
        entries.temporary.remove(account);
        entries.diversions.remove(account);
        entries.forwarding.remove(account);
        entries.voicemail.remove(account);
        for serial in entries.certificates_of.remove(account).unwrap_or_default() {
            entries.certificates.remove(&serial);
        }
        if addresses {
            entries.addresses.clear();
            entries.numbers.clear();
        }
    }

    /// Marks an open write on `account` until the returned guard is dropped: the account's
    /// data is read from the database, then from the writer's snapshot once it has the lock.
    pub(crate) fn writing(self: &Arc<Self>, account: &AccountId) -> WritingGuard {
        static WRITES: AtomicU64 = AtomicU64::new(1);
        self.lock()
            .writing
            .entry(account.clone())
            .or_default()
            .writers += 1;
        WritingGuard {
            cache: self.clone(),
            account: account.clone(),
            write: WRITES.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Answers from memory from [`WARM_UP`] after now until `deadline`, as holder `id`.
    fn start(&self, id: i64, deadline: Instant) {
        self.invalidate();
        self.holder.store(id, Ordering::Release);
        self.usable_from
            .store(self.nanos(Instant::now() + WARM_UP), Ordering::Release);
        self.usable_until
            .store(self.nanos(deadline).max(1), Ordering::Release);
    }

    /// Moves the deadline of holder `id` (if it still is this process's holder).
    fn extend(&self, id: i64, deadline: Instant) {
        if self.holder() == id {
            self.usable_until
                .store(self.nanos(deadline).max(1), Ordering::Release);
        }
    }

    /// Stops answering from memory and empties the cache; the holder row it had.
    fn stop(&self) -> i64 {
        self.usable_until.store(0, Ordering::Release);
        let id = self.holder.swap(0, Ordering::AcqRel);
        self.invalidate();
        id
    }

    /// Stops for good (the store is closed); the holder row it had.
    pub(crate) fn close(&self) -> i64 {
        self.closed.store(true, Ordering::Release);
        if let Some(end) = self
            .session_end
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            end.notify_one();
        }
        self.stop()
    }
}

/// An open write of one account in this process (see [`ReadCache::writing`]).
#[derive(Debug)]
pub(crate) struct WritingGuard {
    cache: Arc<ReadCache>,
    account: AccountId,
    /// Which write.
    write: u64,
}

impl WritingGuard {
    /// The account's data as read under the lock this write now holds.
    pub(crate) fn locked(&self, snapshot: Snapshot) {
        self.keep(Arc::new(snapshot), None);
    }

    /// The account's data as an optimistic write read it, without the lock, in `task`: it
    /// answers that task's reads alone ([`HeldSnapshot::only_for`]).
    pub(crate) fn read_by(&self, snapshot: Arc<Snapshot>, task: tokio::task::Id) {
        self.keep(snapshot, Some(task));
    }

    fn keep(&self, snapshot: Arc<Snapshot>, only_for: Option<tokio::task::Id>) {
        if let Some(held) = self.cache.lock().writing.get_mut(&self.account) {
            held.snapshot = Some(HeldSnapshot {
                write: self.write,
                state: snapshot,
                only_for,
            });
        }
    }
}

impl Drop for WritingGuard {
    fn drop(&mut self) {
        let mut entries = self.cache.lock();
        if let Some(held) = entries.writing.get_mut(&self.account) {
            if held
                .snapshot
                .as_ref()
                .is_some_and(|held| held.write == self.write)
            {
                held.snapshot = None;
            }
            held.writers -= 1;
            if held.writers == 0 {
                entries.writing.remove(&self.account);
            }
        }
    }
}

/// The holder's life: sessions one after another until the store is closed or dropped.
pub(crate) async fn hold(cache: Weak<ReadCache>, pool: GuardedPool, listen: PgPool) {
    loop {
        let outcome = session(&cache, &pool, &listen).await;
        let Some(c) = cache.upgrade() else { return };
        let id = c.stop();
        let closed = c.closed.load(Ordering::Acquire);
        drop(c);
        match outcome {
            Ok(()) => tracing::debug!("read cache: lease ended; registering again"),
            Err(e) => {
                tracing::warn!(error = %e, "read cache: listener lost; reading the database until it is back")
            }
        }
        if id != 0 {
            let _ = sqlx::query("DELETE FROM cache_holders WHERE id = $1")
                .bind(id)
                .execute(&pool)
                .await;
        }
        if closed {
            return;
        }
        tokio::time::sleep(RESTART_AFTER).await;
    }
}

fn lease_seconds() -> f64 {
    LEASE.as_secs_f64()
}

/// One registration: listens, registers, processes notifications until the listener is lost,
/// the lease is not renewed or the store goes away.
async fn session(
    cache: &Weak<ReadCache>,
    pool: &GuardedPool,
    listen: &PgPool,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(listen).await?;
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    let sent = Instant::now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO cache_holders (seen, expires_at) \
         SELECT CASE WHEN is_called THEN last_value ELSE 0 END, \
         now() + make_interval(secs => $1) FROM cache_pings RETURNING id",
    )
    .bind(lease_seconds())
    .fetch_one(&mut listener)
    .await?;
    {
        let Some(c) = cache.upgrade() else {
            return Ok(());
        };
        if c.closed.load(Ordering::Acquire) {
            // Registered after the store closed: `hold` deletes the row.
            c.holder.store(id, Ordering::Release);
            return Ok(());
        }
        c.start(id, sent + LEASE - MARGIN);
    }
    let ended = Arc::new(Notify::new());
    if let Some(c) = cache.upgrade() {
        *c.session_end.lock().unwrap_or_else(|p| p.into_inner()) = Some(ended.clone());
        if c.closed.load(Ordering::Acquire) {
            return Ok(());
        }
    }
    let renewal = tokio::spawn(renew(cache.clone(), pool.clone(), id, ended.clone()));
    let _stop_renewal = AbortOnDrop(renewal);
    loop {
        let note = tokio::select! {
            note = listener.try_recv() => note?,
            () = ended.notified() => return Ok(()),
        };
        let Some(note) = note else {
            return Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the listening connection was lost",
            )));
        };
        // A ping is `n:holder`, `holder` the sender's own row. This server emptied what its
        // own write changed before it pinged, so its own pings are skipped altogether — they
        // must not move `seen` either: `seen >= n` promises that a ping numbered at least `n`
        // emptied this cache, and so after the commit of every change pinged as `n` or lower.
        let mut highest = None;
        let mut forget: Option<Changed> = None;
        for note in std::iter::once(note).chain(std::iter::from_fn(|| listener.next_buffered())) {
            let (n, sender, named) = read_ping(note.payload());
            if sender != Some(id) {
                forget = Some(match forget {
                    None => named,
                    Some(before) => before.and(named),
                });
                highest = highest.max(n);
            }
        }
        if let Some(forget) = forget {
            let Some(c) = cache.upgrade() else {
                return Ok(());
            };
            match forget {
                Changed::Everything => c.invalidate(),
                Changed::Accounts(accounts) => c.invalidate_accounts(&accounts),
            }
        }
        if let Some(n) = highest {
            // Not waited on to be durable: `seen` records what this process has done in its
            // memory, which is true whether or not the row survives a crash of the database,
            // and a row that went back after a crash only makes writers wait longer.
            sqlx::query(
                "UPDATE cache_holders SET seen = GREATEST(seen, $1) WHERE id = $2 \
                 AND set_config('synchronous_commit', 'off', true) IS NOT NULL",
            )
            .bind(n)
            .bind(id)
            .execute(&mut listener)
            .await?;
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews holder `id`'s lease until it is fenced or gone (then `ended` is notified).
async fn renew(cache: Weak<ReadCache>, pool: GuardedPool, id: i64, ended: Arc<Notify>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let Some(c) = cache.upgrade() else {
            ended.notify_one();
            return;
        };
        if c.holder() != id {
            return;
        }
        let sent = Instant::now();
        let renewed = sqlx::query_scalar::<_, i64>(
            // Only a lease that has not lapsed: while it had, writers neither pinged this
            // server nor waited for it, so what it holds may be stale. With the number of
            // other live leases.
            "UPDATE cache_holders SET expires_at = now() + make_interval(secs => $2) \
             WHERE id = $1 AND NOT fenced AND expires_at > now() \
             RETURNING (SELECT count(*) FROM cache_holders o \
                        WHERE o.id <> $1 AND o.expires_at > now())",
        )
        .bind(id)
        .bind(lease_seconds())
        .fetch_optional(&pool)
        .await;
        match renewed {
            Ok(Some(others)) => {
                c.extend(id, sent + LEASE - MARGIN);
                if others == 0 {
                    c.alone_as_of(sent);
                }
            }
            Ok(None) => {
                tracing::warn!("read cache: lease fenced by a writer or lapsed; registering again");
                ended.notify_one();
                return;
            }
            // The deadline lapses by itself; try again.
            Err(e) => tracing::debug!(error = %e, "read cache: lease renewal failed"),
        }
    }
}

/// The ping a writer sends after its commit when another holder has a live lease, naming
/// `$2` ([`named`]): its number.
const PING: &str = "SELECT p.n FROM (SELECT nextval('cache_pings') AS n FROM cache_holders \
                    WHERE id <> $1 AND expires_at > now() LIMIT 1) p \
                    CROSS JOIN LATERAL (SELECT pg_notify('sip_settings_cache', \
                    p.n::text || ':' || $1::text || ':' || $2), \
                    set_config('synchronous_commit', 'off', true)) s";
/// Holders with a live lease that have not seen ping `$2` yet.
const BEHIND: &str = "SELECT count(*) FROM cache_holders \
                      WHERE id <> $1 AND seen < $2 AND expires_at > now()";
/// Fences them.
const FENCE: &str = "UPDATE cache_holders SET fenced = TRUE \
                     WHERE id <> $1 AND seen < $2 AND expires_at > now()";

/// How long a writer keeps trying to publish a committed change when the database does not
/// answer.
const PUBLISH_GIVE_UP: Duration = Duration::from_secs(5);

impl PgStore {
    /// Counts a hot read and starts holding after [`ACTIVATE_AFTER`] of them.
    pub(crate) fn note_hot_read(&self) {
        if self.cache.should_start() {
            self.start_holding();
        }
    }

    /// Starts the holder task (once).
    pub(crate) fn start_holding(&self) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(hold(
                    Arc::downgrade(&self.cache),
                    self.pool.clone(),
                    self.listen.clone(),
                ));
            }
            Err(_) => self.cache.started.store(false, Ordering::Release),
        }
    }

    /// After a commit that changed what the cache may hold: empties this server's cache and
    /// waits until every other holder has (see the module documentation). An error means the
    /// change is committed but may not be visible everywhere yet.
    pub(crate) async fn published(&self) -> Result<(), StoreError> {
        self.cache.invalidate();
        self.pinged(Changed::Everything).await
    }

    /// [`PgStore::published`] for a change whose writer has emptied this server's cache of
    /// what it changed already (an account write, which may keep what it committed:
    /// [`ReadCache::written`]); the other holders forget what `changed` names.
    pub(crate) async fn pinged(&self, changed: Changed) -> Result<(), StoreError> {
        if self.cache.alone() {
            self.cache.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let (done, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut rounds = self.cache.rounds.lock().unwrap_or_else(|p| p.into_inner());
            rounds.waiting.push((done, changed));
            !std::mem::replace(&mut rounds.running, true)
        };
        if start {
            // A task of its own: a writer whose client goes away does not end the round that
            // others wait on.
            let store = self.clone();
            tokio::spawn(async move { store.ping_rounds().await });
        }
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Unavailable(e)),
            Err(_) => Err(StoreError::Unavailable(
                "the change was committed, but its invalidation was not confirmed: the \
                 round waiting for it ended"
                    .to_owned(),
            )),
        }
    }

    /// Runs rounds until no writer waits ([`PingRounds`]).
    async fn ping_rounds(&self) {
        loop {
            let (writers, changes): (Vec<_>, Vec<_>) = {
                let mut rounds = self.cache.rounds.lock().unwrap_or_else(|p| p.into_inner());
                if rounds.waiting.is_empty() {
                    rounds.running = false;
                    return;
                }
                std::mem::take(&mut rounds.waiting).into_iter().unzip()
            };
            let named = named(changes);
            let outcome = self.ping_round(&named).await.map_err(|e| match e {
                StoreError::Unavailable(text) => text,
                other => other.to_string(),
            });
            for writer in writers {
                let _ = writer.send(outcome.clone());
            }
        }
    }

    /// One ping, numbered after the commits of every writer waiting when the round began and
    /// naming what they changed ([`named`]), and the wait until every other holder with a live
    /// lease has seen it (or was fenced and its lease ran out).
    async fn ping_round(&self, named: &str) -> Result<(), StoreError> {
        let me = self.cache.holder();
        let started = Instant::now();
        let mut pause = Duration::from_micros(200);
        let mut ping: Option<i64> = None;
        let mut fenced = false;
        loop {
            let sent = Instant::now();
            let step = match ping {
                None => sqlx::query_scalar::<_, i64>(PING)
                    .bind(me)
                    .bind(named)
                    .fetch_optional(&self.pool)
                    .await
                    .map(|n| match n {
                        None => {
                            self.cache.alone_as_of(sent);
                            Some(0)
                        }
                        Some(n) => {
                            self.cache.pings.fetch_add(1, Ordering::Relaxed);
                            ping = Some(n);
                            None
                        }
                    }),
                Some(n) => sqlx::query_scalar::<_, i64>(BEHIND)
                    .bind(me)
                    .bind(n)
                    .fetch_one(&self.pool)
                    .await
                    .map(|behind| (behind == 0).then_some(0)),
            };
            match step {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => {}
                Err(e) if is_connection_error(&e) && started.elapsed() < PUBLISH_GIVE_UP => {}
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "the change was committed, but not every server may see it yet: {e}"
                    )));
                }
            }
            if let Some(n) = ping
                && !fenced
                && started.elapsed() >= ACK_WAIT
            {
                let done = sqlx::query(FENCE)
                    .bind(me)
                    .bind(n)
                    .execute(&self.pool)
                    .await;
                if let Ok(done) = done {
                    tracing::warn!(
                        holders = done.rows_affected(),
                        "read cache: servers did not confirm an invalidation in time; fenced"
                    );
                    fenced = true;
                }
            }
            if started.elapsed() >= ACK_WAIT + LEASE + PUBLISH_GIVE_UP {
                return Err(StoreError::Unavailable(
                    "the change was committed, but not every server confirmed it in time"
                        .to_owned(),
                ));
            }
            if ping.is_some() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(10));
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(text: &str) -> AccountId {
        AccountId::parse(text).unwrap()
    }

    fn change(text: &str, addresses: bool) -> Changed {
        Changed::account(account(text), addresses)
    }

    #[test]
    fn a_ping_names_the_accounts_of_its_round_and_a_holder_reads_them_back() {
        let text = named([
            change("alice@example.com", false),
            change("bob@example.com", true),
            change("alice@example.com", false),
        ]);
        let mut parts: Vec<&str> = text.split(' ').collect();
        parts.sort_unstable();
        assert_eq!(parts, ["+bob@example.com", "alice@example.com"], "{text}");
        let (n, sender, forget) = read_ping(&format!("17:4:{text}"));
        assert_eq!((n, sender), (Some(17), Some(4)));
        let Changed::Accounts(mut accounts) = forget else {
            panic!("{forget:?}");
        };
        accounts.sort_by_key(|(a, _)| a.to_string());
        assert_eq!(
            accounts,
            [
                (account("alice@example.com"), false),
                (account("bob@example.com"), true)
            ]
        );
        // An account's addresses go if any of its writers changed them.
        assert_eq!(
            named([change("a@x.org", false), change("a@x.org", true)]),
            "+a@x.org"
        );
    }

    #[test]
    fn everything_is_forgotten_when_a_ping_says_so_or_cannot_be_read() {
        assert_eq!(named([change("a@x.org", false), Changed::Everything]), "*");
        let many: Vec<Changed> = (0..1_000)
            .map(|i| change(&format!("user{i}@example.com"), false))
            .collect();
        assert_eq!(named(many), "*", "too long for a notification");
        for payload in ["5:1:*", "5:1", "5:1:alice@example.com bad@", "5:1:"] {
            assert_eq!(read_ping(payload).2, Changed::Everything, "{payload}");
        }
        assert_eq!(read_ping("x:y:*"), (None, None, Changed::Everything));
        assert_eq!(
            change("a@x.org", false).and(Changed::Everything),
            Changed::Everything
        );
    }
}
