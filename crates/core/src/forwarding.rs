//! Forwarding rules with conditions (issue 19; docs/architecture.md, "Forwarding rules"). Here
//! the **time sets**, the "when" of a rule, evaluated in the account's time zone; the rest of
//! the model — triggers, caller and called sets, steps, redirects, choosing the rule for a
//! call — is in `rules` (re-exported here).
//!
//! A [`TimeSet`] holds at an instant when the account's local time there falls in any of its
//! parts:
//! * a **weekly range**, days of the week and a time-of-day window, with the accept rules'
//!   semantics ([`weekly_covers`], also what `routing` uses for them): a window whose stop is
//!   before its start crosses midnight and belongs to the day it starts on; equal start and stop
//!   is the whole day;
//! * a **date range**, local calendar dates, first and last included (a holiday, a trip);
//! * a **yearly date**, a month and day every year (a public holiday); 02-29 holds only in
//!   leap years.
//!
//! Local time is `chrono-tz`'s: on the day a clock springs forward, the skipped local hour never
//! occurs, so a range inside it does not hold; on the day it falls back, the repeated hour holds
//! twice. Nothing here converts by a fixed offset. Every part is validated when the set is made,
//! with messages that name the field (`weekly[1].stop`, `dates[0]`, `yearly[2]`).

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc, Weekday};

mod document;
mod rules;

pub use document::{
    CalledSetDoc, CallerSetDoc, DOCUMENT_VERSION, Document, Forwarding, RuleDoc, StepDoc,
    TargetReader, TimeSetDoc, WeeklyDoc,
};
pub use rules::{
    Action, CallFacts, CalledSet, CallerMember, CallerSet, Chosen, DEFAULT_RING_SECONDS, Event,
    ForwardingRule, ForwardingSets, MAX_CODES, MAX_MEMBERS, MAX_RING_SECONDS, MAX_RULES, MAX_STEPS,
    MAX_TARGETS, MIN_RING_SECONDS, Mode, Step, Trigger, check_references, check_set_name, choose,
    choose_from, parse_target, shadowed, targets,
};
pub(crate) use rules::{Judged, choose_in};

use crate::error::ServiceError;
use crate::ids::{TimeZone as AccountTimeZone, printable};
use crate::settings::{ClockTime, DaysMask};

/// Most parts (weekly ranges, date ranges and yearly dates together) of one time set.
pub const MAX_TIME_SET_PARTS: usize = 64;

/// Whether a weekly window (`days`, `start`–`stop`) covers a local time: the accept rules'
/// semantics, shared with [`crate::routing::window_covers`].
pub fn weekly_covers<T: chrono::TimeZone>(
    days: DaysMask,
    start: ClockTime,
    stop: ClockTime,
    local: &DateTime<T>,
) -> bool {
    let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
    let today = local.weekday();
    let (start, stop) = (start.minutes(), stop.minutes());
    if start == stop {
        days.contains(today)
    } else if start < stop {
        days.contains(today) && minute >= start && minute < stop
    } else {
        // Crosses midnight: belongs to the day it starts on.
        (days.contains(today) && minute >= start) || (days.contains(today.pred()) && minute < stop)
    }
}

/// Days of the week and a time-of-day window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyRange {
    /// The days the window starts on.
    pub days: DaysMask,
    /// Window start, local time.
    pub start: ClockTime,
    /// Window end, local time (before `start`: the next day; equal: the whole day).
    pub stop: ClockTime,
}

/// Local calendar dates, first and last included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// The first date.
    pub first: NaiveDate,
    /// The last date (not before `first`).
    pub last: NaiveDate,
}

impl DateRange {
    /// `YYYY-MM-DD` (one day) or `YYYY-MM-DD..YYYY-MM-DD`, for the parameter `field`.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        let date = |text: &str| {
            let text = text.trim();
            // Exactly YYYY-MM-DD (chrono alone would take `2027-1-5`).
            let shaped = text.len() == 10
                && text.bytes().enumerate().all(|(i, b)| match i {
                    4 | 7 => b == b'-',
                    _ => b.is_ascii_digit(),
                });
            let parsed = if shaped {
                NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
            } else {
                None
            };
            parsed.ok_or_else(|| {
                ServiceError::invalid(
                    field,
                    format!(
                        "'{}' is not a date YYYY-MM-DD or a range YYYY-MM-DD..YYYY-MM-DD",
                        printable(input)
                    ),
                )
            })
        };
        let (first, last) = match input.split_once("..") {
            Some((a, b)) => (date(a)?, date(b)?),
            None => {
                let d = date(input)?;
                (d, d)
            }
        };
        if last < first {
            return Err(ServiceError::invalid(
                field,
                format!("ends ({last}) before it starts ({first})"),
            ));
        }
        Ok(Self { first, last })
    }

    /// Whether `date` is in the range.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.first <= date && date <= self.last
    }
}

/// A month and day, every year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearlyDate {
    /// 1–12.
    pub month: u32,
    /// 1–31, a day the month has (02-29 included).
    pub day: u32,
}

impl YearlyDate {
    /// `MM-DD`, for the parameter `field`.
    pub fn parse_for(field: &str, input: &str) -> Result<Self, ServiceError> {
        let bad = || {
            ServiceError::invalid(
                field,
                format!(
                    "'{}' is not a yearly date MM-DD (such as 12-25)",
                    printable(input)
                ),
            )
        };
        let (m, d) = input.trim().split_once('-').ok_or_else(bad)?;
        if m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let month: u32 = crate::ids::whole_number(m).ok_or_else(bad)?;
        let day: u32 = crate::ids::whole_number(d).ok_or_else(bad)?;
        // 2000 is a leap year: every day a month can have exists in it.
        if NaiveDate::from_ymd_opt(2000, month, day).is_none() {
            return Err(bad());
        }
        Ok(Self { month, day })
    }

    /// Whether `date` is this month and day (02-29 only in a leap year).
    pub fn matches(&self, date: NaiveDate) -> bool {
        date.month() == self.month && date.day() == self.day
    }
}

/// When a rule applies: any of its parts, in the account's local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSet {
    weekly: Vec<WeeklyRange>,
    dates: Vec<DateRange>,
    yearly: Vec<YearlyDate>,
}

impl TimeSet {
    /// A time set of these parts: at least one, at most [`MAX_TIME_SET_PARTS`].
    pub fn new(
        weekly: Vec<WeeklyRange>,
        dates: Vec<DateRange>,
        yearly: Vec<YearlyDate>,
    ) -> Result<Self, ServiceError> {
        let parts = weekly.len() + dates.len() + yearly.len();
        if parts == 0 {
            return Err(ServiceError::invalid(
                "time_set",
                "needs at least one weekly range, date range or yearly date",
            ));
        }
        if parts > MAX_TIME_SET_PARTS {
            return Err(ServiceError::invalid(
                "time_set",
                format!("has {parts} parts; at most {MAX_TIME_SET_PARTS} are allowed"),
            ));
        }
        Ok(Self {
            weekly,
            dates,
            yearly,
        })
    }

    /// The weekly ranges.
    pub fn weekly(&self) -> &[WeeklyRange] {
        &self.weekly
    }

    /// The date ranges.
    pub fn dates(&self) -> &[DateRange] {
        &self.dates
    }

    /// The yearly dates.
    pub fn yearly(&self) -> &[YearlyDate] {
        &self.yearly
    }

    /// The part that holds at `at` in time zone `tz`, described for a decision's path (with the
    /// local time it was judged at), or `None` when none holds.
    pub fn holds(&self, at: DateTime<Utc>, tz: AccountTimeZone) -> Option<String> {
        self.holds_described(&at.with_timezone(&tz.tz()), tz)
    }

    /// Whether any part holds at `local`, the account's local time (`at` in its zone, made
    /// once per decision): [`TimeSet::holds`] without the description, for a decision whose
    /// path nobody reads. Both judge by the same first part that holds, so they cannot
    /// disagree.
    pub fn holds_at(&self, local: &DateTime<chrono_tz::Tz>) -> bool {
        self.part_at(local).is_some()
    }

    /// [`TimeSet::holds`] at `local`, the account's local time in `tz` (made once per
    /// decision).
    pub fn holds_described(
        &self,
        local: &DateTime<chrono_tz::Tz>,
        tz: AccountTimeZone,
    ) -> Option<String> {
        let part = self.part_at(local)?;
        // Described only when a part holds: a decision asks many sets that do not.
        let when = format!("{} in {}", local.format("%a %Y-%m-%d %H:%M"), tz.name());
        Some(match part {
            Part::Weekly(w) => format!(
                "weekly {}–{} on days {} holds at {when}",
                w.start,
                w.stop,
                days_text(w.days),
            ),
            Part::Dates(d) => format!("dates {}..{} hold at {when}", d.first, d.last),
            Part::Yearly(y) => format!("yearly {:02}-{:02} holds at {when}", y.month, y.day),
        })
    }

    /// The first part that holds at `local`: weekly ranges first, then date ranges, then
    /// yearly dates. What both [`TimeSet::holds_at`] and [`TimeSet::holds_described`] decide
    /// by.
    fn part_at(&self, local: &DateTime<chrono_tz::Tz>) -> Option<Part<'_>> {
        if let Some(w) = self
            .weekly
            .iter()
            .find(|w| weekly_covers(w.days, w.start, w.stop, local))
        {
            return Some(Part::Weekly(w));
        }
        let date = local.date_naive();
        if let Some(d) = self.dates.iter().find(|d| d.contains(date)) {
            return Some(Part::Dates(d));
        }
        self.yearly
            .iter()
            .find(|y| y.matches(date))
            .map(Part::Yearly)
    }
}

/// The part of a time set that holds.
enum Part<'a> {
    Weekly(&'a WeeklyRange),
    Dates(&'a DateRange),
    Yearly(&'a YearlyDate),
}

/// `Mon,Tue,…` of a mask.
fn days_text(days: DaysMask) -> String {
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .into_iter()
    .filter(|d| days.contains(*d))
    .map(|d| d.to_string())
    .collect::<Vec<_>>()
    .join(",")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(s: &str) -> ClockTime {
        ClockTime::parse_for("t", s).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn tz(name: &str) -> AccountTimeZone {
        AccountTimeZone::parse_for("timezone", name).unwrap()
    }

    fn weekly(days: DaysMask, start: &str, stop: &str) -> TimeSet {
        TimeSet::new(
            vec![WeeklyRange {
                days,
                start: t(start),
                stop: t(stop),
            }],
            vec![],
            vec![],
        )
        .unwrap()
    }

    /// A night window crossing midnight, in a zone west of UTC: judged on local days, not on
    /// UTC's.
    #[test]
    fn a_night_window_across_midnight_in_new_york() {
        // Weekdays 22:00–06:00 New York (EST, UTC-5, in January).
        let night = weekly(DaysMask::WEEKDAYS, "22:00", "06:00");
        let ny = tz("America/New_York");
        for (instant, holds) in [
            // Mon 21:59 local.
            ("2027-01-12T02:59:00Z", false),
            // Mon 22:00 local.
            ("2027-01-12T03:00:00Z", true),
            // Tue 05:59 local (the window that started Monday).
            ("2027-01-12T10:59:00Z", true),
            // Tue 06:00 local.
            ("2027-01-12T11:00:00Z", false),
            // Fri 23:30 local: starts Friday, holds.
            ("2027-01-16T04:30:00Z", true),
            // Sat 05:00 local: the window that started Friday.
            ("2027-01-16T10:00:00Z", true),
            // Sat 23:00 local: Saturday is not among the days.
            ("2027-01-17T04:00:00Z", false),
            // Mon 03:00 local: Sunday's window does not exist.
            ("2027-01-18T08:00:00Z", false),
        ] {
            assert_eq!(night.holds(utc(instant), ny).is_some(), holds, "{instant}");
        }
    }

    /// Spring forward in Amsterdam (2027-03-28, 02:00 CET → 03:00 CEST): a window over the
    /// skipped hour holds on both sides of it, judged by local clock time each side.
    #[test]
    fn the_spring_forward_day_in_amsterdam() {
        let early = weekly(DaysMask::EVERY_DAY, "01:00", "04:00");
        let ams = tz("Europe/Amsterdam");
        for (instant, local, holds) in [
            ("2027-03-27T23:59:00Z", "00:59 CET", false),
            ("2027-03-28T00:30:00Z", "01:30 CET", true),
            // 01:00 UTC is 03:00 CEST: the hour 02:00–03:00 did not happen.
            ("2027-03-28T01:00:00Z", "03:00 CEST", true),
            ("2027-03-28T01:59:00Z", "03:59 CEST", true),
            ("2027-03-28T02:00:00Z", "04:00 CEST", false),
        ] {
            assert_eq!(early.holds(utc(instant), ams).is_some(), holds, "{local}");
        }
        // A window inside the skipped hour never holds that day, and holds the day after.
        let skipped = weekly(DaysMask::EVERY_DAY, "02:15", "02:45");
        let day: Vec<bool> = (0..24 * 60)
            .step_by(5)
            .map(|m| {
                let at = utc("2027-03-27T23:00:00Z") + chrono::Duration::minutes(m);
                skipped.holds(at, ams).is_some()
            })
            .collect();
        assert!(
            day.iter().all(|h| !h),
            "02:15–02:45 on the day it does not exist"
        );
        assert!(skipped.holds(utc("2027-03-29T00:30:00Z"), ams).is_some());
    }

    /// Fall back in New York (2027-11-07, 02:00 EDT → 01:00 EST): the repeated hour holds twice,
    /// and a window after it starts by the local clock (not five hours after midnight UTC-4).
    #[test]
    fn the_fall_back_day_in_new_york() {
        let ny = tz("America/New_York");
        let repeated = weekly(DaysMask::EVERY_DAY, "01:00", "02:00");
        // 05:30Z is 01:30 EDT, 06:30Z is 01:30 EST: both hold; 07:00Z is 02:00 EST.
        assert!(repeated.holds(utc("2027-11-07T05:30:00Z"), ny).is_some());
        assert!(repeated.holds(utc("2027-11-07T06:30:00Z"), ny).is_some());
        assert!(repeated.holds(utc("2027-11-07T07:00:00Z"), ny).is_none());
        let morning = weekly(DaysMask::EVERY_DAY, "08:00", "09:00");
        // 08:00 EST is 13:00Z on the day (it would be 12:00Z at a fixed EDT offset).
        assert!(morning.holds(utc("2027-11-07T12:30:00Z"), ny).is_none());
        assert!(morning.holds(utc("2027-11-07T13:30:00Z"), ny).is_some());
    }

    #[test]
    fn date_ranges_and_yearly_dates_are_local_dates() {
        let holidays = TimeSet::new(
            vec![],
            vec![DateRange::parse_for("dates[0]", "2027-07-01..2027-07-14").unwrap()],
            vec![
                YearlyDate::parse_for("yearly[0]", "12-25").unwrap(),
                YearlyDate::parse_for("yearly[1]", "02-29").unwrap(),
            ],
        )
        .unwrap();
        let tokyo = tz("Asia/Tokyo");
        // 2027-12-24T15:30Z is Christmas Day 00:30 in Tokyo, still the 24th in UTC.
        let why = holidays.holds(utc("2027-12-24T15:30:00Z"), tokyo).unwrap();
        assert!(
            why.contains("yearly 12-25") && why.contains("Asia/Tokyo"),
            "{why}"
        );
        assert!(holidays.holds(utc("2027-12-24T14:59:00Z"), tokyo).is_none());
        // The range includes its last day, local.
        assert!(holidays.holds(utc("2027-07-14T14:00:00Z"), tokyo).is_some());
        assert!(holidays.holds(utc("2027-07-14T15:00:00Z"), tokyo).is_none());
        // 02-29 holds in a leap year only; 2028-02-28 and 2027-03-01 do not.
        assert!(holidays.holds(utc("2028-02-29T03:00:00Z"), tokyo).is_some());
        assert!(holidays.holds(utc("2028-02-28T03:00:00Z"), tokyo).is_none());
        assert!(holidays.holds(utc("2027-03-01T03:00:00Z"), tokyo).is_none());
    }

    #[test]
    fn bad_parts_are_refused_naming_the_field() {
        for (field, input) in [
            ("dates[0]", "2027-02-30"),
            ("dates[0]", "2027-1-5"),
            ("dates[0]", "tomorrow"),
            ("dates[0]", "2027-01-05..2027-01-04"),
        ] {
            let e = DateRange::parse_for(field, input).unwrap_err();
            assert!(e.to_string().contains(field), "{input}: {e}");
        }
        for input in ["13-01", "02-30", "04-31", "1-5", "12/25", "+1-05", ""] {
            let e = YearlyDate::parse_for("yearly[3]", input).unwrap_err();
            assert!(e.to_string().contains("yearly[3]"), "{input}: {e}");
        }
        let e = TimeSet::new(vec![], vec![], vec![]).unwrap_err();
        assert!(e.to_string().contains("time_set"), "{e}");
        let many = vec![YearlyDate { month: 1, day: 1 }; MAX_TIME_SET_PARTS + 1];
        assert!(TimeSet::new(vec![], vec![], many).is_err());
    }
}
