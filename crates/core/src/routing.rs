//! The routing rules in one pure function, [`route`]: given an account's settings, a caller, the
//! registration and busy state and a time, what happens to the call, and the path that led
//! there. SPEC §4's order: reject rules → `FUNC` → accept rules / DND (refused → `FUNV`, or a
//! rejection) → not online → `FNOL` → ring `no_answer_timeout` s → busy → `FBUS`, no answer →
//! `FNOA`. Accept-rule windows are evaluated in the account's time zone.

use chrono::{DateTime, Datelike, Timelike, Utc};
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
            Caller::Uri(uri) => phonebook.iter().any(|e| {
                e.groups.iter().any(|n| n == name)
                    && e.uri.user().map(str::to_ascii_lowercase)
                        == uri.user().map(str::to_ascii_lowercase)
                    && e.uri.host() == uri.host()
            }),
        },
    })
}

/// Whether a persistent rule's window covers `at` in time zone `tz`.
pub fn window_covers(rule: &AcceptRule, local: &DateTime<chrono_tz::Tz>) -> bool {
    let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
    let today = local.weekday();
    let (start, stop) = (rule.start.minutes(), rule.stop.minutes());
    if start == stop {
        rule.days.contains(today)
    } else if start < stop {
        rule.days.contains(today) && minute >= start && minute < stop
    } else {
        // Crosses midnight: belongs to the day it starts on.
        (rule.days.contains(today) && minute >= start)
            || (rule.days.contains(today.pred()) && minute < stop)
    }
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
mod tests {
    use super::*;
    use crate::account::AccountProfile;
    use crate::ids::{AccountId, E164, TimeZone};
    use crate::settings::{ClockTime, DaysMask, TemporaryRule};
    use chrono::TimeZone as _;

    struct Fixture {
        account: Account,
        diversions: Diversions,
        accept: AcceptRules,
        reject: Vec<RejectPattern>,
        phonebook: Vec<PhonebookEntry>,
        voicemail: bool,
    }

    fn uri(s: &str) -> SipUri {
        SipUri::parse_for("t", s).unwrap()
    }

    fn fixture(tz: &str) -> Fixture {
        let id = AccountId::parse("alice@example.com").unwrap();
        let profile = AccountProfile {
            timezone: TimeZone::parse_for("tz", tz).unwrap(),
            mobile: Some(E164::parse_for("m", "+31612345678").unwrap()),
            no_answer_timeout: 20,
            ..AccountProfile::default()
        };
        Fixture {
            account: Account {
                id,
                profile,
                privacy: false,
                prepaid: false,
                created_at: Utc::now(),
            },
            diversions: Diversions::new(),
            accept: AcceptRules::default(),
            reject: vec![],
            phonebook: vec![PhonebookEntry {
                uri: uri("sip:mom@example.org"),
                name: "Mom".into(),
                groups: vec!["family".into()],
            }],
            voicemail: true,
        }
    }

    impl Fixture {
        /// The reject code (if any) for a call from a stranger to the registered, idle phone.
        fn stranger_code(&self, at: DateTime<Utc>) -> Option<u16> {
            reject_code(&self.route(STRANGER, true, false, at))
        }

        fn route(&self, caller: &str, registered: bool, busy: bool, at: DateTime<Utc>) -> Decision {
            let s = RoutingSettings {
                account: &self.account,
                diversions: &self.diversions,
                accept: &self.accept,
                reject: &self.reject,
                phonebook: &self.phonebook,
                voicemail_enabled: self.voicemail,
            };
            let caller = if caller == "anonymous" {
                Caller::Anonymous
            } else {
                Caller::Uri(uri(caller))
            };
            route(
                &s,
                &CallState {
                    caller,
                    registered,
                    busy,
                    at,
                },
            )
        }
        fn divert(&mut self, c: Condition, t: &str) {
            self.diversions
                .insert(c, DiversionTarget::from_stored(t).unwrap());
        }
        fn rule(&mut self, days: u32, start: &str, stop: &str, groups: &str) {
            self.accept.persistent.push(AcceptRule {
                days: DaysMask::new(days).unwrap(),
                start: ClockTime::parse_for("s", start).unwrap(),
                stop: ClockTime::parse_for("s", stop).unwrap(),
                groups: Group::parse_list(groups).unwrap(),
            });
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn reject_code(d: &Decision) -> Option<u16> {
        match d.outcome {
            Outcome::Reject { code, .. } => Some(code),
            _ => None,
        }
    }

    fn forwarded(d: &Decision) -> Option<(Condition, String, &'static str)> {
        match &d.outcome {
            Outcome::Forward(f) => Some((f.condition, shown(&f.destination), f.reason)),
            _ => None,
        }
    }

    const STRANGER: &str = "sip:stranger@example.net";
    const MOM: &str = "sip:mom@example.org";

    // A Wednesday, 2026-11-25, 12:00 UTC = 13:00 in Amsterdam.
    fn wed_noon() -> DateTime<Utc> {
        utc(2026, 11, 25, 12, 0)
    }

    type Setup = fn(&mut Fixture);

    /// One branch of [`table_of_branches`]: a setup, a call and what it must do.
    struct Case {
        name: &'static str,
        setup: Setup,
        caller: &'static str,
        registered: bool,
        busy: bool,
        at: DateTime<Utc>,
        expect_reject: Option<u16>,
        expect_forward: Option<(Condition, &'static str, &'static str)>,
        expect_ring: Option<(u32, Option<&'static str>, Option<&'static str>)>,
    }

    /// Branches of the table: reject rules, FUNC and DND.
    fn reject_func_and_dnd_cases(at: DateTime<Utc>) -> Vec<Case> {
        vec![
            Case {
                name: "plain call rings",
                setup: |_| {},
                caller: STRANGER,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: None,
                expect_ring: Some((20, None, None)),
            },
            Case {
                name: "reject rule wins over FUNC",
                setup: |f| {
                    f.reject
                        .push(RejectPattern::parse("sip:stranger@%").unwrap());
                    f.divert(Condition::Unconditional, "sip:bob@example.com");
                },
                caller: STRANGER,
                registered: true,
                busy: false,
                at,
                expect_reject: Some(603),
                expect_forward: None,
                expect_ring: None,
            },
            Case {
                name: "reject rule does not touch other callers",
                setup: |f| {
                    f.reject
                        .push(RejectPattern::parse("sip:stranger@%").unwrap())
                },
                caller: MOM,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: None,
                expect_ring: Some((20, None, None)),
            },
            Case {
                name: "FUNC forwards everything",
                setup: |f| f.divert(Condition::Unconditional, "sip:bob@example.com"),
                caller: STRANGER,
                registered: false,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: Some((
                    Condition::Unconditional,
                    "sip:bob@example.com",
                    "unconditional",
                )),
                expect_ring: None,
            },
            Case {
                name: "FUNC wins over DND",
                setup: |f| {
                    f.divert(Condition::Unconditional, "sip:bob@example.com");
                    f.accept.temporary = Some(TemporaryRule {
                        groups: vec![Group::Nobody],
                        until: None,
                    });
                },
                caller: STRANGER,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: Some((
                    Condition::Unconditional,
                    "sip:bob@example.com",
                    "unconditional",
                )),
                expect_ring: None,
            },
            Case {
                name: "DND without FUNV is 486",
                setup: |f| {
                    f.accept.temporary = Some(TemporaryRule {
                        groups: vec![Group::Nobody],
                        until: None,
                    })
                },
                caller: MOM,
                registered: true,
                busy: false,
                at,
                expect_reject: Some(486),
                expect_forward: None,
                expect_ring: None,
            },
            Case {
                name: "DND with FUNV forwards with do-not-disturb",
                setup: |f| {
                    f.accept.temporary = Some(TemporaryRule {
                        groups: vec![Group::Nobody],
                        until: None,
                    });
                    f.divert(Condition::NotAvailable, "<voice-mailbox>");
                },
                caller: MOM,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: Some((
                    Condition::NotAvailable,
                    "the voice mailbox",
                    "do-not-disturb",
                )),
                expect_ring: None,
            },
            Case {
                name: "lapsed DND no longer applies",
                setup: |f| {
                    f.accept.temporary = Some(TemporaryRule {
                        groups: vec![Group::Nobody],
                        until: Some(wed_noon() - chrono::Duration::minutes(1)),
                    })
                },
                caller: MOM,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: None,
                expect_ring: Some((20, None, None)),
            },
        ]
    }

    /// Branches of the table: temporary and persistent accept rules, anonymous callers.
    fn accept_rule_cases(at: DateTime<Utc>) -> Vec<Case> {
        vec![
            Case {
                name: "temporary family-only rule accepts family",
                setup: |f| {
                    f.accept.temporary = Some(TemporaryRule {
                        groups: vec![Group::Named("family".into())],
                        until: Some(wed_noon() + chrono::Duration::minutes(5)),
                    })
                },
                caller: MOM,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: None,
                expect_ring: Some((20, None, None)),
            },
            Case {
                name: "temporary family-only rule refuses strangers",
                setup: |f| {
                    f.accept.temporary = Some(TemporaryRule {
                        groups: vec![Group::Named("family".into())],
                        until: Some(wed_noon() + chrono::Duration::minutes(5)),
                    })
                },
                caller: STRANGER,
                registered: true,
                busy: false,
                at,
                expect_reject: Some(480),
                expect_forward: None,
                expect_ring: None,
            },
            Case {
                name: "temporary rule overrides persistent everybody",
                setup: |f| {
                    f.rule(127, "00:00", "00:00", "everybody");
                    f.accept.temporary = Some(TemporaryRule {
                        groups: vec![Group::Nobody],
                        until: None,
                    });
                },
                caller: STRANGER,
                registered: true,
                busy: false,
                at,
                expect_reject: Some(486),
                expect_forward: None,
                expect_ring: None,
            },
            Case {
                name: "persistent window refuses non-members, FUNV to mobile",
                setup: |f| {
                    f.rule(31, "09:00", "17:00", "family");
                    f.divert(Condition::NotAvailable, "<mobile-number>");
                },
                caller: STRANGER,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: Some((
                    Condition::NotAvailable,
                    "sip:+31612345678@example.com",
                    "time-of-day",
                )),
                expect_ring: None,
            },
            Case {
                name: "persistent window accepts members",
                setup: |f| f.rule(31, "09:00", "17:00", "family"),
                caller: MOM,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: None,
                expect_ring: Some((20, None, None)),
            },
            Case {
                name: "persistent window on other days does not apply",
                setup: |f| f.rule(96, "00:00", "00:00", "nobody"),
                caller: STRANGER,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: None,
                expect_ring: Some((20, None, None)),
            },
            Case {
                name: "outside every window: accept",
                setup: |f| f.rule(31, "18:00", "22:00", "nobody"),
                caller: STRANGER,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: None,
                expect_ring: Some((20, None, None)),
            },
            Case {
                name: "anonymous caller is only in everybody",
                setup: |f| f.rule(127, "00:00", "00:00", "family"),
                caller: "anonymous",
                registered: true,
                busy: false,
                at,
                expect_reject: Some(480),
                expect_forward: None,
                expect_ring: None,
            },
            Case {
                name: "the reject pattern anonymous refuses an anonymous caller with 433",
                setup: |f| f.reject.push(RejectPattern::parse("anonymous").unwrap()),
                caller: "anonymous",
                registered: true,
                busy: false,
                at,
                expect_reject: Some(433),
                expect_forward: None,
                expect_ring: None,
            },
            Case {
                name: "the reject pattern anonymous does not refuse a known caller",
                setup: |f| {
                    f.reject.push(RejectPattern::parse("anonymous").unwrap());
                    f.divert(Condition::Unconditional, "sip:bob@example.com");
                },
                caller: "sip:anonymous@example.net",
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: Some((
                    Condition::Unconditional,
                    "sip:bob@example.com",
                    "unconditional",
                )),
                expect_ring: None,
            },
        ]
    }

    /// Branches of the table: not online, busy and no answer, and targets that do not apply.
    fn forwarding_cases(at: DateTime<Utc>) -> Vec<Case> {
        vec![
            Case {
                name: "not online without FNOL is 480",
                setup: |_| {},
                caller: STRANGER,
                registered: false,
                busy: false,
                at,
                expect_reject: Some(480),
                expect_forward: None,
                expect_ring: None,
            },
            Case {
                name: "not online with FNOL forwards",
                setup: |f| f.divert(Condition::NotOnline, "<voice-mailbox>"),
                caller: STRANGER,
                registered: false,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: Some((Condition::NotOnline, "the voice mailbox", "unavailable")),
                expect_ring: None,
            },
            Case {
                name: "voice mailbox target with voicemail disabled is ignored",
                setup: |f| {
                    f.divert(Condition::NotOnline, "<voice-mailbox>");
                    f.voicemail = false;
                },
                caller: STRANGER,
                registered: false,
                busy: false,
                at,
                expect_reject: Some(480),
                expect_forward: None,
                expect_ring: None,
            },
            Case {
                name: "mobile target without a mobile is ignored",
                setup: |f| {
                    f.divert(Condition::Unconditional, "<mobile-number>");
                    f.account.profile.mobile = None;
                },
                caller: STRANGER,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: None,
                expect_ring: Some((20, None, None)),
            },
            Case {
                name: "busy without FBUS is 486",
                setup: |_| {},
                caller: STRANGER,
                registered: true,
                busy: true,
                at,
                expect_reject: Some(486),
                expect_forward: None,
                expect_ring: None,
            },
            Case {
                name: "busy with FBUS forwards",
                setup: |f| f.divert(Condition::Busy, "sip:bob@example.com"),
                caller: STRANGER,
                registered: true,
                busy: true,
                at,
                expect_reject: None,
                expect_forward: Some((Condition::Busy, "sip:bob@example.com", "user-busy")),
                expect_ring: None,
            },
            Case {
                name: "ring then FBUS/FNOA",
                setup: |f| {
                    f.divert(Condition::Busy, "sip:bob@example.com");
                    f.divert(Condition::NoAnswer, "<voice-mailbox>");
                },
                caller: STRANGER,
                registered: true,
                busy: false,
                at,
                expect_reject: None,
                expect_forward: None,
                expect_ring: Some((20, Some("sip:bob@example.com"), Some("the voice mailbox"))),
            },
        ]
    }

    #[test]
    fn table_of_branches() {
        let at = wed_noon();
        let cases = [
            reject_func_and_dnd_cases(at),
            accept_rule_cases(at),
            forwarding_cases(at),
        ]
        .into_iter()
        .flatten();
        for case in cases {
            let mut f = fixture("Europe/Amsterdam");
            (case.setup)(&mut f);
            let d = f.route(case.caller, case.registered, case.busy, case.at);
            assert!(!d.path.is_empty(), "{}: empty path", case.name);
            assert_eq!(
                reject_code(&d),
                case.expect_reject,
                "{}: {:?}",
                case.name,
                d
            );
            let fw = forwarded(&d);
            assert_eq!(
                fw.as_ref().map(|(c, t, r)| (*c, t.as_str(), *r)),
                case.expect_forward,
                "{}: {:?}",
                case.name,
                d
            );
            let ring = match &d.outcome {
                Outcome::Ring {
                    seconds,
                    on_busy,
                    on_no_answer,
                } => Some((
                    *seconds,
                    on_busy.as_ref().map(|f| shown(&f.destination)),
                    on_no_answer.as_ref().map(|f| shown(&f.destination)),
                )),
                _ => None,
            };
            assert_eq!(
                ring.as_ref()
                    .map(|(s, b, n)| (*s, b.as_deref(), n.as_deref())),
                case.expect_ring,
                "{}: {:?}",
                case.name,
                d
            );
        }
    }

    #[test]
    fn windows_are_local_time_and_cross_midnight() {
        let mut f = fixture("America/New_York");
        // Weekdays 22:00–06:00 nobody: the Friday-night window reaches into Saturday morning.
        f.rule(31, "22:00", "06:00", "nobody");
        // Friday 2026-11-27 23:30 New York = Saturday 04:30 UTC.
        assert_eq!(f.stranger_code(utc(2026, 11, 28, 4, 30)), Some(480));
        // Saturday 05:59 New York (10:59 UTC): still Friday's window.
        assert_eq!(f.stranger_code(utc(2026, 11, 28, 10, 59)), Some(480));
        // Saturday 06:00 New York: over.
        assert_eq!(f.stranger_code(utc(2026, 11, 28, 11, 0)), None);
        // Saturday 23:00 New York: Saturday is not in the mask.
        assert_eq!(f.stranger_code(utc(2026, 11, 29, 4, 0)), None);
        // Monday 03:00 New York belongs to Sunday's window, and Sunday is not in the mask.
        assert_eq!(f.stranger_code(utc(2026, 11, 30, 8, 0)), None);
        // The same instant is 12:30 UTC-time Wednesday: 07:30 in New York, outside.
        assert_eq!(f.stranger_code(utc(2026, 11, 25, 12, 30)), None);
    }

    #[test]
    fn dst_days_use_the_local_clock() {
        let mut f = fixture("Europe/Amsterdam");
        f.rule(127, "09:00", "10:00", "nobody");
        // 2026-03-29: clocks go from 02:00 to 03:00 CET→CEST. 09:30 local = 07:30 UTC.
        assert_eq!(f.stranger_code(utc(2026, 3, 29, 7, 30)), Some(480));
        assert_eq!(f.stranger_code(utc(2026, 3, 29, 8, 30)), None);
        // The day before (CET), 09:30 local = 08:30 UTC.
        assert_eq!(f.stranger_code(utc(2026, 3, 28, 8, 30)), Some(480));
        // 2026-10-25: CEST→CET. 09:30 local = 08:30 UTC.
        assert_eq!(f.stranger_code(utc(2026, 10, 25, 8, 30)), Some(480));
        assert_eq!(f.stranger_code(utc(2026, 10, 25, 7, 30)), None);
        let d = f.route(STRANGER, true, false, utc(2026, 10, 25, 8, 30));
        assert!(
            d.path.iter().any(|p| p.contains("Europe/Amsterdam")),
            "{:?}",
            d.path
        );
    }
}
