//! The Balance tab: balance, usage, history.

use askama::Template;
use chrono::{Datelike, NaiveDate};
use sip_settings_core::ServiceError;
use sip_settings_core::billing_service::parse_month;

use super::calls::clock_duration;
use super::{Layout, Tab, View, render};
use crate::legacy::objects::local_time;

#[derive(Debug)]
struct ActiveView {
    start: String,
    destination: String,
    elapsed: String,
    max: String,
}

#[derive(Debug)]
struct HistView {
    date: String,
    description: String,
    value: String,
    balance: String,
}

/// One month of the last twelve.
#[derive(Debug)]
struct MonthView {
    month: String,
    calls: u64,
    duration: String,
    price: String,
}

#[derive(Template)]
#[template(path = "web/balance.html")]
struct BalancePage {
    /// The usage of the last 12 months as a bar chart (inline SVG), oldest first.
    usage_chart: String,
    /// The same months as a table, newest first.
    months: Vec<MonthView>,
    /// The balance after each change as a line (inline SVG), when there is a history.
    balance_chart: Option<String>,
    layout: Layout,
    prepaid: bool,
    balance: String,
    currency: String,
    active: Vec<ActiveView>,
    month: String,
    usage_calls: u64,
    usage_duration: String,
    usage_price: String,
    prev_month: String,
    next_month: Option<String>,
    history: Vec<HistView>,
}

fn month_shift(first: NaiveDate, forward: bool) -> Option<NaiveDate> {
    let (y, m) = (first.year(), first.month());
    match (forward, m) {
        (true, 12) => NaiveDate::from_ymd_opt(y + 1, 1, 1),
        (true, _) => NaiveDate::from_ymd_opt(y, m + 1, 1),
        (false, 1) => NaiveDate::from_ymd_opt(y - 1, 12, 1),
        (false, _) => NaiveDate::from_ymd_opt(y, m - 1, 1),
    }
}

pub(super) async fn balance(v: &View<'_>) -> Result<String, ServiceError> {
    let id = &v.account.id;
    let now = v.svc.clock().now();
    let (balance, sessions) = v.svc.prepaid(id).await?;
    let mut alert = None;
    let (month, usage) = match v.svc.monthly_usage(id, v.query.get("month")).await {
        Ok(u) => u,
        Err(e @ ServiceError::Invalid { .. }) => {
            alert = Some(e.to_string());
            v.svc.monthly_usage(id, None).await?
        }
        Err(e) => return Err(e),
    };
    let first = parse_month(&month)?;
    let local_now = now.with_timezone(&v.account.profile.timezone.tz());
    let this_month = NaiveDate::from_ymd_opt(local_now.year(), local_now.month(), 1);
    let next = month_shift(first, true).filter(|n| this_month.is_some_and(|t| *n <= t));
    let history = v.svc.balance_history(id, 200).await?;
    let currency = v.svc.config().currency.clone();
    // The last 12 months, this one included, oldest first.
    let mut months = Vec::new();
    let mut at = this_month;
    for _ in 0..12 {
        let Some(m) = at else { break };
        let name = m.format("%Y-%m").to_string();
        let (_, u) = v.svc.monthly_usage(id, Some(&name)).await?;
        months.push((name, m.format("%b").to_string(), u));
        at = month_shift(m, false);
    }
    months.reverse();
    let bars: Vec<(String, i64)> = months
        .iter()
        .map(|(_, label, u)| (label.clone(), u.price.units()))
        .collect();
    let usage_chart = crate::web::charts::bars(
        "usage-chart",
        "Price of the calls placed, by month",
        &format!(
            "The last 12 months, {} to {}; the table beside it gives each month's figures.",
            months.first().map_or("", |(m, _, _)| m.as_str()),
            months.last().map_or("", |(m, _, _)| m.as_str())
        ),
        &bars,
        &currency,
    );
    // The balance after each change, oldest first.
    let balance_chart = (!history.is_empty()).then(|| {
        let points: Vec<(String, i64)> = history
            .iter()
            .rev()
            .map(|h| {
                let date = local_time(v.account, h.at);
                (
                    date.get(..10).unwrap_or(&date).to_owned(),
                    h.balance.units(),
                )
            })
            .collect();
        crate::web::charts::steps(
            "balance-chart",
            "Balance after each change",
            &format!(
                "{} changes from {} to {}, the balance going from {} to {} {currency}; the \
                 history table below lists each.",
                points.len(),
                points.first().map_or("", |(d, _)| d.as_str()),
                points.last().map_or("", |(d, _)| d.as_str()),
                history
                    .last()
                    .map(|h| h.balance.shown())
                    .unwrap_or_default(),
                history
                    .first()
                    .map(|h| h.balance.shown())
                    .unwrap_or_default(),
            ),
            &points,
            &currency,
        )
    });
    let mut layout = v.layout(Tab::Balance);
    if alert.is_some() {
        layout.alert = alert;
    }
    render(&BalancePage {
        usage_chart,
        months: months
            .iter()
            .rev()
            .map(|(m, _, u)| MonthView {
                month: m.clone(),
                calls: u.calls,
                duration: clock_duration(i64::try_from(u.duration).unwrap_or(i64::MAX)),
                price: u.price.shown(),
            })
            .collect(),
        balance_chart,
        layout,
        prepaid: v.account.prepaid,
        balance: balance.shown(),
        currency,
        active: sessions
            .iter()
            .map(|s| ActiveView {
                start: local_time(v.account, s.opened_at),
                destination: s.destination.to_string(),
                elapsed: clock_duration((now - s.opened_at).num_seconds()),
                max: clock_duration(i64::from(s.max_session_time)),
            })
            .collect(),
        month,
        usage_calls: usage.calls,
        usage_duration: clock_duration(i64::try_from(usage.duration).unwrap_or(i64::MAX)),
        usage_price: usage.price.shown(),
        prev_month: month_shift(first, false)
            .map(|d| d.format("%Y-%m").to_string())
            .unwrap_or_default(),
        next_month: next.map(|d| d.format("%Y-%m").to_string()),
        history: history
            .iter()
            .map(|h| HistView {
                date: local_time(v.account, h.at),
                description: h.description.clone(),
                value: h.value.signed_shown(),
                balance: h.balance.shown(),
            })
            .collect(),
    })
}
