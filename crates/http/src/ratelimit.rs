//! Request rate limits: token buckets per client certificate (or, for the web page, per
//! logged-in account) and per source address, with separate budgets for reads and writes. Over
//! the limit a request is answered `429` with `Retry-After`. Time comes from the service clock,
//! so tests move it instead of sleeping.
//!
//! The web page's POSTs (the login included) spend the address's write budget, and once logged
//! in also the account's, which has the certificate budget's size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sip_settings_core::{AccountId, Serial};

/// One budget: `per_second` tokens flow in, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: f64,
}

/// The four budgets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Reads per certificate (and per web-page account).
    pub certificate_reads: Budget,
    /// Writes per certificate (and per web-page account).
    pub certificate_writes: Budget,
    /// Reads per source address.
    pub address_reads: Budget,
    /// Writes per source address.
    pub address_writes: Budget,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            certificate_reads: Budget {
                per_second: 20.0,
                burst: 100.0,
            },
            certificate_writes: Budget {
                per_second: 2.0,
                burst: 30.0,
            },
            address_reads: Budget {
                per_second: 500.0,
                burst: 2000.0,
            },
            address_writes: Budget {
                per_second: 100.0,
                burst: 500.0,
            },
        }
    }
}

/// Whether a request reads or changes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A read.
    Read,
    /// A change.
    Write,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Certificate(Serial, Kind),
    Account(AccountId, Kind),
    Address(IpAddr, Kind),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// Most buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 100_000;

/// The limiter shared by all connections.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Option<RateLimits>,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

impl RateLimiter {
    /// A limiter with these budgets, or one that lets everything through (`None`).
    pub fn new(limits: Option<RateLimits>) -> Self {
        Self {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from the certificate's and the address's bucket of `kind`. `Err` gives
    /// the whole seconds to wait.
    pub fn check(
        &self,
        serial: Option<&Serial>,
        addr: IpAddr,
        kind: Kind,
        now: DateTime<Utc>,
    ) -> Result<(), u64> {
        self.take(
            serial.map(|s| Key::Certificate(s.clone(), kind)),
            addr,
            kind,
            now,
        )
    }

    /// Takes one token from the web-page account's (if logged in) and the address's bucket of
    /// `kind`. `Err` gives the whole seconds to wait.
    pub fn check_account(
        &self,
        account: Option<&AccountId>,
        addr: IpAddr,
        kind: Kind,
        now: DateTime<Utc>,
    ) -> Result<(), u64> {
        self.take(
            account.map(|a| Key::Account(a.clone(), kind)),
            addr,
            kind,
            now,
        )
    }

    fn take(
        &self,
        principal: Option<Key>,
        addr: IpAddr,
        kind: Kind,
        now: DateTime<Utc>,
    ) -> Result<(), u64> {
        let Some(limits) = self.limits else {
            return Ok(());
        };
        let (cert_budget, addr_budget) = match kind {
            Kind::Read => (limits.certificate_reads, limits.address_reads),
            Kind::Write => (limits.certificate_writes, limits.address_writes),
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > MAX_BUCKETS {
            // Idle buckets are full anyway; forgetting them changes nothing.
            buckets.retain(|_, b| (now - b.at).num_seconds() < 600);
        }
        let mut keys = vec![(Key::Address(addr, kind), addr_budget)];
        if let Some(key) = principal {
            keys.push((key, cert_budget));
        }
        // Check all first, then take from all: a refused request costs nothing.
        let mut wait: f64 = 0.0;
        let mut refilled = Vec::with_capacity(keys.len());
        for (key, budget) in keys {
            let b = buckets.get(&key).copied().unwrap_or(Bucket {
                tokens: budget.burst,
                at: now,
            });
            #[allow(
                clippy::cast_precision_loss,
                reason = "milliseconds since the bucket was last used: f64 is exact up to 2^53 ms (285,000 years)"
            )]
            let elapsed = (now - b.at).num_milliseconds().max(0) as f64 / 1000.0;
            let tokens = (b.tokens + elapsed * budget.per_second).min(budget.burst);
            if tokens < 1.0 {
                let need = (1.0 - tokens) / budget.per_second.max(f64::MIN_POSITIVE);
                wait = wait.max(need);
            }
            refilled.push((key, tokens));
        }
        if wait > 0.0 {
            for (key, tokens) in refilled {
                buckets.insert(key, Bucket { tokens, at: now });
            }
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "whole seconds to wait, at least 1: `as` saturates an absurd wait (a near-zero rate) at u64::MAX, which is what Retry-After should say"
            )]
            let seconds = wait.ceil().max(1.0) as u64;
            drop(buckets);
            sip_settings_core::metrics::global().add(
                "sip_settings_rate_limited_total",
                "Requests refused with 429 by the request rate limits, by kind (read, write).",
                &["kind"],
                &[match kind {
                    Kind::Read => "read",
                    Kind::Write => "write",
                }],
                1,
            );
            return Err(seconds);
        }
        for (key, tokens) in refilled {
            buckets.insert(
                key,
                Bucket {
                    tokens: tokens - 1.0,
                    at: now,
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_empties_and_refills() {
        let limits = RateLimits {
            certificate_reads: Budget {
                per_second: 1.0,
                burst: 3.0,
            },
            certificate_writes: Budget {
                per_second: 0.5,
                burst: 1.0,
            },
            address_reads: Budget {
                per_second: 100.0,
                burst: 100.0,
            },
            address_writes: Budget {
                per_second: 100.0,
                burst: 100.0,
            },
        };
        let l = RateLimiter::new(Some(limits));
        let s = Serial::parse("01").unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t = Utc::now();
        for _ in 0..3 {
            assert!(l.check(Some(&s), ip, Kind::Read, t).is_ok());
        }
        assert_eq!(l.check(Some(&s), ip, Kind::Read, t), Err(1));
        // Writes have their own budget.
        assert!(l.check(Some(&s), ip, Kind::Write, t).is_ok());
        assert_eq!(l.check(Some(&s), ip, Kind::Write, t), Err(2));
        // Another certificate is not affected.
        assert!(
            l.check(Some(&Serial::parse("02").unwrap()), ip, Kind::Read, t)
                .is_ok()
        );
        // One second later, one more read.
        let later = t + chrono::Duration::seconds(1);
        assert!(l.check(Some(&s), ip, Kind::Read, later).is_ok());
        assert!(l.check(Some(&s), ip, Kind::Read, later).is_err());
        assert!(
            RateLimiter::new(None)
                .check(Some(&s), ip, Kind::Read, t)
                .is_ok()
        );
        // A web-page account has a bucket of its own, of the certificate budget's size.
        let alice = AccountId::parse("alice@example.com").unwrap();
        assert!(l.check_account(Some(&alice), ip, Kind::Write, t).is_ok());
        assert_eq!(l.check_account(Some(&alice), ip, Kind::Write, t), Err(2));
        assert!(l.check_account(None, ip, Kind::Write, t).is_ok());
    }
}
