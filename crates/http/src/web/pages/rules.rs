//! The Rules tab: the forwarding rules with conditions (issue 19) — the ordered list, a form to
//! add or change one rule (trigger, conditions, destinations step by step, redirect, on/off),
//! buttons to move a rule up or down, turn it off or remove it, and the named sets the rules'
//! conditions use. Everything works without JavaScript; every change goes through
//! `Services::set_forwarding`, as `/v1/me/forwarding-rules` does.

use askama::Template;
use sip_settings_core::ServiceError;
use sip_settings_core::forwarding::{
    CallerSetDoc, Document, Forwarding, RuleDoc, StepDoc, TimeSetDoc, shadowed,
};

use super::{CheckBox, DAYS, Field, Layout, Refusal, Tab, View, days_label, render, target_shown};

/// The triggers a rule may have: the value sent and what the page calls it.
pub const TRIGGERS: [(&str, &str); 7] = [
    ("unconditional", "Every call"),
    ("busy", "When busy"),
    ("not_registered", "When not online (no phone registered)"),
    ("no_answer", "When not answered"),
    (
        "not_available",
        "When not available (accept rules or Do Not Disturb)",
    ),
    ("response", "When your phone answers one of these codes"),
    (
        "after_first_fails",
        "When your phones do not take the call (any failure)",
    ),
];

/// At most this many destination steps in one rule (as the API).
pub const MAX_STEPS: usize = 10;

/// The ring time a step gets when none is given (as the API).
pub const DEFAULT_RING: u32 = 35;

/// The form names of step `k`'s targets and ring time.
pub fn step_names(k: usize) -> (String, String) {
    (format!("s{k}_targets"), format!("s{k}_ring"))
}

/// The form name of weekly row `k`'s day `day` (`d_mon` …), start and stop.
pub fn weekly_name(k: usize, field: &str) -> String {
    format!("w{k}_{field}")
}

/// The trigger's words on the page.
fn trigger_label(trigger: &str) -> &'static str {
    TRIGGERS
        .iter()
        .find(|(v, _)| *v == trigger)
        .map_or("Unknown trigger", |(_, label)| label)
}

/// A rule as the list shows it.
#[derive(Debug)]
struct RuleCard {
    id: u32,
    position: usize,
    title: String,
    enabled: bool,
    conditions: Vec<String>,
    steps: Vec<String>,
    redirect: bool,
    warnings: Vec<String>,
    first: bool,
    last: bool,
    seed: bool,
}

/// One step row of the rule form.
#[derive(Debug)]
struct StepRow {
    index: usize,
    number: usize,
    targets: String,
    ring: String,
    error: Option<String>,
}

/// A choice in a select.
#[derive(Debug)]
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// A named set as the list shows it.
#[derive(Debug)]
struct SetCard {
    kind: &'static str,
    name: String,
    text: String,
}

/// One weekly row of the time-set form.
#[derive(Debug)]
struct WeeklyRow {
    number: usize,
    days: Vec<CheckBox>,
    start: Field,
    stop: Field,
}

#[derive(Template)]
#[template(path = "web/rules.html")]
struct RulesPage {
    layout: Layout,
    timezone: String,
    rules: Vec<RuleCard>,
    editing: Option<u32>,
    form_error: Option<String>,
    triggers: Vec<Choice>,
    trigger_error: Option<String>,
    codes: Field,
    time_choices: Vec<Choice>,
    caller_choices: Vec<Choice>,
    called_choices: Vec<Choice>,
    steps: Vec<StepRow>,
    redirect: bool,
    enabled: bool,
    first: bool,
    sets: Vec<SetCard>,
    time_name: Field,
    weekly: Vec<WeeklyRow>,
    dates: Field,
    yearly: Field,
    time_error: Option<String>,
    caller_name: Field,
    caller_deny: bool,
    members: Field,
    caller_error: Option<String>,
    called_name: Field,
    own: Vec<CheckBox>,
    own_error: Option<String>,
    called_error: Option<String>,
}

/// A rule's conditions in words.
fn conditions_of(rule: &RuleDoc, doc: &Document) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(name) = &rule.time {
        out.push(format!("only at the times of “{name}”"));
    }
    if let Some(name) = &rule.callers {
        let deny = doc.caller_sets.get(name).is_some_and(|s| s.mode == "deny");
        out.push(if deny {
            format!("only for callers not in “{name}”")
        } else {
            format!("only for callers in “{name}”")
        });
    }
    if let Some(name) = &rule.called {
        out.push(format!("only when “{name}” is dialled"));
    }
    out
}

/// A step in words: its targets (together when several) and its ring time.
fn step_text(step: &StepDoc, number: usize, last: bool) -> String {
    let targets: Vec<String> = step.targets.iter().map(|t| target_shown(t)).collect();
    let who = match targets.as_slice() {
        [one] => one.clone(),
        many => format!("{} (together)", many.join(", ")),
    };
    let lead = if number == 0 { "" } else { "then " };
    if last {
        format!("{lead}{who}, ringing {} s", step.ring_seconds)
    } else {
        format!("{lead}{who} for {} s", step.ring_seconds)
    }
}

/// A time set in words.
fn time_set_text(set: &TimeSetDoc) -> String {
    let mut parts: Vec<String> = set
        .weekly
        .iter()
        .map(|w| {
            let days = sip_settings_core::settings::DaysMask::new(w.days)
                .map_or_else(|_| w.days.to_string(), days_label);
            format!("{days} {}–{}", w.start, w.stop)
        })
        .collect();
    parts.extend(set.dates.iter().cloned());
    parts.extend(set.yearly.iter().map(|y| format!("every {y}")));
    parts.join("; ")
}

/// A caller set in words.
fn caller_set_text(set: &CallerSetDoc) -> String {
    let who = if set.members.is_empty() {
        "nobody".to_owned()
    } else {
        set.members.join(", ")
    };
    if set.mode == "deny" {
        format!("everybody but {who}")
    } else {
        who
    }
}

/// The field of the rule form a refusal's field names (`rules[3].steps[1].targets[0]` of the
/// rule at index 3 is `s1_targets`), or `None` for one the form has no place for.
pub fn rule_form_field(field: &str, index: usize) -> Option<String> {
    let rest = field.strip_prefix(&format!("rules[{index}]"))?;
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    if let Some(step) = rest.strip_prefix("steps[") {
        let k = step.split(']').next()?;
        let k: usize = k.parse().ok()?;
        let what = if step.contains("ring_seconds") {
            "ring"
        } else {
            "targets"
        };
        return Some(format!("s{k}_{what}"));
    }
    let head = rest.split(['.', '[']).next().unwrap_or_default();
    match head {
        "codes" | "trigger" | "time" | "callers" | "called" => Some(head.to_owned()),
        "" => Some("rule".to_owned()),
        _ => None,
    }
}

/// The choices of a set select: none, then every set's name.
fn set_choices<'a>(names: impl Iterator<Item = &'a String>, chosen: &str) -> Vec<Choice> {
    let mut out = vec![Choice {
        value: String::new(),
        label: "Any".to_owned(),
        selected: chosen.is_empty(),
    }];
    out.extend(names.map(|n| Choice {
        value: n.clone(),
        label: n.clone(),
        selected: n == chosen,
    }));
    out
}

/// What the rule form shows: the refused input, the rule being changed, or a new rule.
struct RuleInput {
    trigger: String,
    codes: String,
    time: String,
    callers: String,
    called: String,
    steps: Vec<(String, String)>,
    redirect: bool,
    enabled: bool,
}

impl RuleInput {
    fn of_rule(rule: Option<&RuleDoc>) -> Self {
        match rule {
            Some(r) => Self {
                trigger: r.trigger.clone(),
                codes: r
                    .codes
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                time: r.time.clone().unwrap_or_default(),
                callers: r.callers.clone().unwrap_or_default(),
                called: r.called.clone().unwrap_or_default(),
                steps: r
                    .steps
                    .iter()
                    .map(|s| {
                        let targets: Vec<String> =
                            s.targets.iter().map(|t| target_shown(t)).collect();
                        (targets.join(", "), s.ring_seconds.to_string())
                    })
                    .collect(),
                redirect: r.action == "redirect",
                enabled: r.enabled,
            },
            None => Self {
                trigger: "unconditional".to_owned(),
                codes: String::new(),
                time: String::new(),
                callers: String::new(),
                called: String::new(),
                steps: Vec::new(),
                redirect: false,
                enabled: true,
            },
        }
    }

    fn of_refusal(r: &Refusal) -> Self {
        let get = |name: &str| r.values.get(name).unwrap_or_default().to_owned();
        Self {
            trigger: get("trigger"),
            codes: get("codes"),
            time: get("time"),
            callers: get("callers"),
            called: get("called"),
            steps: (0..MAX_STEPS)
                .map(|k| {
                    let (t, ring) = step_names(k);
                    (get(&t), get(&ring))
                })
                .collect(),
            redirect: !get("redirect").is_empty(),
            enabled: !get("enabled").is_empty(),
        }
    }
}

/// The list of rules as cards.
fn rule_cards(forwarding: &Forwarding, doc: &Document) -> Vec<RuleCard> {
    let warnings = shadowed(&forwarding.rules);
    let count = doc.rules.len();
    doc.rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let last_step = rule.steps.len().saturating_sub(1);
            let mut title = trigger_label(&rule.trigger).to_owned();
            if rule.trigger == "response" {
                let codes: Vec<String> = rule.codes.iter().map(u16::to_string).collect();
                title = format!("When your phone answers {}", codes.join(", "));
            }
            RuleCard {
                id: rule.id.unwrap_or_default(),
                position: i + 1,
                title,
                enabled: rule.enabled,
                conditions: conditions_of(rule, doc),
                steps: rule
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(k, s)| step_text(s, k, k == last_step))
                    .collect(),
                redirect: rule.action == "redirect",
                warnings: warnings
                    .iter()
                    .filter(|(at, _)| *at == i)
                    .map(|(_, w)| w.clone())
                    .collect(),
                first: i == 0,
                last: i + 1 == count,
                seed: forwarding
                    .rules
                    .get(i)
                    .is_some_and(|r| r.simple().is_some()),
            }
        })
        .collect()
}

/// The name field of the set form `form`: the set being changed's name (or the refused input),
/// its hint with an example name and, after it, `note`.
fn set_name_field(
    v: &View<'_>,
    form: &'static str,
    current: Option<&String>,
    example: &str,
    note: &str,
) -> Field {
    Field::new(
        form,
        "name",
        "Name",
        "text",
        current.cloned().unwrap_or_default(),
        v.refusal,
    )
    .attrs(r#" autocomplete="off" spellcheck="false" maxlength="32""#)
    .hint(format!(
        "Lower-case letters, digits, - _ . (e.g. {example}).{note}"
    ))
}

/// The time-set form: its name, weekly windows, dates and yearly dates.
fn time_set_form(v: &View<'_>, doc: &Document) -> (Field, Vec<WeeklyRow>, Field, Field) {
    // The set forms: a refused one as sent, else the set named by ?time= / ?callers= /
    // ?called=, else empty.
    let time_refused = Refusal::for_form(v.refusal, "time-set");
    let time_edit = v
        .query
        .get("time")
        .and_then(|n| doc.time_sets.get_key_value(n));
    let time_name = set_name_field(
        v,
        "time-set",
        time_edit.map(|(n, _)| n),
        "nights",
        " Saving an existing name replaces it.",
    );
    let weekly_rows = time_edit.map_or(0, |(_, s)| s.weekly.len()) + 1;
    let weekly = (0..weekly_rows.max(2))
        .map(|k| {
            let existing = time_edit.and_then(|(_, s)| s.weekly.get(k));
            let days = DAYS
                .iter()
                .enumerate()
                .map(|(bit, (name, label))| {
                    let form_name = weekly_name(k, name);
                    CheckBox {
                        checked: match time_refused {
                            Some(r) => r.values.get(&form_name).is_some_and(|x| !x.is_empty()),
                            None => existing.is_some_and(|w| w.days & (1 << bit) != 0),
                        },
                        name: form_name,
                        label: label.get(..3).unwrap_or(label).to_owned(),
                    }
                })
                .collect();
            let start = Field::new(
                "time-set",
                &weekly_name(k, "start"),
                "From",
                "time",
                existing.map(|w| w.start.clone()).unwrap_or_default(),
                v.refusal,
            );
            let stop = Field::new(
                "time-set",
                &weekly_name(k, "stop"),
                "To",
                "time",
                existing.map(|w| w.stop.clone()).unwrap_or_default(),
                v.refusal,
            );
            WeeklyRow {
                number: k + 1,
                days,
                start,
                stop,
            }
        })
        .collect();
    let dates = Field::new(
        "time-set",
        "dates",
        "Dates",
        "text",
        time_edit
            .map(|(_, s)| s.dates.join(" "))
            .unwrap_or_default(),
        v.refusal,
    )
    .attrs(r#" autocomplete="off" spellcheck="false""#)
    .hint("Days or ranges, e.g. 2026-12-24 or 2026-07-01..2026-07-21.");
    let yearly = Field::new(
        "time-set",
        "yearly",
        "Every year on",
        "text",
        time_edit
            .map(|(_, s)| s.yearly.join(" "))
            .unwrap_or_default(),
        v.refusal,
    )
    .attrs(r#" autocomplete="off" spellcheck="false""#)
    .hint("Month and day, e.g. 12-25 01-01.");

    (time_name, weekly, dates, yearly)
}

/// The caller-set form: its name, whether it denies, its members.
fn caller_set_form(v: &View<'_>, doc: &Document) -> (Field, bool, Field) {
    let caller_refused = Refusal::for_form(v.refusal, "caller-set");
    let caller_edit = v
        .query
        .get("callers")
        .and_then(|n| doc.caller_sets.get_key_value(n));
    let caller_name = set_name_field(v, "caller-set", caller_edit.map(|(n, _)| n), "family", "");
    let caller_deny = match caller_refused {
        Some(r) => r.values.get("mode") == Some("deny"),
        None => caller_edit.is_some_and(|(_, s)| s.mode == "deny"),
    };
    let members = Field::new(
        "caller-set",
        "members",
        "Callers",
        "text",
        caller_edit
            .map(|(_, s)| s.members.join(", "))
            .unwrap_or_default(),
        v.refusal,
    )
    .attrs(r#" autocomplete="off" spellcheck="false" maxlength="4000""#)
    .hint(
        "Separated by commas: an address (sip:mum@example.org), a number (+3120%: % or * \
         match anything), anonymous, or a phonebook group (group:family).",
    );

    (caller_name, caller_deny, members)
}

/// The called-set form: its name and a box per own address.
fn called_set_form(v: &View<'_>, doc: &Document, own: &[String]) -> (Field, Vec<CheckBox>) {
    let called_refused = Refusal::for_form(v.refusal, "called-set");
    let called_edit = v
        .query
        .get("called")
        .and_then(|n| doc.called_sets.get_key_value(n));
    let called_name = set_name_field(v, "called-set", called_edit.map(|(n, _)| n), "office", "");
    let own = own
        .iter()
        .map(|a| CheckBox {
            name: format!("a_{a}"),
            label: a.clone(),
            checked: match called_refused {
                Some(r) => r
                    .values
                    .get(&format!("a_{a}"))
                    .is_some_and(|x| !x.is_empty()),
                None => called_edit.is_some_and(|(_, s)| s.addresses.contains(a)),
            },
        })
        .collect();

    (called_name, own)
}

/// The named sets as the list shows them.
fn set_cards(doc: &Document) -> Vec<SetCard> {
    let mut sets = Vec::new();
    for (name, s) in &doc.time_sets {
        sets.push(SetCard {
            kind: "time",
            name: name.clone(),
            text: time_set_text(s),
        });
    }
    for (name, s) in &doc.caller_sets {
        sets.push(SetCard {
            kind: "callers",
            name: name.clone(),
            text: caller_set_text(s),
        });
    }
    for (name, s) in &doc.called_sets {
        sets.push(SetCard {
            kind: "called",
            name: name.clone(),
            text: format!("dialled as {}", s.addresses.join(", ")),
        });
    }

    sets
}

pub(super) async fn rules(v: &View<'_>) -> Result<String, ServiceError> {
    let id = &v.account.id;
    let forwarding = v.svc.forwarding(id).await?;
    let doc = forwarding.document();
    let own = v.svc.own_addresses(id).await?;
    let cards = rule_cards(&forwarding, &doc);
    // The rule form: a refused one as sent, else the rule being changed (?edit=ID), else new.
    let refused = Refusal::for_form(v.refusal, "rule");
    let editing = match refused {
        Some(r) => r.values.get("id").and_then(|i| i.parse::<u32>().ok()),
        None => v.query.get("edit").and_then(|i| i.parse::<u32>().ok()),
    }
    .filter(|e| doc.rules.iter().any(|r| r.id == Some(*e)));
    let input = match refused {
        Some(r) => RuleInput::of_refusal(r),
        None => {
            RuleInput::of_rule(editing.and_then(|e| doc.rules.iter().find(|r| r.id == Some(e))))
        }
    };
    let rows = (input.steps.iter().filter(|(t, _)| !t.is_empty()).count() + 1).clamp(3, MAX_STEPS);
    let steps = (0..rows)
        .map(|k| {
            let (targets, ring) = input.steps.get(k).cloned().unwrap_or_default();
            let (t_name, r_name) = step_names(k);
            StepRow {
                index: k,
                number: k + 1,
                targets,
                ring: if ring.is_empty() {
                    DEFAULT_RING.to_string()
                } else {
                    ring
                },
                error: Refusal::error(v.refusal, "rule", &t_name)
                    .or_else(|| Refusal::error(v.refusal, "rule", &r_name)),
            }
        })
        .collect();
    let triggers = TRIGGERS
        .iter()
        .map(|(value, label)| Choice {
            value: (*value).to_owned(),
            label: (*label).to_owned(),
            selected: *value == input.trigger,
        })
        .collect();
    let mut codes = Field::new("rule", "codes", "Response codes", "text", input.codes, None)
        .attrs(r#" inputmode="numeric" autocomplete="off" spellcheck="false""#)
        .hint("For “When your phone answers one of these codes”: e.g. 408 480 503.");
    codes.error = Refusal::error(v.refusal, "rule", "codes");

    let (time_name, weekly, dates, yearly) = time_set_form(v, &doc);
    let (caller_name, caller_deny, members) = caller_set_form(v, &doc);
    let (called_name, own) = called_set_form(v, &doc, &own);
    let sets = set_cards(&doc);

    render(&RulesPage {
        layout: v.layout(Tab::Rules),
        timezone: v.tz(),
        rules: cards,
        editing,
        form_error: Refusal::error(v.refusal, "rule", "rule"),
        triggers,
        trigger_error: Refusal::error(v.refusal, "rule", "trigger"),
        codes,
        time_choices: set_choices(doc.time_sets.keys(), &input.time),
        caller_choices: set_choices(doc.caller_sets.keys(), &input.callers),
        called_choices: set_choices(doc.called_sets.keys(), &input.called),
        steps,
        redirect: input.redirect,
        enabled: input.enabled,
        first: refused.is_some_and(|r| r.values.get("position") == Some("first")),
        sets,
        time_name,
        weekly,
        dates,
        yearly,
        time_error: Refusal::error(v.refusal, "time-set", "set"),
        caller_name,
        caller_deny,
        members,
        caller_error: Refusal::error(v.refusal, "caller-set", "set"),
        called_name,
        own,
        own_error: None,
        called_error: Refusal::error(v.refusal, "called-set", "set"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_fields_land_on_the_rule_form_s_fields() {
        assert_eq!(
            rule_form_field("rules[3].steps[1].targets[0]", 3).as_deref(),
            Some("s1_targets")
        );
        assert_eq!(
            rule_form_field("rules[3].steps[0].ring_seconds", 3).as_deref(),
            Some("s0_ring")
        );
        assert_eq!(
            rule_form_field("rules[3].codes[1]", 3).as_deref(),
            Some("codes")
        );
        assert_eq!(rule_form_field("rules[3].time", 3).as_deref(), Some("time"));
        assert_eq!(rule_form_field("rules[3]", 3).as_deref(), Some("rule"));
        // Another rule's field has no place on this form.
        assert_eq!(rule_form_field("rules[2].steps[0].targets[0]", 3), None);
        assert_eq!(rule_form_field("rules[31].time", 3), None);
    }
}
