//! Rating: a [`Rate`] per destination prefix (longest prefix wins), the price of a call of a
//! given duration, and the longest call a balance pays for.

use serde::Serialize;

use crate::error::ServiceError;
use crate::ids::printable;
use crate::money::Money;

/// The rate of destinations starting with `prefix` (E.164 digits without `+`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rate {
    /// Digits the destination starts with.
    pub prefix: String,
    /// What it is (`Netherlands mobile`).
    pub description: String,
    /// Charged once for an answered call.
    pub connect_fee: Money,
    /// Per minute of billed time.
    pub rate_per_minute: Money,
    /// Billing increment in seconds (≥ 1).
    pub increment_seconds: u32,
    /// Minimum billed seconds of an answered call.
    pub minimum_seconds: u32,
}

impl Rate {
    /// Builds a rate, checking its fields.
    pub fn new(
        prefix: &str,
        description: &str,
        connect_fee: Money,
        rate_per_minute: Money,
        increment_seconds: u32,
        minimum_seconds: u32,
    ) -> Result<Self, ServiceError> {
        let p = prefix.trim().trim_start_matches('+');
        if p.is_empty() || p.len() > 15 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ServiceError::invalid(
                "prefix",
                format!("'{}' must be 1 to 15 digits", printable(prefix)),
            ));
        }
        if description.chars().any(char::is_control) || description.chars().count() > 128 {
            return Err(ServiceError::invalid(
                "description",
                "must be at most 128 characters without control characters",
            ));
        }
        if connect_fee.is_negative() {
            return Err(ServiceError::invalid("connect_fee", "must not be negative"));
        }
        if rate_per_minute.is_negative() {
            return Err(ServiceError::invalid(
                "rate_per_minute",
                "must not be negative",
            ));
        }
        if !(1..=3600).contains(&increment_seconds) {
            return Err(ServiceError::invalid(
                "increment_seconds",
                "must be between 1 and 3600",
            ));
        }
        if minimum_seconds > 3600 {
            return Err(ServiceError::invalid(
                "minimum_seconds",
                "must be between 0 and 3600",
            ));
        }
        Ok(Self {
            prefix: p.to_owned(),
            description: description.trim().to_owned(),
            connect_fee,
            rate_per_minute,
            increment_seconds,
            minimum_seconds,
        })
    }

    /// Seconds billed for a call of `duration` seconds: nothing for an unanswered (0 s) call,
    /// else at least the minimum, rounded up to the increment.
    pub fn billed_seconds(&self, duration: u32) -> u64 {
        if duration == 0 {
            return 0;
        }
        let inc = u64::from(self.increment_seconds.max(1));
        let d = u64::from(duration.max(self.minimum_seconds));
        d.div_ceil(inc) * inc
    }

    /// The price of a call of `duration` seconds: connect fee plus the per-minute rate over the
    /// billed seconds, rounded up to the ten-thousandth.
    pub fn price(&self, duration: u32) -> Money {
        let billed = self.billed_seconds(duration);
        if billed == 0 {
            return Money::ZERO;
        }
        let per_minute = i128::from(self.rate_per_minute.units());
        let time_units = (per_minute * i128::from(billed) + 59) / 60;
        let total = i128::from(self.connect_fee.units()) + time_units;
        Money::from_units(i64::try_from(total).unwrap_or(i64::MAX))
    }

    /// The longest call (seconds, a multiple of the increment, at most `cap`) whose price
    /// `available` pays; 0 when it does not pay for the minimum.
    pub fn affordable_seconds(&self, available: Money, cap: u32) -> u32 {
        if self.price(1) > available {
            return 0;
        }
        let inc = u64::from(self.increment_seconds.max(1));
        let per_minute = i128::from(self.rate_per_minute.units());
        let max_billed: u64 = if per_minute == 0 {
            u64::from(cap)
        } else {
            let left = i128::from(available.units() - self.connect_fee.units());
            u64::try_from(left * 60 / per_minute).unwrap_or(0)
        };
        let seconds = (max_billed / inc) * inc;
        let capped = seconds.min((u64::from(cap) / inc) * inc);
        let result = u32::try_from(capped).unwrap_or(cap);
        // The minimum is billed anyway: a call shorter than it costs the same.
        if result < self.minimum_seconds.max(1) {
            0
        } else {
            result
        }
    }
}

/// The prefixes of a destination's digits, longest first, for a longest-prefix lookup.
pub fn prefixes_of(digits: &str) -> Vec<String> {
    (1..=digits.len())
        .rev()
        .map(|n| digits[..n].to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        Money::parse_for("x", s).unwrap()
    }

    #[test]
    fn prices_follow_increments_minimum_and_connect_fee() {
        // 0.10 per minute, 0.05 connect, 60/60 billing.
        let r = Rate::new("31", "NL", m("0.05"), m("0.10"), 60, 60).unwrap();
        assert_eq!(r.price(0), Money::ZERO);
        assert_eq!(r.price(1).to_string(), "0.1500");
        assert_eq!(r.price(60).to_string(), "0.1500");
        assert_eq!(r.price(61).to_string(), "0.2500");
        // 1/1 billing with a 30 s minimum, 0.0100 per minute: 45 s cost 0.0075.
        let r = Rate::new("44", "UK", Money::ZERO, m("0.01"), 1, 30).unwrap();
        assert_eq!(r.price(10).to_string(), "0.0050");
        assert_eq!(r.price(45).to_string(), "0.0075");
        // Rounding up to the ten-thousandth: 0.0001 per minute for 1 s.
        let r = Rate::new("1", "US", Money::ZERO, m("0.0001"), 1, 0).unwrap();
        assert_eq!(r.price(1).to_string(), "0.0001");
    }

    #[test]
    fn affordable_seconds_never_cost_more_than_available() {
        let r = Rate::new("31", "NL", m("0.05"), m("0.10"), 60, 60).unwrap();
        assert_eq!(r.affordable_seconds(m("1.00"), 7200), 540);
        assert!(r.price(540) <= m("1.00"));
        assert!(r.price(541) > m("1.00"));
        assert_eq!(r.affordable_seconds(m("0.14"), 7200), 0);
        assert_eq!(r.affordable_seconds(m("1000"), 3600), 3600);
        for cents in 0..300 {
            let a = Money::from_units(cents * 37);
            let s = r.affordable_seconds(a, 100_000);
            assert!(r.price(s) <= a || s == 0, "{a} {s}");
        }
        let free = Rate::new("800", "free", Money::ZERO, Money::ZERO, 1, 0).unwrap();
        assert_eq!(free.affordable_seconds(Money::ZERO, 600), 600);
    }

    #[test]
    fn prefixes_longest_first() {
        assert_eq!(prefixes_of("316"), vec!["316", "31", "3"]);
        assert!(Rate::new("+31a", "", Money::ZERO, Money::ZERO, 1, 0).is_err());
        assert!(Rate::new("31", "", Money::ZERO, Money::ZERO, 0, 0).is_err());
    }
}
