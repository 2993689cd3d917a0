//! The routing rules in one pure function, [`route`]: given an account's settings, a caller, the
//! registration and busy state and a time, what happens to the call, and the path that led
//! there. SPEC §4's order: reject rules → `FUNC` → accept rules / DND (refused → `FUNV`, or a
//! rejection) → not online → `FNOL` → ring `no_answer_timeout` s → busy → `FBUS`, no answer →
//! `FNOA`. Accept-rule windows are evaluated in the account's time zone.
//!
//! Forwarding is the account's rules (issue 19, `core::forwarding`): at each of those points the
//! first enabled rule whose trigger fires and whose conditions (time, caller, called set) hold
//! decides, and its destinations become the forward — one destination as the seed's conditions
//! have, or a list of steps (a hunt list; several destinations in a step ring at once), or a
//! redirect of the caller. While ringing, rules on the devices' failure responses answer for
//! those responses. An account whose rules are the seed's five conditions is decided exactly
//! as before the rules existed.
//!
//! The path is made only when it is asked for ([`Detail::Path`]: explain, the service route);
//! the SIP door asks for the outcome alone ([`Detail::Outcome`], [`route_with`]), and then
//! nothing is formatted: each condition is the plain check its text is built on, so both forms
//! decide alike.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::account::Account;
use crate::forwarding::{
    Action, CallFacts, DEFAULT_RING_SECONDS, Event, Forwarding, ForwardingRule, Judged, Trigger,
    choose_in,
};
use crate::settings::{AcceptRule, AcceptRules, Group, PhonebookEntry, RejectPattern};
use crate::sip::{Condition, DiversionTarget, SipUri};

/// Everything about the called account that routing reads.
#[derive(Debug, Clone, Copy)]
pub struct RoutingSettings<'a> {
    /// The account (time zone, no-answer timeout, mobile number).
    pub account: &'a Account,
    /// Forwarding: the account's rules and the sets they name (the seed's conditions are its
    /// simple rules).
    pub forwarding: &'a Forwarding,
    /// Accept rules and DND.
    pub accept: &'a AcceptRules,
    /// Reject patterns.
    pub reject: &'a [RejectPattern],
    /// The phonebook, for group membership.
    pub phonebook: &'a [PhonebookEntry],
    /// Whether the voice mailbox is enabled.
    pub voicemail_enabled: bool,
}

/// Who calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A caller with a known address.
    Uri(SipUri),
    /// An anonymous caller (matches only `everybody`).
    Anonymous,
}

/// The call and the callee's state.
#[derive(Debug, Clone)]
pub struct CallState {
    /// The caller.
    pub caller: Caller,
    /// Whether the callee has a registered device.
    pub registered: bool,
    /// Whether the callee is busy.
    pub busy: bool,
    /// When the call arrives.
    pub at: DateTime<Utc>,
    /// Which of the account's own addresses was dialled — the user part of its address or an
    /// alias, or an ENUM number — for rules with a called set; `None` when not known (no
    /// called set then holds).
    pub dialled: Option<String>,
}

/// A forwarding destination after resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "uri", rename_all = "snake_case")]
pub enum Destination {
    /// A SIP URI.
    Uri(String),
    /// The account's own voice mailbox.
    VoiceMailbox,
}

/// A forward: where, why, and the `Diversion` reason (RFC 5806) the proxy adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    /// The seed condition of the rule that applies; `None` for a rule on response codes or
    /// after the first destination fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// Where to: the first destination (of the first step).
    pub destination: Destination,
    /// RFC 5806 reason.
    pub reason: &'static str,
    /// Every step, the first included, when the rule has more than one destination or its own
    /// ring time: tried in order, each ringing its destinations at once for its ring time.
    /// Empty for a forward to one destination (what the seed's conditions make).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RouteStep>,
    /// The caller is answered `302` with the destinations, to call them itself, instead of
    /// the proxy forwarding the call.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redirect: bool,
}

impl Forward {
    /// The steps, the first included (one step of one destination when `steps` is empty).
    pub fn all_steps(&self) -> Vec<RouteStep> {
        if self.steps.is_empty() {
            vec![RouteStep {
                destinations: vec![self.destination.clone()],
                ring_seconds: DEFAULT_RING_SECONDS,
            }]
        } else {
            self.steps.clone()
        }
    }

    /// The condition's code, or what the rule is (for a path).
    fn label(&self) -> String {
        self.condition
            .map_or_else(|| "the rule".to_owned(), |c| c.code().to_owned())
    }

    /// Where it goes, for a path: `X`, or `X and Y at once for 20 s, then Z`.
    fn shown(&self) -> String {
        if self.steps.is_empty() {
            return shown(&self.destination);
        }
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                let who: Vec<String> = s.destinations.iter().map(shown).collect();
                let who = if who.len() > 1 {
                    format!("{} at once", who.join(" and "))
                } else {
                    who.join("")
                };
                format!("{who} for {} s", s.ring_seconds)
            })
            .collect();
        let text = steps.join(", then ");
        if self.redirect {
            format!("{text} (the caller is redirected: 302)")
        } else {
            text
        }
    }
}

/// One step of a forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStep {
    /// Rung at once.
    pub destinations: Vec<Destination>,
    /// Seconds before the next step.
    pub ring_seconds: u32,
}

/// A forward for one final failure response of the devices while they ring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnResponse {
    /// The response code.
    pub code: u16,
    /// The forward.
    pub forward: Forward,
}

/// What happens to the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Outcome {
    /// Refuse with a SIP final response.
    Reject {
        /// SIP status code.
        code: u16,
        /// Reason phrase.
        reason: &'static str,
    },
    /// Forward at once.
    Forward(Forward),
    /// Ring the devices for `seconds`; on busy and on no answer, forward if set, else refuse
    /// (486 / 480).
    Ring {
        /// Ring time.
        seconds: u32,
        /// Forward when busy during ringing.
        on_busy: Option<Forward>,
        /// Forward when nobody answers in time.
        on_no_answer: Option<Forward>,
        /// Forwards for the devices' final failure responses that rules name (408, 480, 503
        /// …), by code.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        on_response: Vec<OnResponse>,
        /// Forward for any other final failure of the devices (a rule after the first
        /// destination fails).
        #[serde(skip_serializing_if = "Option::is_none")]
        on_failure: Option<Forward>,
    },
}

/// The decision and the path that led to it, one human-readable step per rule consulted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What happens.
    pub outcome: Outcome,
    /// Which rules were consulted, in order, and what each said (empty when the decision was
    /// made with [`Detail::Outcome`]).
    pub path: Vec<String>,
}

/// How much of a decision [`route_with`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The outcome alone, for a door that never reads the path (the SIP redirect server): the
    /// path is left empty and no text is made for it — no notes on skipped rules, no reasons
    /// for the chosen one. Decides exactly as [`Detail::Path`].
    Outcome,
    /// The outcome and its path (explain, the service route): what [`route`] makes.
    Path,
}

/// A decision's path as it is made: the notes, or nothing at all for [`Detail::Outcome`] (a
/// note's text is made only when it is kept).
struct Notes(Option<Vec<String>>);

impl Notes {
    fn new(detail: Detail) -> Self {
        Self(match detail {
            Detail::Outcome => None,
            Detail::Path => Some(Vec::new()),
        })
    }

    /// Adds the note `text` makes, if notes are kept.
    fn note(&mut self, text: impl FnOnce() -> String) {
        if let Some(path) = &mut self.0 {
            path.push(text());
        }
    }

    /// The notes, for choosing a rule: `None` when they are not kept.
    fn lines(&mut self) -> Option<&mut Vec<String>> {
        self.0.as_mut()
    }

    fn into_path(self) -> Vec<String> {
        self.0.unwrap_or_default()
    }
}

/// Why the accept rules refused a caller.
enum Refusal {
    Dnd,
    Rule,
}

fn caller_in(groups: &[Group], caller: &Caller, phonebook: &[PhonebookEntry]) -> bool {
    groups.iter().any(|g| match g {
        Group::Everybody => true,
        Group::Nobody => false,
        Group::Named(name) => match caller {
            Caller::Anonymous => false,
            Caller::Uri(uri) => crate::settings::in_phonebook_group(phonebook, name, uri),
        },
    })
}

/// Whether a persistent rule's window covers `at` in time zone `tz` (the weekly-window
/// semantics of [`crate::forwarding::weekly_covers`], shared with the forwarding rules' time
/// sets).
pub fn window_covers(rule: &AcceptRule, local: &DateTime<chrono_tz::Tz>) -> bool {
    crate::forwarding::weekly_covers(rule.days, rule.start, rule.stop, local)
}

fn describe(rule: &AcceptRule) -> String {
    let groups: Vec<&str> = rule.groups.iter().map(Group::name).collect();
    format!(
        "days {} {}–{} for {}",
        rule.days,
        rule.start,
        rule.stop,
        groups.join(",")
    )
}

fn accept_check(
    s: &RoutingSettings<'_>,
    call: &CallState,
    judged: &Judged<'_>,
    path: &mut Notes,
) -> Option<Refusal> {
    if let Some(temp) = s.accept.active_temporary(call.at) {
        let until = || {
            temp.until
                .map(|u| {
                    format!(
                        "until {}",
                        u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                })
                .unwrap_or_else(|| "until turned off".to_owned())
        };
        if temp.is_dnd() {
            path.note(|| format!("Do Not Disturb is on ({})", until()));
            return Some(Refusal::Dnd);
        }
        let groups = || {
            let groups: Vec<&str> = temp.groups.iter().map(Group::name).collect();
            groups.join(",")
        };
        if caller_in(&temp.groups, &call.caller, s.phonebook) {
            path.note(|| format!("temporary rule ({}) accepts {}", until(), groups()));
            return None;
        }
        path.note(|| format!("temporary rule ({}) accepts only {}", until(), groups()));
        return Some(Refusal::Rule);
    }
    let covers = |r: &&AcceptRule| window_covers(r, judged.local());
    // The first rule whose window covers the call and which accepts the caller.
    let accepting = s
        .accept
        .persistent
        .iter()
        .filter(covers)
        .find(|r| caller_in(&r.groups, &call.caller, s.phonebook));
    let covered = accepting.is_some() || s.accept.persistent.iter().any(|r| covers(&r));
    path.note(|| {
        let tz = s.account.profile.timezone;
        let local = judged.local();
        let when = format!(
            "{} {} in {}",
            local.format("%a %H:%M"),
            local.format("%Z"),
            tz.name()
        );
        match accepting {
            Some(rule) => format!(
                "accept rule {} covers {when} and accepts the caller",
                describe(rule)
            ),
            None if covered => {
                let described: Vec<String> = s
                    .accept
                    .persistent
                    .iter()
                    .filter(covers)
                    .map(describe)
                    .collect();
                format!(
                    "accept rule {} covers {when} and does not accept the caller",
                    described.join("; ")
                )
            }
            None => format!("no accept rule window covers {when}: accept"),
        }
    });
    (covered && accepting.is_none()).then_some(Refusal::Rule)
}

/// Resolves a target of rule `index`'s step; `None` (with a path note) when it cannot apply
/// now.
fn resolve_target(
    s: &RoutingSettings<'_>,
    (rule, index): (&ForwardingRule, usize),
    target: &DiversionTarget,
    path: &mut Notes,
) -> Option<Destination> {
    match target {
        DiversionTarget::Uri(u) => Some(Destination::Uri(u.to_string())),
        DiversionTarget::VoiceMailbox => {
            if s.voicemail_enabled {
                Some(Destination::VoiceMailbox)
            } else {
                path.note(|| {
                    format!(
                        "{} is <voice-mailbox> but voicemail is disabled: ignored",
                        rule_label(rule, index)
                    )
                });
                None
            }
        }
        DiversionTarget::MobileNumber => match &s.account.profile.mobile {
            Some(m) => Some(Destination::Uri(
                SipUri::of_number(m.as_str(), s.account.id.domain()).to_string(),
            )),
            None => {
                path.note(|| {
                    format!(
                        "{} is <mobile-number> but the account has none: ignored",
                        rule_label(rule, index)
                    )
                });
                None
            }
        },
    }
}

/// How a rule is named in a path: its seed condition for a simple rule, else its place and
/// trigger.
fn rule_label(rule: &ForwardingRule, index: usize) -> String {
    match rule.simple() {
        Some((condition, _)) => condition.code().to_owned(),
        None => format!("rules[{index}] ({})", rule.trigger.describe()),
    }
}

/// The forward a rule makes, its destinations resolved; `None` when none resolves.
fn forward_of(
    s: &RoutingSettings<'_>,
    rule: &ForwardingRule,
    index: usize,
    reason: &'static str,
    path: &mut Notes,
) -> Option<Forward> {
    let mut steps: Vec<RouteStep> = Vec::new();
    for step in rule.action.steps() {
        let destinations: Vec<Destination> = step
            .targets()
            .iter()
            .filter_map(|t| resolve_target(s, (rule, index), t, path))
            .collect();
        if !destinations.is_empty() {
            steps.push(RouteStep {
                destinations,
                ring_seconds: step.ring_seconds(),
            });
        }
    }
    let first = steps.first()?.destinations.first()?.clone();
    let redirect = matches!(rule.action, Action::Redirect(_));
    let one = steps.len() == 1
        && steps[0].destinations.len() == 1
        && steps[0].ring_seconds == DEFAULT_RING_SECONDS;
    Some(Forward {
        condition: rule.trigger.condition(),
        destination: first,
        reason,
        steps: if one && !redirect { Vec::new() } else { steps },
        redirect,
    })
}

/// The forward of the first rule for `event` whose trigger fires, whose conditions hold for
/// the call and one of whose destinations resolves; `None` (with the path's notes) if none.
fn rule_forward(
    s: &RoutingSettings<'_>,
    judged: &Judged<'_>,
    event: Event,
    reason: &'static str,
    path: &mut Notes,
) -> Option<Forward> {
    let rules = &s.forwarding.rules;
    let mut from = 0;
    loop {
        let chosen = choose_in(
            rules,
            from,
            &s.forwarding.sets,
            &event,
            judged,
            path.lines(),
        )?;
        let rule = rules.get(chosen.index)?;
        if let Some(forward) = forward_of(s, rule, chosen.index, reason, path) {
            if chosen.why.len() > 1 {
                path.note(|| format!("{} applies", chosen.why.join("; ")));
            }
            return Some(forward);
        }
        from = chosen.index + 1;
    }
}

/// The RFC 5806 reason of a forward on the devices' final response `code`.
fn response_reason(code: u16) -> &'static str {
    match code {
        486 | 600 => "user-busy",
        408 => "no-answer",
        404 | 410 | 480 | 500..=599 => "unavailable",
        _ => "unknown",
    }
}

/// What a point of the decision does when no rule forwards: the seed condition it is, the
/// forward's reason, and the refusal.
struct Otherwise {
    condition: Condition,
    reason: &'static str,
    code: u16,
    phrase: &'static str,
}

fn forward_or(
    s: &RoutingSettings<'_>,
    judged: &Judged<'_>,
    event: Event,
    otherwise: &Otherwise,
    path: &mut Notes,
) -> Outcome {
    let Otherwise {
        condition,
        reason,
        code,
        phrase,
    } = *otherwise;
    match rule_forward(s, judged, event, reason, path) {
        Some(f) => {
            path.note(|| format!("{} forwards to {}", f.label(), f.shown()));
            Outcome::Forward(f)
        }
        None => {
            path.note(|| format!("{condition} is not set: {code} {phrase}"));
            Outcome::Reject {
                code,
                reason: phrase,
            }
        }
    }
}

fn shown(d: &Destination) -> String {
    match d {
        Destination::Uri(u) => u.clone(),
        Destination::VoiceMailbox => "the voice mailbox".to_owned(),
    }
}

/// Decides what happens to a call to the account of `settings`, with the path that led there
/// ([`route_with`] and [`Detail::Path`]).
pub fn route(s: &RoutingSettings<'_>, call: &CallState) -> Decision {
    route_with(s, call, Detail::Path)
}

/// Decides what happens to a call to the account of `settings`, with its path or
/// ([`Detail::Outcome`]) without: the same outcome either way, the second making no text.
pub fn route_with(s: &RoutingSettings<'_>, call: &CallState, detail: Detail) -> Decision {
    // What the rules judge by, worked out once per decision (local time, the caller's text).
    let judged = Judged::new(CallFacts {
        caller: &call.caller,
        dialled: call.dialled.as_deref(),
        at: call.at,
        tz: s.account.profile.timezone,
        phonebook: s.phonebook,
    });
    let mut path = Notes::new(detail);
    let outcome = decide(s, call, &judged, &mut path);
    Decision {
        outcome,
        path: path.into_path(),
    }
}

/// [`route_with`]'s outcome, its notes in `path`.
fn decide(
    s: &RoutingSettings<'_>,
    call: &CallState,
    judged: &Judged<'_>,
    path: &mut Notes,
) -> Outcome {
    // 1. Reject rules.
    if let Caller::Uri(uri) = &call.caller {
        if let Some(p) = s
            .reject
            .iter()
            .find(|p| p.matches_lowercase(judged.caller_address()))
        {
            path.note(|| format!("reject rule {p} matches {uri}: 603 Decline"));
            return Outcome::Reject {
                code: 603,
                reason: "Decline",
            };
        }
        path.note(|| format!("no reject rule matches {uri}"));
    } else if s.reject.iter().any(RejectPattern::refuses_anonymous) {
        path.note(|| {
            "reject rule anonymous refuses an anonymous caller: 433 Anonymity Disallowed".to_owned()
        });
        return Outcome::Reject {
            code: 433,
            reason: "Anonymity Disallowed",
        };
    } else {
        path.note(|| "anonymous caller: no reject rule refuses anonymous callers".to_owned());
    }
    // 2. Unconditional forwarding.
    if let Some(f) = rule_forward(s, judged, Event::Arrival, "unconditional", path) {
        path.note(|| format!("{} forwards every call to {}", f.label(), f.shown()));
        return Outcome::Forward(f);
    }
    // 3. Accept rules and DND.
    match accept_check(s, call, judged, path) {
        Some(Refusal::Dnd) => {
            let otherwise = Otherwise {
                condition: Condition::NotAvailable,
                reason: "do-not-disturb",
                code: 486,
                phrase: "Busy Here",
            };
            return forward_or(s, judged, Event::NotAvailable, &otherwise, path);
        }
        Some(Refusal::Rule) => {
            let otherwise = Otherwise {
                condition: Condition::NotAvailable,
                reason: "time-of-day",
                code: 480,
                phrase: "Temporarily Unavailable",
            };
            return forward_or(s, judged, Event::NotAvailable, &otherwise, path);
        }
        None => {}
    }
    // 4. Not online.
    if !call.registered {
        path.note(|| "no device is registered".to_owned());
        let otherwise = Otherwise {
            condition: Condition::NotOnline,
            reason: "unavailable",
            code: 480,
            phrase: "Temporarily Unavailable",
        };
        return forward_or(s, judged, Event::NotRegistered, &otherwise, path);
    }
    // 5. Busy.
    if call.busy {
        path.note(|| "the account is busy".to_owned());
        let otherwise = Otherwise {
            condition: Condition::Busy,
            reason: "user-busy",
            code: 486,
            phrase: "Busy Here",
        };
        return forward_or(s, judged, Event::Busy, &otherwise, path);
    }
    // 6. Ring, then busy / no answer.
    ring(s, judged, path)
}

/// The ring: how long, and the forwards for each way the devices can fail.
fn ring(s: &RoutingSettings<'_>, judged: &Judged<'_>, path: &mut Notes) -> Outcome {
    let seconds = s.account.profile.no_answer_timeout;
    let on_busy = rule_forward(s, judged, Event::Busy, "user-busy", path);
    let on_no_answer = rule_forward(s, judged, Event::NoAnswer, "no-answer", path);
    let mut codes: Vec<u16> = s
        .forwarding
        .rules
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| match &r.trigger {
            Trigger::Response(codes) => Some(codes.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let on_response: Vec<OnResponse> = codes
        .into_iter()
        .filter_map(|code| {
            rule_forward(
                s,
                judged,
                Event::Response(code),
                response_reason(code),
                path,
            )
            .map(|forward| OnResponse { code, forward })
        })
        .collect();
    let on_failure = if s
        .forwarding
        .rules
        .iter()
        .any(|r| r.enabled && r.trigger == Trigger::AfterFirstFails)
    {
        rule_forward(s, judged, Event::Failure, "unknown", path)
    } else {
        None
    };
    path.note(|| {
        let mut then = vec![
            format!(
                "on busy {}",
                on_busy
                    .as_ref()
                    .map_or("486 Busy Here".to_owned(), |f| format!(
                        "{} to {}",
                        busy_label(f),
                        f.shown()
                    ))
            ),
            format!(
                "on no answer {}",
                on_no_answer.as_ref().map_or(
                    "480 Temporarily Unavailable".to_owned(),
                    |f| format!("{} to {}", busy_label(f), f.shown())
                )
            ),
        ];
        for r in &on_response {
            then.push(format!("on {} to {}", r.code, r.forward.shown()));
        }
        if let Some(f) = &on_failure {
            then.push(format!("on any other failure to {}", f.shown()));
        }
        format!("ring for {seconds} s; {}", then.join("; "))
    });
    Outcome::Ring {
        seconds,
        on_busy,
        on_no_answer,
        on_response,
        on_failure,
    }
}

/// The label of a ring step's forward: the seed condition, or the rule for any failure.
fn busy_label(f: &Forward) -> String {
    match f.condition {
        Some(c) => c.code().to_owned(),
        None => "the rule after the first destination fails".to_owned(),
    }
}

#[cfg(test)]
mod rule_tests;
#[cfg(test)]
mod tests;
