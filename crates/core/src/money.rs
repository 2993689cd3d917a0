//! [`Money`]: exact amounts in ten-thousandths of the currency unit (four decimals), parsed from
//! and printed as decimal strings. No floating point anywhere.

use std::fmt;
use std::ops::{Add, Neg, Sub};

use serde::{Deserialize, Serialize};

use crate::error::ServiceError;
use crate::ids::printable;

/// Units per currency unit (four decimals).
pub const SCALE: i64 = 10_000;

/// An exact amount, possibly negative.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Money(i64);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// From ten-thousandths.
    pub fn from_units(units: i64) -> Self {
        Self(units)
    }

    /// In ten-thousandths.
    pub fn units(self) -> i64 {
        self.0
    }

    /// Parses `12`, `12.5`, `-0.1234`, `+3.00` (at most four decimals) for the parameter `field`.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        let bad = || {
            ServiceError::invalid(
                field,
                format!(
                    "'{}' is not an amount with at most 4 decimals",
                    printable(input)
                ),
            )
        };
        let s = input.trim();
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (whole, frac) = match digits.split_once('.') {
            Some((w, f)) => (w, f),
            None => (digits, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 4
            || whole.len() > 12
        {
            return Err(bad());
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut frac_units: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad())?
        };
        for _ in frac.len()..4 {
            frac_units *= 10;
        }
        let units = whole
            .checked_mul(SCALE)
            .and_then(|w| w.checked_add(frac_units))
            .ok_or_else(bad)?;
        Ok(Self(if negative { -units } else { units }))
    }

    /// Whether the amount is below zero.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// With an explicit sign (`+1.0000`, `-0.5000`), as history values are shown.
    pub fn signed(self) -> String {
        self.with_sign(self.to_string())
    }

    /// `text` (this amount written some way) with a `+` before it when the amount is not
    /// negative (a negative one carries its `-`).
    fn with_sign(self, text: String) -> String {
        if self.0 >= 0 {
            format!("+{text}")
        } else {
            text
        }
    }

    /// As a person reads it: two decimals, more only where they are not zero (`12.34`,
    /// `0.0125`, `-3.50`); the APIs keep the four of [`Display`](fmt::Display).
    pub fn shown(self) -> String {
        let full = self.to_string();
        let trimmed = full.trim_end_matches('0');
        // Four decimals always follow the point: at least two are kept.
        let keep = full.find('.').map_or(full.len(), |dot| dot + 3);
        if trimmed.len() >= keep {
            trimmed.to_owned()
        } else {
            full.get(..keep).unwrap_or(&full).to_owned()
        }
    }

    /// [`Money::shown`] with an explicit sign (`+1.00`, `-0.50`).
    pub fn signed_shown(self) -> String {
        self.with_sign(self.shown())
    }

    /// Checked addition.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = SCALE.unsigned_abs();
        write!(f, "{sign}{}.{:04}", abs / scale, abs % scale)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0.saturating_sub(rhs.0))
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(self.0.saturating_neg())
    }
}

impl TryFrom<String> for Money {
    type Error = ServiceError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_for("amount", &value)
    }
}

impl From<Money> for String {
    fn from(value: Money) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_as_a_person_reads_it() {
        for (units, shown, signed) in [
            (123_400, "12.34", "+12.34"),
            (120_000, "12.00", "+12.00"),
            (125, "0.0125", "+0.0125"),
            (120, "0.012", "+0.012"),
            (-35_000, "-3.50", "-3.50"),
            (0, "0.00", "+0.00"),
            (-1, "-0.0001", "-0.0001"),
        ] {
            assert_eq!(Money::from_units(units).shown(), shown, "{units}");
            assert_eq!(Money::from_units(units).signed_shown(), signed, "{units}");
        }
    }

    #[test]
    fn parses_and_prints_exactly() {
        for (input, units, shown) in [
            ("12", 120_000, "12.0000"),
            ("12.5", 125_000, "12.5000"),
            ("-0.1234", -1_234, "-0.1234"),
            ("+3.00", 30_000, "3.0000"),
            (".5", 5_000, "0.5000"),
            ("0.0001", 1, "0.0001"),
        ] {
            let m = Money::parse_for("amount", input).unwrap();
            assert_eq!(m.units(), units, "{input}");
            assert_eq!(m.to_string(), shown, "{input}");
        }
        for bad in [
            "",
            ".",
            "1.23456",
            "1e3",
            "abc",
            "1,5",
            "--1",
            "9999999999999",
        ] {
            assert!(Money::parse_for("amount", bad).is_err(), "{bad}");
        }
        assert_eq!(Money::from_units(-5_000).signed(), "-0.5000");
        assert_eq!(Money::from_units(10_000).signed(), "+1.0000");
    }
}
