//! The call and prepaid rules of [`Services`]: recording calls for their local parties, opening
//! and closing prepaid sessions, balances and their history, monthly usage, rates.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone as _, Utc};

use crate::calls::{
    CallInput, CallRecord, CloseInput, CloseRequest, Direction, HistoryEntry, NewCall, OpenOutcome,
    OpenRequest, PrepaidRefusal, PrepaidSession, Usage,
};
use crate::error::{ServiceError, StoreError};
use crate::ids::{AccountId, E164, TimeZone, printable};
use crate::money::Money;
use crate::rating::Rate;
use crate::service::Services;
use crate::store::BalanceChange;

/// Checks a free-text description (history, top-ups).
pub fn parse_description(input: &str) -> Result<String, ServiceError> {
    let s = input.trim();
    if s.chars().any(char::is_control) || s.chars().count() > 200 {
        return Err(ServiceError::invalid(
            "description",
            "must be at most 200 characters without control characters",
        ));
    }
    Ok(s.to_owned())
}

/// Parses `YYYY-MM` into the first day of the month: exactly four digits, `-`, two digits (no
/// sign, no spaces), so years run 0000–9999.
pub fn parse_month(input: &str) -> Result<NaiveDate, ServiceError> {
    let bad = || {
        ServiceError::invalid(
            "month",
            format!("'{}' is not a month YYYY-MM", printable(input)),
        )
    };
    let (y, m) = input.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let y: i32 = crate::ids::whole_number(y).ok_or_else(bad)?;
    let m: u32 = crate::ids::whole_number(m).ok_or_else(bad)?;
    NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(bad)
}

/// The UTC instants where a local month starts and the next one starts.
pub fn month_bounds(
    first: NaiveDate,
    tz: TimeZone,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ServiceError> {
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .ok_or_else(|| ServiceError::invalid("month", "is out of range"))?;
    let start_of = |d: NaiveDate| -> Result<DateTime<Utc>, ServiceError> {
        let naive = d
            .and_hms_opt(0, 0, 0)
            .ok_or_else(|| ServiceError::invalid("month", "is out of range"))?;
        // Midnight exists in every zone's month start except where a DST jump lands on it;
        // then the earliest valid local time after it is used.
        tz.tz()
            .from_local_datetime(&naive)
            .earliest()
            .or_else(|| {
                tz.tz()
                    .from_local_datetime(&(naive + Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ServiceError::invalid("month", "has no local midnight"))
    };
    Ok((start_of(first)?, start_of(next)?))
}

impl Services {
    /// Records a finished call for its local parties (caller → placed, callee → received).
    /// Returns whether it was new (false for a replay).
    pub async fn record_call(&self, input: &CallInput) -> Result<bool, ServiceError> {
        let call = self.prepare_call(input).await?;
        let inserted = self
            .store()
            .record_calls(std::slice::from_ref(&call))
            .await?;
        Ok(inserted.first().copied().unwrap_or(false))
    }

    /// Parses a call and finds its local parties.
    pub async fn prepare_call(&self, input: &CallInput) -> Result<NewCall, ServiceError> {
        let record = input.parse()?;
        let mut parties = Vec::new();
        if let Some(a) = self.resolve_local(&record.caller).await? {
            parties.push((a, Direction::Placed));
        }
        if let Some(a) = self.resolve_local(&record.callee).await? {
            parties.push((a, Direction::Received));
        }
        if parties.is_empty() {
            return Err(ServiceError::invalid(
                "caller",
                "neither the caller nor the callee is an account served here",
            ));
        }
        Ok(NewCall { record, parties })
    }

    /// Records many calls in one transaction; returns how many were new.
    pub async fn record_calls(&self, calls: &[NewCall]) -> Result<usize, ServiceError> {
        Ok(self
            .store()
            .record_calls(calls)
            .await?
            .into_iter()
            .filter(|n| *n)
            .count())
    }

    /// Opens a prepaid session for a call to `destination`.
    pub async fn open_prepaid(
        &self,
        account: &str,
        destination: &str,
        call_id: &str,
    ) -> Result<OpenOutcome, ServiceError> {
        let id = AccountId::parse(account)?;
        let destination = E164::parse_for("destination", destination)?;
        let call_id = call_id.trim();
        if call_id.is_empty()
            || call_id.len() > 255
            || call_id.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(ServiceError::invalid(
                "call_id",
                "must be 1 to 255 characters without spaces",
            ));
        }
        let acc = self.account(&id).await?;
        if !acc.prepaid {
            return Ok(OpenOutcome::Refused(PrepaidRefusal::NotPrepaid));
        }
        let Some(rate) = self.store().find_rate(destination.digits()).await? else {
            return Ok(OpenOutcome::Refused(PrepaidRefusal::NoRate));
        };
        let request = OpenRequest {
            account: id,
            destination,
            call_id: call_id.to_owned(),
            rate,
            max_session_seconds: self.config().prepaid_max_session_seconds,
            max_sessions: self.config().prepaid_max_sessions,
            now: self.clock().now(),
        };
        self.store()
            .open_prepaid_session(&request)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => ServiceError::Conflict(m),
                other => other.into(),
            })
    }

    /// Closes a prepaid session with the talked duration; repeated closes answer the first.
    pub async fn close_prepaid(
        &self,
        call_id: &str,
        input: &CloseInput,
    ) -> Result<PrepaidSession, ServiceError> {
        let status = match input.status {
            None => 200,
            Some(s) => u16::try_from(s)
                .ok()
                .filter(|s| (200..700).contains(s))
                .ok_or_else(|| {
                    ServiceError::invalid("status", "must be a final SIP status, 200 to 699")
                })?,
        };
        if status != 200 && input.duration != 0 {
            return Err(ServiceError::invalid(
                "duration",
                "must be 0 for a call that was not answered (status other than 200)",
            ));
        }
        let duration = input.duration;
        let duration = u32::try_from(duration)
            .ok()
            .filter(|d| *d <= 7 * 24 * 3600)
            .ok_or_else(|| {
                ServiceError::invalid(
                    "duration",
                    "must be a whole number of seconds between 0 and 604800",
                )
            })?;
        // The close's call-record fields go through the same checks as a recorded call.
        let probe = CallInput {
            call_id: call_id.to_owned(),
            from_tag: input.from_tag.clone(),
            to_tag: input.to_tag.clone(),
            caller: "sip:x@example.com".to_owned(),
            callee: "sip:x@example.com".to_owned(),
            start: "2000-01-01T00:00:00Z".to_owned(),
            stop: "2000-01-01T00:00:00Z".to_owned(),
            duration: Some(0),
            status: Some(200),
            media: input.media.clone(),
            proxy_ip: input.proxy_ip.clone(),
            price: None,
        }
        .parse()?;
        let request = CloseRequest {
            call_id: probe.call_id,
            duration,
            from_tag: probe.from_tag,
            to_tag: probe.to_tag,
            media: probe.media,
            proxy_ip: probe.proxy_ip,
            status,
            now: self.clock().now(),
            journal: Some(self.stamp()),
        };
        let outcome = self
            .store()
            .close_prepaid_session(&request)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "no prepaid session with Call-ID {}",
                    request.call_id
                ))
            })?;
        // The store journals a close that settles now with the settlement; a repeat changed
        // nothing.
        Ok(outcome.into_session())
    }

    /// The balance and open sessions of an account.
    pub async fn prepaid(
        &self,
        id: &AccountId,
    ) -> Result<(Money, Vec<PrepaidSession>), ServiceError> {
        let balance = self.store().get_balance(id).await?;
        let sessions = self.store().active_sessions(id).await?;
        Ok((balance, sessions))
    }

    /// Adds a positive amount to a balance.
    pub async fn topup(
        &self,
        id: &AccountId,
        amount: Money,
        description: &str,
    ) -> Result<Money, ServiceError> {
        if amount <= Money::ZERO {
            return Err(ServiceError::invalid("amount", "must be greater than 0"));
        }
        let description = parse_description(description)?;
        self.account(id).await?;
        let new = self
            .store()
            .change_balance(
                id,
                &BalanceChange::Add {
                    value: amount,
                    action: "topup".to_owned(),
                    description: if description.is_empty() {
                        "Top-up".to_owned()
                    } else {
                        description
                    },
                },
                self.clock().now(),
                Some(&self.stamp()),
            )
            .await?;
        Ok(new)
    }

    /// Sets a balance.
    pub async fn set_balance(
        &self,
        id: &AccountId,
        value: Money,
        description: &str,
    ) -> Result<Money, ServiceError> {
        let description = parse_description(description)?;
        self.account(id).await?;
        let new = self
            .store()
            .change_balance(
                id,
                &BalanceChange::Set {
                    value,
                    description: if description.is_empty() {
                        "Balance set by the operator".to_owned()
                    } else {
                        description
                    },
                },
                self.clock().now(),
                Some(&self.stamp()),
            )
            .await?;
        Ok(new)
    }

    /// Balance history, newest first (`limit` 1–1000).
    pub async fn balance_history(
        &self,
        id: &AccountId,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>, ServiceError> {
        self.account(id).await?;
        Ok(self.store().balance_history(id, limit).await?)
    }

    /// Placed and received calls of the last `days` days, newest first, at most `limit` each.
    pub async fn calls(
        &self,
        id: &AccountId,
        days: u32,
        limit: u32,
    ) -> Result<(Vec<CallRecord>, Vec<CallRecord>), ServiceError> {
        let since = self.clock().now() - Duration::days(i64::from(days));
        let placed = self
            .store()
            .list_calls(id, Direction::Placed, since, limit)
            .await?;
        let received = self
            .store()
            .list_calls(id, Direction::Received, since, limit)
            .await?;
        Ok((placed, received))
    }

    /// Usage of a month (`YYYY-MM`, default the current month in the account's time zone).
    pub async fn monthly_usage(
        &self,
        id: &AccountId,
        month: Option<&str>,
    ) -> Result<(String, Usage), ServiceError> {
        let account = self.account(id).await?;
        let tz = account.profile.timezone;
        let first = match month {
            Some(m) => parse_month(m)?,
            None => {
                let local = self.clock().now().with_timezone(&tz.tz());
                NaiveDate::from_ymd_opt(local.year(), local.month(), 1)
                    .ok_or_else(|| ServiceError::Internal("current month".to_owned()))?
            }
        };
        let (from, to) = month_bounds(first, tz)?;
        let usage = self.store().usage(id, from, to).await?;
        Ok((first.format("%Y-%m").to_string(), usage))
    }

    /// Stores rates (see [`crate::store::Billing::import_rates`]).
    pub async fn import_rates(&self, rates: &[Rate], replace: bool) -> Result<u64, ServiceError> {
        Ok(self.store().import_rates(rates, replace).await?)
    }

    /// All rates.
    pub async fn rates(&self) -> Result<Vec<Rate>, ServiceError> {
        Ok(self.store().list_rates().await?)
    }

    /// The rate of a number.
    pub async fn lookup_rate(&self, number: &E164) -> Result<Option<Rate>, ServiceError> {
        Ok(self.store().find_rate(number.digits()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_bounds_follow_the_local_zone() {
        let tz = TimeZone::parse_for("tz", "Pacific/Kiritimati").unwrap(); // UTC+14
        let (from, to) = month_bounds(parse_month("2026-01").unwrap(), tz).unwrap();
        assert_eq!(from.to_rfc3339(), "2025-12-31T10:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-01-31T10:00:00+00:00");
        let tz = TimeZone::parse_for("tz", "America/Los_Angeles").unwrap();
        let (from, to) = month_bounds(parse_month("2026-12").unwrap(), tz).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-12-01T08:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2027-01-01T08:00:00+00:00");
        for bad in [
            "2026-13", "2026-1", "26-01", "x", "10000-01", "+999-01", "2026-+1", " 2026-01",
            "2026-01 ", "-999-01",
        ] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
    }
}
