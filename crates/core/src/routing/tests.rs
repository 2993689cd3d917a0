//! The routing decisions, branch by branch.

use super::*;
use crate::account::AccountProfile;
use crate::ids::{AccountId, E164, TimeZone};
use crate::settings::Diversions;
use crate::settings::{ClockTime, DaysMask, TemporaryRule};
use chrono::TimeZone as _;

struct Fixture {
    account: Account,
    diversions: Diversions,
    /// Rules beyond the seed's conditions (replacing `diversions` when set).
    rules: Option<Forwarding>,
    /// The own address dialled.
    dialled: Option<String>,
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
        rules: None,
        dialled: None,
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
        self.route_with(caller, registered, busy, at, Detail::Path)
    }

    fn route_with(
        &self,
        caller: &str,
        registered: bool,
        busy: bool,
        at: DateTime<Utc>,
        detail: Detail,
    ) -> Decision {
        let forwarding = self
            .rules
            .clone()
            .unwrap_or_else(|| Forwarding::of_diversions(&self.diversions));
        let s = RoutingSettings {
            account: &self.account,
            forwarding: &forwarding,
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
        route_with(
            &s,
            &CallState {
                caller,
                registered,
                busy,
                at,
                dialled: self.dialled.clone(),
            },
            detail,
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
        Outcome::Forward(f) => Some((f.condition?, shown(&f.destination), f.reason)),
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

/// Every case of the three tables, at `at`.
fn every_case(at: DateTime<Utc>) -> impl Iterator<Item = Case> {
    [
        reject_func_and_dnd_cases(at),
        accept_rule_cases(at),
        forwarding_cases(at),
    ]
    .into_iter()
    .flatten()
}

#[test]
fn table_of_branches() {
    let at = wed_noon();
    let cases = every_case(at);
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
                on_response,
                on_failure,
            } => Some((
                {
                    assert!(
                        on_response.is_empty() && on_failure.is_none(),
                        "{}",
                        case.name
                    );
                    *seconds
                },
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

/// The outcome alone ([`Detail::Outcome`], the SIP door's) decides every branch of the table
/// exactly as the decision with its path, at the table's time and at others (a night, a DST
/// day, a lapsed DND), for each caller and state; its path is empty.
#[test]
fn the_outcome_alone_decides_every_branch_as_with_its_path() {
    let times = [
        wed_noon(),
        utc(2026, 11, 28, 4, 30),
        utc(2026, 3, 29, 7, 30),
        utc(2026, 11, 25, 12, 10),
    ];
    let mut compared = 0;
    for at in times {
        let cases = every_case(at);
        for case in cases {
            let mut f = fixture("Europe/Amsterdam");
            (case.setup)(&mut f);
            for caller in [case.caller, STRANGER, MOM, "anonymous"] {
                for (registered, busy) in [
                    (case.registered, case.busy),
                    (true, false),
                    (true, true),
                    (false, false),
                ] {
                    let full = f.route_with(caller, registered, busy, case.at, Detail::Path);
                    let bare = f.route_with(caller, registered, busy, case.at, Detail::Outcome);
                    assert_eq!(bare.outcome, full.outcome, "{}: {caller}", case.name);
                    assert!(bare.path.is_empty(), "{}: {:?}", case.name, bare.path);
                    assert!(!full.path.is_empty(), "{}", case.name);
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 100, "{compared}");
}

/// The outcome alone makes no path, whatever the decision consulted: reject rules, accept rules
/// and DND, rules skipped for each kind of condition, targets that cannot apply.
#[test]
fn the_outcome_alone_has_an_empty_path() {
    let mut f = fixture("Europe/Amsterdam");
    f.reject.push(RejectPattern::parse("sip:spam@%").unwrap());
    f.rule(127, "00:00", "23:59", "family");
    f.divert(Condition::NotAvailable, "<voice-mailbox>");
    f.divert(Condition::NoAnswer, "<mobile-number>");
    f.voicemail = false;
    for (caller, registered, busy) in [
        ("sip:spam@example.net", true, false),
        (STRANGER, true, false),
        (MOM, true, false),
        (MOM, true, true),
        (MOM, false, false),
        ("anonymous", true, false),
    ] {
        let full = f.route_with(caller, registered, busy, wed_noon(), Detail::Path);
        let bare = f.route_with(caller, registered, busy, wed_noon(), Detail::Outcome);
        assert!(!full.path.is_empty(), "{caller}");
        assert_eq!(bare.path, Vec::<String>::new(), "{caller}");
        assert_eq!(bare.outcome, full.outcome, "{caller}");
    }
}
