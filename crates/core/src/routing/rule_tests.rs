//! The routing decisions with forwarding rules (issue 19): each trigger with each kind of
//! condition, hunt lists, parallel groups, redirects, responses, and rules that cannot apply.

use chrono::TimeZone as _;
use serde_json::json;

use super::*;
use crate::account::AccountProfile;
use crate::forwarding::Document;
use crate::ids::{AccountId, E164, TimeZone};
use crate::settings::TemporaryRule;

fn alice() -> AccountId {
    AccountId::parse("alice@example.com").unwrap()
}

fn account() -> Account {
    Account {
        id: alice(),
        profile: AccountProfile {
            timezone: TimeZone::parse_for("tz", "Europe/Amsterdam").unwrap(),
            mobile: Some(E164::parse_for("m", "+31612345678").unwrap()),
            no_answer_timeout: 20,
            ..AccountProfile::default()
        },
        privacy: false,
        prepaid: false,
        created_at: Utc::now(),
    }
}

/// The sets every case may name: weekday nights across midnight, the family (a phonebook
/// group and one address), everybody but anonymous callers and one spammer, the office number.
fn with_sets(rules: serde_json::Value) -> Forwarding {
    let doc = json!({
        "rules": rules,
        "time_sets": {
            "nights": {"weekly": [{"days": 31, "start": "22:00", "stop": "07:00"}]},
            "sunday-early": {"weekly": [{"days": 64, "start": "00:00", "stop": "06:00"}]}
        },
        "caller_sets": {
            "family": {"mode": "allow", "members": ["group:family", "sip:dad@example.org"]},
            "known": {"mode": "deny", "members": ["anonymous", "sip:spam%@%"]}
        },
        "called_sets": {"office": {"addresses": ["+31201234567"]}}
    });
    Document::parse(doc)
        .unwrap()
        .forwarding_of(&alice())
        .unwrap()
}

struct Call {
    caller: &'static str,
    registered: bool,
    busy: bool,
    /// UTC.
    at: (i32, u32, u32, u32, u32),
    dialled: Option<&'static str>,
    dnd: bool,
    voicemail: bool,
}

const IDLE: Call = Call {
    caller: "sip:stranger@example.net",
    registered: true,
    busy: false,
    // Wednesday 2026-11-25 12:00 UTC, 13:00 in Amsterdam.
    at: (2026, 11, 25, 12, 0),
    dialled: None,
    dnd: false,
    voicemail: true,
};

fn decide(forwarding: &Forwarding, call: &Call) -> Decision {
    decide_with(forwarding, call, Detail::Path)
}

fn decide_with(forwarding: &Forwarding, call: &Call, detail: Detail) -> Decision {
    let account = account();
    let accept = AcceptRules {
        persistent: vec![],
        temporary: call.dnd.then(|| TemporaryRule {
            groups: vec![Group::Nobody],
            until: None,
        }),
    };
    let phonebook = vec![PhonebookEntry {
        uri: SipUri::parse_for("t", "sip:mom@example.org").unwrap(),
        name: "Mom".into(),
        groups: vec!["family".into()],
    }];
    let (y, mo, d, h, mi) = call.at;
    route_with(
        &RoutingSettings {
            account: &account,
            forwarding,
            accept: &accept,
            reject: &[],
            phonebook: &phonebook,
            voicemail_enabled: call.voicemail,
        },
        &CallState {
            caller: if call.caller == "anonymous" {
                Caller::Anonymous
            } else {
                Caller::Uri(SipUri::parse_for("t", call.caller).unwrap())
            },
            registered: call.registered,
            busy: call.busy,
            at: Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap(),
            dialled: call.dialled.map(str::to_owned),
        },
        detail,
    )
}

fn dest(d: &Destination) -> String {
    match d {
        Destination::Uri(u) => u.trim_start_matches("sip:").to_owned(),
        Destination::VoiceMailbox => "vm".to_owned(),
    }
}

/// A forward in one line: `FUNC vm`, `- bob@example.com+carol@example.com/20s,dave@…/35s`,
/// with `redirect` when the caller is redirected.
fn fwd(f: &Forward) -> String {
    let what = if f.steps.is_empty() {
        dest(&f.destination)
    } else {
        f.steps
            .iter()
            .map(|s| {
                let who: Vec<String> = s.destinations.iter().map(dest).collect();
                format!("{}/{}s", who.join("+"), s.ring_seconds)
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let condition = f.condition.map_or("-", Condition::code);
    let redirect = if f.redirect { " redirect" } else { "" };
    format!("{condition} {what} ({}){redirect}", f.reason)
}

/// The outcome in one line.
fn summary(d: &Decision) -> String {
    match &d.outcome {
        Outcome::Reject { code, .. } => format!("reject {code}"),
        Outcome::Forward(f) => format!("forward {}", fwd(f)),
        Outcome::Ring {
            seconds,
            on_busy,
            on_no_answer,
            on_response,
            on_failure,
        } => {
            let mut out = format!("ring {seconds}");
            if let Some(f) = on_busy {
                out += &format!("; busy {}", fwd(f));
            }
            if let Some(f) = on_no_answer {
                out += &format!("; no answer {}", fwd(f));
            }
            for r in on_response {
                out += &format!("; {} {}", r.code, fwd(&r.forward));
            }
            if let Some(f) = on_failure {
                out += &format!("; failure {}", fwd(f));
            }
            out
        }
    }
}

struct Case {
    name: &'static str,
    rules: serde_json::Value,
    call: Call,
    expect: &'static str,
}

/// One rule forwarding `trigger` to voicemail under one condition.
fn vm(trigger: &str, set: &str, name: &str) -> serde_json::Value {
    json!([{"trigger": trigger, set: name, "steps": [{"targets": ["<voice-mailbox>"]}]}])
}

/// Unconditional rules under each kind of condition.
fn arrival_cases() -> Vec<Case> {
    vec![
        // Unconditional × time: weekday nights across midnight, in Amsterdam.
        Case {
            name: "a night rule holds on Tuesday 23:30 local",
            rules: vm("unconditional", "time", "nights"),
            call: Call {
                at: (2026, 11, 24, 22, 30),
                ..IDLE
            },
            expect: "forward FUNC vm (unconditional)",
        },
        Case {
            name: "and on Wednesday 06:30 local, the night that began on Tuesday",
            rules: vm("unconditional", "time", "nights"),
            call: Call {
                at: (2026, 11, 25, 5, 30),
                ..IDLE
            },
            expect: "forward FUNC vm (unconditional)",
        },
        Case {
            name: "not at Wednesday noon",
            rules: vm("unconditional", "time", "nights"),
            call: IDLE,
            expect: "ring 20",
        },
        Case {
            name: "not on Saturday night (Friday's night ends Saturday 07:00)",
            rules: vm("unconditional", "time", "nights"),
            call: Call {
                at: (2026, 11, 28, 22, 0),
                ..IDLE
            },
            expect: "ring 20",
        },
        Case {
            name: "on the spring-forward Sunday, 01:30 UTC is 03:30 CEST: early Sunday",
            rules: vm("unconditional", "time", "sunday-early"),
            call: Call {
                at: (2027, 3, 28, 1, 30),
                ..IDLE
            },
            expect: "forward FUNC vm (unconditional)",
        },
        Case {
            name: "on the fall-back Sunday, 05:30 UTC is 06:30 CET: no longer early",
            rules: vm("unconditional", "time", "sunday-early"),
            call: Call {
                at: (2027, 10, 31, 5, 30),
                ..IDLE
            },
            expect: "ring 20",
        },
        // Unconditional × callers.
        Case {
            name: "family (a phonebook group) goes to the mobile",
            rules: json!([{"trigger": "unconditional", "callers": "family",
                           "steps": [{"targets": ["<mobile-number>"]}]}]),
            call: Call {
                caller: "sip:mom@example.org",
                ..IDLE
            },
            expect: "forward FUNC +31612345678@example.com (unconditional)",
        },
        Case {
            name: "family (a listed address) too",
            rules: json!([{"trigger": "unconditional", "callers": "family",
                           "steps": [{"targets": ["<mobile-number>"]}]}]),
            call: Call {
                caller: "sip:dad@example.org",
                ..IDLE
            },
            expect: "forward FUNC +31612345678@example.com (unconditional)",
        },
        Case {
            name: "others ring",
            rules: json!([{"trigger": "unconditional", "callers": "family",
                           "steps": [{"targets": ["<mobile-number>"]}]}]),
            call: IDLE,
            expect: "ring 20",
        },
        // Unconditional × called.
        Case {
            name: "the office number redirects the caller to reception",
            rules: json!([{"trigger": "unconditional", "called": "office", "action": "redirect",
                           "steps": [{"targets": ["reception"]}]}]),
            call: Call {
                dialled: Some("+31201234567"),
                ..IDLE
            },
            expect: "forward FUNC reception@example.com/35s (unconditional) redirect",
        },
        Case {
            name: "the account's own address does not",
            rules: json!([{"trigger": "unconditional", "called": "office", "action": "redirect",
                           "steps": [{"targets": ["reception"]}]}]),
            call: Call {
                dialled: Some("alice"),
                ..IDLE
            },
            expect: "ring 20",
        },
        Case {
            name: "nor an unknown dialled address",
            rules: json!([{"trigger": "unconditional", "called": "office",
                           "steps": [{"targets": ["reception"]}]}]),
            call: IDLE,
            expect: "ring 20",
        },
    ]
}

/// The rules of the other events.
fn other_cases() -> Vec<Case> {
    vec![
        // Not available (DND) × callers (deny set).
        Case {
            name: "DND: known callers go to voicemail",
            rules: vm("not_available", "callers", "known"),
            call: Call { dnd: true, ..IDLE },
            expect: "forward FUNV vm (do-not-disturb)",
        },
        Case {
            name: "DND: an anonymous caller is excluded and refused",
            rules: vm("not_available", "callers", "known"),
            call: Call {
                dnd: true,
                caller: "anonymous",
                ..IDLE
            },
            expect: "reject 486",
        },
        Case {
            name: "DND: a spammer pattern is excluded",
            rules: vm("not_available", "callers", "known"),
            call: Call {
                dnd: true,
                caller: "sip:spammer1@example.biz",
                ..IDLE
            },
            expect: "reject 486",
        },
        // Not registered × time.
        Case {
            name: "not registered at night: voicemail",
            rules: vm("not_registered", "time", "nights"),
            call: Call {
                registered: false,
                at: (2026, 11, 24, 22, 30),
                ..IDLE
            },
            expect: "forward FNOL vm (unavailable)",
        },
        Case {
            name: "not registered by day: 480",
            rules: vm("not_registered", "time", "nights"),
            call: Call {
                registered: false,
                ..IDLE
            },
            expect: "reject 480",
        },
        // Busy × called, with a hunt list.
        Case {
            name: "busy on the office number: a hunt list",
            rules: json!([{"trigger": "busy", "called": "office",
                           "steps": [{"targets": ["bob"], "ring_seconds": 15},
                                     {"targets": ["carol", "dave"]}]}]),
            call: Call {
                busy: true,
                dialled: Some("+31201234567"),
                ..IDLE
            },
            expect: "forward FBUS bob@example.com/15s,carol@example.com+dave@example.com/35s (user-busy)",
        },
        Case {
            name: "busy on another address: 486",
            rules: json!([{"trigger": "busy", "called": "office",
                           "steps": [{"targets": ["bob"], "ring_seconds": 15}]}]),
            call: Call {
                busy: true,
                dialled: Some("alice"),
                ..IDLE
            },
            expect: "reject 486",
        },
        // No answer × callers, a parallel group, while ringing.
        Case {
            name: "no answer from family: mobile and desk at once",
            rules: json!([{"trigger": "no_answer", "callers": "family",
                           "steps": [{"targets": ["<mobile-number>", "desk"], "ring_seconds": 20}]},
                          {"trigger": "no_answer", "steps": [{"targets": ["<voice-mailbox>"]}]}]),
            call: Call {
                caller: "sip:mom@example.org",
                ..IDLE
            },
            expect: "ring 20; no answer FNOA +31612345678@example.com+desk@example.com/20s (no-answer)",
        },
        Case {
            name: "no answer from others: the next rule, voicemail",
            rules: json!([{"trigger": "no_answer", "callers": "family",
                           "steps": [{"targets": ["<mobile-number>", "desk"], "ring_seconds": 20}]},
                          {"trigger": "no_answer", "steps": [{"targets": ["<voice-mailbox>"]}]}]),
            call: IDLE,
            expect: "ring 20; no answer FNOA vm (no-answer)",
        },
    ]
}

/// Rules on the devices' responses while ringing, and rules that cannot apply.
fn failure_cases() -> Vec<Case> {
    vec![
        // Responses × time.
        Case {
            name: "503 and 408 by night to voicemail, after the first fails to bob",
            rules: json!([{"trigger": "response", "codes": [503, 408], "time": "nights",
                           "steps": [{"targets": ["<voice-mailbox>"]}]},
                          {"trigger": "after_first_fails", "steps": [{"targets": ["bob"]}]}]),
            call: Call {
                at: (2026, 11, 24, 22, 30),
                ..IDLE
            },
            expect: "ring 20; busy - bob@example.com (user-busy); no answer - bob@example.com (no-answer); \
                     408 - vm (no-answer); 503 - vm (unavailable); failure - bob@example.com (unknown)",
        },
        Case {
            name: "by day the response rule does not hold: after the first fails answers",
            rules: json!([{"trigger": "response", "codes": [503], "time": "nights",
                           "steps": [{"targets": ["<voice-mailbox>"]}]},
                          {"trigger": "after_first_fails", "steps": [{"targets": ["bob"]}]}]),
            call: IDLE,
            expect: "ring 20; busy - bob@example.com (user-busy); no answer - bob@example.com (no-answer); \
                     503 - bob@example.com (unavailable); failure - bob@example.com (unknown)",
        },
        Case {
            name: "a response rule alone",
            rules: json!([{"trigger": "response", "codes": [503],
                           "steps": [{"targets": ["bob"], "ring_seconds": 30}]}]),
            call: IDLE,
            expect: "ring 20; 503 - bob@example.com/30s (unavailable)",
        },
        // Rules that cannot apply.
        Case {
            name: "a disabled rule is skipped",
            rules: json!([{"trigger": "unconditional", "enabled": false,
                           "steps": [{"targets": ["bob"]}]}]),
            call: IDLE,
            expect: "ring 20",
        },
        Case {
            name: "a rule to the voice mailbox while voicemail is off gives way to the next",
            rules: json!([{"trigger": "unconditional", "callers": "known",
                           "steps": [{"targets": ["<voice-mailbox>"]}]},
                          {"trigger": "unconditional", "steps": [{"targets": ["bob"]}]}]),
            call: Call {
                voicemail: false,
                ..IDLE
            },
            expect: "forward FUNC bob@example.com (unconditional)",
        },
        Case {
            name: "a step whose targets cannot apply is left out of the hunt list",
            rules: json!([{"trigger": "busy",
                           "steps": [{"targets": ["<voice-mailbox>"], "ring_seconds": 10},
                                     {"targets": ["bob"], "ring_seconds": 10}]}]),
            call: Call {
                busy: true,
                voicemail: false,
                ..IDLE
            },
            expect: "forward FBUS bob@example.com/10s (user-busy)",
        },
        Case {
            name: "the first rule that holds wins, whatever comes after",
            rules: json!([{"trigger": "unconditional", "time": "nights",
                           "steps": [{"targets": ["<voice-mailbox>"]}]},
                          {"trigger": "unconditional", "steps": [{"targets": ["bob"]}]}]),
            call: Call {
                at: (2026, 11, 24, 22, 30),
                ..IDLE
            },
            expect: "forward FUNC vm (unconditional)",
        },
    ]
}

#[test]
fn each_trigger_with_each_condition() {
    for case in arrival_cases()
        .into_iter()
        .chain(other_cases())
        .chain(failure_cases())
    {
        let forwarding = with_sets(case.rules.clone());
        let d = decide(&forwarding, &case.call);
        assert_eq!(summary(&d), case.expect, "{}: {:#?}", case.name, d.path);
        assert!(!d.path.is_empty(), "{}", case.name);
    }
}

/// The path names the rule that applied and each condition that held, in local time, and the
/// rules whose conditions did not hold.
#[test]
fn the_path_tells_which_rule_and_which_conditions() {
    let forwarding = with_sets(json!([
        {"trigger": "unconditional", "callers": "family", "steps": [{"targets": ["bob"]}]},
        {"trigger": "unconditional", "time": "nights", "callers": "known",
         "steps": [{"targets": ["<voice-mailbox>"]}]}
    ]));
    let d = decide(
        &forwarding,
        &Call {
            at: (2026, 11, 24, 22, 30),
            ..IDLE
        },
    );
    let path = d.path.join("\n");
    assert!(
        path.contains(
            "rules[0] skipped: caller set family: sip:stranger@example.net matches no member"
        ),
        "{path}"
    );
    assert!(path.contains("rules[1] (every call)"), "{path}");
    assert!(
        path.contains("Tue 2026-11-24 23:30 in Europe/Amsterdam"),
        "{path}"
    );
    assert!(path.contains("is not excluded"), "{path}");
    assert!(
        path.ends_with("FUNC forwards every call to the voice mailbox"),
        "{path}"
    );
}

/// The seed's conditions as rules decide every call as the seed's conditions did: a table of
/// calls, each decided with the rules made from the diversions and with the same diversions
/// set through `set_diversions` on a forwarding that has other rules for other events.
#[test]
fn seed_rules_beside_rich_ones_decide_their_events_as_before() {
    let mut seed = Forwarding::default();
    let target = |s: &str| DiversionTarget::parse_for("t", s, &alice()).unwrap();
    seed.set_diversions(&[
        (Condition::Busy, Some(target("bob"))),
        (Condition::NoAnswer, Some(DiversionTarget::VoiceMailbox)),
        (Condition::NotOnline, Some(DiversionTarget::MobileNumber)),
    ]);
    // Rules for events the seed rules do not cover (a response code), and one whose
    // condition never holds.
    let mut rich = with_sets(json!([
        {"trigger": "busy", "called": "office", "steps": [{"targets": ["carol"]}]},
        {"trigger": "response", "codes": [503], "steps": [{"targets": ["dave"]}]}
    ]));
    rich.set_diversions(&[
        (Condition::Busy, Some(target("bob"))),
        (Condition::NoAnswer, Some(DiversionTarget::VoiceMailbox)),
        (Condition::NotOnline, Some(DiversionTarget::MobileNumber)),
    ]);
    for call in [
        IDLE,
        Call { busy: true, ..IDLE },
        Call {
            registered: false,
            ..IDLE
        },
        Call { dnd: true, ..IDLE },
        Call {
            voicemail: false,
            ..IDLE
        },
    ] {
        let a = decide(&seed, &call);
        let b = decide(&rich, &call);
        let strip = |s: String| s.split("; 503").next().unwrap_or_default().to_owned();
        assert_eq!(strip(summary(&a)), strip(summary(&b)), "{:?}", b.path);
    }
}

/// The outcome alone ([`Detail::Outcome`], the SIP door's) decides exactly as the decision with
/// its path: every case of the table, each case's rules also under other calls (every kind of
/// condition holding and not: night and day, family, anonymous and spam callers, the office
/// number, busy, not registered, DND, voicemail off), and the seed's rules beside rich ones.
/// Its path is empty.
#[test]
fn the_outcome_alone_decides_every_case_as_with_its_path() {
    let night = (2026, 11, 24, 22, 30);
    let calls = [
        IDLE,
        Call { at: night, ..IDLE },
        Call {
            caller: "sip:mom@example.org",
            ..IDLE
        },
        Call {
            caller: "sip:dad@example.org",
            at: night,
            ..IDLE
        },
        Call {
            caller: "anonymous",
            ..IDLE
        },
        Call {
            caller: "sip:spammer1@example.biz",
            dnd: true,
            ..IDLE
        },
        Call {
            dialled: Some("+31201234567"),
            busy: true,
            ..IDLE
        },
        Call {
            dialled: Some("alice"),
            ..IDLE
        },
        Call {
            registered: false,
            at: night,
            ..IDLE
        },
        Call { dnd: true, ..IDLE },
        Call {
            voicemail: false,
            busy: true,
            ..IDLE
        },
        Call {
            at: (2027, 3, 28, 1, 30),
            ..IDLE
        },
    ];
    let mut forwardings: Vec<(String, Forwarding)> = arrival_cases()
        .into_iter()
        .chain(other_cases())
        .chain(failure_cases())
        .map(|case| (case.name.to_owned(), with_sets(case.rules)))
        .collect();
    let mut seed = with_sets(json!([
        {"trigger": "busy", "called": "office", "steps": [{"targets": ["carol"]}]},
        {"trigger": "response", "codes": [503], "time": "nights", "steps": [{"targets": ["dave"]}]},
        {"trigger": "unconditional", "callers": "family", "time": "nights",
         "steps": [{"targets": ["bob"]}]}
    ]));
    let target = |s: &str| DiversionTarget::parse_for("t", s, &alice()).unwrap();
    seed.set_diversions(&[
        (Condition::Busy, Some(target("bob"))),
        (Condition::NoAnswer, Some(DiversionTarget::VoiceMailbox)),
        (Condition::NotOnline, Some(DiversionTarget::MobileNumber)),
        (Condition::NotAvailable, Some(DiversionTarget::VoiceMailbox)),
    ]);
    forwardings.push(("seed rules beside rich ones".to_owned(), seed));
    // The case table's own calls, each with its own rules.
    for case in arrival_cases()
        .into_iter()
        .chain(other_cases())
        .chain(failure_cases())
    {
        let forwarding = with_sets(case.rules);
        let full = decide_with(&forwarding, &case.call, Detail::Path);
        let bare = decide_with(&forwarding, &case.call, Detail::Outcome);
        assert_eq!(bare.outcome, full.outcome, "{}", case.name);
        assert!(bare.path.is_empty(), "{}: {:?}", case.name, bare.path);
    }
    // Every case's rules under every other call.
    for (name, forwarding) in &forwardings {
        for (i, call) in calls.iter().enumerate() {
            let full = decide_with(forwarding, call, Detail::Path);
            let bare = decide_with(forwarding, call, Detail::Outcome);
            assert_eq!(
                bare.outcome, full.outcome,
                "{name}, call {i}: {:#?}",
                full.path
            );
            assert!(bare.path.is_empty(), "{name}, call {i}: {:?}", bare.path);
        }
    }
}
