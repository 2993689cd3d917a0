//! Call records (CDRs) and prepaid sessions: [`CallInput`] as a proxy's accounting or a CSV
//! line sends it, parsed into a [`CallRecord`]; [`PrepaidSession`]s that reserve balance on open
//! and settle on close; [`HistoryEntry`]s of the balance; [`Usage`] of a month.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::ServiceError;
use crate::ids::{AccountId, E164, printable};
use crate::money::Money;
use crate::rating::Rate;
use crate::sip::SipUri;

/// A call as the service API or a CSV import sends it (all text, parsed by [`CallInput::parse`]).
/// Every field has a default so that a missing one is reported by [`CallInput::parse`] with its
/// name, like a malformed one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallInput {
    /// SIP Call-ID.
    pub call_id: String,
    /// From tag.
    #[serde(default)]
    pub from_tag: String,
    /// To tag.
    #[serde(default)]
    pub to_tag: String,
    /// Caller SIP URI.
    pub caller: String,
    /// Callee SIP URI.
    pub callee: String,
    /// Start, RFC 3339.
    pub start: String,
    /// Stop, RFC 3339.
    pub stop: String,
    /// Duration in seconds.
    pub duration: Option<i64>,
    /// SIP final status code.
    pub status: Option<i64>,
    /// Media types.
    #[serde(default)]
    pub media: Vec<String>,
    /// Address of the proxy that handled the call.
    #[serde(default)]
    pub proxy_ip: String,
    /// Price as a decimal string.
    #[serde(default)]
    pub price: Option<String>,
}

/// Whether a call was placed or received by an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The account called.
    Placed,
    /// The account was called.
    Received,
}

impl Direction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Received => "received",
        }
    }
}

/// A finished call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// SIP Call-ID.
    pub call_id: String,
    /// From tag.
    pub from_tag: String,
    /// To tag.
    pub to_tag: String,
    /// Caller.
    pub caller: SipUri,
    /// Callee.
    pub callee: SipUri,
    /// Start.
    pub start: DateTime<Utc>,
    /// Stop.
    pub stop: DateTime<Utc>,
    /// Duration in seconds.
    pub duration: u32,
    /// SIP final status.
    pub status: u16,
    /// Media types.
    pub media: Vec<String>,
    /// Proxy address.
    pub proxy_ip: String,
    /// Price, when rated.
    pub price: Option<Money>,
}

/// A one-token text for `field` (a Call-ID, a tag): trimmed, at most `max` bytes, no spaces or
/// control characters; `required` refuses it empty.
pub(crate) fn text(
    field: &str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<String, ServiceError> {
    let v = value.trim();
    if required && v.is_empty() {
        return Err(ServiceError::invalid(field, "is missing"));
    }
    if v.len() > max {
        return Err(ServiceError::invalid(
            field,
            format!("is longer than {max} bytes"),
        ));
    }
    if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ServiceError::invalid(
            field,
            "must not contain spaces or control characters",
        ));
    }
    Ok(v.to_owned())
}

/// Parses an RFC 3339 time for `field`.
pub fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, ServiceError> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ServiceError::invalid(
                field,
                format!("'{}' is not an RFC 3339 time", printable(value)),
            )
        })
}

impl CallInput {
    /// Parses and checks every field.
    pub fn parse(&self) -> Result<CallRecord, ServiceError> {
        let call_id = text("call_id", &self.call_id, 255, true)?;
        let from_tag = text("from_tag", &self.from_tag, 128, false)?;
        let to_tag = text("to_tag", &self.to_tag, 128, false)?;
        let missing = |field: &str| ServiceError::invalid(field, "is missing");
        if self.caller.trim().is_empty() {
            return Err(missing("caller"));
        }
        if self.callee.trim().is_empty() {
            return Err(missing("callee"));
        }
        let caller = SipUri::parse_for("caller", self.caller.trim())?;
        let callee = SipUri::parse_for("callee", self.callee.trim())?;
        if self.start.trim().is_empty() {
            return Err(missing("start"));
        }
        if self.stop.trim().is_empty() {
            return Err(missing("stop"));
        }
        let start = parse_time("start", &self.start)?;
        let stop = parse_time("stop", &self.stop)?;
        if stop < start {
            return Err(ServiceError::invalid("stop", "is before start"));
        }
        let span = (stop - start).num_seconds();
        let duration =
            u32::try_from(self.duration.ok_or_else(|| missing("duration"))?).map_err(|_| {
                ServiceError::invalid("duration", "must be a whole number of seconds ≥ 0")
            })?;
        if i64::from(duration) > span + 1 {
            return Err(ServiceError::invalid(
                "duration",
                "is longer than stop − start",
            ));
        }
        let status = u16::try_from(self.status.ok_or_else(|| missing("status"))?)
            .ok()
            .filter(|s| (100..=699).contains(s))
            .ok_or_else(|| ServiceError::invalid("status", "must be a SIP status code 100–699"))?;
        let mut media = Vec::new();
        for m in &self.media {
            let m = m.trim().to_ascii_lowercase();
            if m.is_empty()
                || m.len() > 32
                || !m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(ServiceError::invalid(
                    "media",
                    format!("'{}' is not a media type", printable(&m)),
                ));
            }
            media.push(m);
        }
        let proxy_ip = self.proxy_ip.trim().to_owned();
        if !proxy_ip.is_empty() && proxy_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(ServiceError::invalid(
                "proxy_ip",
                format!("'{}' is not an IP address", printable(&proxy_ip)),
            ));
        }
        let price = self
            .price
            .as_deref()
            .filter(|p| !p.trim().is_empty())
            .map(|p| Money::parse_for("price", p))
            .transpose()?;
        if price.is_some_and(Money::is_negative) {
            return Err(ServiceError::invalid("price", "must not be negative"));
        }
        Ok(CallRecord {
            call_id,
            from_tag,
            to_tag,
            caller,
            callee,
            start,
            stop,
            duration,
            status,
            media,
            proxy_ip,
            price,
        })
    }
}

/// A call to record, with the local accounts it belongs to.
#[derive(Debug, Clone)]
pub struct NewCall {
    /// The call.
    pub record: CallRecord,
    /// Each local account and how it took part.
    pub parties: Vec<(AccountId, Direction)>,
}

/// Why a prepaid session is refused; the `code` is the API's stable reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrepaidRefusal {
    /// The balance does not pay for the minimum at this rate.
    InsufficientBalance,
    /// No rate matches the destination.
    NoRate,
    /// The account has as many open sessions as allowed.
    TooManySessions,
    /// The account is not prepaid.
    NotPrepaid,
}

impl PrepaidRefusal {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::InsufficientBalance => "insufficient_balance",
            Self::NoRate => "no_rate",
            Self::TooManySessions => "too_many_sessions",
            Self::NotPrepaid => "not_prepaid",
        }
    }

    /// A human explanation.
    pub fn message(self) -> &'static str {
        match self {
            Self::InsufficientBalance => "the balance does not pay for a call to this destination",
            Self::NoRate => "no rate matches the destination",
            Self::TooManySessions => "the account has as many open prepaid calls as allowed",
            Self::NotPrepaid => "the account is not prepaid",
        }
    }
}

/// What to open.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    /// The paying account.
    pub account: AccountId,
    /// The dialled number.
    pub destination: E164,
    /// The call's Call-ID (the session's key).
    pub call_id: String,
    /// The rate of the destination.
    pub rate: Rate,
    /// The longest session granted, in seconds.
    pub max_session_seconds: u32,
    /// Most open sessions per account.
    pub max_sessions: u32,
    /// Now.
    pub now: DateTime<Utc>,
}

/// An open or closed prepaid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepaidSession {
    /// Call-ID.
    pub call_id: String,
    /// The paying account.
    pub account: AccountId,
    /// The dialled number.
    pub destination: E164,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// Seconds granted.
    pub max_session_time: u32,
    /// Balance held while open.
    pub reserved: Money,
    /// The rate used.
    pub rate: Rate,
    /// The settlement, once closed.
    pub closed: Option<Settlement>,
}

/// A closed session's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// When it closed.
    pub closed_at: DateTime<Utc>,
    /// Seconds talked.
    pub duration: u32,
    /// What it cost.
    pub price: Money,
    /// The balance after the debit.
    pub balance: Money,
}

/// What closing a prepaid session debits: the rule both stores apply in the close transaction.
///
/// The reported duration is billed up to the time granted at open (`max_session_time`); the
/// price of that, at the session's rate, is the debit, but never more than the session
/// reserved nor more than the balance (if positive) at the close. So a close can never overdraw:
/// a proxy that reports a longer call than granted is billed the grant, and a balance lowered
/// since the grant (an operator's `balance set`) is debited at most to zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// Seconds the proxy reported.
    pub reported: u32,
    /// Seconds billed: the reported ones, at most the grant.
    pub billed: u32,
    /// The grant (`max_session_time`).
    pub granted: u32,
    /// The price of the billed seconds at the session's rate.
    pub due: Money,
    /// What is debited: `due`, at most the reservation and the balance.
    pub debit: Money,
    /// What held the debit below `due`, if anything.
    pub limit: Option<ChargeLimit>,
}

/// What held a [`Charge`]'s debit below the price of the billed seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeLimit {
    /// The session's reservation (only a session whose reservation is below the price of its
    /// grant, e.g. one imported that way).
    Reservation,
    /// The balance at the close (lowered since the grant).
    Balance,
}

impl Charge {
    /// The charge of closing `session` after `reported` seconds when the balance is `balance`.
    pub fn of(session: &PrepaidSession, reported: u32, balance: Money) -> Self {
        let granted = session.max_session_time;
        let billed = reported.min(granted);
        let due = session.rate.price(billed);
        let mut debit = due;
        let mut limit = None;
        if debit > session.reserved {
            debit = session.reserved.max(Money::ZERO);
            limit = Some(ChargeLimit::Reservation);
        }
        let payable = balance.max(Money::ZERO);
        if debit > payable {
            debit = payable;
            limit = Some(ChargeLimit::Balance);
        }
        Self {
            reported,
            billed,
            granted,
            due,
            debit,
            limit,
        }
    }

    /// Whether the reported duration was longer than the grant.
    pub fn capped(&self) -> bool {
        self.billed < self.reported
    }

    /// The balance history entry's description: `Call to +E164 (rate), N s`, saying so when
    /// the duration was capped at the grant or the debit limited.
    pub fn description(&self, session: &PrepaidSession) -> String {
        let mut d = format!(
            "Call to {} ({}), ",
            session.destination, session.rate.description
        );
        if self.capped() {
            d.push_str(&format!(
                "{} s billed of {} s reported (capped at the granted {} s)",
                self.billed, self.reported, self.granted
            ));
        } else {
            d.push_str(&format!("{} s", self.reported));
        }
        match self.limit {
            None => {}
            Some(ChargeLimit::Reservation) => d.push_str(&format!(
                ", {} of {} debited (limited to the reservation)",
                self.debit, self.due
            )),
            Some(ChargeLimit::Balance) => d.push_str(&format!(
                ", {} of {} debited (limited to the balance)",
                self.debit, self.due
            )),
        }
        d
    }
}

/// What opening did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// Opened now.
    Opened(PrepaidSession),
    /// A repeated open of a session that is open: the session as it is.
    AlreadyOpen(PrepaidSession),
    /// Refused.
    Refused(PrepaidRefusal),
}

/// What closing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    /// Settled now: priced, debited, recorded.
    Closed(PrepaidSession),
    /// Settled before: the session as it is, nothing changed.
    AlreadyClosed(PrepaidSession),
}

impl CloseOutcome {
    /// The session, settled.
    pub fn session(&self) -> &PrepaidSession {
        match self {
            Self::Closed(s) | Self::AlreadyClosed(s) => s,
        }
    }

    /// The session, settled.
    pub fn into_session(self) -> PrepaidSession {
        match self {
            Self::Closed(s) | Self::AlreadyClosed(s) => s,
        }
    }
}

/// What to close.
#[derive(Debug, Clone)]
pub struct CloseRequest {
    /// Call-ID.
    pub call_id: String,
    /// Seconds talked.
    pub duration: u32,
    /// From tag of the call record.
    pub from_tag: String,
    /// To tag of the call record.
    pub to_tag: String,
    /// Media of the call record.
    pub media: Vec<String>,
    /// Proxy of the call record.
    pub proxy_ip: String,
    /// The call's final SIP status: 200 for an answered call; a session of a call that was
    /// never answered is closed with duration 0 and its failure (486, 487, …), free.
    pub status: u16,
    /// Now.
    pub now: DateTime<Utc>,
    /// Who closes it: a close that settles now commits the `balance` journal entry (old and
    /// new balance) with the settlement.
    pub journal: Option<crate::journal::Stamp>,
}

/// How a prepaid session ended, as call control reports it (before checks).
#[derive(Debug, Clone, Default)]
pub struct CloseInput {
    /// Seconds talked.
    pub duration: i64,
    /// From tag.
    pub from_tag: String,
    /// To tag.
    pub to_tag: String,
    /// Media.
    pub media: Vec<String>,
    /// Proxy address.
    pub proxy_ip: String,
    /// Final SIP status (default 200).
    pub status: Option<i64>,
}

/// One change of a balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Sequence number.
    pub id: i64,
    /// The account.
    pub account: AccountId,
    /// When.
    pub at: DateTime<Utc>,
    /// `topup`, `debit`, `set`, `refund`.
    pub action: String,
    /// What it was.
    pub description: String,
    /// The change.
    pub value: Money,
    /// The balance after it.
    pub balance: Money,
    /// The call's Call-ID, for call debits.
    pub session: Option<String>,
}

/// Placed calls of a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Number of placed calls.
    pub calls: u64,
    /// Their total duration, seconds.
    pub duration: u64,
    /// Their total price.
    pub price: Money,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> CallInput {
        CallInput {
            call_id: "abc@host".into(),
            from_tag: "f1".into(),
            to_tag: "t1".into(),
            caller: "sip:alice@example.com".into(),
            callee: "sip:+31201234567@example.com".into(),
            start: "2026-11-26T10:00:00Z".into(),
            stop: "2026-11-26T10:01:00Z".into(),
            duration: Some(60),
            status: Some(200),
            media: vec!["audio".into()],
            proxy_ip: "192.0.2.1".into(),
            price: Some("0.1500".into()),
        }
    }

    #[test]
    fn parses_a_call_and_names_bad_fields() {
        let r = input().parse().unwrap();
        assert_eq!(r.duration, 60);
        assert_eq!(r.price.unwrap().to_string(), "0.1500");
        type Mutation = Box<dyn Fn(&mut CallInput)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("call_id", Box::new(|c| c.call_id = String::new())),
            ("caller", Box::new(|c| c.caller = "alice".into())),
            ("callee", Box::new(|c| c.callee = "sip:".into())),
            ("start", Box::new(|c| c.start = "yesterday".into())),
            ("stop", Box::new(|c| c.stop = "2026-11-26T09:00:00Z".into())),
            ("duration", Box::new(|c| c.duration = Some(-1))),
            ("duration", Box::new(|c| c.duration = Some(3600))),
            ("duration", Box::new(|c| c.duration = None)),
            ("status", Box::new(|c| c.status = Some(99))),
            ("status", Box::new(|c| c.status = None)),
            ("caller", Box::new(|c| c.caller = String::new())),
            ("media", Box::new(|c| c.media = vec!["au dio".into()])),
            ("proxy_ip", Box::new(|c| c.proxy_ip = "proxy".into())),
            ("price", Box::new(|c| c.price = Some("-1".into()))),
        ];
        for (field, mutate) in cases {
            let mut c = input();
            mutate(&mut c);
            assert_eq!(c.parse().unwrap_err().field(), Some(field));
        }
    }

    fn session(granted: u32) -> PrepaidSession {
        let m = |s: &str| Money::parse_for("m", s).unwrap();
        // 0.05 connect, 0.10 per minute, 60/60 billing.
        let rate = Rate::new("31", "NL", m("0.05"), m("0.10"), 60, 60).unwrap();
        PrepaidSession {
            call_id: "c1".into(),
            account: AccountId::parse("bob@example.com").unwrap(),
            destination: E164::parse_for("d", "+31201234567").unwrap(),
            opened_at: DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            max_session_time: granted,
            reserved: rate.price(granted),
            rate,
            closed: None,
        }
    }

    #[test]
    fn a_close_within_the_grant_bills_the_reported_duration() {
        let s = session(300);
        let c = Charge::of(&s, 61, Money::parse_for("m", "1").unwrap());
        assert_eq!((c.billed, c.debit.to_string()), (61, "0.2500".to_owned()));
        assert_eq!((c.capped(), c.limit), (false, None));
        assert_eq!(c.description(&s), "Call to +31201234567 (NL), 61 s");
        // Exactly the grant is not capped either; an unanswered call costs nothing.
        assert!(!Charge::of(&s, 300, s.reserved).capped());
        assert_eq!(Charge::of(&s, 300, s.reserved).debit, s.reserved);
        assert_eq!(Charge::of(&s, 0, Money::ZERO).debit, Money::ZERO);
    }

    #[test]
    fn a_longer_close_is_capped_at_the_grant_and_says_so() {
        let s = session(300);
        let c = Charge::of(&s, 900, s.reserved);
        assert_eq!((c.reported, c.billed, c.granted), (900, 300, 300));
        assert_eq!((c.debit, c.due, c.limit), (s.reserved, s.reserved, None));
        assert_eq!(
            c.description(&s),
            "Call to +31201234567 (NL), 300 s billed of 900 s reported (capped at the granted 300 s)"
        );
        // Whatever is reported, the debit never passes the reservation.
        for reported in [301, 3600, 604_800, u32::MAX] {
            let c = Charge::of(&s, reported, Money::parse_for("m", "1000").unwrap());
            assert_eq!((c.billed, c.debit), (300, s.reserved), "{reported}");
        }
    }

    #[test]
    fn the_debit_is_limited_to_the_balance_and_the_reservation() {
        let m = |s: &str| Money::parse_for("m", s).unwrap();
        let s = session(300); // reserves 0.55
        // The balance was lowered to 0.20 since the grant: 0.20 is debited, not 0.55.
        let c = Charge::of(&s, 900, m("0.20"));
        assert_eq!((c.due, c.debit), (m("0.55"), m("0.20")));
        assert_eq!(c.limit, Some(ChargeLimit::Balance));
        assert_eq!(
            c.description(&s),
            "Call to +31201234567 (NL), 300 s billed of 900 s reported (capped at the granted \
             300 s), 0.2000 of 0.5500 debited (limited to the balance)"
        );
        // A balance at or below zero pays nothing.
        assert_eq!(Charge::of(&s, 60, m("-3")).debit, Money::ZERO);
        assert_eq!(Charge::of(&s, 60, Money::ZERO).debit, Money::ZERO);
        // A reservation below the grant's price (an imported session) bounds the debit.
        let mut low = session(300);
        low.reserved = m("0.10");
        let c = Charge::of(&low, 300, m("5"));
        assert_eq!(
            (c.debit, c.limit),
            (m("0.10"), Some(ChargeLimit::Reservation))
        );
        assert!(
            c.description(&low)
                .ends_with("0.1000 of 0.5500 debited (limited to the reservation)")
        );
        // Never more than any of the three, for every duration and balance.
        for reported in (0..1000).step_by(7) {
            for units in (-1000..8000).step_by(333) {
                let balance = Money::from_units(units);
                let c = Charge::of(&s, reported, balance);
                assert!(c.debit <= s.reserved && c.debit >= Money::ZERO);
                assert!(c.debit <= balance.max(Money::ZERO));
                assert!(c.debit <= s.rate.price(reported));
            }
        }
    }
}

/// Everything about one account's money, for moving an installation between stores.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BillingSnapshot {
    /// The balance.
    pub balance: Money,
    /// Every history entry, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Every prepaid session, open and closed, oldest first.
    pub sessions: Vec<PrepaidSession>,
}
