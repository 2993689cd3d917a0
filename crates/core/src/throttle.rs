//! Password checks: counted per account and per source address, and run where they cannot
//! starve request handling.
//!
//! * **Counting.** Every door that takes the SIP password (the web login, the web `.p12`
//!   download, the action endpoint's `p12`, the CLI) goes through
//!   [`crate::Services::verify_password`] or [`crate::Services::log_in`], which count failures
//!   here under the [`AccountId`] the text resolves to (an alias counts for its account), and
//!   under the request's source address. At most [`PasswordChecks::per_account`] failures per
//!   account and [`PasswordChecks::per_address`] per address within [`PasswordChecks::window`];
//!   past that every check for that account (or from that address) is refused — even with the
//!   right password — with [`ServiceError::Throttled`] until the oldest failure leaves the
//!   window. A refused check costs no hashing.
//! * **Atomic.** An attempt is counted as a failure when it starts (check and count under one
//!   lock), and taken back when it succeeds or never reaches a verdict, so that concurrent
//!   guesses cannot all pass the check before the first failure is recorded.
//! * **Bounded hashing.** The Argon2 verification runs on tokio's blocking threads, at most
//!   [`PasswordChecks::concurrent`] at once; a check that finds every permit busy waits at most
//!   [`PasswordChecks::queue_wait`] (and at most [`PasswordChecks::queue`] checks wait), then is
//!   refused with [`ServiceError::Throttled`] (1 s). The permit is held until the hash is done,
//!   even when the request is abandoned.
//!
//! The counters are in memory, per server process; every clone of [`crate::Services`] shares
//! them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::credentials::{Credentials, Password};
use crate::error::ServiceError;
use crate::ids::AccountId;

/// The tunables of password checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordChecks {
    /// Failed checks allowed per account within `window`.
    pub per_account: usize,
    /// Failed checks allowed per source address within `window`.
    pub per_address: usize,
    /// The counting window.
    pub window: Duration,
    /// Password hashes computed at once.
    pub concurrent: usize,
    /// Checks allowed to wait for a permit.
    pub queue: usize,
    /// Longest wait for a permit.
    pub queue_wait: std::time::Duration,
}

impl Default for PasswordChecks {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let concurrent = (cores / 2).max(1);
        Self {
            per_account: 5,
            per_address: 20,
            window: Duration::minutes(15),
            concurrent,
            queue: 16 * concurrent,
            queue_wait: std::time::Duration::from_secs(1),
        }
    }
}

/// What a [`Throttle`] guards: the failures it counts have the same rules, their own counters,
/// words and metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guarded {
    /// Password checks (web log-in, `p12`, HTTP Digest).
    Password,
    /// Prepaid card numbers of `add_balance` ([`crate::voucher`]).
    VoucherNumber,
}

impl Guarded {
    /// The failed thing, in the refusal's words.
    fn failures(self) -> &'static str {
        match self {
            Self::Password => "failed password attempts",
            Self::VoucherNumber => "wrong prepaid card numbers",
        }
    }

    /// Counts an attempt refused by the throttle, by why: `account` or `address` (too many
    /// failures), `busy` (every hashing permit taken; passwords only).
    fn count_throttled(self, why: &'static str) {
        let (name, help) = match self {
            Self::Password => (
                "sip_settings_password_checks_throttled_total",
                "Password checks (web log-in, p12 download, SIP password) refused by the throttle, \
                 by why: account or address (too many recent failures), busy (no hashing capacity).",
            ),
            Self::VoucherNumber => (
                "sip_settings_voucher_attempts_throttled_total",
                "Prepaid card redemptions (add_balance) refused by the throttle, by why: account \
                 or address (too many recent wrong card numbers).",
            ),
        };
        crate::metrics::global().add(name, help, &["why"], &[why], 1);
    }
}

/// What [`ServiceError::Throttled`] says when every hashing permit is busy (not a failure count).
pub const BUSY: &str = "too many password checks at once";

/// Most keys remembered; past that, expired ones are dropped first.
const MAX_KEYS: usize = 100_000;
/// Longest source address kept as a key.
const MAX_SOURCE_CHARS: usize = 100;

#[derive(Debug, Default)]
struct Failures {
    by_account: HashMap<AccountId, VecDeque<DateTime<Utc>>>,
    by_address: HashMap<String, VecDeque<DateTime<Utc>>>,
}

/// The shared state: failure counters, hashing permits and the decoy credentials.
#[derive(Debug)]
pub(crate) struct Throttle {
    guarded: Guarded,
    limits: PasswordChecks,
    failures: Mutex<Failures>,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Credentials of no account, checked when a check names no known account, so that the
    /// answer takes as long as for a known one.
    decoy: Arc<OnceLock<Option<Credentials>>>,
}

/// One counted attempt: the keys it was counted under. Taken back on drop unless
/// [`Attempt::failed`] keeps it.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    throttle: &'a Throttle,
    account: Option<AccountId>,
    address: Option<String>,
    at: DateTime<Utc>,
    kept: bool,
}

fn prune(q: &mut VecDeque<DateTime<Utc>>, now: DateTime<Utc>, window: Duration) {
    while q.front().is_some_and(|t| *t + window <= now) {
        q.pop_front();
    }
}

/// Whole seconds (at least 1) until a full queue has room again.
fn wait_seconds(
    q: &VecDeque<DateTime<Utc>>,
    limit: usize,
    now: DateTime<Utc>,
    window: Duration,
) -> Option<u64> {
    if q.len() < limit {
        return None;
    }
    let oldest = q.get(q.len() - limit)?;
    let ms = (*oldest + window - now).num_milliseconds().max(1);
    Some(u64::try_from((ms + 999) / 1000).unwrap_or(1))
}

/// Removes one entry `at` (the newest such) from a queue.
fn take_back(q: &mut VecDeque<DateTime<Utc>>, at: DateTime<Utc>) {
    if let Some(i) = q.iter().rposition(|t| *t == at) {
        q.remove(i);
    }
}

impl Throttle {
    pub(crate) fn new(limits: PasswordChecks) -> Self {
        Self::guarding(Guarded::Password, limits)
    }

    /// A throttle of `guarded`'s failures with the limits of password checks.
    pub(crate) fn guarding(guarded: Guarded, limits: PasswordChecks) -> Self {
        let permits = Arc::new(Semaphore::new(limits.concurrent.max(1)));
        Self {
            guarded,
            limits,
            failures: Mutex::new(Failures::default()),
            permits,
            waiting: AtomicUsize::new(0),
            decoy: Arc::new(OnceLock::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an attempt for `account` from `source`: refused when either is over its limit,
    /// otherwise counted (as a failure until it succeeds or is dropped).
    pub(crate) fn begin(
        &self,
        account: Option<&AccountId>,
        source: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Attempt<'_>, ServiceError> {
        let window = self.limits.window;
        let address: Option<String> = source.map(|s| s.chars().take(MAX_SOURCE_CHARS).collect());
        let mut f = self.lock();
        if f.by_account.len() + f.by_address.len() > MAX_KEYS {
            f.by_account.retain(|_, q| {
                prune(q, now, window);
                !q.is_empty()
            });
            f.by_address.retain(|_, q| {
                prune(q, now, window);
                !q.is_empty()
            });
        }
        let by_account = account.and_then(|id| {
            let q = f.by_account.get_mut(id)?;
            prune(q, now, window);
            wait_seconds(q, self.limits.per_account, now, window)
        });
        let by_address = address.as_ref().and_then(|a| {
            let q = f.by_address.get_mut(a)?;
            prune(q, now, window);
            wait_seconds(q, self.limits.per_address, now, window)
        });
        if let Some(wait) = by_account {
            self.guarded.count_throttled("account");
            return Err(ServiceError::Throttled {
                what: format!("too many {} for this account", self.guarded.failures()),
                wait_seconds: wait.max(by_address.unwrap_or(0)),
            });
        }
        if let Some(wait) = by_address {
            self.guarded.count_throttled("address");
            return Err(ServiceError::Throttled {
                what: format!("too many {} from this address", self.guarded.failures()),
                wait_seconds: wait,
            });
        }
        if let Some(id) = account {
            f.by_account.entry(id.clone()).or_default().push_back(now);
        }
        if let Some(a) = &address {
            f.by_address.entry(a.clone()).or_default().push_back(now);
        }
        Ok(Attempt {
            throttle: self,
            account: account.cloned(),
            address,
            at: now,
            kept: false,
        })
    }

    /// A hashing permit: at once when one is free, else after a bounded wait, else refused.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, ServiceError> {
        let busy = || {
            self.guarded.count_throttled("busy");
            ServiceError::Throttled {
                what: BUSY.to_owned(),
                wait_seconds: 1,
            }
        };
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.limits.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(busy());
        }
        let waited =
            tokio::time::timeout(self.limits.queue_wait, self.permits.clone().acquire_owned())
                .await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match waited {
            Ok(Ok(p)) => Ok(p),
            _ => Err(busy()),
        }
    }

    /// Whether `password` matches `credentials` (or, without them, the decoy, always false):
    /// computed on a blocking thread under a permit.
    pub(crate) async fn verify(
        &self,
        credentials: Option<Credentials>,
        password: &Password,
    ) -> Result<bool, ServiceError> {
        let permit = self.permit().await?;
        let password = password.clone();
        let decoy = self.decoy.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match &credentials {
                Some(c) => c.verify(&password),
                None => {
                    let decoy = decoy.get_or_init(|| {
                        let id = AccountId::parse("nobody@example.com").ok()?;
                        Credentials::derive(&id, &Password::generate()).ok()
                    });
                    if let Some(d) = decoy {
                        let _ = d.verify(&password);
                    }
                    false
                }
            }
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("password check: {e}")))
    }
}

impl Attempt<'_> {
    /// The password was wrong: the attempt stays counted.
    pub(crate) fn failed(mut self) {
        self.kept = true;
    }

    /// The password was right: the account's failures are cleared (the address's stay, less
    /// this attempt).
    pub(crate) fn succeeded(self) {
        if let Some(id) = &self.account {
            self.throttle.lock().by_account.remove(id);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut f = self.throttle.lock();
        if let Some(id) = &self.account
            && let Some(q) = f.by_account.get_mut(id)
        {
            take_back(q, self.at);
            if q.is_empty() {
                f.by_account.remove(id);
            }
        }
        if let Some(a) = &self.address
            && let Some(q) = f.by_address.get_mut(a)
        {
            take_back(q, self.at);
            if q.is_empty() {
                f.by_address.remove(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limits() -> PasswordChecks {
        PasswordChecks {
            concurrent: 1,
            queue: 1,
            queue_wait: std::time::Duration::from_millis(50),
            ..PasswordChecks::default()
        }
    }

    fn wait(r: Result<Attempt<'_>, ServiceError>) -> u64 {
        match r {
            Err(ServiceError::Throttled { wait_seconds, .. }) => wait_seconds,
            other => panic!("not throttled: {other:?}"),
        }
    }

    #[test]
    fn five_per_account_twenty_per_address() {
        let t = Throttle::new(limits());
        let now = Utc::now();
        let alice = AccountId::parse("alice@example.com").unwrap();
        let bob = AccountId::parse("bob@example.com").unwrap();
        for _ in 0..5 {
            t.begin(Some(&alice), Some("192.0.2.1"), now)
                .unwrap()
                .failed();
        }
        assert_eq!(wait(t.begin(Some(&alice), Some("192.0.2.2"), now)), 900);
        assert_eq!(wait(t.begin(Some(&alice), None, now)), 900);
        assert!(t.begin(Some(&bob), Some("192.0.2.1"), now).is_ok());
        let later = now + Duration::minutes(10);
        assert_eq!(wait(t.begin(Some(&alice), None, later)), 300);
        let window_end = now + Duration::minutes(15);
        assert!(t.begin(Some(&alice), None, window_end).is_ok());
        // Fifteen more failures from the first address: it is full, the second is not.
        for _ in 0..15 {
            t.begin(None, Some("192.0.2.1"), now).unwrap().failed();
        }
        assert_eq!(wait(t.begin(Some(&bob), Some("192.0.2.1"), now)), 900);
        assert!(t.begin(Some(&bob), Some("192.0.2.2"), now).is_ok());
    }

    #[test]
    fn attempts_count_while_running_and_are_taken_back_without_a_verdict() {
        let t = Throttle::new(limits());
        let now = Utc::now();
        let alice = AccountId::parse("alice@example.com").unwrap();
        // Five attempts in flight at once: a sixth is refused before any has failed.
        let running: Vec<_> = (0..5)
            .map(|_| t.begin(Some(&alice), Some("a"), now).unwrap())
            .collect();
        assert_eq!(wait(t.begin(Some(&alice), Some("a"), now)), 900);
        // None reached a verdict (dropped): nothing is counted.
        drop(running);
        for _ in 0..4 {
            t.begin(Some(&alice), Some("a"), now).unwrap().failed();
        }
        // A success clears the account's failures but not the address's.
        t.begin(Some(&alice), Some("a"), now).unwrap().succeeded();
        for _ in 0..5 {
            t.begin(Some(&alice), Some("a"), now).unwrap().failed();
        }
        assert!(t.begin(Some(&alice), Some("a"), now).is_err());
        let f = t.lock();
        assert_eq!(
            f.by_address["a"].len(),
            9,
            "4 + 5 failures, the success taken back"
        );
    }

    #[tokio::test]
    async fn hashing_is_bounded() {
        let t = Arc::new(Throttle::new(limits()));
        // The only permit is taken: one check may wait (briefly), a second is refused at once.
        let held = t.permits.clone().try_acquire_owned().unwrap();
        let waiting = {
            let t = t.clone();
            tokio::spawn(async move { t.verify(None, &Password::offered("x")).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let refused = t.verify(None, &Password::offered("x")).await;
        assert!(matches!(
            refused,
            Err(ServiceError::Throttled {
                wait_seconds: 1,
                ..
            })
        ));
        let timed_out = waiting.await.unwrap();
        assert!(matches!(timed_out, Err(ServiceError::Throttled { .. })));
        drop(held);
        // With the permit free, the decoy is checked and says no.
        assert!(!t.verify(None, &Password::offered("x")).await.unwrap());
    }
}
