//! The routing rules in one pure function, [`route`]: given an account's settings, a caller, the
//! registration and busy state and a time, what happens to the call, and the path that led
//! there. SPEC §4's order: reject rules → `FUNC` → accept rules / DND (refused → `FUNV`, or a
//! rejection) → not online → `FNOL` → ring `no_answer_timeout` s → busy → `FBUS`, no answer →
//! `FNOA`. Accept-rule windows are evaluated in the account's time zone.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::account::Account;
use crate::settings::{AcceptRule, AcceptRules, Diversions, Group, PhonebookEntry, RejectPattern};
use crate::sip::{Condition, DiversionTarget, SipUri};

/// Everything about the called account that routing reads.
#[derive(Debug, Clone, Copy)]
pub struct RoutingSettings<'a> {
    /// The account (time zone, no-answer timeout, mobile number).
    pub account: &'a Account,
    /// Forwarding.
    pub diversions: &'a Diversions,
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
    /// The condition that applies.
    pub condition: Condition,
    /// Where to.
    pub destination: Destination,
    /// RFC 5806 reason.
    pub reason: &'static str,
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
    },
}

/// The decision and the path that led to it, one human-readable step per rule consulted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What happens.
    pub outcome: Outcome,
    /// Which rules were consulted, in order, and what each said.
    pub path: Vec<String>,
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
    path: &mut Vec<String>,
) -> Option<Refusal> {
    if let Some(temp) = s.accept.active_temporary(call.at) {
        let until = temp
            .until
            .map(|u| {
                format!(
                    "until {}",
                    u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
            .unwrap_or_else(|| "until turned off".to_owned());
        if temp.is_dnd() {
            path.push(format!("Do Not Disturb is on ({until})"));
            return Some(Refusal::Dnd);
        }
        let groups: Vec<&str> = temp.groups.iter().map(Group::name).collect();
        if caller_in(&temp.groups, &call.caller, s.phonebook) {
            path.push(format!(
                "temporary rule ({until}) accepts {}",
                groups.join(",")
            ));
            return None;
        }
        path.push(format!(
            "temporary rule ({until}) accepts only {}",
            groups.join(",")
        ));
        return Some(Refusal::Rule);
    }
    let tz = s.account.profile.timezone;
    let local = call.at.with_timezone(&tz.tz());
    let matching: Vec<&AcceptRule> = s
        .accept
        .persistent
        .iter()
        .filter(|r| window_covers(r, &local))
        .collect();
    let when = format!(
        "{} {} in {}",
        local.format("%a %H:%M"),
        local.format("%Z"),
        tz.name()
    );
    if matching.is_empty() {
        path.push(format!("no accept rule window covers {when}: accept"));
        return None;
    }
    for rule in &matching {
        if caller_in(&rule.groups, &call.caller, s.phonebook) {
            path.push(format!(
                "accept rule {} covers {when} and accepts the caller",
                describe(rule)
            ));
            return None;
        }
    }
    let described: Vec<String> = matching.iter().map(|r| describe(r)).collect();
    path.push(format!(
        "accept rule {} covers {when} and does not accept the caller",
        described.join("; ")
    ));
    Some(Refusal::Rule)
}

/// Resolves a configured target; `None` (with a path note) when it cannot apply now.
fn resolve(
    s: &RoutingSettings<'_>,
    condition: Condition,
    reason: &'static str,
    path: &mut Vec<String>,
) -> Option<Forward> {
    let target = s.diversions.get(&condition)?;
    let destination = match target {
        DiversionTarget::Uri(u) => Destination::Uri(u.to_string()),
        DiversionTarget::VoiceMailbox => {
            if !s.voicemail_enabled {
                path.push(format!(
                    "{condition} is <voice-mailbox> but voicemail is disabled: ignored"
                ));
                return None;
            }
            Destination::VoiceMailbox
        }
        DiversionTarget::MobileNumber => match &s.account.profile.mobile {
            Some(m) => {
                Destination::Uri(SipUri::of_number(m.as_str(), s.account.id.domain()).to_string())
            }
            None => {
                path.push(format!(
                    "{condition} is <mobile-number> but the account has none: ignored"
                ));
                return None;
            }
        },
    };
    Some(Forward {
        condition,
        destination,
        reason,
    })
}

fn forward_or(
    s: &RoutingSettings<'_>,
    condition: Condition,
    reason: &'static str,
    code: u16,
    phrase: &'static str,
    mut path: Vec<String>,
) -> Decision {
    match resolve(s, condition, reason, &mut path) {
        Some(f) => {
            path.push(format!("{condition} forwards to {}", shown(&f.destination)));
            Decision {
                outcome: Outcome::Forward(f),
                path,
            }
        }
        None => {
            path.push(format!("{condition} is not set: {code} {phrase}"));
            Decision {
                outcome: Outcome::Reject {
                    code,
                    reason: phrase,
                },
                path,
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

/// Decides what happens to a call to the account of `settings`.
pub fn route(s: &RoutingSettings<'_>, call: &CallState) -> Decision {
    let mut path = Vec::new();
    // 1. Reject rules.
    if let Caller::Uri(uri) = &call.caller {
        let caller = uri.to_string();
        if let Some(p) = s.reject.iter().find(|p| p.matches(&caller)) {
            path.push(format!("reject rule {p} matches {caller}: 603 Decline"));
            return Decision {
                outcome: Outcome::Reject {
                    code: 603,
                    reason: "Decline",
                },
                path,
            };
        }
        path.push(format!("no reject rule matches {caller}"));
    } else if s.reject.iter().any(RejectPattern::refuses_anonymous) {
        path.push(
            "reject rule anonymous refuses an anonymous caller: 433 Anonymity Disallowed"
                .to_owned(),
        );
        return Decision {
            outcome: Outcome::Reject {
                code: 433,
                reason: "Anonymity Disallowed",
            },
            path,
        };
    } else {
        path.push("anonymous caller: no reject rule refuses anonymous callers".to_owned());
    }
    // 2. Unconditional forwarding.
    if let Some(f) = resolve(s, Condition::Unconditional, "unconditional", &mut path) {
        path.push(format!(
            "FUNC forwards every call to {}",
            shown(&f.destination)
        ));
        return Decision {
            outcome: Outcome::Forward(f),
            path,
        };
    }
    // 3. Accept rules and DND.
    match accept_check(s, call, &mut path) {
        Some(Refusal::Dnd) => {
            return forward_or(
                s,
                Condition::NotAvailable,
                "do-not-disturb",
                486,
                "Busy Here",
                path,
            );
        }
        Some(Refusal::Rule) => {
            return forward_or(
                s,
                Condition::NotAvailable,
                "time-of-day",
                480,
                "Temporarily Unavailable",
                path,
            );
        }
        None => {}
    }
    // 4. Not online.
    if !call.registered {
        path.push("no device is registered".to_owned());
        return forward_or(
            s,
            Condition::NotOnline,
            "unavailable",
            480,
            "Temporarily Unavailable",
            path,
        );
    }
    // 5. Busy.
    if call.busy {
        path.push("the account is busy".to_owned());
        return forward_or(s, Condition::Busy, "user-busy", 486, "Busy Here", path);
    }
    // 6. Ring, then busy / no answer.
    let seconds = s.account.profile.no_answer_timeout;
    let on_busy = resolve(s, Condition::Busy, "user-busy", &mut path);
    let on_no_answer = resolve(s, Condition::NoAnswer, "no-answer", &mut path);
    path.push(format!(
        "ring for {seconds} s; on busy {}; on no answer {}",
        on_busy
            .as_ref()
            .map_or("486 Busy Here".to_owned(), |f| format!(
                "FBUS to {}",
                shown(&f.destination)
            )),
        on_no_answer
            .as_ref()
            .map_or("480 Temporarily Unavailable".to_owned(), |f| format!(
                "FNOA to {}",
                shown(&f.destination)
            )),
    ));
    Decision {
        outcome: Outcome::Ring {
            seconds,
            on_busy,
            on_no_answer,
        },
        path,
    }
}

#[cfg(test)]
mod tests;
