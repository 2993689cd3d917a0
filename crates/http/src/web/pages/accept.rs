//! The Accept & DND tab: accept rules, the temporary rule, Do Not Disturb.

use askama::Template;
use chrono::{DateTime, Utc};
use sip_settings_core::ServiceError;
use sip_settings_core::settings::{DaysMask, Group, TemporaryRule};

use super::{CheckBox, Field, Layout, Refusal, Tab, View, render};

#[derive(Debug)]
struct RuleView {
    days: u8,
    days_label: String,
    start: String,
    stop: String,
    groups: String,
}

#[derive(Template)]
#[template(path = "web/accept.html")]
struct AcceptPage {
    layout: Layout,
    dnd_state: String,
    dnd_on: bool,
    dnd_duration: Field,
    temp_state: String,
    temp_active: bool,
    temp_who: WhoView,
    temp_duration: Field,
    timezone: String,
    rules: Vec<RuleView>,
    days: Vec<CheckBox>,
    days_error: Option<String>,
    start: Field,
    stop: Field,
    rule_who: WhoView,
    /// The coming 7 days as a timeline (inline SVG).
    week_chart: String,
    /// The same days in words: label, segments, the clock change if any.
    week: Vec<(String, String, Option<String>)>,
}

/// The day checkboxes' names and labels, Monday first (bit 0).
pub const DAYS: [(&str, &str); 7] = [
    ("d_mon", "Monday"),
    ("d_tue", "Tuesday"),
    ("d_wed", "Wednesday"),
    ("d_thu", "Thursday"),
    ("d_fri", "Friday"),
    ("d_sat", "Saturday"),
    ("d_sun", "Sunday"),
];

/// A days mask in words.
pub fn days_label(mask: DaysMask) -> String {
    match mask.value() {
        127 => "Every day".to_owned(),
        31 => "Monday to Friday".to_owned(),
        96 => "Saturday and Sunday".to_owned(),
        m => DAYS
            .iter()
            .enumerate()
            .filter(|(i, _)| m & (1 << i) != 0)
            .map(|(_, (_, label))| label.get(..3).unwrap_or(label))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn group_list(groups: &[Group]) -> String {
    groups
        .iter()
        .map(Group::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// "N more minutes".
fn minutes_text(n: i64) -> String {
    if n == 1 {
        "1 more minute".to_owned()
    } else {
        format!("{n} more minutes")
    }
}

fn remaining(v: &View<'_>, t: &TemporaryRule, now: DateTime<Utc>) -> String {
    match (t.remaining_minutes(now), t.until) {
        (Some(m), Some(until)) => format!(
            "for {} (until {} {})",
            minutes_text(m),
            v.local(until),
            v.tz()
        ),
        _ => "until you turn it off".to_owned(),
    }
}

/// Who a form's rule accepts: everybody, nobody, or some phonebook groups (a radio button
/// each, so that everybody and nobody can neither be combined with each other nor with groups),
/// and the group boxes.
#[derive(Debug)]
struct WhoView {
    /// The form (`temp`, `rule`): the id prefix of its fields.
    form: &'static str,
    /// `everybody`, `nobody`, `groups`, or empty (none chosen yet).
    who: String,
    /// A box per phonebook group (`g_<name>`).
    groups: Vec<CheckBox>,
    /// The refusal's message about the choice.
    error: Option<String>,
}

fn who_view(form: &'static str, phonebook: &[String], r: Option<&Refusal>) -> WhoView {
    WhoView {
        form,
        who: Refusal::value(r, form, "who")
            .unwrap_or_default()
            .to_owned(),
        groups: phonebook
            .iter()
            .map(|g| CheckBox {
                name: format!("g_{g}"),
                checked: Refusal::value(r, form, &format!("g_{g}")).is_some_and(|v| !v.is_empty()),
                label: format!("Group “{g}”"),
            })
            .collect(),
        error: Refusal::error(r, form, "groups"),
    }
}

pub(super) async fn accept(v: &View<'_>) -> Result<String, ServiceError> {
    let id = &v.account.id;
    let rules = v.svc.accept_rules(id).await?;
    let phonebook_groups = v.svc.phonebook_groups(id).await?;
    let now = v.svc.clock().now();
    let active = rules.active_temporary(now);
    let dnd_on = active.is_some_and(TemporaryRule::is_dnd);
    let dnd_state = match active.filter(|t| t.is_dnd()) {
        Some(t) => format!("Do Not Disturb is on {}.", remaining(v, t, now)),
        None => "Do Not Disturb is off.".to_owned(),
    };
    let temp_active = active.is_some_and(|t| !t.is_dnd());
    let temp_state = match active.filter(|t| !t.is_dnd()) {
        Some(t) => format!(
            "Only {} may call, {}.",
            group_list(&t.groups),
            remaining(v, t, now)
        ),
        None => "No temporary rule.".to_owned(),
    };
    let duration_hint = "Leave empty to keep it until you turn it off; at most 10080 (one week).";
    let dnd_duration = Field::new(
        "dnd",
        "duration",
        "For how many minutes",
        "text",
        String::new(),
        v.refusal,
    )
    .attrs(r#" inputmode="numeric" autocomplete="off""#)
    .hint(duration_hint);
    let temp_duration = Field::new(
        "temp",
        "duration",
        "For how many minutes",
        "text",
        String::new(),
        v.refusal,
    )
    .attrs(r#" inputmode="numeric" autocomplete="off""#)
    .hint(duration_hint);
    let days = DAYS
        .iter()
        .map(|(name, label)| CheckBox {
            name: (*name).to_owned(),
            label: (*label).to_owned(),
            checked: Refusal::value(v.refusal, "rule", name).is_some_and(|x| !x.is_empty()),
        })
        .collect();
    let start = Field::new(
        "rule",
        "start",
        "From",
        "time",
        "09:00".to_owned(),
        v.refusal,
    );
    let stop = Field::new("rule", "stop", "To", "time", "17:00".to_owned(), v.refusal);
    let rule_views = rules
        .persistent
        .iter()
        .map(|r| RuleView {
            days: r.days.value(),
            days_label: days_label(r.days),
            start: r.start.to_string(),
            stop: r.stop.to_string(),
            groups: group_list(&r.groups),
        })
        .collect();
    let tz = v.account.profile.timezone;
    let coming = super::week::week(&rules, tz.tz(), now);
    let week_chart = super::week::timeline(&coming, tz.name());
    let week = coming
        .iter()
        .map(|d| (d.label.clone(), d.text(), d.change.clone()))
        .collect();
    render(&AcceptPage {
        week_chart,
        week,
        layout: v.layout(Tab::Accept),
        dnd_state,
        dnd_on,
        dnd_duration,
        temp_state,
        temp_active,
        temp_who: who_view("temp", &phonebook_groups, v.refusal),
        temp_duration,
        timezone: v.tz(),
        rules: rule_views,
        days,
        days_error: Refusal::error(v.refusal, "rule", "days"),
        start,
        stop,
        rule_who: who_view("rule", &phonebook_groups, v.refusal),
    })
}
