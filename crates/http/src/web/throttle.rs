//! Login throttling, in memory per server: at most 5 failed logins per account and 20 per
//! client address within 15 minutes. Past that, logins for that account (or from that address)
//! are refused — even with the right password — until the oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Failed logins allowed per account within [`WINDOW_MINUTES`].
pub const PER_ACCOUNT: usize = 5;
/// Failed logins allowed per client address within [`WINDOW_MINUTES`].
pub const PER_ADDRESS: usize = 20;
/// The window, in minutes.
pub const WINDOW_MINUTES: i64 = 15;
/// Most keys remembered; past that, expired ones are dropped first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
struct Failures {
    by_account: HashMap<String, VecDeque<DateTime<Utc>>>,
    by_address: HashMap<IpAddr, VecDeque<DateTime<Utc>>>,
}

/// The failed-login counters.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<Failures>,
}

fn window() -> Duration {
    Duration::minutes(WINDOW_MINUTES)
}

fn prune(q: &mut VecDeque<DateTime<Utc>>, now: DateTime<Utc>) {
    while q.front().is_some_and(|t| *t + window() <= now) {
        q.pop_front();
    }
}

/// Whole minutes (at least 1) until the oldest failure of a full queue leaves the window.
fn wait_minutes(q: &VecDeque<DateTime<Utc>>, limit: usize, now: DateTime<Utc>) -> Option<i64> {
    if q.len() < limit {
        return None;
    }
    let oldest = q.get(q.len() - limit)?;
    let secs = (*oldest + window() - now).num_seconds().max(1);
    Some((secs + 59) / 60)
}

impl LoginThrottle {
    /// `Err(minutes)` when a login for `account` from `addr` must be refused now.
    pub fn check(&self, account: &str, addr: IpAddr, now: DateTime<Utc>) -> Result<(), i64> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let by_account = f.by_account.get_mut(account).and_then(|q| {
            prune(q, now);
            wait_minutes(q, PER_ACCOUNT, now)
        });
        let by_address = f.by_address.get_mut(&addr).and_then(|q| {
            prune(q, now);
            wait_minutes(q, PER_ADDRESS, now)
        });
        match by_account.into_iter().chain(by_address).max() {
            Some(minutes) => Err(minutes),
            None => Ok(()),
        }
    }

    /// Counts a failed login.
    pub fn failed(&self, account: &str, addr: IpAddr, now: DateTime<Utc>) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.by_account.len() + f.by_address.len() > MAX_KEYS {
            f.by_account.retain(|_, q| {
                prune(q, now);
                !q.is_empty()
            });
            f.by_address.retain(|_, q| {
                prune(q, now);
                !q.is_empty()
            });
        }
        let key: String = account.chars().take(200).collect();
        let q = f.by_account.entry(key).or_default();
        q.push_back(now);
        while q.len() > PER_ACCOUNT {
            q.pop_front();
        }
        let q = f.by_address.entry(addr).or_default();
        q.push_back(now);
        while q.len() > PER_ADDRESS {
            q.pop_front();
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn succeeded(&self, account: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.by_account.remove(account);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn five_per_account_twenty_per_address() {
        let t = LoginThrottle::default();
        let now = Utc::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..5 {
            assert!(t.check("alice@example.com", a, now).is_ok());
            t.failed("alice@example.com", a, now);
        }
        assert_eq!(t.check("alice@example.com", b, now), Err(15));
        assert!(t.check("bob@example.com", a, now).is_ok());
        let later = now + Duration::minutes(10);
        assert_eq!(t.check("alice@example.com", b, later), Err(5));
        assert!(
            t.check("alice@example.com", b, now + Duration::minutes(15))
                .is_ok()
        );
        for i in 0..15 {
            t.failed(&format!("u{i}@example.com"), a, now);
        }
        assert_eq!(t.check("carol@example.com", a, now), Err(15));
        assert!(t.check("carol@example.com", b, now).is_ok());
    }
}
