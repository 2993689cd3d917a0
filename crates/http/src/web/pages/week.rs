//! "The coming 7 days" on the Accept & DND tab: who can reach the account when, day by day in
//! its time zone, from the same accept rules the decision reads (`AcceptRules::active_temporary`
//! and `routing::window_covers`, which `route` itself uses), drawn as a timeline (server-drawn
//! SVG) with the same segments as text. A day on which the clocks change is 23 or 25 hours
//! long and says so.

use std::fmt::Write as _;

use crate::web::charts::escape;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use sip_settings_core::routing::window_covers;
use sip_settings_core::settings::{AcceptRules, Group};

/// Who can call during a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reach {
    /// Everybody.
    Everybody,
    /// Only these groups (a rule's or the temporary rule's).
    Only(Vec<String>),
    /// Nobody: a rule for nobody, or Do Not Disturb.
    Nobody {
        /// Whether it is Do Not Disturb.
        dnd: bool,
    },
}

impl Reach {
    fn text(&self) -> String {
        match self {
            Reach::Everybody => "everybody".to_owned(),
            Reach::Only(groups) => format!("only {}", groups.join(", ")),
            Reach::Nobody { dnd: true } => "nobody (Do Not Disturb)".to_owned(),
            Reach::Nobody { dnd: false } => "nobody".to_owned(),
        }
    }

    fn colour(&self) -> &'static str {
        match self {
            Reach::Everybody => "#2e7d32",
            Reach::Only(_) => "#b26a00",
            Reach::Nobody { .. } => "#a4161a",
        }
    }
}

/// What the accept rules let through at `at`.
pub(super) fn reach_at(rules: &AcceptRules, tz: chrono_tz::Tz, at: DateTime<Utc>) -> Reach {
    let named = |groups: &[Group]| -> Reach {
        let names: Vec<String> = groups.iter().map(|g| g.name().to_owned()).collect();
        if names.iter().any(|n| n == "everybody") {
            Reach::Everybody
        } else if names.iter().all(|n| n == "nobody") {
            Reach::Nobody { dnd: false }
        } else {
            Reach::Only(names.into_iter().filter(|n| n != "nobody").collect())
        }
    };
    if let Some(temp) = rules.active_temporary(at) {
        if temp.is_dnd() {
            return Reach::Nobody { dnd: true };
        }
        return named(&temp.groups);
    }
    let local = at.with_timezone(&tz);
    let mut groups: Vec<Group> = Vec::new();
    for rule in rules.persistent.iter().filter(|r| window_covers(r, &local)) {
        for g in &rule.groups {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
    }
    if groups.is_empty() {
        Reach::Everybody
    } else {
        named(&groups)
    }
}

/// One day of the week ahead.
#[derive(Debug)]
pub(super) struct Day {
    /// `Mon 2027-03-29`.
    pub label: String,
    /// `Mon 29 Mar`, for the chart.
    pub short: String,
    /// Its segments: local start `HH:MM`, local end `HH:MM`, who, and the share of the day each
    /// edge is at (0–1).
    pub segments: Vec<(String, String, Reach, f64, f64)>,
    /// Said when the clocks change that day.
    pub change: Option<String>,
}

impl Day {
    /// The day's segments in words.
    pub(super) fn text(&self) -> String {
        self.segments
            .iter()
            .map(|(a, b, r, _, _)| format!("{a}–{b} {}", r.text()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The instants at which the local clock shows `at` (two on the hour the clocks go back); in a
/// gap (the hour they go forward), the first instant after it, found in steps of 30 minutes.
fn instants(tz: chrono_tz::Tz, at: NaiveDateTime) -> Vec<DateTime<Utc>> {
    let utc = |t: DateTime<chrono_tz::Tz>| t.with_timezone(&Utc);
    (0..=120)
        .step_by(30)
        .find_map(
            |m| match tz.from_local_datetime(&at.checked_add_signed(Duration::minutes(m))?) {
                LocalResult::Single(t) => Some(vec![utc(t)]),
                LocalResult::Ambiguous(a, b) => Some(vec![utc(a), utc(b)]),
                LocalResult::None => None,
            },
        )
        .unwrap_or_default()
}

/// Local midnight of `date` (the first instant of the day, on a day that begins in a gap).
fn midnight(tz: chrono_tz::Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    instants(tz, date.and_hms_opt(0, 0, 0)?).first().copied()
}

/// The instants of `date` at which who can call may change: every rule's start and stop on
/// that local date (whatever its days: a window from the day before ends on it) and the
/// temporary rule's end. Between two of them [`reach_at`] cannot change.
fn boundaries(rules: &AcceptRules, tz: chrono_tz::Tz, date: NaiveDate) -> Vec<DateTime<Utc>> {
    let mut out: Vec<DateTime<Utc>> = rules
        .persistent
        .iter()
        .flat_map(|r| [r.start, r.stop])
        .filter_map(|t| {
            let m = u32::from(t.minutes());
            Some(date.and_time(chrono::NaiveTime::from_hms_opt(m / 60, m % 60, 0)?))
        })
        .flat_map(|at| instants(tz, at))
        .collect();
    out.extend(rules.temporary.as_ref().and_then(|t| t.until));
    out
}

/// The 7 days from `now`'s local date, today from `now`.
pub(super) fn week(rules: &AcceptRules, tz: chrono_tz::Tz, now: DateTime<Utc>) -> Vec<Day> {
    let today = now.with_timezone(&tz).date_naive();
    (0..7)
        .filter_map(|i| {
            let date = today.checked_add_signed(Duration::days(i))?;
            let start = midnight(tz, date)?;
            let end = midnight(tz, date.succ_opt()?)?;
            let length = (end - start).num_minutes().max(1);
            let off = |t: DateTime<Utc>| t.with_timezone(&tz).offset().fix().local_minus_utc();
            let change = match (off(end) - off(start)).signum() {
                1 => Some("the clocks go forward an hour: a 23-hour day".to_owned()),
                -1 => Some("the clocks go back an hour: a 25-hour day".to_owned()),
                _ => None,
            };
            let hhmm = |t: DateTime<Utc>| {
                if t >= end {
                    "24:00".to_owned()
                } else {
                    t.with_timezone(&tz).format("%H:%M").to_string()
                }
            };
            #[allow(clippy::cast_precision_loss)]
            let share = |x: DateTime<Utc>| (x - start).num_minutes() as f64 / length as f64;
            // Today from now (its earlier hours are past), to the minute.
            let from = if i == 0 {
                let minute = now
                    - Duration::seconds(now.timestamp().rem_euclid(60))
                    - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos()));
                minute.max(start)
            } else {
                start
            };
            let mut edges = boundaries(rules, tz, date);
            edges.retain(|t| *t > from && *t < end);
            edges.sort_unstable();
            edges.dedup();
            let mut segments: Vec<(String, String, Reach, f64, f64)> = Vec::new();
            let mut seg_start = from;
            let mut current = reach_at(rules, tz, from);
            for edge in edges.into_iter().chain([end]) {
                let reach = if edge < end {
                    reach_at(rules, tz, edge)
                } else {
                    current.clone()
                };
                if edge == end || reach != current {
                    segments.push((
                        hhmm(seg_start),
                        hhmm(edge),
                        current.clone(),
                        share(seg_start),
                        share(edge),
                    ));
                    seg_start = edge;
                    current = reach;
                }
            }
            Some(Day {
                label: date.format("%a %Y-%m-%d").to_string(),
                short: date.format("%a %d %b").to_string(),
                segments,
                change,
            })
        })
        .collect()
}

/// The timeline: a row per day, a coloured bar per segment, hours marked every 6.
pub(super) fn timeline(days: &[Day], tz_name: &str) -> String {
    const WIDTH: f64 = 480.0;
    const LEFT: f64 = 92.0;
    const RIGHT: f64 = 8.0;
    const ROW: f64 = 34.0;
    const TOP: f64 = 22.0;
    let bar = WIDTH - LEFT - RIGHT;
    #[allow(clippy::cast_precision_loss)]
    let height = TOP + ROW * days.len() as f64 + 6.0;
    let mut svg = format!(
        r#"<svg class="week" id="week-chart" viewBox="0 0 {WIDTH} {height:.1}" role="img" aria-labelledby="week-title week-desc" xmlns="http://www.w3.org/2000/svg"><title id="week-title">Who can reach you, the coming 7 days</title><desc id="week-desc">A row per day in {}, midnight to midnight; green: everybody, amber: only some groups, red: nobody. The table below says the same in words.</desc>"#,
        escape(tz_name)
    );
    for h in [0, 6, 12, 18, 24] {
        let x = LEFT + bar * f64::from(h) / 24.0;
        let _ = write!(
            svg,
            r##"<text x="{x:.1}" y="14" font-size="13" text-anchor="middle" fill="#4a5360">{h:02}</text><line x1="{x:.1}" y1="18" x2="{x:.1}" y2="{:.1}" stroke="#c9d0d8"/>"##,
            height - 4.0
        );
    }
    for (i, day) in days.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let y = TOP + ROW * i as f64;
        let _ = write!(
            svg,
            r##"<text x="2" y="{:.1}" font-size="13" fill="#1b1f24">{}{}</text>"##,
            y + 20.0,
            escape(&day.short),
            if day.change.is_some() { " *" } else { "" }
        );
        for (_, _, reach, a, b) in &day.segments {
            let _ = write!(
                svg,
                r##"<rect class="segment" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"##,
                LEFT + bar * a,
                y + 6.0,
                (bar * (b - a)).max(0.5),
                ROW - 12.0,
                reach.colour()
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_settings_core::settings::{AcceptRule, ClockTime, DaysMask, TemporaryRule};

    fn rules(temporary: Option<TemporaryRule>) -> AcceptRules {
        AcceptRules {
            persistent: vec![AcceptRule {
                days: DaysMask::new(96).unwrap(),
                start: ClockTime::parse_for("start", "09:00").unwrap(),
                stop: ClockTime::parse_for("stop", "17:00").unwrap(),
                groups: vec![Group::parse("family").unwrap()],
            }],
            temporary,
        }
    }

    #[test]
    fn a_week_in_amsterdam_across_the_spring_change() {
        let tz: chrono_tz::Tz = "Europe/Amsterdam".parse().unwrap();
        // Friday 2027-03-26 08:00 UTC (09:00 CET), DND for 30 minutes.
        let now = Utc.with_ymd_and_hms(2027, 3, 26, 8, 0, 0).unwrap();
        let dnd = TemporaryRule {
            groups: vec![Group::parse("nobody").unwrap()],
            until: Some(now + Duration::minutes(30)),
        };
        let days = week(&rules(Some(dnd)), tz, now);
        assert_eq!(days.len(), 7);
        assert_eq!(days[0].label, "Fri 2027-03-26");
        assert_eq!(
            days[0].text(),
            "09:00–09:30 nobody (Do Not Disturb); 09:30–24:00 everybody"
        );
        assert_eq!(
            days[1].text(),
            "00:00–09:00 everybody; 09:00–17:00 only family; 17:00–24:00 everybody"
        );
        assert_eq!(days[1].change, None);
        // Sunday: 23 hours, the same local window.
        assert_eq!(days[2].label, "Sun 2027-03-28");
        assert!(days[2].change.as_deref().unwrap().contains("forward"));
        assert_eq!(days[2].text(), days[1].text());
        assert_eq!(days[3].text(), "00:00–24:00 everybody");
        let svg = timeline(&days, "Europe/Amsterdam");
        assert_eq!(svg.matches("class=\"segment\"").count(), 2 + 3 + 3 + 4);
    }
}
