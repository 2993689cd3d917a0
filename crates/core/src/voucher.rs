//! Prepaid cards (vouchers): made by the operator in batches for one domain, each worth a fixed
//! value, and redeemed once by a prepaid account of that domain (`add_balance`, CDRTool's
//! prepaid card top-up), which credits its balance.
//!
//! * **Id and number.** A card is its `id` (the store's sequence number, printed on the card
//!   as CDRTool's card id) and its `number`: [`NUMBER_DIGITS`] decimal digits from the
//!   operating system seeded CSPRNG (`rand::rng()`), about 66 bits. The number is shown once,
//!   when the batch is made, and never stored: the store keeps [`VoucherNumber::hash`] (SHA-256
//!   with a label), compared on redemption. It is never logged, nor journaled.
//! * **Single use, atomic.** [`crate::store::Vouchers::redeem_voucher`] marks the card used (by
//!   whom, when), credits the balance, and writes the history entry and the journal entries in
//!   one transaction under the account's write lock; the card's row is changed only while it is
//!   unused, so of two redemptions of one card exactly one wins.
//! * **Throttled.** A wrong id or number counts as a failure per account and per source address
//!   with the limits of password checks ([`crate::throttle`], its own counters): 5 per account
//!   and 20 per address in 15 minutes, then every redemption of that account (or from that
//!   address) is refused with [`ServiceError::Throttled`] until the oldest failure leaves the
//!   window. Only a successful redemption clears the account's failures; a refusal of a right
//!   number (used, disabled, expired, another domain, a postpaid account) is neither a failure
//!   nor a success.
//! * **Domain-bound, prepaid only.** A card is redeemed only by an account of its domain, and
//!   only by a prepaid account (as in CDRTool, the balance of a postpaid account pays for
//!   nothing, so crediting it would take the card for nothing).

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest as _, Sha256};

use crate::error::{ServiceError, StoreError};
use crate::ids::{AccountId, Domain, printable, whole_number};
use crate::journal::Stamp;
use crate::money::Money;
use crate::service::Services;

/// Digits of a generated card number.
pub const NUMBER_DIGITS: usize = 20;
/// Most cards made at once.
pub const MAX_BATCH: u32 = 10_000;
/// Longest card number accepted on redemption (after spaces and dashes are removed).
const MAX_NUMBER_CHARS: usize = 64;
/// The label hashed before a number, so that the stored hash is of no other use.
const HASH_LABEL: &[u8] = b"sip-settings prepaid card v1\0";

/// A card number: decimal digits. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct VoucherNumber(String);

impl std::fmt::Debug for VoucherNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VoucherNumber(..)")
    }
}

impl VoucherNumber {
    /// A new random number of [`NUMBER_DIGITS`] digits.
    pub fn generate() -> Self {
        use rand::Rng;
        let mut rng = rand::rng();
        Self(
            (0..NUMBER_DIGITS)
                .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                .collect(),
        )
    }

    /// A number as a subscriber types it: digits, with spaces and dashes between groups
    /// ignored.
    pub fn parse(input: &str) -> Result<Self, ServiceError> {
        let digits: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if digits.is_empty() {
            return Err(ServiceError::invalid("number", "is missing"));
        }
        if digits.len() > MAX_NUMBER_CHARS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ServiceError::invalid(
                "number",
                "must be the prepaid card's number: digits only (spaces and dashes are ignored)",
            ));
        }
        Ok(Self(digits))
    }

    /// The digits (shown once, when the card is made).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps: SHA-256 of a label and the digits, lower-case hex.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(HASH_LABEL);
        h.update(self.0.as_bytes());
        hex::encode(h.finalize())
    }
}

/// A card to store ([`crate::store::Vouchers::create_vouchers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVoucher {
    /// The domain whose accounts may redeem it.
    pub domain: Domain,
    /// What it adds to a balance.
    pub value: Money,
    /// [`VoucherNumber::hash`] of its number.
    pub number_hash: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops being accepted, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who made it (the journal's actor).
    pub created_by: String,
}

/// A stored card (its number is not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voucher {
    /// The card's id.
    pub id: i64,
    /// The domain whose accounts may redeem it.
    pub domain: Domain,
    /// What it adds to a balance.
    pub value: Money,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops being accepted, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// Who made it.
    pub created_by: String,
    /// When the operator disabled it.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The account that redeemed it (kept when the account is deleted).
    pub used_by: Option<String>,
    /// When it was redeemed.
    pub used_at: Option<DateTime<Utc>>,
}

/// Where a card stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoucherState {
    /// Can be redeemed.
    Unused,
    /// Redeemed.
    Used,
    /// Disabled by the operator before use.
    Disabled,
    /// Past its expiry, unused.
    Expired,
}

impl VoucherState {
    /// `unused`, `used`, `disabled`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unused => "unused",
            Self::Used => "used",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
        }
    }
}

impl Voucher {
    /// Where the card stands at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> VoucherState {
        if self.used_at.is_some() {
            VoucherState::Used
        } else if self.disabled_at.is_some() {
            VoucherState::Disabled
        } else if self.expires_at.is_some_and(|e| e <= now) {
            VoucherState::Expired
        } else {
            VoucherState::Unused
        }
    }

    /// Why the card cannot credit `account` (prepaid or not) at `at`, `None` if it can. The
    /// rules both stores apply inside the redemption's transaction; `stored_hash` is the
    /// card's stored [`VoucherNumber::hash`], `offered_hash` the one offered.
    pub fn refusal(
        &self,
        stored_hash: &str,
        offered_hash: &str,
        account: &AccountId,
        prepaid: bool,
        at: DateTime<Utc>,
    ) -> Option<VoucherRefusal> {
        if !constant_time_eq(stored_hash.as_bytes(), offered_hash.as_bytes()) {
            return Some(VoucherRefusal::NoMatch);
        }
        if &self.domain != account.domain() {
            return Some(VoucherRefusal::OtherDomain);
        }
        match self.state(at) {
            VoucherState::Used => Some(VoucherRefusal::Used),
            VoucherState::Disabled => Some(VoucherRefusal::Disabled),
            VoucherState::Expired => Some(VoucherRefusal::Expired),
            VoucherState::Unused if !prepaid => Some(VoucherRefusal::NotPrepaid),
            VoucherState::Unused => None,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A redemption to apply ([`crate::store::Vouchers::redeem_voucher`]).
#[derive(Debug, Clone)]
pub struct Redemption {
    /// The card's id.
    pub id: i64,
    /// [`VoucherNumber::hash`] of the number offered.
    pub number_hash: String,
    /// The account to credit.
    pub account: AccountId,
    /// Who redeems, when and from where (the journal entries; `at` is the redemption's time).
    pub journal: Stamp,
}

/// Why a card was not redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoucherRefusal {
    /// No card has this id and number (a guess: counted by the throttle).
    NoMatch,
    /// The card was redeemed already.
    Used,
    /// The operator disabled the card.
    Disabled,
    /// The card is past its expiry.
    Expired,
    /// The card is for another domain's accounts.
    OtherDomain,
    /// The account is not prepaid.
    NotPrepaid,
}

/// What [`crate::store::Vouchers::redeem_voucher`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The card is used now and the balance credited.
    Credited {
        /// The card's value, added.
        value: Money,
        /// The balance after it.
        balance: Money,
    },
    /// Nothing changed.
    Refused(VoucherRefusal),
}

/// A card just made: its id and (shown this once) its number.
#[derive(Debug, Clone)]
pub struct MadeVoucher {
    /// The card's id.
    pub id: i64,
    /// The card's number.
    pub number: VoucherNumber,
}

/// Parses an expiry: RFC 3339, or a date `YYYY-MM-DD` (its 00:00 UTC).
pub fn parse_expiry(input: &str) -> Result<DateTime<Utc>, ServiceError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(input) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(input, "%Y-%m-%d")
        .ok()
        .filter(|_| input.len() == 10)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            ServiceError::invalid(
                "expires",
                format!(
                    "'{}' is not a time (RFC 3339) or a date YYYY-MM-DD",
                    printable(input)
                ),
            )
        })
}

/// Parses a card id: a whole number from 1.
pub fn parse_id(input: &str) -> Result<i64, ServiceError> {
    whole_number::<i64>(input)
        .filter(|n| *n >= 1)
        .ok_or_else(|| ServiceError::invalid("id", "must be the prepaid card's id, a whole number"))
}

impl Services {
    /// Makes `count` cards (1 to [`MAX_BATCH`]) of `value` for `domain`, in one transaction;
    /// answers their ids and numbers, which are not kept and cannot be shown again.
    pub async fn create_vouchers(
        &self,
        domain: &Domain,
        value: Money,
        count: u32,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<MadeVoucher>, ServiceError> {
        if value <= Money::ZERO {
            return Err(ServiceError::invalid("value", "must be greater than 0"));
        }
        if !(1..=MAX_BATCH).contains(&count) {
            return Err(ServiceError::invalid(
                "count",
                format!("must be a whole number between 1 and {MAX_BATCH}"),
            ));
        }
        let now = self.clock().now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(ServiceError::invalid("expires", "must be in the future"));
        }
        if !self.store().domain_exists(domain).await? {
            return Err(ServiceError::NotFound(format!("no domain {domain}")));
        }
        let numbers: Vec<VoucherNumber> = (0..count).map(|_| VoucherNumber::generate()).collect();
        let batch: Vec<NewVoucher> = numbers
            .iter()
            .map(|n| NewVoucher {
                domain: domain.clone(),
                value,
                number_hash: n.hash(),
                created_at: now,
                expires_at,
                created_by: self.origin().actor.clone(),
            })
            .collect();
        let ids = self.store().create_vouchers(&batch).await?;
        if ids.len() != numbers.len() {
            return Err(ServiceError::Internal(format!(
                "create_vouchers stored {} of {} cards",
                ids.len(),
                numbers.len()
            )));
        }
        Ok(ids
            .into_iter()
            .zip(numbers)
            .map(|(id, number)| MadeVoucher { id, number })
            .collect())
    }

    /// The cards of `domain`, newest first, at most `limit`.
    pub async fn vouchers(
        &self,
        domain: &Domain,
        limit: u32,
    ) -> Result<Vec<Voucher>, ServiceError> {
        if !self.store().domain_exists(domain).await? {
            return Err(ServiceError::NotFound(format!("no domain {domain}")));
        }
        Ok(self.store().list_vouchers(domain, limit).await?)
    }

    /// Disables an unused card; a disabled one stays as it is. `409` for a used card.
    pub async fn disable_voucher(&self, id: i64) -> Result<Voucher, ServiceError> {
        self.store()
            .disable_voucher(id, self.clock().now())
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => ServiceError::NotFound(format!("no prepaid card {id}")),
                other => other.into(),
            })
    }

    /// `add_balance`: redeems the card `id` + `number` for `account` (see the module
    /// documentation for the rules). Answers the value added and the new balance.
    pub async fn redeem_voucher(
        &self,
        account: &AccountId,
        id: Option<&str>,
        number: Option<&str>,
    ) -> Result<(Money, Money), ServiceError> {
        let (Some(id), Some(number)) = (
            id.filter(|s| !s.is_empty()),
            number.filter(|s| !s.is_empty()),
        ) else {
            let missing = if id.is_none_or(str::is_empty) {
                "id"
            } else {
                "number"
            };
            return Err(ServiceError::invalid(
                missing,
                "is missing: the prepaid card's id and number are both needed",
            ));
        };
        let card = parse_id(id)?;
        let number = VoucherNumber::parse(number)?;
        let attempt = self.voucher_throttle().begin(
            Some(account),
            self.origin().source.as_deref(),
            self.clock().now(),
        )?;
        let redemption = Redemption {
            id: card,
            number_hash: number.hash(),
            account: account.clone(),
            journal: self.stamp(),
        };
        let refusal = match self.store().redeem_voucher(&redemption).await? {
            Redeemed::Credited { value, balance } => {
                attempt.succeeded();
                return Ok((value, balance));
            }
            Redeemed::Refused(VoucherRefusal::NoMatch) => {
                attempt.failed();
                return Err(ServiceError::invalid(
                    "number",
                    format!("does not match prepaid card {card} (no card has this id and number)"),
                ));
            }
            Redeemed::Refused(other) => other,
        };
        // A right number refused for another reason: neither a failure nor a success.
        drop(attempt);
        Err(ServiceError::Conflict(match refusal {
            VoucherRefusal::Used => format!("prepaid card {card} has already been used"),
            VoucherRefusal::Disabled => format!("prepaid card {card} has been disabled"),
            VoucherRefusal::Expired => format!("prepaid card {card} has expired"),
            VoucherRefusal::OtherDomain => format!(
                "prepaid card {card} is not valid for accounts of {}",
                account.domain()
            ),
            VoucherRefusal::NotPrepaid | VoucherRefusal::NoMatch => format!(
                "account {account} is not prepaid: prepaid cards top up prepaid balances only"
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn numbers_are_long_random_digits_and_parse_as_typed() {
        let a = VoucherNumber::generate();
        let b = VoucherNumber::generate();
        assert_eq!(a.expose().len(), NUMBER_DIGITS);
        assert!(a.expose().bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "VoucherNumber(..)");
        let typed = VoucherNumber::parse("1234 5678-9012").unwrap();
        assert_eq!(typed.expose(), "123456789012");
        assert_eq!(
            typed.hash(),
            VoucherNumber::parse("123456789012").unwrap().hash()
        );
        assert_eq!(typed.hash().len(), 64);
        for bad in ["", " - ", "12a4", "１２", &"1".repeat(65)] {
            assert!(VoucherNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_and_expiries_parse_strictly() {
        assert_eq!(parse_id("17").unwrap(), 17);
        for bad in ["0", "-1", "+1", " 1", "x", ""] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_expiry("2027-01-31").unwrap().to_rfc3339(),
            "2027-01-31T00:00:00+00:00"
        );
        assert_eq!(
            parse_expiry("2027-01-31T12:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2027-01-31T11:00:00+00:00"
        );
        for bad in ["2027-1-31", "2027-02-30", "tomorrow", "2027-01-31 "] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_in_order() {
        let at = DateTime::parse_from_rfc3339("2027-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let v = Voucher {
            id: 1,
            domain: Domain::parse("example.com").unwrap(),
            value: Money::parse_for("v", "10").unwrap(),
            created_at: at,
            expires_at: Some(at + chrono::Duration::days(1)),
            created_by: "operator".to_owned(),
            disabled_at: None,
            used_by: None,
            used_at: None,
        };
        let alice = AccountId::parse("alice@example.com").unwrap();
        let other = AccountId::parse("alice@example.org").unwrap();
        let h = VoucherNumber::parse("1234").unwrap().hash();
        let wrong = VoucherNumber::parse("1235").unwrap().hash();
        assert_eq!(v.refusal(&h, &h, &alice, true, at), None);
        assert_eq!(
            v.refusal(&h, &wrong, &other, false, at),
            Some(VoucherRefusal::NoMatch)
        );
        assert_eq!(
            v.refusal(&h, &h, &other, true, at),
            Some(VoucherRefusal::OtherDomain)
        );
        assert_eq!(
            v.refusal(&h, &h, &alice, false, at),
            Some(VoucherRefusal::NotPrepaid)
        );
        let later = at + chrono::Duration::days(1);
        assert_eq!(
            v.refusal(&h, &h, &alice, true, later),
            Some(VoucherRefusal::Expired)
        );
        let used = Voucher {
            used_at: Some(at),
            used_by: Some(alice.to_string()),
            ..v.clone()
        };
        assert_eq!(
            used.refusal(&h, &h, &alice, true, at),
            Some(VoucherRefusal::Used)
        );
        assert_eq!(used.state(later), VoucherState::Used);
        let disabled = Voucher {
            disabled_at: Some(at),
            ..v
        };
        assert_eq!(
            disabled.refusal(&h, &h, &alice, true, at),
            Some(VoucherRefusal::Disabled)
        );
    }
}
