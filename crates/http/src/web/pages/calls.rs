//! The Calls tab: placed and received calls.

use askama::Template;
use sip_settings_core::ServiceError;
use sip_settings_core::calls::CallRecord;

use super::{Layout, NavItem, Tab, View, render};
use crate::legacy::objects::local_time;

#[derive(Debug)]
struct CallView {
    start: String,
    party: String,
    duration: String,
    status: u16,
    price: String,
}

#[derive(Debug)]
struct CallList {
    id: &'static str,
    title: &'static str,
    party: &'static str,
    priced: bool,
    calls: Vec<CallView>,
}

#[derive(Template)]
#[template(path = "web/calls.html")]
struct CallsPage {
    layout: Layout,
    timezone: String,
    periods: Vec<NavItem>,
    lists: Vec<CallList>,
}

/// Seconds as `m:ss` or `h:mm:ss`.
pub fn clock_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

pub(super) async fn calls(v: &View<'_>) -> Result<String, ServiceError> {
    let days = v
        .query
        .get("days")
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|d| (1..=90).contains(d))
        .unwrap_or(14);
    let (placed, received) = v.svc.calls(&v.account.id, days, 200).await?;
    let view = |c: &CallRecord, placed: bool| CallView {
        start: local_time(v.account, c.start),
        party: if placed { &c.callee } else { &c.caller }.to_string(),
        duration: clock_duration(i64::from(c.duration)),
        status: c.status,
        price: c.price.map(|p| p.shown()).unwrap_or_default(),
    };
    let periods = [1u32, 7, 14, 30, 90]
        .into_iter()
        .map(|d| NavItem {
            href: format!("/web/calls?days={d}"),
            label: if d == 1 {
                "Last day".to_owned()
            } else {
                format!("Last {d} days")
            },
            current: d == days,
        })
        .collect();
    render(&CallsPage {
        layout: v.layout(Tab::Calls),
        timezone: v.tz(),
        periods,
        lists: vec![
            CallList {
                id: "placed",
                title: "Placed calls",
                party: "Called",
                priced: true,
                calls: placed.iter().map(|c| view(c, true)).collect(),
            },
            CallList {
                id: "received",
                title: "Received calls",
                party: "Caller",
                priced: false,
                calls: received.iter().map(|c| view(c, false)).collect(),
            },
        ],
    })
}
